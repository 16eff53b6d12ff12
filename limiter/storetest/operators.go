package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/behest/caddy-behest/limiter"
)

// testUsageTwoDimensions: usage grouped by two dimensions, each row carrying both values, with
// cached input tokens summed like the rest; an empty range and a bad query.
func testUsageTwoDimensions(t *testing.T, open func(t *testing.T) limiter.Store) {
	e := newEnv(t, open)
	for _, u := range []struct {
		at               time.Time
		user, org, model string
		in, cached       int64
	}{
		{jan30, "org_9:a", "org_9", "gpt-4o", 100, 40},
		{jan30, "org_9:a", "org_9", "gpt-4o", 50, 0},
		{jan30, "org_7:b", "org_7", "claude", 10, 10},
		{Base, "org_9:a", "org_9", "claude", 30, 20},
		{feb1, "org_7:b", "org_7", "gpt-4o", 5, 1},
		// An org of its own, not the user's prefix (a claim): the org it names is the org.
		{feb1, "org_7:b", "acme", "gpt-4o", 1, 0},
	} {
		r := limiter.Request{Project: e.project, User: u.user, Org: u.org, Session: "s", Tier: "t", Model: u.model, Tokens: 1000, Cost: 1000}
		res := e.admit(u.at, r)
		e.settle(u.at, res, limiter.Usage{InputTokens: u.in, CachedInputTokens: u.cached, OutputTokens: 1, Cost: limiter.Nanos(u.in)})
	}
	q := limiter.UsageQuery{Project: e.project, GroupBy: []string{"day", "model"}, From: jan30, To: feb1}
	want := []limiter.UsageRow{
		{Group: []string{"2026-01-30", "claude"}, Requests: 1, InputTokens: 10, CachedInputTokens: 10, OutputTokens: 1, Cost: 10},
		{Group: []string{"2026-01-30", "gpt-4o"}, Requests: 2, InputTokens: 150, CachedInputTokens: 40, OutputTokens: 2, Cost: 150},
		{Group: []string{"2026-01-31", "claude"}, Requests: 1, InputTokens: 30, CachedInputTokens: 20, OutputTokens: 1, Cost: 30},
		{Group: []string{"2026-02-01", "gpt-4o"}, Requests: 2, InputTokens: 6, CachedInputTokens: 1, OutputTokens: 2, Cost: 6},
	}
	if got := e.usage(q); !rowsEqual(got, want) {
		t.Errorf("day,model\n got %+v\nwant %+v", got, want)
	}
	q.GroupBy = []string{"org", "user"}
	want = []limiter.UsageRow{
		{Group: []string{"acme", "org_7:b"}, Requests: 1, InputTokens: 1, OutputTokens: 1, Cost: 1},
		{Group: []string{"org_7", "org_7:b"}, Requests: 2, InputTokens: 15, CachedInputTokens: 11, OutputTokens: 2, Cost: 15},
		{Group: []string{"org_9", "org_9:a"}, Requests: 3, InputTokens: 180, CachedInputTokens: 60, OutputTokens: 3, Cost: 180},
	}
	if got := e.usage(q); !rowsEqual(got, want) {
		t.Errorf("org,user\n got %+v\nwant %+v", got, want)
	}
	// A cached count over the input is capped at it: never more cached than read.
	res := e.admit(Base, limiter.Request{Project: e.project, User: "odd", Tokens: 10})
	e.settle(Base, res, limiter.Usage{InputTokens: 3, CachedInputTokens: 9})
	q = limiter.UsageQuery{Project: e.project, GroupBy: []string{"user"}, User: "odd"}
	if got := e.usage(q); len(got) != 1 || got[0].CachedInputTokens != 3 {
		t.Errorf("cached over input: %+v, want 3 cached", got)
	}
	q = limiter.UsageQuery{Project: e.project, GroupBy: []string{"day", "model"}, From: day("2025-06-01"), To: day("2025-06-30")}
	if got := e.usage(q); len(got) != 0 {
		t.Errorf("an empty range: %+v", got)
	}
	for _, bad := range [][]string{{"day", "day"}, {"day", "model", "user"}, {"week"}, {"day", "week"}} {
		if _, err := e.s.Usage(e.ctx, limiter.UsageQuery{Project: e.project, GroupBy: bad}); err == nil {
			t.Errorf("group_by %v: no error", bad)
		}
	}
}

// testSettleSpend: Settle reports the user's day and month spend and the project's month spend
// just after it (what settled plus what other requests in flight hold), nothing for a
// reservation settled already, and 0 for a period that ended meanwhile.
func testSettleSpend(t *testing.T, open func(t *testing.T) limiter.Store) {
	e := newEnv(t, open)
	r := e.req("u1", limiter.Limits{})
	r.Cost = 100
	early := Base.Add(-time.Hour)
	inFlight := e.admit(early, r)
	res := e.admit(early, r)
	other := e.admit(early, e.req("u2", limiter.Limits{}))
	spend := e.settle(early, res, limiter.Usage{Cost: 30})
	if want := (limiter.Spend{UserDay: 130, UserMonth: 130, ProjectMonth: 130}); spend != want {
		t.Errorf("Settle = %+v, want %+v", spend, want)
	}
	if again := e.settle(early, res, limiter.Usage{Cost: 30}); again != (limiter.Spend{}) {
		t.Errorf("settled again: %+v, want nothing", again)
	}
	e.settle(early, other, limiter.Usage{Cost: 5})
	// Across midnight (Base is two minutes before the end of January 31, and of January): the
	// reservation's day and month are over, the user's counters moved on.
	next := Base.Add(3 * time.Minute)
	e.admit(next, r)
	if spend := e.settle(next, inFlight, limiter.Usage{Cost: 1}); spend != (limiter.Spend{}) {
		t.Errorf("a reservation of a day and month gone: %+v, want zeros", spend)
	}
}

// testFreeRequests: a free request counts against requests per minute and concurrency, and
// is recorded in no usage.
func testFreeRequests(t *testing.T, open func(t *testing.T) limiter.Store) {
	e := newEnv(t, open)
	r := e.req("u1", limiter.Limits{RequestsPerMinute: 2, ConcurrentRequests: 1})
	r.Free = true
	res := e.admit(Base, r)
	e.refuse(Base, r, limiter.LimitConcurrentRequests)
	e.settle(Base, res, limiter.Usage{})
	r.Free = false
	res = e.admit(Base, r)
	e.settle(Base, res, limiter.Usage{InputTokens: 5})
	e.refuse(Base, r, limiter.LimitRequestsPerMinute)
	rows := e.usage(limiter.UsageQuery{Project: e.project, GroupBy: []string{"user"}, From: Base, To: Base})
	want := []limiter.UsageRow{{Group: []string{"u1"}, Requests: 1, InputTokens: 5}}
	if !rowsEqual(rows, want) {
		t.Errorf("usage %+v, want only the metered request %+v", rows, want)
	}
}

// testClaim: a key is claimed once, by one caller of many at once, per project; claims of other
// projects and keys are their own.
func testClaim(t *testing.T, open func(t *testing.T) limiter.Store) {
	e := newEnv(t, open)
	until := time.Now().Add(time.Hour)
	var firsts atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			first, err := e.s.Claim(e.ctx, e.project, "alert:project:cost_per_month:0.8:2026-01", until)
			if err != nil {
				t.Error(err)
			}
			if first {
				firsts.Add(1)
			}
		})
	}
	wg.Wait()
	if n := firsts.Load(); n != 1 {
		t.Fatalf("%d of 50 concurrent claims of one key were first, want 1", n)
	}
	for i, c := range []struct{ project, key string }{{e.project, "alert:project:cost_per_month:1:2026-01"}, {newID("other"), "alert:project:cost_per_month:0.8:2026-01"}} {
		first, err := e.s.Claim(e.ctx, c.project, c.key, until)
		if err != nil || !first {
			t.Errorf("claim %d (%s %s) = %v, %v; want first", i, c.project, c.key, first, err)
		}
	}
	for i := range 3 {
		if first, err := e.s.Claim(e.ctx, e.project, fmt.Sprint("jti-", i), until); err != nil || !first {
			t.Errorf("jti-%d: %v, %v", i, first, err)
		}
		if first, err := e.s.Claim(e.ctx, e.project, fmt.Sprint("jti-", i), until); err != nil || first {
			t.Errorf("jti-%d again: %v, %v; want taken", i, first, err)
		}
	}
}

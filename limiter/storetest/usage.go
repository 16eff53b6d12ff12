package storetest

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/behest/caddy-behest/limiter"
)

func rowsEqual(a, b []limiter.UsageRow) bool {
	return len(a) == 0 && len(b) == 0 || reflect.DeepEqual(a, b)
}

// usageRecord is one settled request of the usage test.
type usageRecord struct {
	at                         time.Time
	user, session, tier, model string
	in, out                    int64
	cost                       limiter.Nanos
}

var (
	jan30 = time.Date(2026, 1, 30, 12, 0, 0, 0, time.UTC)
	feb1  = Base.Add(time.Hour)

	usageRecords = []usageRecord{
		{jan30, "org_9:user_2", "s-a", "free", "gpt-4o-mini", 10, 5, 100},
		{Base, "org_9:user_2", "s-a", "free", "gpt-4o", 20, 10, 200},
		{Base, "org_9:user_3", "s-b", "pro", "gpt-4o", 30, 15, 300},
		{Base, "solo", "s-c", "pro", "gpt-4o-mini", 40, 20, 400},
		{feb1, "solo", "s-c", "pro", "gpt-4o", 50, 25, 500},
		{feb1, "org_9:user_3", "s-b", "free", "gpt-4o-mini", 60, 30, 600},
	}
)

func day(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d
}

func testUsage(t *testing.T, open func(t *testing.T) limiter.Store) {
	e := newEnv(t, open)
	otherProject := newID("proj")
	record := func(project string, u usageRecord) {
		org, _, _ := strings.Cut(u.user, ":")
		if !strings.Contains(u.user, ":") {
			org = ""
		}
		r := limiter.Request{Project: project, User: u.user, Org: org, Session: u.session, Tier: u.tier, Model: u.model,
			Tokens: 1000, Cost: 1000}
		res := e.admit(u.at, r)
		e.settle(u.at.Add(time.Second), res, limiter.Usage{InputTokens: u.in, OutputTokens: u.out, Cost: u.cost})
	}
	for _, u := range usageRecords {
		record(e.project, u)
	}
	record(otherProject, usageRecord{Base, "org_9:user_2", "s-a", "free", "gpt-4o", 7, 7, 7})
	// Admitted but never settled: not usage (yet).
	e.admit(Base, limiter.Request{Project: e.project, User: "solo", Session: "s-c", Tier: "pro", Model: "gpt-4o", Tokens: 5})

	row := func(key string, n, in, out int64) limiter.UsageRow {
		return limiter.UsageRow{Group: []string{key}, Requests: n, InputTokens: in, OutputTokens: out, Cost: limiter.Nanos(10 * in)}
	}
	all := limiter.UsageQuery{Project: e.project, From: day("2026-01-30"), To: day("2026-02-01")}
	for _, c := range []struct {
		name string
		q    func(q limiter.UsageQuery) limiter.UsageQuery
		want []limiter.UsageRow
	}{
		{"user", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy = []string{"user"}; return q },
			[]limiter.UsageRow{row("org_9:user_2", 2, 30, 15), row("org_9:user_3", 2, 90, 45), row("solo", 2, 90, 45)}},
		{"org", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy = []string{"org"}; return q },
			[]limiter.UsageRow{row("", 2, 90, 45), row("org_9", 4, 120, 60)}},
		{"session", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy = []string{"session"}; return q },
			[]limiter.UsageRow{row("s-a", 2, 30, 15), row("s-b", 2, 90, 45), row("s-c", 2, 90, 45)}},
		{"tier", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy = []string{"tier"}; return q },
			[]limiter.UsageRow{row("free", 3, 90, 45), row("pro", 3, 120, 60)}},
		{"model", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy = []string{"model"}; return q },
			[]limiter.UsageRow{row("gpt-4o", 3, 100, 50), row("gpt-4o-mini", 3, 110, 55)}},
		{"day", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy = []string{"day"}; return q },
			[]limiter.UsageRow{row("2026-01-30", 1, 10, 5), row("2026-01-31", 3, 90, 45), row("2026-02-01", 2, 110, 55)}},
		{"one_day", func(q limiter.UsageQuery) limiter.UsageQuery {
			q.GroupBy, q.From, q.To = []string{"user"}, day("2026-01-31"), day("2026-01-31")
			return q
		}, []limiter.UsageRow{row("org_9:user_2", 1, 20, 10), row("org_9:user_3", 1, 30, 15), row("solo", 1, 40, 20)}},
		{"from", func(q limiter.UsageQuery) limiter.UsageQuery {
			q.GroupBy, q.From = []string{"day"}, day("2026-01-31")
			return q
		},
			[]limiter.UsageRow{row("2026-01-31", 3, 90, 45), row("2026-02-01", 2, 110, 55)}},
		{"to", func(q limiter.UsageQuery) limiter.UsageQuery {
			q.GroupBy, q.To = []string{"day"}, day("2026-01-31")
			return q
		},
			[]limiter.UsageRow{row("2026-01-30", 1, 10, 5), row("2026-01-31", 3, 90, 45)}},
		{"user_filter", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy, q.User = []string{"day"}, "solo"; return q },
			[]limiter.UsageRow{row("2026-01-31", 1, 40, 20), row("2026-02-01", 1, 50, 25)}},
		{"user_filter_org", func(q limiter.UsageQuery) limiter.UsageQuery {
			q.GroupBy, q.User = []string{"org"}, "org_9:user_3"
			return q
		},
			[]limiter.UsageRow{row("org_9", 2, 90, 45)}},
		{"nothing_then", func(q limiter.UsageQuery) limiter.UsageQuery {
			q.GroupBy, q.From, q.To = []string{"user"}, day("2025-12-01"), day("2025-12-31")
			return q
		}, nil},
		{"unknown_user", func(q limiter.UsageQuery) limiter.UsageQuery {
			q.GroupBy, q.User = []string{"user"}, "nobody"
			return q
		}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := c.q(all)
			if got := e.usage(q); !rowsEqual(got, c.want) {
				t.Errorf("Usage(%+v)\n got %+v\nwant %+v", q, got, c.want)
			}
		})
	}
	t.Run("other_project", func(t *testing.T) {
		q := all
		q.Project, q.GroupBy = otherProject, []string{"model"}
		want := []limiter.UsageRow{{Group: []string{"gpt-4o"}, Requests: 1, InputTokens: 7, OutputTokens: 7, Cost: 7}}
		if got := e.usage(q); !rowsEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
}

func testRemaining(t *testing.T, open func(t *testing.T) limiter.Store) {
	t.Run("off", func(t *testing.T) {
		e := newEnv(t, open)
		r := e.req("u1", limiter.Limits{})
		r.Tokens, r.Cost = 1e9, 1e9
		e.admit(Base, r)
		if got := e.remaining(Base, r); got != off {
			t.Errorf("Remaining with no limits = %+v, want all -1", got)
		}
	})
	t.Run("fresh", func(t *testing.T) {
		e := newEnv(t, open)
		l := limiter.Limits{RequestsPerMinute: 1, TokensPerMinute: 2, TokensPerDay: 3, CostPerDay: 4, CostPerMonth: 5, ConcurrentRequests: 6}
		r := e.req("u1", l)
		r.ProjectCostPerMonth = 7
		want := limiter.Remaining{RequestsPerMinute: 1, TokensPerMinute: 2, TokensPerDay: 3, CostPerDay: 4, CostPerMonth: 5,
			ConcurrentRequests: 6, ProjectCostPerMonth: 7}
		for range 3 { // reserves nothing
			if got := e.remaining(Base, r); got != want {
				t.Fatalf("Remaining = %+v, want %+v", got, want)
			}
		}
		r.Tokens, r.Cost = 2, 4
		e.admit(Base, r)
		want = limiter.Remaining{TokensPerDay: 1, CostPerMonth: 1, ConcurrentRequests: 5, ProjectCostPerMonth: 3}
		if got := e.remaining(Base, r); got != want {
			t.Errorf("after one request: Remaining = %+v, want %+v", got, want)
		}
	})
}

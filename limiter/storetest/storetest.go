// Package storetest is the conformance suite every limiter.Store must pass: the embedded store
// runs it in limiter's tests, and a Redis store runs the same suite unchanged.
//
// Every call takes its time explicitly, from a fixed base near a day and month boundary, so the
// suite never sleeps. Each subtest opens its own store and uses a project ID of its own, so a
// store backed by a shared server (Redis) needs no flushing between subtests.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/behest/caddy-behest/limiter"
)

// Base is the suite's "now": two minutes before both a UTC day and a UTC month end.
var Base = time.Date(2026, 1, 31, 23, 58, 0, 0, time.UTC)

// Run runs the suite. open makes a fresh, empty store for one subtest; Run closes it when the
// subtest ends, so open must not.
func Run(t *testing.T, open func(t *testing.T) limiter.Store) {
	t.Run("Limits", func(t *testing.T) { testLimits(t, open) })
	t.Run("RefusalOrder", func(t *testing.T) { testRefusalOrder(t, open) })
	t.Run("RollingMinuteEdges", func(t *testing.T) { testRollingMinuteEdges(t, open) })
	t.Run("RollingRetryAfter", func(t *testing.T) { testRollingRetryAfter(t, open) })
	t.Run("PeriodRollover", func(t *testing.T) { testPeriodRollover(t, open) })
	t.Run("PeriodsAreUTC", func(t *testing.T) { testPeriodsAreUTC(t, open) })
	t.Run("OutOfOrderNow", func(t *testing.T) { testOutOfOrderNow(t, open) })
	t.Run("TierChange", func(t *testing.T) { testTierChange(t, open) })
	t.Run("Settle", func(t *testing.T) { testSettle(t, open) })
	t.Run("DecisionHeaders", func(t *testing.T) { testDecisionHeaders(t, open) })
	t.Run("Revoke", func(t *testing.T) { testRevoke(t, open) })
	t.Run("Usage", func(t *testing.T) { testUsage(t, open) })
	t.Run("Remaining", func(t *testing.T) { testRemaining(t, open) })
	t.Run("Race", func(t *testing.T) { testRace(t, open) })
}

// env is one subtest's store and project.
type env struct {
	t       *testing.T
	s       limiter.Store
	ctx     context.Context
	project string
}

func newEnv(t *testing.T, open func(t *testing.T) limiter.Store) *env {
	t.Helper()
	s := open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &env{t: t, s: s, ctx: context.Background(), project: newID("proj")}
}

// newID is unique across runs, so stores that outlive a test run never see old keys.
func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func (e *env) req(user string, l limiter.Limits) limiter.Request {
	return limiter.Request{
		Project: e.project, User: user, Session: "sess-" + user, Tier: "free", Model: "gpt-4o-mini",
		Limits: l,
	}
}

func (e *env) reserve(now time.Time, r limiter.Request) (limiter.Reservation, limiter.Decision) {
	e.t.Helper()
	res, dec, err := e.s.Reserve(e.ctx, now, r)
	if err != nil {
		e.t.Fatalf("Reserve at %s: %v", now.Format(time.RFC3339Nano), err)
	}
	return res, dec
}

func (e *env) admit(now time.Time, r limiter.Request) limiter.Reservation {
	e.t.Helper()
	res, dec := e.reserve(now, r)
	if !dec.Allowed || dec.Refused != limiter.LimitNone || dec.Revoked {
		e.t.Fatalf("Reserve at %s (tokens %d, cost %d): want admitted, got %+v",
			now.Format(time.RFC3339Nano), r.Tokens, r.Cost, dec)
	}
	if res.ID == 0 {
		e.t.Fatalf("Reserve at %s: admitted with reservation ID 0", now.Format(time.RFC3339Nano))
	}
	return res
}

func (e *env) refuse(now time.Time, r limiter.Request, want limiter.Limit) limiter.Decision {
	e.t.Helper()
	res, dec := e.reserve(now, r)
	if res.ID != 0 {
		e.t.Errorf("refused by %q with a reservation (ID %d): a refusal holds nothing", want, res.ID)
	}
	if dec.Allowed || dec.Refused != want {
		e.t.Fatalf("Reserve at %s (tokens %d, cost %d): want refused by %q, got allowed=%v refused=%q revoked=%v",
			now.Format(time.RFC3339Nano), r.Tokens, r.Cost, want, dec.Allowed, dec.Refused, dec.Revoked)
	}
	if dec.RetryAfter <= 0 {
		e.t.Errorf("refused by %q: RetryAfter = %v, want > 0", want, dec.RetryAfter)
	}
	return dec
}

func (e *env) settle(now time.Time, res limiter.Reservation, used limiter.Usage) {
	e.t.Helper()
	if err := e.s.Settle(e.ctx, now, res, used); err != nil {
		e.t.Fatalf("Settle: %v", err)
	}
}

func (e *env) remaining(now time.Time, r limiter.Request) limiter.Remaining {
	e.t.Helper()
	rem, err := e.s.Remaining(e.ctx, now, r)
	if err != nil {
		e.t.Fatalf("Remaining: %v", err)
	}
	return rem
}

func (e *env) usage(q limiter.UsageQuery) []limiter.UsageRow {
	e.t.Helper()
	rows, err := e.s.Usage(e.ctx, q)
	if err != nil {
		e.t.Fatalf("Usage(%+v): %v", q, err)
	}
	return rows
}

// off is Remaining with every limit off.
var off = limiter.Remaining{RequestsPerMinute: -1, TokensPerMinute: -1, TokensPerDay: -1, CostPerDay: -1,
	CostPerMonth: -1, ConcurrentRequests: -1, ProjectCostPerMonth: -1}

// limitCase is one limit, set to 100 (or 3 for counted limits), with how a request uses it and
// where Remaining reports it.
type limitCase struct {
	name    string
	limit   limiter.Limit
	limits  limiter.Limits
	project limiter.Nanos
	// counted: each request uses 1 (requests, concurrency); else the amount is Tokens or Cost.
	counted bool
	cost    bool // the amount is Cost, not Tokens
	// retry is RetryAfter when refused at Base with everything admitted at Base (0: just > 0).
	retry time.Duration
	rem   func(r *limiter.Remaining) *int64
}

func limitCases() []limitCase {
	nanos := func(p *limiter.Nanos) *int64 { return (*int64)(p) }
	return []limitCase{
		{name: "requests_per_minute", limit: limiter.LimitRequestsPerMinute, counted: true,
			limits: limiter.Limits{RequestsPerMinute: 3}, retry: time.Minute,
			rem: func(r *limiter.Remaining) *int64 { return &r.RequestsPerMinute }},
		{name: "tokens_per_minute", limit: limiter.LimitTokensPerMinute,
			limits: limiter.Limits{TokensPerMinute: 100}, retry: time.Minute,
			rem: func(r *limiter.Remaining) *int64 { return &r.TokensPerMinute }},
		{name: "tokens_per_day", limit: limiter.LimitTokensPerDay,
			limits: limiter.Limits{TokensPerDay: 100}, retry: 2 * time.Minute,
			rem: func(r *limiter.Remaining) *int64 { return &r.TokensPerDay }},
		{name: "cost_per_day", limit: limiter.LimitCostPerDay, cost: true,
			limits: limiter.Limits{CostPerDay: 100}, retry: 2 * time.Minute,
			rem: func(r *limiter.Remaining) *int64 { return nanos(&r.CostPerDay) }},
		{name: "cost_per_month", limit: limiter.LimitCostPerMonth, cost: true,
			limits: limiter.Limits{CostPerMonth: 100}, retry: 2 * time.Minute,
			rem: func(r *limiter.Remaining) *int64 { return nanos(&r.CostPerMonth) }},
		{name: "concurrent_requests", limit: limiter.LimitConcurrentRequests, counted: true,
			limits: limiter.Limits{ConcurrentRequests: 3},
			rem:    func(r *limiter.Remaining) *int64 { return &r.ConcurrentRequests }},
		{name: "project_cost_per_month", limit: limiter.LimitProjectCostPerMonth, cost: true,
			project: 100, retry: 2 * time.Minute,
			rem: func(r *limiter.Remaining) *int64 { return nanos(&r.ProjectCostPerMonth) }},
	}
}

func (c limitCase) request(e *env, user string, amount int64) limiter.Request {
	r := e.req(user, c.limits)
	r.ProjectCostPerMonth = c.project
	if !c.counted {
		if c.cost {
			r.Cost = limiter.Nanos(amount)
		} else {
			r.Tokens = amount
		}
	}
	return r
}

func testLimits(t *testing.T, open func(t *testing.T) limiter.Store) {
	for _, c := range limitCases() {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, open)
			if got := c.limit.String(); got != c.name {
				t.Errorf("Limit.String() = %q, want %q", got, c.name)
			}
			// Amounts against a limit of 100: 40+40 fit, 30 does not, 20 fits exactly, 1 does not.
			steps := []struct {
				amount int64
				ok     bool
			}{{40, true}, {40, true}, {30, false}, {20, true}, {1, false}}
			if c.counted { // limit 3
				steps = []struct {
					amount int64
					ok     bool
				}{{1, true}, {1, true}, {1, true}, {1, false}, {1, false}}
			}
			for i, s := range steps {
				// The project budget is shared: spread it over users to show that.
				user := "u1"
				if c.limit == limiter.LimitProjectCostPerMonth && i%2 == 1 {
					user = "u2"
				}
				r := c.request(e, user, s.amount)
				if s.ok {
					e.admit(Base, r)
					continue
				}
				dec := e.refuse(Base, r, c.limit)
				if dec.Refused.Quota() != (c.limit >= limiter.LimitTokensPerDay) {
					t.Errorf("%q.Quota() = %v", dec.Refused, dec.Refused.Quota())
				}
				if c.retry != 0 && dec.RetryAfter != c.retry {
					t.Errorf("RetryAfter = %v, want %v", dec.RetryAfter, c.retry)
				}
			}
			want := off
			*c.rem(&want) = 0
			if got := e.remaining(Base, c.request(e, "u1", 0)); got != want {
				t.Errorf("Remaining = %+v, want %+v", got, want)
			}
			// Per-user limits leave other users alone; the project budget does not.
			other := c.request(e, "someone-else", 1)
			if c.limit == limiter.LimitProjectCostPerMonth {
				e.refuse(Base, other, c.limit)
			} else {
				e.admit(Base, other)
			}
		})
	}
	t.Run("quota", func(t *testing.T) {
		for l, want := range map[limiter.Limit]bool{
			limiter.LimitRequestsPerMinute: false, limiter.LimitTokensPerMinute: false,
			limiter.LimitConcurrentRequests: false, limiter.LimitTokensPerDay: true, limiter.LimitCostPerDay: true,
			limiter.LimitCostPerMonth: true, limiter.LimitProjectCostPerMonth: true,
		} {
			if l.Quota() != want {
				t.Errorf("%q.Quota() = %v, want %v", l, l.Quota(), want)
			}
		}
	})
}

// testRefusalOrder: with every limit used up, the one reported is the first of concurrency,
// requests per minute, tokens per minute, tokens per day, cost per day, cost per month,
// project cost per month. Each step frees the limit that refused, so the next one shows.
func testRefusalOrder(t *testing.T, open func(t *testing.T) limiter.Store) {
	e := newEnv(t, open)
	l := limiter.Limits{ConcurrentRequests: 1, RequestsPerMinute: 1, TokensPerMinute: 10, TokensPerDay: 10,
		CostPerDay: 10, CostPerMonth: 10}
	r := e.req("u1", l)
	r.ProjectCostPerMonth, r.Tokens, r.Cost = 10, 10, 10
	at := Base.Add(-time.Hour) // an hour from the day's end
	res := e.admit(at, r)      // uses up every limit
	next := r
	next.Tokens, next.Cost = 1, 1
	e.refuse(at, next, limiter.LimitConcurrentRequests)
	e.settle(at, res, limiter.Usage{InputTokens: 10, Cost: 10})
	e.refuse(at, next, limiter.LimitRequestsPerMinute)
	next.Limits.RequestsPerMinute = 2 // a new tier, on the next request
	e.refuse(at, next, limiter.LimitTokensPerMinute)
	at = at.Add(time.Minute)
	for _, s := range []struct {
		raise func(*limiter.Request)
		want  limiter.Limit
	}{
		{func(*limiter.Request) {}, limiter.LimitTokensPerDay},
		{func(q *limiter.Request) { q.Limits.TokensPerDay = 100 }, limiter.LimitCostPerDay},
		{func(q *limiter.Request) { q.Limits.CostPerDay = 100 }, limiter.LimitCostPerMonth},
		{func(q *limiter.Request) { q.Limits.CostPerMonth = 100 }, limiter.LimitProjectCostPerMonth},
	} {
		s.raise(&next)
		e.refuse(at, next, s.want)
	}
	next.ProjectCostPerMonth = 100
	e.admit(at, next)
}

func testRollingMinuteEdges(t *testing.T, open func(t *testing.T) limiter.Store) {
	for _, c := range []struct {
		name   string
		limits limiter.Limits
		tokens int64
		limit  limiter.Limit
	}{
		{"requests_per_minute", limiter.Limits{RequestsPerMinute: 1}, 0, limiter.LimitRequestsPerMinute},
		{"tokens_per_minute", limiter.Limits{TokensPerMinute: 10}, 10, limiter.LimitTokensPerMinute},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, open)
			r := e.req("u1", c.limits)
			r.Tokens = c.tokens
			for _, t0 := range []time.Time{Base, Base.Add(time.Minute), Base.Add(2 * time.Minute)} {
				e.admit(t0, r)
				dec := e.refuse(t0.Add(59999*time.Millisecond), r, c.limit)
				if dec.RetryAfter > time.Second {
					t.Errorf("at t+59.999s: RetryAfter = %v, want <= 1s", dec.RetryAfter)
				}
			}
			// Past a day and month boundary, with nothing left in the window.
			want := off
			if c.limit == limiter.LimitRequestsPerMinute {
				want.RequestsPerMinute = 1
			} else {
				want.TokensPerMinute = 10
			}
			if got := e.remaining(Base.Add(4*time.Minute), r); got != want {
				t.Errorf("Remaining after the window emptied = %+v, want %+v", got, want)
			}
		})
	}
}

func testRollingRetryAfter(t *testing.T, open func(t *testing.T) limiter.Store) {
	t.Run("requests_per_minute", func(t *testing.T) {
		e := newEnv(t, open)
		r := e.req("u1", limiter.Limits{RequestsPerMinute: 3})
		for _, d := range []time.Duration{0, 10 * time.Second, 20 * time.Second} {
			e.admit(Base.Add(d), r)
		}
		// The oldest request leaves at +60s.
		if dec := e.refuse(Base.Add(30*time.Second), r, limiter.LimitRequestsPerMinute); dec.RetryAfter != 30*time.Second {
			t.Errorf("RetryAfter = %v, want 30s", dec.RetryAfter)
		}
		e.refuse(Base.Add(59*time.Second), r, limiter.LimitRequestsPerMinute)
		e.admit(Base.Add(60*time.Second), r)
	})
	t.Run("tokens_per_minute", func(t *testing.T) {
		e := newEnv(t, open)
		r := e.req("u1", limiter.Limits{TokensPerMinute: 100})
		for _, s := range []struct {
			at     time.Duration
			tokens int64
		}{{0, 50}, {10 * time.Second, 30}, {20 * time.Second, 20}} {
			r.Tokens = s.tokens
			e.admit(Base.Add(s.at), r)
		}
		// 60 more need 60 to leave: the 50 of +0s leaving at +60s is not enough, the 30 of +10s
		// leaving at +70s is.
		r.Tokens = 60
		if dec := e.refuse(Base.Add(30*time.Second), r, limiter.LimitTokensPerMinute); dec.RetryAfter != 40*time.Second {
			t.Errorf("RetryAfter = %v, want 40s", dec.RetryAfter)
		}
		e.refuse(Base.Add(69*time.Second), r, limiter.LimitTokensPerMinute)
		e.admit(Base.Add(70*time.Second), r)
	})
}

// boundary is the last second of a UTC period and the first of the next.
type boundary struct {
	name       string
	last, next time.Time
	day, month bool // whether a day / month starts at next
}

var boundaries = []boundary{
	{"day", time.Date(2026, 1, 30, 23, 59, 59, 0, time.UTC), time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC), true, false},
	{"month", time.Date(2026, 1, 31, 23, 59, 59, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), true, true},
	{"february", time.Date(2026, 2, 28, 23, 59, 59, 0, time.UTC), time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), true, true},
	{"year", time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), true, true},
}

func testPeriodRollover(t *testing.T, open func(t *testing.T) limiter.Store) {
	for _, c := range limitCases() {
		if c.limit < limiter.LimitTokensPerDay {
			continue
		}
		monthly := c.limit == limiter.LimitCostPerMonth || c.limit == limiter.LimitProjectCostPerMonth
		for _, b := range boundaries {
			t.Run(c.name+"/"+b.name, func(t *testing.T) {
				e := newEnv(t, open)
				// Fill the period an hour before its end, then ask at its last second.
				e.admit(b.last.Add(-time.Hour), c.request(e, "u1", 100))
				dec := e.refuse(b.last, c.request(e, "u1", 1), c.limit)
				resets := b.day && !monthly || b.month
				next := b.next
				if !resets {
					next = time.Date(b.next.Year(), b.next.Month()+1, 1, 0, 0, 0, 0, time.UTC)
				}
				if want := next.Sub(b.last); dec.RetryAfter != want {
					t.Errorf("RetryAfter at %s = %v, want %v (until %s)", b.last.Format(time.RFC3339), dec.RetryAfter, want, next.Format(time.RFC3339))
				}
				if !resets {
					e.refuse(b.next, c.request(e, "u1", 1), c.limit)
					return
				}
				want := off
				*c.rem(&want) = 100
				if got := e.remaining(b.next, c.request(e, "u1", 0)); got != want {
					t.Errorf("Remaining at %s = %+v, want %+v", b.next.Format(time.RFC3339), got, want)
				}
				e.admit(b.next, c.request(e, "u1", 100))
				e.refuse(b.next, c.request(e, "u1", 1), c.limit)
			})
		}
	}
}

func testPeriodsAreUTC(t *testing.T, open func(t *testing.T) limiter.Store) {
	e := newEnv(t, open)
	ny := time.FixedZone("UTC-5", -5*3600)
	r := e.req("u1", limiter.Limits{TokensPerDay: 100, CostPerMonth: 100})
	r.Tokens, r.Cost = 100, 100
	e.admit(time.Date(2026, 1, 31, 18, 0, 0, 0, ny), r) // 23:00Z
	dec := e.refuse(time.Date(2026, 1, 31, 18, 59, 59, 0, ny), r, limiter.LimitTokensPerDay)
	if dec.RetryAfter != time.Second {
		t.Errorf("RetryAfter = %v, want 1s", dec.RetryAfter)
	}
	e.admit(time.Date(2026, 1, 31, 19, 0, 0, 0, ny), r) // 2026-02-01T00:00:00Z
}

// testOutOfOrderNow: callers take now before the store serialises them, so at a boundary a
// request stamped just before it can arrive just after one stamped past it. That must never let
// spend past a budget.
func testOutOfOrderNow(t *testing.T, open func(t *testing.T) limiter.Store) {
	before := time.Date(2026, 1, 31, 23, 59, 59, 999e6, time.UTC)
	after := time.Date(2026, 2, 1, 0, 0, 0, 1e6, time.UTC)
	t.Run("project_cost_per_month", func(t *testing.T) {
		e := newEnv(t, open)
		r := func(user string, cost limiter.Nanos) limiter.Request {
			q := e.req(user, limiter.Limits{})
			q.ProjectCostPerMonth, q.Cost = 100, cost
			return q
		}
		e.admit(after, r("a", 100))
		e.reserve(before, r("b", 50)) // January's: admitted or not
		e.refuse(after.Add(time.Millisecond), r("c", 50), limiter.LimitProjectCostPerMonth)
		if got := e.remaining(after.Add(time.Second), r("c", 0)).ProjectCostPerMonth; got != 0 {
			t.Errorf("February's project budget left = %d, want 0", got)
		}
	})
	t.Run("tokens_per_day", func(t *testing.T) {
		e := newEnv(t, open)
		r := e.req("u1", limiter.Limits{TokensPerDay: 100})
		r.Tokens = 100
		e.admit(after, r)
		e.reserve(before, r)
		e.refuse(after.Add(time.Millisecond), r, limiter.LimitTokensPerDay)
	})
}

func testTierChange(t *testing.T, open func(t *testing.T) limiter.Store) {
	t.Run("requests_per_minute", func(t *testing.T) {
		e := newEnv(t, open)
		free, pro, tiny := limiter.Limits{RequestsPerMinute: 2}, limiter.Limits{RequestsPerMinute: 5}, limiter.Limits{RequestsPerMinute: 1}
		e.admit(Base, e.req("u1", free))
		e.admit(Base, e.req("u1", free))
		e.refuse(Base, e.req("u1", free), limiter.LimitRequestsPerMinute)
		e.admit(Base.Add(time.Second), e.req("u1", pro)) // the upgrade applies at once
		if got := e.remaining(Base.Add(time.Second), e.req("u1", pro)).RequestsPerMinute; got != 2 {
			t.Errorf("pro RequestsPerMinute left = %d, want 2", got)
		}
		e.refuse(Base.Add(2*time.Second), e.req("u1", tiny), limiter.LimitRequestsPerMinute)
	})
	t.Run("cost_per_day", func(t *testing.T) {
		e := newEnv(t, open)
		r := e.req("u1", limiter.Limits{CostPerDay: 100})
		r.Cost = 60
		e.admit(Base, r)
		r.Limits.CostPerDay, r.Cost = 50, 1
		e.refuse(Base, r, limiter.LimitCostPerDay)
		if got := e.remaining(Base, r).CostPerDay; got != 0 {
			t.Errorf("CostPerDay left after a downgrade = %d, want 0", got)
		}
		r.Limits.CostPerDay = 1000
		if got := e.remaining(Base, r).CostPerDay; got != 940 {
			t.Errorf("CostPerDay left after an upgrade = %d, want 940", got)
		}
	})
	t.Run("concurrent_requests", func(t *testing.T) {
		e := newEnv(t, open)
		e.admit(Base, e.req("u1", limiter.Limits{ConcurrentRequests: 1}))
		e.refuse(Base, e.req("u1", limiter.Limits{ConcurrentRequests: 1}), limiter.LimitConcurrentRequests)
		e.admit(Base, e.req("u1", limiter.Limits{ConcurrentRequests: 2}))
	})
}

// settleLimits are limits whose room Settle changes, all roomy but the minute's and the day's.
var settleLimits = limiter.Limits{TokensPerMinute: 100, TokensPerDay: 1000, CostPerDay: 100, CostPerMonth: 1000}

func testSettle(t *testing.T, open func(t *testing.T) limiter.Store) {
	const budget = 10000
	request := func(e *env, tokens int64, cost limiter.Nanos) limiter.Request {
		r := e.req("u1", settleLimits)
		r.ProjectCostPerMonth, r.Tokens, r.Cost = budget, tokens, cost
		return r
	}
	left := func(tpm, tpd, cpd, cpm, project int64) limiter.Remaining {
		return limiter.Remaining{RequestsPerMinute: -1, TokensPerMinute: tpm, TokensPerDay: tpd, CostPerDay: limiter.Nanos(cpd),
			CostPerMonth: limiter.Nanos(cpm), ConcurrentRequests: -1, ProjectCostPerMonth: limiter.Nanos(project)}
	}
	check := func(e *env, now time.Time, want limiter.Remaining) {
		e.t.Helper()
		if got := e.remaining(now, request(e, 0, 0)); got != want {
			e.t.Errorf("Remaining = %+v\n                  want %+v", got, want)
		}
	}
	t.Run("less", func(t *testing.T) {
		e := newEnv(t, open)
		res := e.admit(Base, request(e, 100, 100))
		check(e, Base, left(0, 900, 0, 900, budget-100))
		e.settle(Base.Add(time.Second), res, limiter.Usage{InputTokens: 10, OutputTokens: 20, Cost: 30})
		check(e, Base.Add(time.Second), left(70, 970, 70, 970, budget-30))
		e.admit(Base.Add(time.Second), request(e, 70, 70))
		e.refuse(Base.Add(time.Second), request(e, 1, 0), limiter.LimitTokensPerMinute)
		e.refuse(Base.Add(time.Second), request(e, 0, 1), limiter.LimitCostPerDay)
	})
	t.Run("more", func(t *testing.T) {
		e := newEnv(t, open)
		res := e.admit(Base, request(e, 50, 50))
		e.settle(Base.Add(time.Second), res, limiter.Usage{InputTokens: 100, OutputTokens: 20, Cost: 120})
		check(e, Base.Add(time.Second), left(0, 880, 0, 880, budget-120))
		e.refuse(Base.Add(time.Second), request(e, 0, 0), limiter.LimitTokensPerMinute)
		// A minute on the tokens have left the window but the day's cost is still over.
		e.refuse(Base.Add(time.Minute), request(e, 0, 0), limiter.LimitCostPerDay)
	})
	t.Run("twice", func(t *testing.T) {
		e := newEnv(t, open)
		res := e.admit(Base, request(e, 50, 50))
		used := limiter.Usage{InputTokens: 10, OutputTokens: 20, Cost: 30}
		e.settle(Base.Add(time.Second), res, used)
		e.settle(Base.Add(2*time.Second), res, used)
		e.settle(Base.Add(3*time.Second), res, limiter.Usage{InputTokens: 500, Cost: 500})
		check(e, Base.Add(3*time.Second), left(70, 970, 70, 970, budget-30))
		want := []limiter.UsageRow{{Key: "u1", Requests: 1, InputTokens: 10, OutputTokens: 20, Cost: 30}}
		if got := e.usage(limiter.UsageQuery{Project: e.project, GroupBy: "user", From: Base, To: Base}); !rowsEqual(got, want) {
			t.Errorf("Usage = %+v, want %+v", got, want)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		e := newEnv(t, open)
		e.admit(Base, request(e, 50, 50))
		e.settle(Base, limiter.Reservation{}, limiter.Usage{InputTokens: 1000, Cost: 1000})
		_, dec := e.reserve(Base, request(e, 1000, 1000)) // refused: what it returns is no reservation
		e.settle(Base, limiter.Reservation{Request: request(e, 1000, 1000), At: Base}, limiter.Usage{})
		if dec.Allowed {
			t.Fatal("a request over every limit was admitted")
		}
		check(e, Base, left(50, 950, 50, 950, budget-50))
	})
	t.Run("frees_concurrency", func(t *testing.T) {
		e := newEnv(t, open)
		r := e.req("u1", limiter.Limits{ConcurrentRequests: 1})
		res := e.admit(Base, r)
		if got := e.remaining(Base, r).ConcurrentRequests; got != 0 {
			t.Errorf("ConcurrentRequests left in flight = %d, want 0", got)
		}
		e.refuse(Base, r, limiter.LimitConcurrentRequests)
		e.settle(Base.Add(time.Second), res, limiter.Usage{}) // a provider error: charged nothing
		if got := e.remaining(Base.Add(time.Second), r).ConcurrentRequests; got != 1 {
			t.Errorf("ConcurrentRequests left after Settle = %d, want 1", got)
		}
		e.admit(Base.Add(time.Second), r)
	})
	t.Run("after_the_day", func(t *testing.T) {
		// Settling yesterday's reservation with less must not make room in today's quota.
		e := newEnv(t, open)
		r := e.req("u1", limiter.Limits{TokensPerDay: 100})
		r.Tokens = 100
		late := time.Date(2026, 1, 31, 23, 59, 30, 0, time.UTC)
		res := e.admit(late, r)
		e.admit(late.Add(35*time.Second), r)
		e.settle(late.Add(40*time.Second), res, limiter.Usage{})
		r.Tokens = 1
		e.refuse(late.Add(41*time.Second), r, limiter.LimitTokensPerDay)
	})
}

func testDecisionHeaders(t *testing.T, open func(t *testing.T) limiter.Store) {
	e := newEnv(t, open)
	r := e.req("u1", limiter.Limits{RequestsPerMinute: 10, TokensPerMinute: 1000})
	type headers struct {
		RequestsLimit, RequestsRemaining int64
		RequestsReset                    time.Duration
		TokensLimit, TokensRemaining     int64
		TokensReset                      time.Duration
	}
	of := func(d limiter.Decision) headers {
		return headers{d.RequestsLimit, d.RequestsRemaining, d.RequestsReset, d.TokensLimit, d.TokensRemaining, d.TokensReset}
	}
	r.Tokens = 100
	_, dec := e.reserve(Base, r)
	if got, want := of(dec), (headers{10, 9, time.Minute, 1000, 900, time.Minute}); got != want {
		t.Errorf("first: %+v, want %+v", got, want)
	}
	r.Tokens = 200
	_, dec = e.reserve(Base.Add(20*time.Second), r)
	if got, want := of(dec), (headers{10, 8, time.Minute, 1000, 700, time.Minute}); got != want {
		t.Errorf("second: %+v, want %+v", got, want)
	}
	// Refused: nothing more is counted; both windows empty 60s after +20s.
	r.Tokens = 800
	dec = e.refuse(Base.Add(30*time.Second), r, limiter.LimitTokensPerMinute)
	if got, want := of(dec), (headers{10, 8, 50 * time.Second, 1000, 700, 50 * time.Second}); got != want {
		t.Errorf("refused: %+v, want %+v", got, want)
	}
	// The +0s request left the window.
	r.Tokens = 0
	_, dec = e.reserve(Base.Add(65*time.Second), r)
	if got, want := of(dec), (headers{10, 8, 60 * time.Second, 1000, 800, 15 * time.Second}); got != want {
		t.Errorf("a minute on: %+v, want %+v", got, want)
	}
	// Limits that are off report zeros.
	_, dec = e.reserve(Base, e.req("u2", limiter.Limits{TokensPerDay: 10}))
	if got := of(dec); got != (headers{}) {
		t.Errorf("no per-minute limits: %+v, want zeros", got)
	}
}

func testRevoke(t *testing.T, open func(t *testing.T) limiter.Store) {
	at := Base.Add(-time.Hour)
	for _, c := range []struct{ kind, id string }{{limiter.RevokeSession, "sess-u1"}, {limiter.RevokeUser, "u1"}} {
		t.Run(c.kind, func(t *testing.T) {
			e := newEnv(t, open)
			if err := e.s.Revoke(e.ctx, e.project, c.kind, c.id, at); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			r := e.req("u1", limiter.Limits{RequestsPerMinute: 1})
			if c.kind == limiter.RevokeUser {
				r.Session = "another-session" // a user's revocation covers all their sessions
			}
			for _, iat := range []time.Time{at.Add(-time.Second), at.Add(-time.Nanosecond), at} {
				r.IssuedAt = iat
				_, dec := e.reserve(Base, r)
				if !dec.Revoked || dec.Allowed {
					t.Errorf("issued at %s, revoked at %s: %+v, want Revoked", iat.Format(time.RFC3339Nano), at.Format(time.RFC3339), dec)
				}
			}
			// Revoked requests reserved nothing: the one request a minute is still there.
			r.IssuedAt = at.Add(time.Nanosecond)
			e.admit(Base, r)
			r.IssuedAt = time.Time{} // no iat: not checked
			e.refuse(Base, r, limiter.LimitRequestsPerMinute)

			other := e.req("u2", limiter.Limits{})
			other.IssuedAt = at.Add(-time.Second)
			e.admit(Base, other)
			elsewhere := r
			elsewhere.Project, elsewhere.IssuedAt = newID("proj"), at.Add(-time.Second)
			e.admit(Base, elsewhere)

			got, err := e.s.RevokedBefore(e.ctx, e.project, c.kind, c.id)
			if err != nil || !got.Equal(at) {
				t.Errorf("RevokedBefore = %v, %v; want %v", got, err, at)
			}
			for _, k := range []struct{ project, kind, id string }{
				{e.project, c.kind, "nobody"}, {elsewhere.Project, c.kind, c.id}, {e.project, otherKind(c.kind), c.id},
			} {
				if got, err := e.s.RevokedBefore(e.ctx, k.project, k.kind, k.id); err != nil || !got.IsZero() {
					t.Errorf("RevokedBefore(%q, %q, %q) = %v, %v; want zero", k.project, k.kind, k.id, got, err)
				}
			}
		})
	}
	t.Run("keeps_latest", func(t *testing.T) {
		e := newEnv(t, open)
		for _, a := range []time.Time{at, at.Add(-time.Hour)} {
			if err := e.s.Revoke(e.ctx, e.project, limiter.RevokeUser, "u1", a); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := e.s.RevokedBefore(e.ctx, e.project, limiter.RevokeUser, "u1"); !got.Equal(at) {
			t.Errorf("after an earlier revocation, RevokedBefore = %v, want %v", got, at)
		}
		_ = e.s.Revoke(e.ctx, e.project, limiter.RevokeUser, "u1", at.Add(time.Hour))
		if got, _ := e.s.RevokedBefore(e.ctx, e.project, limiter.RevokeUser, "u1"); !got.Equal(at.Add(time.Hour)) {
			t.Errorf("after a later revocation, RevokedBefore = %v, want %v", got, at.Add(time.Hour))
		}
	})
}

func otherKind(kind string) string {
	if kind == limiter.RevokeUser {
		return limiter.RevokeSession
	}
	return limiter.RevokeUser
}

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
		r := limiter.Request{Project: project, User: u.user, Session: u.session, Tier: u.tier, Model: u.model,
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
		return limiter.UsageRow{Key: key, Requests: n, InputTokens: in, OutputTokens: out, Cost: limiter.Nanos(10 * in)}
	}
	all := limiter.UsageQuery{Project: e.project, From: day("2026-01-30"), To: day("2026-02-01")}
	for _, c := range []struct {
		name string
		q    func(q limiter.UsageQuery) limiter.UsageQuery
		want []limiter.UsageRow
	}{
		{"user", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy = "user"; return q },
			[]limiter.UsageRow{row("org_9:user_2", 2, 30, 15), row("org_9:user_3", 2, 90, 45), row("solo", 2, 90, 45)}},
		{"org", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy = "org"; return q },
			[]limiter.UsageRow{row("org_9", 4, 120, 60), row("solo", 2, 90, 45)}},
		{"session", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy = "session"; return q },
			[]limiter.UsageRow{row("s-a", 2, 30, 15), row("s-b", 2, 90, 45), row("s-c", 2, 90, 45)}},
		{"tier", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy = "tier"; return q },
			[]limiter.UsageRow{row("free", 3, 90, 45), row("pro", 3, 120, 60)}},
		{"model", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy = "model"; return q },
			[]limiter.UsageRow{row("gpt-4o", 3, 100, 50), row("gpt-4o-mini", 3, 110, 55)}},
		{"day", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy = "day"; return q },
			[]limiter.UsageRow{row("2026-01-30", 1, 10, 5), row("2026-01-31", 3, 90, 45), row("2026-02-01", 2, 110, 55)}},
		{"one_day", func(q limiter.UsageQuery) limiter.UsageQuery {
			q.GroupBy, q.From, q.To = "user", day("2026-01-31"), day("2026-01-31")
			return q
		}, []limiter.UsageRow{row("org_9:user_2", 1, 20, 10), row("org_9:user_3", 1, 30, 15), row("solo", 1, 40, 20)}},
		{"from", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy, q.From = "day", day("2026-01-31"); return q },
			[]limiter.UsageRow{row("2026-01-31", 3, 90, 45), row("2026-02-01", 2, 110, 55)}},
		{"to", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy, q.To = "day", day("2026-01-31"); return q },
			[]limiter.UsageRow{row("2026-01-30", 1, 10, 5), row("2026-01-31", 3, 90, 45)}},
		{"user_filter", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy, q.User = "day", "solo"; return q },
			[]limiter.UsageRow{row("2026-01-31", 1, 40, 20), row("2026-02-01", 1, 50, 25)}},
		{"user_filter_org", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy, q.User = "org", "org_9:user_3"; return q },
			[]limiter.UsageRow{row("org_9", 2, 90, 45)}},
		{"nothing_then", func(q limiter.UsageQuery) limiter.UsageQuery {
			q.GroupBy, q.From, q.To = "user", day("2025-12-01"), day("2025-12-31")
			return q
		}, nil},
		{"unknown_user", func(q limiter.UsageQuery) limiter.UsageQuery { q.GroupBy, q.User = "user", "nobody"; return q }, nil},
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
		q.Project, q.GroupBy = otherProject, "model"
		want := []limiter.UsageRow{{Key: "gpt-4o", Requests: 1, InputTokens: 7, OutputTokens: 7, Cost: 7}}
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

func testRace(t *testing.T, open func(t *testing.T) limiter.Store) {
	// race runs n goroutines released together; f returns whether its request was admitted.
	race := func(t *testing.T, n int, f func(i int) (bool, error)) int64 {
		var admitted atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ok, err := f(i)
				if err != nil {
					t.Error(err)
				}
				if ok {
					admitted.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		return admitted.Load()
	}
	t.Run("requests_per_minute", func(t *testing.T) {
		e := newEnv(t, open)
		r := e.req("u1", limiter.Limits{RequestsPerMinute: 50})
		n := race(t, 200, func(i int) (bool, error) {
			_, dec, err := e.s.Reserve(e.ctx, Base.Add(time.Duration(i)*time.Millisecond), r)
			return dec.Allowed, err
		})
		if n != 50 {
			t.Errorf("admitted %d of 200 at 50 requests per minute, want exactly 50", n)
		}
	})
	t.Run("concurrent_requests", func(t *testing.T) {
		e := newEnv(t, open)
		r := e.req("u1", limiter.Limits{ConcurrentRequests: 10})
		n := race(t, 100, func(int) (bool, error) {
			_, dec, err := e.s.Reserve(e.ctx, Base, r)
			return dec.Allowed, err
		})
		if n != 10 {
			t.Errorf("admitted %d of 100 at 10 concurrent, want exactly 10", n)
		}
	})
	t.Run("project_budget", func(t *testing.T) {
		e := newEnv(t, open)
		budget := limiter.USD(1)
		cost := budget / 7
		n := race(t, 100, func(i int) (bool, error) {
			r := e.req(fmt.Sprintf("u%d", i), limiter.Limits{})
			r.ProjectCostPerMonth, r.Cost, r.Tokens = budget, cost, 1000
			res, dec, err := e.s.Reserve(e.ctx, Base, r)
			if err != nil || !dec.Allowed {
				return false, err
			}
			return true, e.s.Settle(e.ctx, Base.Add(time.Second), res, limiter.Usage{InputTokens: 600, OutputTokens: 400, Cost: cost})
		})
		spent := limiter.Nanos(n) * cost
		if spent > budget || n != int64(budget/cost) {
			t.Errorf("admitted %d requests costing %d of a budget of %d: spent %d, want exactly %d admitted", n, cost, budget, spent, budget/cost)
		}
		if got := e.remaining(Base.Add(time.Second), limiter.Request{Project: e.project, User: "u0", ProjectCostPerMonth: budget}).ProjectCostPerMonth; got != budget-spent {
			t.Errorf("project budget left = %d, want %d", got, budget-spent)
		}
		rows := e.usage(limiter.UsageQuery{Project: e.project, GroupBy: "tier", From: Base, To: Base})
		if len(rows) != 1 || rows[0].Cost != spent || rows[0].Requests != n || rows[0].InputTokens != 600*n {
			t.Errorf("Usage = %+v, want one row of %d requests costing %d", rows, n, spent)
		}
	})
	t.Run("reserve_settle", func(t *testing.T) {
		// Reservations settled at half their cost, by many users at once, until the budget is
		// used up: spend never passes it and Remaining accounts for every nano.
		e := newEnv(t, open)
		const budget, cost = 10000, 300
		var charged atomic.Int64
		race(t, 50, func(i int) (bool, error) {
			r := e.req(fmt.Sprintf("u%d", i%10), limiter.Limits{})
			r.ProjectCostPerMonth, r.Cost = budget, cost
			for j := 0; ; j++ {
				now := Base.Add(time.Duration(j) * time.Millisecond)
				res, dec, err := e.s.Reserve(e.ctx, now, r)
				if err != nil || !dec.Allowed {
					return false, err
				}
				if err := e.s.Settle(e.ctx, now, res, limiter.Usage{Cost: cost / 2}); err != nil {
					return false, err
				}
				charged.Add(cost / 2)
			}
		})
		left := e.remaining(Base.Add(time.Second), limiter.Request{Project: e.project, User: "u0", ProjectCostPerMonth: budget}).ProjectCostPerMonth
		if got := charged.Load(); got > budget || int64(left) != budget-got || left >= cost {
			t.Errorf("charged %d of %d with %d left; want charged <= budget, left = budget-charged < %d", got, budget, left, cost)
		}
	})
}

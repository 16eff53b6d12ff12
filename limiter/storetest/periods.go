package storetest

import (
	"testing"
	"time"

	"github.com/behest/caddy-behest/limiter"
)

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

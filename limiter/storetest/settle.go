package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/behest/caddy-behest/limiter"
)

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
		want := []limiter.UsageRow{{Group: []string{"u1"}, Requests: 1, InputTokens: 10, OutputTokens: 20, Cost: 30}}
		if got := e.usage(limiter.UsageQuery{Project: e.project, GroupBy: []string{"user"}, From: Base, To: Base}); !rowsEqual(got, want) {
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
	t.Run("cancelled_context", func(t *testing.T) {
		// The request is over (its client left) when it settles: it is charged all the same.
		e := newEnv(t, open)
		res := e.admit(Base, request(e, 100, 100))
		ctx, cancel := context.WithCancel(e.ctx)
		cancel()
		if _, err := e.s.Settle(ctx, Base.Add(time.Second), res, limiter.Usage{InputTokens: 10, OutputTokens: 20, Cost: 30}); err != nil {
			t.Fatalf("Settle with a cancelled context: %v", err)
		}
		check(e, Base.Add(time.Second), left(70, 970, 70, 970, budget-30))
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
	t.Run("more_after_the_month", func(t *testing.T) {
		// Settled with more after its month ended: January keeps the charge (and the usage),
		// February's budget is not touched.
		e := newEnv(t, open)
		r := e.req("u1", limiter.Limits{CostPerMonth: 100})
		r.ProjectCostPerMonth, r.Cost = 100, 100
		late := time.Date(2026, 1, 31, 23, 59, 30, 0, time.UTC)
		res := e.admit(late, r)
		e.settle(late.Add(time.Minute), res, limiter.Usage{InputTokens: 1, Cost: 150})
		e.admit(late.Add(time.Minute), r)
		rows := e.usage(limiter.UsageQuery{Project: e.project, GroupBy: []string{"day"}, From: late, To: late.Add(time.Minute)})
		want := []limiter.UsageRow{{Group: []string{"2026-01-31"}, Requests: 1, InputTokens: 1, Cost: 150}}
		if !rowsEqual(rows, want) {
			t.Errorf("Usage = %+v, want %+v (under the day it was reserved)", rows, want)
		}
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

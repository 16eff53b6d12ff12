package storetest

import (
	"testing"
	"time"

	"github.com/behest/caddy-behest/limiter"
)

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

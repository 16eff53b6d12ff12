package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/behest/caddy-behest/limiter"
)

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
			_, err = e.s.Settle(e.ctx, Base.Add(time.Second), res, limiter.Usage{InputTokens: 600, OutputTokens: 400, Cost: cost})
			return true, err
		})
		spent := limiter.Nanos(n) * cost
		if spent > budget || n != int64(budget/cost) {
			t.Errorf("admitted %d requests costing %d of a budget of %d: spent %d, want exactly %d admitted", n, cost, budget, spent, budget/cost)
		}
		if got := e.remaining(Base.Add(time.Second), limiter.Request{Project: e.project, User: "u0", ProjectCostPerMonth: budget}).ProjectCostPerMonth; got != budget-spent {
			t.Errorf("project budget left = %d, want %d", got, budget-spent)
		}
		rows := e.usage(limiter.UsageQuery{Project: e.project, GroupBy: []string{"tier"}, From: Base, To: Base})
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
				if _, err := e.s.Settle(e.ctx, now, res, limiter.Usage{Cost: cost / 2}); err != nil {
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

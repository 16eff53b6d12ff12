package redisstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/behest/caddy-behest/limiter"
	"github.com/behest/caddy-behest/limiter/storetest"
)

// tally counts the outcomes of one store's traffic.
type tally struct {
	admitted, unavailable atomic.Int64
}

// drive sends requests to s from a few goroutines until stop closes, settling what is
// admitted. Any error that does not wrap limiter.ErrUnavailable fails the test.
func drive(t *testing.T, s *Store, tl *tally, stop <-chan struct{}, wg *sync.WaitGroup) {
	for g := range 4 {
		wg.Go(func() {
			ctx := context.Background()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req := testRequest("p_outage", fmt.Sprintf("u%d", (g*7+i)%5))
				res, dec, err := s.Reserve(ctx, storetest.Base, req)
				switch {
				case errors.Is(err, limiter.ErrUnavailable):
					tl.unavailable.Add(1)
					time.Sleep(time.Millisecond)
					continue
				case err != nil:
					t.Errorf("Reserve: %v, want an error wrapping ErrUnavailable", err)
					return
				case !dec.Allowed:
					t.Errorf("Reserve refused %+v with roomy limits", dec)
					return
				}
				tl.admitted.Add(1)
				_, err = s.Settle(ctx, storetest.Base, res, limiter.Usage{InputTokens: 1, Cost: 1})
				if err != nil && !errors.Is(err, limiter.ErrUnavailable) {
					t.Errorf("Settle: %v, want an error wrapping ErrUnavailable", err)
				}
			}
		})
	}
}

// eventually polls cond every 10ms for up to d.
func eventually(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestRedisOutage stops Redis under traffic and starts it again on the same port: the closed
// store refuses with ErrUnavailable and recovers by itself, the open one keeps admitting.
func TestRedisOutage(t *testing.T) {
	srv := startRedis(t)
	closed := newStore(t, srv, Options{}, true)
	open := newStore(t, srv, Options{FailOpen: true}, true)
	var closedT, openT tally
	stop := make(chan struct{})
	var wg sync.WaitGroup
	drive(t, closed, &closedT, stop, &wg)
	drive(t, open, &openT, stop, &wg)
	defer func() { close(stop); wg.Wait() }()

	if !eventually(5*time.Second, func() bool { return closedT.admitted.Load() > 100 && openT.admitted.Load() > 100 }) {
		t.Fatal("no traffic admitted while Redis is up")
	}
	if closedT.unavailable.Load()+openT.unavailable.Load() != 0 || open.FailOpenCount() != 0 {
		t.Fatal("errors while Redis is up")
	}

	srv.Stop()
	if !eventually(5*time.Second, func() bool { return closedT.unavailable.Load() > 0 }) {
		t.Fatal("closed policy: no ErrUnavailable with Redis down")
	}
	closedAdmitted, openAdmitted := closedT.admitted.Load(), openT.admitted.Load()
	time.Sleep(500 * time.Millisecond)
	if n := closedT.admitted.Load() - closedAdmitted; n > 0 {
		t.Errorf("closed policy admitted %d requests with Redis down", n)
	}
	if n := openT.admitted.Load() - openAdmitted; n == 0 || open.FailOpenCount() == 0 {
		t.Errorf("open policy: admitted %d with Redis down (fail-open count %d), want some", n, open.FailOpenCount())
	}
	if n := openT.unavailable.Load(); n != 0 {
		t.Errorf("open policy: %d ErrUnavailable from Reserve, want none", n)
	}
	ctx := context.Background()
	if _, err := closed.Usage(ctx, limiter.UsageQuery{Project: "p_outage"}); !errors.Is(err, limiter.ErrUnavailable) {
		t.Errorf("Usage with Redis down: %v, want ErrUnavailable", err)
	}
	if err := closed.Revoke(ctx, "p_outage", limiter.RevokeUser, "u1", storetest.Base); !errors.Is(err, limiter.ErrUnavailable) {
		t.Errorf("Revoke with Redis down: %v, want ErrUnavailable", err)
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	closedAdmitted = closedT.admitted.Load()
	if !eventually(15*time.Second, func() bool { return closedT.admitted.Load() > closedAdmitted+100 }) {
		t.Fatal("closed policy: not admitting again after Redis came back")
	}
	opens := open.FailOpenCount()
	openAdmitted = openT.admitted.Load()
	if !eventually(5*time.Second, func() bool { return openT.admitted.Load() > openAdmitted+100 }) {
		t.Fatal("open policy: no traffic after Redis came back")
	}
	if n := open.FailOpenCount() - opens; n > 8 { // the requests in flight at the switch
		t.Errorf("open policy: %d more fail-open admissions with Redis back", n)
	}
	if !eventually(5*time.Second, func() bool { return closed.retries.len() == 0 && open.retries.len() == 0 }) {
		t.Errorf("settlements still queued with Redis back: %d, %d", closed.retries.len(), open.retries.len())
	}
	// Redis lost everything, and what it has now is what was admitted since: usage answers.
	if _, err := closed.Usage(ctx, limiter.UsageQuery{Project: "p_outage", GroupBy: []string{"user"}, From: storetest.Base, To: storetest.Base}); err != nil {
		t.Errorf("Usage with Redis back: %v", err)
	}
}

// TestQueuedSettleReachesRedis: a settlement Redis missed frees its concurrency slot once
// Redis answers again (here Redis keeps its data: it is paused, not restarted).
func TestQueuedSettleReachesRedis(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv, Options{ReadTimeout: 200 * time.Millisecond}, true)
	ctx := context.Background()
	req := limiter.Request{Project: "p", User: "u", Limits: limiter.Limits{ConcurrentRequests: 1}}
	res, dec, err := s.Reserve(ctx, storetest.Base, req)
	if err != nil || !dec.Allowed {
		t.Fatal(dec, err)
	}
	// CLIENT PAUSE makes Redis stop answering writes without losing data.
	if err := srv.Client().ClientPause(ctx, 1500*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Settle(ctx, storetest.Base, res, limiter.Usage{}); !errors.Is(err, limiter.ErrUnavailable) {
		t.Fatalf("Settle while paused: %v, want ErrUnavailable", err)
	}
	if !eventually(10*time.Second, func() bool {
		rem, err := s.Remaining(ctx, storetest.Base, req)
		return err == nil && rem.ConcurrentRequests == 1
	}) {
		t.Fatal("the concurrency slot was not freed after Redis answered again")
	}
}

// TestCloseLeavesNoGoroutines: Close ends every goroutine the store and go-redis started,
// including go-redis's dial probe for a Redis that went away.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	srv := startRedis(t)
	gone := startRedis(t)
	before := runtime.NumGoroutine()
	ctx := context.Background()
	for _, opts := range []Options{{}, {FailOpen: true}, {PoolSize: 2, URL: gone.URL()}} {
		s := newStore(t, srv, opts, false)
		if opts.URL != "" {
			gone.Stop()
		}
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				res, dec, err := s.Reserve(ctx, storetest.Base, testRequest("p", fmt.Sprint(i%3)))
				if err == nil && dec.Allowed {
					_, _ = s.Settle(ctx, storetest.Base, res, limiter.Usage{})
				}
			})
		}
		wg.Wait()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close again: %v", err)
		}
	}
	if !eventually(5*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
	}
}

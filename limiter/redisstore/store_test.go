package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/behest/caddy-behest/limiter"
	"github.com/behest/caddy-behest/limiter/storetest"
)

func TestConformance(t *testing.T) {
	srv := startRedis(t)
	storetest.Run(t, func(t *testing.T) limiter.Store { return newStore(t, srv, Options{}, false) })
}

// TestConformanceCluster runs the suite against a one-node Redis Cluster, where a script whose
// keys are in different slots fails with CROSSSLOT: it shows the hash tags hold.
func TestConformanceCluster(t *testing.T) {
	srv := startRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	ctx := context.Background()
	c := srv.Client()
	if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, _ := c.ClusterInfo(ctx).Result()
		if strings.Contains(info, "cluster_state:ok") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not ok: %s", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The check this test relies on: keys of one script in different slots are refused.
	if err := c.Eval(ctx, "return 1", []string{"a", "b"}).Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("EVAL over two slots: %v, want CROSSSLOT", err)
	}
	storetest.Run(t, func(t *testing.T) limiter.Store {
		return newStore(t, srv, Options{Addrs: []string{srv.Addr()}, Cluster: true}, false)
	})
}

// TestOneRoundTrip: after the first call has loaded the scripts, Reserve and Settle are one
// EVALSHA each; after SCRIPT FLUSH (what a restart does) one EVAL reloads them.
func TestOneRoundTrip(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv, Options{}, true)
	counter := countCommands(s.Client())
	ctx := context.Background()
	now := storetest.Base
	run := func(n int) {
		for i := range n {
			req := testRequest("p1", fmt.Sprintf("u%d", i%3))
			res, dec, err := s.Reserve(ctx, now, req)
			if err != nil || !dec.Allowed {
				t.Fatalf("Reserve: %+v, %v", dec, err)
			}
			if _, err := s.Settle(ctx, now, res, limiter.Usage{InputTokens: 10, OutputTokens: 10, Cost: 10}); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(1) // warm-up
	counter.reset()
	const n = 100
	run(n)
	if trips, names := counter.reset(); trips != 2*n || names["evalsha"] != 2*n {
		t.Errorf("%d Reserve+Settle: %d round trips %v, want %d EVALSHA", n, trips, names, 2*n)
	}

	if err := srv.Client().ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	run(1)
	if _, names := counter.reset(); names["evalsha"] != 2 || names["eval"] != 2 {
		t.Errorf("after SCRIPT FLUSH: %v, want 2 EVALSHA (NOSCRIPT) and 2 EVAL", names)
	}
	run(n)
	if trips, _ := counter.reset(); trips != 2*n {
		t.Errorf("after reloading: %d round trips for %d Reserve+Settle, want %d", trips, n, 2*n)
	}
}

// TestKeysHaveTTL: every key a run leaves behind expires, and every key of a project has its
// hash tag.
func TestKeysHaveTTL(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv, Options{KeyPrefix: "ttl:"}, true)
	ctx := context.Background()
	now := storetest.Base
	for i := range 20 {
		req := testRequest("p_456", fmt.Sprintf("org_%d:user_%d", i%2, i))
		res, _, err := s.Reserve(ctx, now.Add(time.Duration(i)*time.Hour), req)
		if err != nil {
			t.Fatal(err)
		}
		if i%4 != 0 { // some stay in flight
			if _, err := s.Settle(ctx, now, res, limiter.Usage{InputTokens: 1, Cost: 1}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Remaining(ctx, now, req); err != nil {
			t.Fatal(err)
		}
	}
	for _, kind := range []string{limiter.RevokeUser, limiter.RevokeSession} {
		if err := s.Revoke(ctx, "p_456", kind, "x", now); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Usage(ctx, limiter.UsageQuery{Project: "p_456", GroupBy: []string{"user"}, From: now, To: now.Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "p_456", "alert:x", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A release that finds nothing leaves a tombstone, for a user who has no other key.
	if err := s.release(ctx, limiter.Reservation{Request: testRequest("p_456", "user_gone"), At: now, ID: 42}); err != nil {
		t.Fatal(err)
	}

	c := srv.Client()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, k := range keys {
		ttl, err := c.TTL(ctx, k).Result()
		if err != nil || ttl <= 0 {
			t.Errorf("key %q: TTL %v, %v; want > 0", k, ttl, err)
		}
		if !strings.HasPrefix(k, "ttl:{p_456}:") {
			t.Errorf("key %q: want the prefix and the project's hash tag", k)
		}
		kind, _, _ := strings.Cut(strings.TrimPrefix(k, "ttl:{p_456}:"), ":")
		kinds[kind]++
	}
	for _, kind := range []string{"u", "rpm", "tpm", "inflight", "project", "rev", "usage", "usage-days", "claim"} {
		if kinds[kind] == 0 {
			t.Errorf("no %q key among %v", kind, keys)
		}
	}
	if len(kinds) != 9 {
		t.Errorf("key kinds %v, want the 9 of KeyLayout", kinds)
	}
	if got := len(KeyLayout(Options{})); got != 9 {
		t.Errorf("KeyLayout lists %d keys, want 9", got)
	}
}

// TestInstancesShareLimits: two stores on one Redis are two gateway instances; what one
// reserves, the other sees, exactly.
func TestInstancesShareLimits(t *testing.T) {
	srv := startRedis(t)
	a := newStore(t, srv, Options{KeyPrefix: "shared:"}, true)
	b := newStore(t, srv, Options{KeyPrefix: "shared:"}, true)
	stores := [2]*Store{a, b}
	ctx := context.Background()
	now := storetest.Base

	race := func(n int, f func(i int, s *Store) bool) int64 {
		var admitted atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				if f(i, stores[i%2]) {
					admitted.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		return admitted.Load()
	}
	t.Run("requests_per_minute", func(t *testing.T) {
		req := limiter.Request{Project: "p1", User: "u1", Limits: limiter.Limits{RequestsPerMinute: 50}}
		n := race(200, func(i int, s *Store) bool {
			_, dec, err := s.Reserve(ctx, now.Add(time.Duration(i)*time.Millisecond), req)
			if err != nil {
				t.Error(err)
			}
			return dec.Allowed
		})
		if n != 50 {
			t.Errorf("200 requests over two instances at 50 per minute: admitted %d, want exactly 50", n)
		}
	})
	t.Run("project_budget", func(t *testing.T) {
		const budget, cost = 1000, 30
		n := race(200, func(i int, s *Store) bool {
			req := limiter.Request{Project: "p2", User: fmt.Sprintf("u%d", i), ProjectCostPerMonth: budget, Cost: cost}
			res, dec, err := s.Reserve(ctx, now, req)
			if err != nil || !dec.Allowed {
				return false
			}
			// The other instance settles it: a reservation is not tied to its store.
			if _, err := stores[(i+1)%2].Settle(ctx, now, res, limiter.Usage{Cost: cost}); err != nil {
				t.Error(err)
			}
			return true
		})
		if n != budget/cost {
			t.Errorf("admitted %d at %d each of %d, want exactly %d", n, cost, budget, budget/cost)
		}
		rem, err := b.Remaining(ctx, now, limiter.Request{Project: "p2", User: "x", ProjectCostPerMonth: budget})
		if err != nil || rem.ProjectCostPerMonth != budget-limiter.Nanos(n*cost) {
			t.Errorf("Remaining = %+v, %v; want %d left", rem, err, budget-n*cost)
		}
	})
	t.Run("revocation", func(t *testing.T) {
		if err := a.Revoke(ctx, "p3", limiter.RevokeUser, "u1", now); err != nil {
			t.Fatal(err)
		}
		_, dec, err := b.Reserve(ctx, now, limiter.Request{Project: "p3", User: "u1", IssuedAt: now.Add(-time.Minute)})
		if err != nil || !dec.Revoked {
			t.Errorf("revoked on one instance, Reserve on the other: %+v, %v; want Revoked", dec, err)
		}
		if at, err := b.RevokedBefore(ctx, "p3", limiter.RevokeUser, "u1"); err != nil || !at.Equal(now) {
			t.Errorf("RevokedBefore on the other instance = %v, %v", at, err)
		}
	})
}

// TestReserveRetriedByClient: a reservation id already in flight (go-redis resending a call
// that had run) is answered as admitted without reserving twice.
func TestReserveRetriedByClient(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv, Options{}, true)
	ctx := context.Background()
	now := storetest.Base
	req := limiter.Request{Project: "p", User: "u", Limits: limiter.Limits{ConcurrentRequests: 1, RequestsPerMinute: 5}}
	k := s.userKeys(req.Project, req.User, req.Session)
	wall := time.Now().UnixMilli()
	args := []any{now.Unix(), dayOf(now), monthOf(now), int64(5), int64(0), int64(0), int64(0), int64(0),
		int64(0), int64(1), int64(0), int64(0), "", "10", uint64(42), wall, wall + 60_000, wall - 60_000,
		int64(60), int64(60), int64(60), now.Unix()}
	for range 2 {
		v, err := reserveScript.Run(ctx, s.Client(), k[:], args...).Int64Slice()
		if err != nil || v[0] != 0 || v[2] != 1 {
			t.Fatalf("reserve with id 42: %v, %v; want admitted with 1 request in the window", v, err)
		}
	}
	rem, err := s.Remaining(ctx, now, req)
	if err != nil || rem.RequestsPerMinute != 4 || rem.ConcurrentRequests != 0 {
		t.Errorf("Remaining = %+v, %v; want one request reserved", rem, err)
	}
}

// TestSubSecondHeldFullMinute: a request is held for at least 60 s of real time whatever the
// fraction of a second it was made at, as in the embedded store.
func TestSubSecondHeldFullMinute(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv, Options{}, true)
	ctx := context.Background()
	r := limiter.Request{Project: "p", User: "u", Limits: limiter.Limits{RequestsPerMinute: 1}}
	made := storetest.Base.Add(900 * time.Millisecond)
	if _, dec, err := s.Reserve(ctx, made, r); err != nil || !dec.Allowed {
		t.Fatalf("first: %+v %v", dec, err)
	}
	if _, dec, _ := s.Reserve(ctx, made.Add(59500*time.Millisecond), r); dec.Allowed {
		t.Errorf("59.5 s later: admitted, but the first request is still within 60 s")
	}
	if _, dec, _ := s.Reserve(ctx, made.Add(60100*time.Millisecond), r); !dec.Allowed {
		t.Errorf("60.1 s later: %+v, want admitted", dec)
	}
}

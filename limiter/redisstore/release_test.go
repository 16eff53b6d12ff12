package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/behest/caddy-behest/limiter"
	"github.com/behest/caddy-behest/limiter/storetest"
)

// held is what a user's limits have reserved, read with Remaining against testRequest's
// limits: zero everywhere when nothing is held.
func held(t *testing.T, s *Store, now time.Time, req limiter.Request) limiter.Remaining {
	t.Helper()
	rem, err := s.Remaining(context.Background(), now, req)
	if err != nil {
		t.Fatal(err)
	}
	l := req.Limits
	return limiter.Remaining{
		RequestsPerMinute:   l.RequestsPerMinute - rem.RequestsPerMinute,
		TokensPerMinute:     l.TokensPerMinute - rem.TokensPerMinute,
		TokensPerDay:        l.TokensPerDay - rem.TokensPerDay,
		CostPerDay:          l.CostPerDay - rem.CostPerDay,
		CostPerMonth:        l.CostPerMonth - rem.CostPerMonth,
		ConcurrentRequests:  l.ConcurrentRequests - rem.ConcurrentRequests,
		ProjectCostPerMonth: req.ProjectCostPerMonth - rem.ProjectCostPerMonth,
	}
}

// TestReleaseUndoesAReservation: a released reservation gives back its slot, its place in both
// rolling minutes, its tokens and its cost, and records no usage; releasing it again, or
// settling it afterwards, does nothing.
func TestReleaseUndoesAReservation(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv, Options{}, true)
	ctx := context.Background()
	now := storetest.Base
	req := testRequest("p_rel", "u1")
	keep, _, err := s.Reserve(ctx, now, req) // another request of the user, still in flight
	if err != nil {
		t.Fatal(err)
	}
	before := held(t, s, now, req)
	res, dec, err := s.Reserve(ctx, now, req)
	if err != nil || !dec.Allowed {
		t.Fatalf("Reserve = %+v, %v", dec, err)
	}
	if h := held(t, s, now, req); h == before {
		t.Fatal("the reservation holds nothing")
	}
	for range 2 {
		if err := s.release(ctx, res); err != nil {
			t.Fatal(err)
		}
		if h := held(t, s, now, req); h != before {
			t.Fatalf("after release: held %+v, want %+v", h, before)
		}
	}
	if _, err := s.Settle(ctx, now, res, limiter.Usage{InputTokens: 500, Cost: 500}); err != nil {
		t.Fatal(err)
	}
	if h := held(t, s, now, req); h != before {
		t.Fatalf("a settle after the release changed what is held: %+v, want %+v", h, before)
	}
	rows, err := s.Usage(ctx, limiter.UsageQuery{Project: "p_rel", GroupBy: []string{"user"}, From: now, To: now})
	if err != nil || len(rows) != 0 {
		t.Fatalf("usage after a release: %+v, %v; want none", rows, err)
	}
	if _, err := s.Settle(ctx, now, keep, limiter.Usage{}); err != nil {
		t.Fatal(err)
	}
}

// TestReleaseBeforeReserve: a release that arrives before its reservation has run leaves a
// tombstone; the late reserve then reserves nothing, and the tombstone never counts as a
// request in flight.
func TestReleaseBeforeReserve(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv, Options{}, true)
	ctx := context.Background()
	now := storetest.Base
	req := testRequest("p_tomb", "u1")
	req.Limits.ConcurrentRequests = 1
	const id = 12345
	if err := s.release(ctx, limiter.Reservation{Request: req, At: now, ID: id}); err != nil {
		t.Fatal(err)
	}
	if h := held(t, s, now, req); h != (limiter.Remaining{}) {
		t.Fatalf("a tombstone holds %+v", h)
	}
	// The late reserve, as the script would run it with the id the gateway gave up on.
	k := s.userKeys(req.Project, req.User, req.Session)
	wall := time.Now().UnixMilli()
	l := req.Limits
	v, err := reserveScript.Run(ctx, s.client, k[:], now.Unix(), dayOf(now), monthOf(now),
		l.RequestsPerMinute, l.TokensPerMinute, l.TokensPerDay, int64(l.CostPerDay), int64(l.CostPerMonth),
		int64(req.ProjectCostPerMonth), l.ConcurrentRequests, req.Tokens, int64(req.Cost), "", "00", id,
		wall, wall+3600_000, wall-settleGrace.Milliseconds(), s.counterTTL, s.windowTTL, s.inflightTTL, windowSecond(now),
	).Int64Slice()
	if err != nil || len(v) != 1 || v[0] != -2 {
		t.Fatalf("late reserve = %v, %v; want [-2]", v, err)
	}
	if h := held(t, s, now, req); h != (limiter.Remaining{}) {
		t.Fatalf("after the late reserve: held %+v, want nothing", h)
	}
	// The one concurrency slot is free for the next request.
	if _, dec, err := s.Reserve(ctx, now, req); err != nil || !dec.Allowed {
		t.Fatalf("next Reserve = %+v, %v", dec, err)
	}
}

// TestPausedRedisHoldsNothing: Redis paused (SIGSTOP) under load with calls in its sockets,
// each timing out on the gateway: when it resumes it runs those reserves, and the store releases
// them by id in the background, so no slot, token or cost stays held for a request that was
// never admitted.
func TestPausedRedisHoldsNothing(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv, Options{ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond}, true)
	ctx := context.Background()
	now := storetest.Base
	reqs := make([]limiter.Request, 4)
	for i := range reqs {
		reqs[i] = testRequest("p_pause", fmt.Sprintf("u%d", i))
		reqs[i].Limits.ConcurrentRequests = 4
	}
	// Warm the scripts, so the paused calls are EVALSHAs that will run. These requests stay in
	// the rolling minute; what they hold is the baseline.
	before := make([]limiter.Remaining, len(reqs))
	for i, req := range reqs {
		res, _, err := s.Reserve(ctx, now, req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Settle(ctx, now, res, limiter.Usage{}); err != nil {
			t.Fatal(err)
		}
		before[i] = held(t, s, now, req)
	}

	srv.Pause()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			_, _, err := s.Reserve(ctx, now, reqs[i%4])
			if !errors.Is(err, limiter.ErrUnavailable) {
				t.Errorf("Reserve with Redis paused: %v, want ErrUnavailable", err)
			}
		})
	}
	wg.Wait()
	time.Sleep(300 * time.Millisecond)
	srv.Resume()

	// Within 10 s of Redis answering again, nothing is held.
	deadline := time.Now().Add(10 * time.Second)
	for i, req := range reqs {
		for {
			h := held(t, s, now, req)
			if h == before[i] {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("user %s holds %+v after Redis resumed, want %+v", req.User, h, before[i])
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// And every user has all four slots.
	for _, req := range reqs {
		for range 4 {
			if _, dec, err := s.Reserve(ctx, now, req); err != nil || !dec.Allowed {
				t.Fatalf("user %s after the pause: %+v, %v", req.User, dec, err)
			}
		}
	}
}

// TestUsageFieldsWithoutOrg: usage fields written before orgs were kept read back with the org
// their user id names.
func TestUsageFieldsWithoutOrg(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv, Options{}, true)
	ctx := context.Background()
	day := dayOf(storetest.Base)
	key := s.projectKey("p_old", "usage:", fmt.Sprint(day))
	c := srv.Client()
	if err := c.HSet(ctx, key, "org_9:u1\x00sess\x00free\x00gpt-4o\x00r", 2, "org_9:u1\x00sess\x00free\x00gpt-4o\x00i", 20).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ZAdd(ctx, s.usageDaysKey("p_old"), redis.Z{Score: float64(day), Member: fmt.Sprint(day)}).Err(); err != nil {
		t.Fatal(err)
	}
	req := testRequest("p_old", "org_9:u1")
	req.Org, req.Session, req.Tier, req.Model = "acme", "sess", "free", "gpt-4o"
	res, _, err := s.Reserve(ctx, storetest.Base, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Settle(ctx, storetest.Base, res, limiter.Usage{InputTokens: 5}); err != nil {
		t.Fatal(err)
	}
	rows, err := s.Usage(ctx, limiter.UsageQuery{Project: "p_old", GroupBy: []string{"org"}})
	if err != nil || len(rows) != 2 || rows[0].Group[0] != "acme" || rows[0].InputTokens != 5 ||
		rows[1].Group[0] != "org_9" || rows[1].Requests != 2 || rows[1].InputTokens != 20 {
		t.Fatalf("Usage = %+v, %v", rows, err)
	}
}

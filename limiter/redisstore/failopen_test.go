package redisstore

import (
	"context"
	"errors"
	"testing"

	"github.com/behest/caddy-behest/limiter"
	"github.com/behest/caddy-behest/limiter/storetest"
)

// TestFailOpenFallback: with Redis down from the start, an open store admits against its local
// limits and settles there; once Redis is back, Usage reports those requests too.
func TestFailOpenFallback(t *testing.T) {
	srv := startRedis(t)
	srv.Stop()
	s := newStore(t, srv, Options{FailOpen: true}, true)
	ctx := context.Background()
	req := limiter.Request{Project: "p", User: "u", Tier: "free", Limits: limiter.Limits{RequestsPerMinute: 2}}
	for i, want := range []bool{true, true, false} {
		res, dec, err := s.Reserve(ctx, storetest.Base, req)
		if err != nil || dec.Allowed != want {
			t.Fatalf("request %d with Redis down: %+v, %v; want allowed=%v by the local limits", i, dec, err, want)
		}
		if want && res.ID&fallbackID == 0 {
			t.Errorf("fallback reservation id %x has no fallback mark", res.ID)
		}
		if want {
			if _, err := s.Settle(ctx, storetest.Base, res, limiter.Usage{InputTokens: 5}); err != nil {
				t.Errorf("Settle of a fallback reservation: %v", err)
			}
		}
	}
	if n := s.FailOpenCount(); n != 3 {
		t.Errorf("FailOpenCount = %d, want 3", n)
	}
	if rem, err := s.Remaining(ctx, storetest.Base, req); err != nil || rem.RequestsPerMinute != 0 {
		t.Errorf("Remaining with Redis down: %+v, %v; want the fallback's", rem, err)
	}
	if err := s.Revoke(ctx, "p", limiter.RevokeUser, "u", storetest.Base); !errors.Is(err, limiter.ErrUnavailable) {
		t.Errorf("Revoke with Redis down: %v, want ErrUnavailable (a revocation is never kept locally)", err)
	}
	// A canceled caller is not admitted: there is nobody to serve.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.Reserve(canceled, storetest.Base, req); !errors.Is(err, limiter.ErrUnavailable) {
		t.Errorf("Reserve with a canceled context: %v, want ErrUnavailable", err)
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	var rows []limiter.UsageRow
	if !eventually(5e9, func() bool {
		var err error
		rows, err = s.Usage(ctx, limiter.UsageQuery{Project: "p", GroupBy: []string{"tier"}, From: storetest.Base, To: storetest.Base})
		return err == nil
	}) {
		t.Fatal("Usage failed with Redis back")
	}
	if len(rows) != 1 || rows[0].Requests != 2 || rows[0].InputTokens != 10 {
		t.Errorf("Usage = %+v, want the 2 requests admitted while Redis was down", rows)
	}
}

package limiter_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/behest/caddy-behest/limiter"
)

// benchRequest has every limit on and out of reach, so every check runs and none refuses, and
// an iat, so the revocation check runs too.
func benchRequest(user string) limiter.Request {
	return limiter.Request{
		Project: "bench", User: user, Session: "s-" + user, Tier: "pro", Model: "gpt-4o-mini",
		Limits: limiter.Limits{RequestsPerMinute: 1 << 40, TokensPerMinute: 1 << 50, TokensPerDay: 1 << 50,
			CostPerDay: 1 << 55, CostPerMonth: 1 << 56, ConcurrentRequests: 1 << 20},
		ProjectCostPerMonth: 1 << 60, Tokens: 1200, Cost: 2400, IssuedAt: base.Add(-time.Hour),
	}
}

// BenchmarkEmbeddedReserveSettle is one admitted request, reserved and settled, against a
// file-backed store whose flusher runs as in production. Time advances 1µs per request.
func BenchmarkEmbeddedReserveSettle(b *testing.B) {
	used := limiter.Usage{InputTokens: 700, OutputTokens: 300, Cost: 1300}
	open := func(b *testing.B) *limiter.Embedded {
		s := openEmbedded(b, filepath.Join(b.TempDir(), "l.db"), limiter.EmbeddedOptions{})
		b.Cleanup(func() { s.Close() })
		// A revocation of someone else, so the revocation check looks something up.
		_ = s.Revoke(context.Background(), "bench", limiter.RevokeUser, "someone-else", base)
		return s
	}

	b.Run("one_user", func(b *testing.B) {
		s, ctx, req := open(b), context.Background(), benchRequest("org_1:user_1")
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			now := base.Add(time.Duration(i) * time.Microsecond)
			i++
			res, dec, err := s.Reserve(ctx, now, req)
			if err != nil || !dec.Allowed {
				b.Fatalf("Reserve: %+v, %v", dec, err)
			}
			if _, err := s.Settle(ctx, now, res, used); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("parallel_10k_users", func(b *testing.B) {
		s, ctx := open(b), context.Background()
		reqs := make([]limiter.Request, 10000)
		for i := range reqs {
			reqs[i] = benchRequest(fmt.Sprintf("org_%d:user_%d", i%100, i))
		}
		for i := range reqs { // users known, as in steady state
			res, _, _ := s.Reserve(ctx, base, reqs[i])
			_, _ = s.Settle(ctx, base, res, used)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			// Each goroutine walks the users from its own place and keeps its own clock: times
			// from different goroutines interleave out of order, as they do in production.
			i := int(time.Now().UnixNano() % int64(len(reqs)))
			for n := 0; pb.Next(); n++ {
				now := base.Add(time.Duration(n) * time.Microsecond)
				i = (i + 1) % len(reqs)
				res, dec, err := s.Reserve(ctx, now, reqs[i])
				if err != nil || !dec.Allowed {
					b.Errorf("Reserve: %+v, %v", dec, err)
					return
				}
				if _, err := s.Settle(ctx, now, res, used); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

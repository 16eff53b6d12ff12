package limiter_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/behest/caddy-behest/limiter"
	"github.com/behest/caddy-behest/limiter/storetest"
)

var base = storetest.Base

func openEmbedded(t testing.TB, path string, opts limiter.EmbeddedOptions) *limiter.Embedded {
	t.Helper()
	s, err := limiter.OpenEmbedded(path, opts)
	if err != nil {
		t.Fatalf("OpenEmbedded(%q): %v", path, err)
	}
	return s
}

func TestEmbeddedConformance(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) limiter.Store { return openEmbedded(t, "", limiter.EmbeddedOptions{}) })
	})
	t.Run("file", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) limiter.Store {
			return openEmbedded(t, filepath.Join(t.TempDir(), "l.db"), limiter.EmbeddedOptions{})
		})
	})
	// Flushing (and evicting idle users, which the suite's clock makes every user look) all the
	// time must not change any answer.
	t.Run("file_flush_1ms", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) limiter.Store {
			return openEmbedded(t, filepath.Join(t.TempDir(), "l.db"), limiter.EmbeddedOptions{FlushInterval: time.Millisecond})
		})
	})
}

// restartRequest is one user's request with every limit on.
func restartRequest() limiter.Request {
	return limiter.Request{
		Project: "p", User: "org_1:u1", Session: "s1", Tier: "free", Model: "gpt-4o-mini",
		Limits: limiter.Limits{RequestsPerMinute: 2, TokensPerMinute: 10000, TokensPerDay: 1000, CostPerDay: 1000,
			CostPerMonth: 10000, ConcurrentRequests: 5},
		ProjectCostPerMonth: 100000, Tokens: 500, Cost: 500,
	}
}

// spend reserves and settles one request (150 tokens, cost 150) and reserves another that stays
// in flight (500, 500), so 650 is charged.
func spend(t *testing.T, s limiter.Store) (inFlight limiter.Reservation) {
	t.Helper()
	ctx := context.Background()
	req := restartRequest()
	res, dec, err := s.Reserve(ctx, base, req)
	if err != nil || !dec.Allowed {
		t.Fatalf("Reserve: %+v, %v", dec, err)
	}
	if err := s.Settle(ctx, base.Add(time.Second), res, limiter.Usage{InputTokens: 100, OutputTokens: 50, Cost: 150}); err != nil {
		t.Fatal(err)
	}
	inFlight, dec, err = s.Reserve(ctx, base.Add(2*time.Second), req)
	if err != nil || !dec.Allowed {
		t.Fatalf("Reserve: %+v, %v", dec, err)
	}
	return inFlight
}

// checkSpent checks what spend left behind, as seen at base+3s, with slots concurrent requests
// left.
func checkSpent(t *testing.T, s limiter.Store, slots int64) {
	t.Helper()
	ctx := context.Background()
	want := limiter.Remaining{RequestsPerMinute: 0, TokensPerMinute: 10000 - 650, TokensPerDay: 1000 - 650, CostPerDay: 1000 - 650,
		CostPerMonth: 10000 - 650, ConcurrentRequests: slots, ProjectCostPerMonth: 100000 - 650}
	if got, err := s.Remaining(ctx, base.Add(3*time.Second), restartRequest()); err != nil || got != want {
		t.Errorf("Remaining = %+v, %v\n             want %+v", got, err, want)
	}
	wantRows := []limiter.UsageRow{{Key: "org_1", Requests: 1, InputTokens: 100, OutputTokens: 50, Cost: 150}}
	rows, err := s.Usage(ctx, limiter.UsageQuery{Project: "p", GroupBy: "org", From: base, To: base})
	if err != nil || fmt.Sprint(rows) != fmt.Sprint(wantRows) {
		t.Errorf("Usage = %+v, %v; want %+v", rows, err, wantRows)
	}
}

func TestEmbeddedRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	ctx := context.Background()
	s := openEmbedded(t, path, limiter.EmbeddedOptions{})
	inFlight := spend(t, s)
	// load() drops revocations older than RevocationTTL by the wall clock, so this one is recent.
	revokedAt := time.Now().Truncate(time.Second)
	if err := s.Revoke(ctx, "p", limiter.RevokeSession, "s-old", revokedAt); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openEmbedded(t, path, limiter.EmbeddedOptions{})
	defer s.Close()
	checkSpent(t, s, 5) // in-flight slots are not kept: their requests died with the process
	// A reservation from before the restart cannot be settled: it stays charged in full, which
	// is what a cut-off request costs anyway.
	if err := s.Settle(ctx, base.Add(3*time.Second), inFlight, limiter.Usage{}); err != nil {
		t.Fatal(err)
	}
	checkSpent(t, s, 5)
	if got, err := s.RevokedBefore(ctx, "p", limiter.RevokeSession, "s-old"); err != nil || !got.Equal(revokedAt) {
		t.Errorf("RevokedBefore = %v, %v; want %v", got, err, revokedAt)
	}
	req := restartRequest()
	req.Session, req.IssuedAt = "s-old", revokedAt.Add(-time.Minute)
	if _, dec, _ := s.Reserve(ctx, base.Add(time.Minute), req); !dec.Revoked {
		t.Errorf("a token of a revoked session was not refused after a restart: %+v", dec)
	}
	// The month's spend still resets at the month's end.
	if got, _ := s.Remaining(ctx, base.Add(time.Hour), restartRequest()); got.ProjectCostPerMonth != 100000 || got.TokensPerDay != 1000 {
		t.Errorf("Remaining next month = %+v, want the limits", got)
	}
}

func TestEmbeddedRevocationTTL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	ctx := context.Background()
	opts := limiter.EmbeddedOptions{RevocationTTL: time.Hour}
	s := openEmbedded(t, path, opts)
	now := time.Now()
	_ = s.Revoke(ctx, "p", limiter.RevokeUser, "old", now.Add(-2*time.Hour))
	_ = s.Revoke(ctx, "p", limiter.RevokeUser, "new", now.Add(-time.Minute))
	s.Close()
	s = openEmbedded(t, path, opts)
	defer s.Close()
	if got, _ := s.RevokedBefore(ctx, "p", limiter.RevokeUser, "old"); !got.IsZero() {
		t.Errorf("a revocation past its TTL was kept: %v", got)
	}
	if got, _ := s.RevokedBefore(ctx, "p", limiter.RevokeUser, "new"); got.IsZero() {
		t.Error("a revocation within its TTL was dropped")
	}
}

// copyFile copies a store's file while it is open, as a crash would leave it.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestEmbeddedCrash: the file lags memory by at most FlushInterval (1s by default, which is the
// contract's "loses at most the last second of accounting"). A crash loses what changed since
// the last flush: counter changes, usage rows and revocations. Reservations in flight lose their
// concurrency slots (their requests died too) but stay charged in full if they were flushed.
func TestEmbeddedCrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "l.db")
	ctx := context.Background()
	s := openEmbedded(t, path, limiter.EmbeddedOptions{FlushInterval: 50 * time.Millisecond})
	defer s.Close()
	spend(t, s)
	revokedAt := time.Now().Truncate(time.Second)
	_ = s.Revoke(ctx, "p", limiter.RevokeUser, "u9", revokedAt)
	time.Sleep(150 * time.Millisecond) // two flushes at least

	copyFile(t, path, filepath.Join(dir, "crashed.db"))
	c := openEmbedded(t, filepath.Join(dir, "crashed.db"), limiter.EmbeddedOptions{})
	defer c.Close()
	checkSpent(t, c, 5)
	if got, _ := c.RevokedBefore(ctx, "p", limiter.RevokeUser, "u9"); !got.Equal(revokedAt) {
		t.Errorf("flushed revocation lost in a crash: RevokedBefore = %v", got)
	}
	// The live store still holds the in-flight slot.
	checkSpent(t, s, 4)

	t.Run("before_a_flush", func(t *testing.T) {
		path := filepath.Join(dir, "slow.db")
		s := openEmbedded(t, path, limiter.EmbeddedOptions{FlushInterval: time.Hour})
		defer s.Close()
		spend(t, s)
		copyFile(t, path, filepath.Join(dir, "slow-crashed.db"))
		c := openEmbedded(t, filepath.Join(dir, "slow-crashed.db"), limiter.EmbeddedOptions{})
		defer c.Close()
		got, _ := c.Remaining(ctx, base.Add(3*time.Second), restartRequest())
		if got.ProjectCostPerMonth != 100000 {
			t.Errorf("unflushed spend survived a crash? %+v", got)
		}
	})
}

// TestEmbeddedCrashKeepsRevocation: a revocation the API has acknowledged should survive a
// crash, or a revoked token works again after one.
func TestEmbeddedCrashKeepsRevocation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "l.db")
	ctx := context.Background()
	s := openEmbedded(t, path, limiter.EmbeddedOptions{FlushInterval: time.Hour})
	defer s.Close()
	at := time.Now().Truncate(time.Second)
	if err := s.Revoke(ctx, "p", limiter.RevokeUser, "u1", at); err != nil {
		t.Fatal(err)
	}
	copyFile(t, path, filepath.Join(dir, "crashed.db"))
	c := openEmbedded(t, filepath.Join(dir, "crashed.db"), limiter.EmbeddedOptions{})
	defer c.Close()
	if got, _ := c.RevokedBefore(ctx, "p", limiter.RevokeUser, "u1"); !got.Equal(at) {
		t.Errorf("RevokedBefore after a crash = %v, want %v", got, at)
	}
}

func TestEmbeddedLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	s := openEmbedded(t, path, limiter.EmbeddedOptions{})
	defer s.Close()
	const timeout = 200 * time.Millisecond
	start := time.Now()
	s2, err := limiter.OpenEmbedded(path, limiter.EmbeddedOptions{OpenTimeout: timeout})
	elapsed := time.Since(start)
	if err == nil {
		s2.Close()
		t.Fatal("a second OpenEmbedded of an open file succeeded")
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "locked") {
		t.Errorf("error %q does not name the file and its lock", err)
	}
	// bbolt gives up one 50ms retry before the timeout.
	if elapsed < timeout/2 || elapsed > timeout+2*time.Second {
		t.Errorf("gave up after %v, want about %v", elapsed, timeout)
	}
}

func TestEmbeddedCloseStopsFlusher(t *testing.T) {
	before := runtime.NumGoroutine()
	s := openEmbedded(t, filepath.Join(t.TempDir(), "l.db"), limiter.EmbeddedOptions{FlushInterval: time.Millisecond})
	spend(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before Open, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
	m := openEmbedded(t, "", limiter.EmbeddedOptions{})
	if err := m.Close(); err != nil {
		t.Errorf("Close of a memory store: %v", err)
	}
}

// benchRequest has every limit on and out of reach, so every check runs and none refuses.
//
// Benchmarks run on the wall clock, not on base: the store evicts users idle for a day by the
// wall clock, and on base's clock every user looks idle and is re-read from the file after
// each flush, which is not what production does.
func benchRequest(user string) limiter.Request {
	return limiter.Request{
		Project: "bench", User: user, Session: "s-" + user, Tier: "pro", Model: "gpt-4o-mini",
		Limits: limiter.Limits{RequestsPerMinute: 1 << 40, TokensPerMinute: 1 << 50, TokensPerDay: 1 << 50,
			CostPerDay: 1 << 55, CostPerMonth: 1 << 56, ConcurrentRequests: 1 << 20},
		ProjectCostPerMonth: 1 << 60, Tokens: 1200, Cost: 2400, IssuedAt: time.Now().Add(-time.Hour),
	}
}

func BenchmarkEmbeddedReserveSettle(b *testing.B) {
	s := openEmbedded(b, filepath.Join(b.TempDir(), "l.db"), limiter.EmbeddedOptions{})
	defer s.Close()
	ctx := context.Background()
	req := benchRequest("u1")
	used := limiter.Usage{InputTokens: 700, OutputTokens: 300, Cost: 1300}
	start := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		now := start.Add(time.Duration(i) * time.Microsecond)
		i++
		res, dec, err := s.Reserve(ctx, now, req)
		if err != nil || !dec.Allowed {
			b.Fatalf("Reserve: %+v, %v", dec, err)
		}
		if err := s.Settle(ctx, now, res, used); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEmbeddedReserveSettleParallel(b *testing.B) {
	s := openEmbedded(b, filepath.Join(b.TempDir(), "l.db"), limiter.EmbeddedOptions{})
	defer s.Close()
	ctx := context.Background()
	reqs := make([]limiter.Request, 10000)
	for i := range reqs {
		reqs[i] = benchRequest(fmt.Sprintf("org_%d:user_%d", i%100, i))
	}
	used := limiter.Usage{InputTokens: 700, OutputTokens: 300, Cost: 1300}
	var n atomic.Int64
	start := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			now := start.Add(time.Duration(i) * time.Microsecond)
			res, dec, err := s.Reserve(ctx, now, reqs[i%int64(len(reqs))])
			if err != nil || !dec.Allowed {
				b.Errorf("Reserve: %+v, %v", dec, err)
				return
			}
			if err := s.Settle(ctx, now, res, used); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

package limiter_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

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
		Project: "p", User: "org_1:u1", Org: "org_1", Session: "s1", Tier: "free", Model: "gpt-4o-mini",
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
	if _, err := s.Settle(ctx, base.Add(time.Second), res, limiter.Usage{InputTokens: 100, OutputTokens: 50, Cost: 150}); err != nil {
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
	wantRows := []limiter.UsageRow{{Group: []string{"org_1"}, Requests: 1, InputTokens: 100, OutputTokens: 50, Cost: 150}}
	rows, err := s.Usage(ctx, limiter.UsageQuery{Project: "p", GroupBy: []string{"org"}, From: base, To: base})
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
	if _, err := s.Settle(ctx, base.Add(3*time.Second), inFlight, limiter.Usage{}); err != nil {
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

// TestEmbeddedNever: a request whose worst case alone is over a limit is refused by it, with
// Never, even when another limit (here concurrency) is used up too: telling it to retry in a
// second would be a lie.
func TestEmbeddedNever(t *testing.T) {
	ctx := context.Background()
	s := openEmbedded(t, "", limiter.EmbeddedOptions{})
	defer s.Close()
	at := base.Add(-time.Hour)
	l := limiter.Limits{ConcurrentRequests: 1, TokensPerMinute: 100, TokensPerDay: 1000, CostPerDay: 1000, CostPerMonth: 2000}
	r := limiter.Request{Project: "p", User: "u", Limits: l, ProjectCostPerMonth: 5000}
	if _, dec, _ := s.Reserve(ctx, at, r); !dec.Allowed {
		t.Fatalf("first request: %+v", dec)
	}
	// Each case turns off the limits before the one it is over (a worst case over several
	// limits is refused by the first of them).
	for _, c := range []struct {
		tokens int64
		cost   limiter.Nanos
		off    func(*limiter.Limits)
		want   limiter.Limit
		retry  time.Duration
	}{
		{101, 0, func(*limiter.Limits) {}, limiter.LimitTokensPerMinute, time.Minute},
		{1001, 0, func(l *limiter.Limits) { l.TokensPerMinute = 0 }, limiter.LimitTokensPerDay, time.Hour + 2*time.Minute},
		{0, 1001, func(*limiter.Limits) {}, limiter.LimitCostPerDay, time.Hour + 2*time.Minute},
		{0, 2001, func(l *limiter.Limits) { l.CostPerDay = 0 }, limiter.LimitCostPerMonth, time.Hour + 2*time.Minute},
		{0, 5001, func(l *limiter.Limits) { l.CostPerDay, l.CostPerMonth = 0, 0 }, limiter.LimitProjectCostPerMonth, time.Hour + 2*time.Minute},
		{100, 1000, func(*limiter.Limits) {}, limiter.LimitConcurrentRequests, time.Second}, // fits, just not now
	} {
		q := r
		q.Tokens, q.Cost = c.tokens, c.cost
		c.off(&q.Limits)
		_, dec, err := s.Reserve(ctx, at, q)
		never := c.want != limiter.LimitConcurrentRequests
		if err != nil || dec.Allowed || dec.Refused != c.want || dec.Never != never || dec.RetryAfter != c.retry {
			t.Errorf("tokens %d, cost %d: %+v, %v; want refused by %q, Never %v, RetryAfter %v",
				c.tokens, c.cost, dec, err, c.want, never, c.retry)
		}
	}
}

// TestEmbeddedSubSecond: a request is held for a full 60 s of real time, whatever the fraction
// of a second it was made at, so no 60 s span ever holds more than the limit.
func TestEmbeddedSubSecond(t *testing.T) {
	ctx := context.Background()
	s := openEmbedded(t, "", limiter.EmbeddedOptions{})
	defer s.Close()
	r := limiter.Request{Project: "p", User: "u", Limits: limiter.Limits{RequestsPerMinute: 1}}
	made := base.Add(900 * time.Millisecond)
	if _, dec, _ := s.Reserve(ctx, made, r); !dec.Allowed || dec.RequestsReset != 60100*time.Millisecond {
		t.Fatalf("first: %+v", dec)
	}
	_, dec, _ := s.Reserve(ctx, made.Add(59500*time.Millisecond), r)
	if dec.Allowed || dec.RetryAfter != 600*time.Millisecond {
		t.Errorf("59.5 s later: %+v, want refused with RetryAfter 600ms", dec)
	}
	if _, dec, _ := s.Reserve(ctx, made.Add(60100*time.Millisecond), r); !dec.Allowed {
		t.Errorf("60.1 s later: %+v, want admitted", dec)
	}
}

func TestEmbeddedUsageQuery(t *testing.T) {
	ctx := context.Background()
	s := openEmbedded(t, filepath.Join(t.TempDir(), "l.db"), limiter.EmbeddedOptions{})
	defer s.Close()
	for i, at := range []time.Time{base.AddDate(0, 0, -40), base, base.AddDate(0, 0, 40)} {
		res, _, _ := s.Reserve(ctx, at, limiter.Request{Project: "p", User: "org_1:u", Org: "org_1", Tier: "t", Model: "m"})
		_, _ = s.Settle(ctx, at, res, limiter.Usage{InputTokens: int64(i + 1)})
	}
	for _, c := range []struct {
		name string
		q    limiter.UsageQuery
		want string
	}{
		{"open_range", limiter.UsageQuery{Project: "p"}, "[{[org_1:u] 3 6 0 0 0}]"},
		{"open_from", limiter.UsageQuery{Project: "p", GroupBy: []string{"day"}, To: base}, "[{[2025-12-22] 1 1 0 0 0} {[2026-01-31] 1 2 0 0 0}]"},
		{"open_to", limiter.UsageQuery{Project: "p", GroupBy: []string{"org"}, From: base}, "[{[org_1] 2 5 0 0 0}]"},
		{"other_project", limiter.UsageQuery{Project: "q"}, "[]"},
	} {
		rows, err := s.Usage(ctx, c.q)
		if got := fmt.Sprint(rows); err != nil || got != c.want {
			t.Errorf("%s: Usage = %s, %v; want %s", c.name, got, err, c.want)
		}
	}
	if _, err := s.Usage(ctx, limiter.UsageQuery{Project: "p", GroupBy: []string{"week"}}); err == nil || !strings.Contains(err.Error(), `"week"`) {
		t.Errorf("group_by week: %v, want an error naming it", err)
	}
}

func TestEmbeddedRevokeErrors(t *testing.T) {
	ctx := context.Background()
	s := openEmbedded(t, "", limiter.EmbeddedOptions{})
	defer s.Close()
	if err := s.Revoke(ctx, "p", "token", "x", base); err == nil || !strings.Contains(err.Error(), `"token"`) {
		t.Errorf("kind token: %v, want an error naming it", err)
	}
	if err := s.Revoke(ctx, "p", limiter.RevokeUser, "", base); err == nil {
		t.Error("an empty user id was revoked")
	}
	// An empty session is never revoked: a token without one is not refused for it.
	r := limiter.Request{Project: "p", User: "u", IssuedAt: base.Add(-time.Hour)}
	_ = s.Revoke(ctx, "p", limiter.RevokeUser, "someone-else", base)
	if _, dec, _ := s.Reserve(ctx, base, r); !dec.Allowed {
		t.Errorf("a token with no session was refused: %+v", dec)
	}
}

func TestEmbeddedClosed(t *testing.T) {
	ctx := context.Background()
	for _, path := range []string{"", filepath.Join(t.TempDir(), "l.db")} {
		s := openEmbedded(t, path, limiter.EmbeddedOptions{})
		res, _, _ := s.Reserve(ctx, base, limiter.Request{Project: "p", User: "u"})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		_, _, err1 := s.Reserve(ctx, base, limiter.Request{Project: "p", User: "u"})
		_, err2 := s.Settle(ctx, base, res, limiter.Usage{})
		_, err3 := s.Remaining(ctx, base, limiter.Request{Project: "p", User: "u"})
		_, err4 := s.Usage(ctx, limiter.UsageQuery{Project: "p"})
		err5 := s.Revoke(ctx, "p", limiter.RevokeUser, "u", base)
		_, err6 := s.RevokedBefore(ctx, "p", limiter.RevokeUser, "u")
		for i, err := range []error{err1, err2, err3, err4, err5, err6} {
			if !errors.Is(err, limiter.ErrClosed) || !errors.Is(err, limiter.ErrUnavailable) {
				t.Errorf("%q: call %d after Close: %v, want ErrClosed (an ErrUnavailable)", path, i+1, err)
			}
		}
	}
}

// TestEmbeddedOtherFormat: a file this version cannot read is refused with a reason, not
// taken for an empty one (which would forget every month's spend).
func TestEmbeddedOtherFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("users"))
		if err == nil {
			err = b.Put([]byte("p\x00u"), []byte(`{"Day":20484}`))
		}
		return err
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err := limiter.OpenEmbedded(path, limiter.EmbeddedOptions{})
	if err == nil {
		s.Close()
		t.Fatal("a file in another format was opened")
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "format") {
		t.Errorf("error %q does not name the file and its format", err)
	}
}

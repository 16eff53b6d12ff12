package limiter

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var testBase = time.Date(2026, 1, 31, 23, 58, 0, 0, time.UTC)

// openForFlush opens a file store whose flusher never ticks, so the test flushes by hand.
func openForFlush(t *testing.T) (*Embedded, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "l.db")
	e, err := OpenEmbedded(path, EmbeddedOptions{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, path
}

func TestEvictIdleReloads(t *testing.T) {
	e, _ := openForFlush(t)
	ctx := context.Background()
	req := Request{Project: "p", User: "u", Limits: Limits{RequestsPerMinute: 3, TokensPerDay: 1000}, Tokens: 100}
	res, _, _ := e.Reserve(ctx, testBase, req)
	inFlight, _, _ := e.Reserve(ctx, testBase, req)
	_ = e.Settle(ctx, testBase, res, Usage{InputTokens: 10, OutputTokens: 20})

	// testBase is long before the wall clock, so the user looks idle; the one in flight keeps it.
	for range 2 {
		if err := e.flush(); err != nil {
			t.Fatal(err)
		}
	}
	if len(e.users) != 1 {
		t.Fatalf("a user with a request in flight was evicted")
	}
	_ = e.Settle(ctx, testBase, inFlight, Usage{InputTokens: 40})
	for range 2 { // the first writes it, the second evicts it
		if err := e.flush(); err != nil {
			t.Fatal(err)
		}
	}
	if len(e.users) != 0 {
		t.Fatalf("an idle, flushed user was kept: %d users", len(e.users))
	}
	rem, _ := e.Remaining(ctx, testBase, req)
	if rem.RequestsPerMinute != 1 || rem.TokensPerDay != 1000-30-40 || rem.ConcurrentRequests != -1 {
		t.Errorf("after eviction, Remaining = %+v", rem)
	}
}

func TestFlushFailureKeepsUsage(t *testing.T) {
	e, path := openForFlush(t)
	ctx := context.Background()
	req := Request{Project: "p", User: "u", Tier: "free"}
	res, _, _ := e.Reserve(ctx, testBase, req)
	_ = e.Settle(ctx, testBase, res, Usage{InputTokens: 1, OutputTokens: 2, Cost: 3})

	// The file goes away under the store: the flush fails and keeps everything for the next.
	e.db.Close()
	if err := e.flush(); err == nil {
		t.Fatal("flush to a closed file succeeded")
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.db = db
	if err := e.flush(); err != nil {
		t.Fatal(err)
	}
	if len(e.usage) != 0 {
		t.Errorf("usage left unflushed: %v", e.usage)
	}
	rows, err := e.Usage(ctx, UsageQuery{Project: "p", GroupBy: "tier", From: testBase, To: testBase})
	want := UsageRow{Key: "free", Requests: 1, InputTokens: 1, OutputTokens: 2, Cost: 3}
	if err != nil || len(rows) != 1 || rows[0] != want {
		t.Errorf("Usage = %+v, %v; want [%+v]", rows, err, want)
	}
}

// TestUsageDuringFlush: usage read while flushes move it from memory to the file is never
// counted twice or missed.
func TestUsageDuringFlush(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	e, err := OpenEmbedded(path, EmbeddedOptions{FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	req := Request{Project: "p", User: "u", Tier: "free"}
	for i := range 300 {
		res, _, _ := e.Reserve(ctx, testBase, req)
		_ = e.Settle(ctx, testBase, res, Usage{InputTokens: 1})
		rows, err := e.Usage(ctx, UsageQuery{Project: "p", GroupBy: "tier", From: testBase, To: testBase})
		if err != nil || len(rows) != 1 || rows[0].Requests != int64(i+1) || rows[0].InputTokens != int64(i+1) {
			t.Fatalf("after %d requests: Usage = %+v, %v", i+1, rows, err)
		}
	}
}

func TestUsageDBKey(t *testing.T) {
	k := usageKey{project: "p", day: dayOf(testBase), user: "org_9:user_2", session: "s", tier: "free", model: "gpt-4o"}
	got, ok := parseUsageDBKey(usageDBKey(k))
	if !ok || got != k {
		t.Errorf("round trip: %+v, %v; want %+v", got, ok, k)
	}
	for _, bad := range []string{"", "p\x002026-01-31", "p\x00not-a-day\x00u\x00s\x00t\x00m"} {
		if _, ok := parseUsageDBKey([]byte(bad)); ok {
			t.Errorf("parseUsageDBKey(%q) ok", bad)
		}
	}
}

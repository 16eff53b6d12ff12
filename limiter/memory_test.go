package limiter

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"
)

var memProfile = flag.String("limiter.heapprofile", "", "write the heap, with the users in memory, to this file")

var memUsers = flag.Int("limiter.users", 100_000, "distinct users BenchmarkMemoryPerUser drives")

// BenchmarkMemoryPerUser is what the store keeps in memory for each user seen today: every
// one of -limiter.users users (100k by default; 1M for the README's figure) makes one request,
// reserved and settled, as a gateway's would be (an org, a session, a tier, a model). After a
// flush has written them to the file and the minute's windows are empty, the heap after GC
// grows by B/user for each. A user stays in memory for a day after its last request, so a
// day's distinct users is what sizes the store.
//
//	go test ./limiter -run '^$' -bench MemoryPerUser -benchtime 1x -limiter.users 1000000
func BenchmarkMemoryPerUser(b *testing.B) {
	n := *memUsers
	if testing.Short() {
		n = min(n, 10_000) // CI runs every benchmark once, for correctness
	}
	for b.Loop() {
		perUser := memoryPerUser(b, n)
		b.ReportMetric(perUser, "B/user")
		b.ReportMetric(perUser*1e6/(1<<20), "MiB/1M-users")
	}
}

// memoryPerUser drives n users through a file store and returns the heap it grew by, per user.
func memoryPerUser(tb testing.TB, n int) float64 {
	e, err := OpenEmbedded(filepath.Join(tb.TempDir(), "l.db"), EmbeddedOptions{FlushInterval: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	limits := Limits{RequestsPerMinute: 60, TokensPerMinute: 100_000, TokensPerDay: 1_000_000, CostPerDay: 1e9,
		CostPerMonth: 1e10, ConcurrentRequests: 4}
	request := func(i int) Request {
		return Request{Project: "p_load", User: fmt.Sprintf("org_%d:user_%d", i%1000, i), Org: fmt.Sprintf("org_%d", i%1000),
			Session: fmt.Sprintf("sess_%022d", i), Tier: "pro", Model: "gpt-4o-mini", Limits: limits,
			ProjectCostPerMonth: 1 << 60, Tokens: 1200, Cost: 2400, IssuedAt: at.Add(-time.Hour)}
	}
	// The project, the shards' maps at their size class and the file's pages, before counting.
	warm := n / 10
	drive := func(from, to int) {
		for i := from; i < to; i++ {
			now := at.Add(time.Duration(i) * time.Microsecond)
			res, dec, err := e.Reserve(ctx, now, request(i))
			if err != nil || !dec.Allowed {
				tb.Fatalf("Reserve: %+v %v", dec, err)
			}
			if _, err := e.Settle(ctx, now, res, Usage{InputTokens: 700, OutputTokens: 300, Cost: 1300}); err != nil {
				tb.Fatal(err)
			}
		}
	}
	settle := func() {
		// A request two minutes on moves the store's clock past every window; two flushes
		// write the users and then free the windows of the idle ones.
		tick := request(-1)
		tick.User = "tick"
		if _, _, err := e.Reserve(ctx, at.Add(2*time.Minute+time.Duration(n)*time.Microsecond), tick); err != nil {
			tb.Fatal(err)
		}
		for range 2 {
			if err := e.flush(); err != nil {
				tb.Fatal(err)
			}
		}
	}
	drive(n, n+warm)
	settle()
	before := heapAfterGC()
	drive(0, n)
	settle()
	after := heapAfterGC()
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			tb.Fatal(err)
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			tb.Fatal(err)
		}
		f.Close()
	}
	runtime.KeepAlive(e)
	return float64(after-before) / float64(n)
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestMemoryPerUserBounded holds the store to the README's sizing: a million users seen in a
// day fit in 256 MiB (268 bytes each), with room to spare on this smaller run.
func TestMemoryPerUserBounded(t *testing.T) {
	if perUser := memoryPerUser(t, 20_000); perUser > 268 {
		t.Errorf("%.0f bytes per idle user in memory, want at most 268 (256 MiB for 1M users)", perUser)
	} else {
		t.Logf("%.0f bytes per idle user", perUser)
	}
}

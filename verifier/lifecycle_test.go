package verifier

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// ownGoroutines lists the stacks of goroutines running the Verifier's or ristretto's code (not
// the test's JWKS servers).
func ownGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var own []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "verifier.(*Verifier)") || strings.Contains(g, "verifier.(*jwksCache)") ||
			strings.Contains(g, "ristretto") {
			own = append(own, g)
		}
	}
	return own
}

// TestCloseStopsGoroutines: Close ends the refresher, in-flight fetches (even against a
// hanging issuer), and the cache's goroutines, and waits for them.
func TestCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	key := newRSA(t, "clerk-1")
	srv := newJWKSServer(t, key.jwk(t, true))
	srv.setHang(true)

	var waiters sync.WaitGroup
	for i := range 3 {
		clock := newClock()
		v, err := New(Config{Issuer: testIssuer, Projects: []Project{{ID: project, TenantID: tenant,
			Trust: []Trust{{Issuer: clerkIssuer, JWKSURL: srv.URL}}}}, Now: clock.Now})
		must(t, err)
		waitFor(t, "the prefetch to reach the server", func() bool { return srv.hits.Load() > int64(i) })
		tok := key.sign(t, clerkClaims(clock.Now()), nil)
		waiters.Add(1)
		go func() {
			defer waiters.Done()
			if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrIssuerUnavailable) {
				t.Errorf("Verify during Close: err = %v, want ErrIssuerUnavailable", err)
			}
		}()
		time.Sleep(10 * time.Millisecond) // let the request join the fetch
		start := time.Now()
		v.Close()
		// Far less than the 10s the fetch would hang for without Close cancelling it (the
		// margin is for loaded test machines).
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Close took %v", d)
		}
		v.Close() // idempotent
	}
	waiters.Wait()

	// Close has waited for every goroutine it owns. Ristretto's last goroutine may still be
	// returning (it signals Close just before it does), so allow it a moment.
	deadline := time.Now().Add(2 * time.Second)
	for own := ownGoroutines(); len(own) > 0; own = ownGoroutines() {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left after Close:\n%s", len(own), strings.Join(own, "\n\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv.setHang(false)
	srv.Close()
	srv.CloseClientConnections()
	waitFor(t, "the goroutine count to settle", func() bool { return runtime.NumGoroutine() <= before+2 })
}

// TestVerifyAroundClose: Verify racing Close neither panics nor leaks; after Close, tokens are
// still checked from what is held.
func TestVerifyAroundClose(t *testing.T) {
	v, ed, clock := newMinted(t, nil)
	tok := ed.sign(t, mintedClaims(clock.Now()), nil)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				tk := tok
				if j%2 == 0 {
					tk = ed.sign(t, with(mintedClaims(clock.Now()), map[string]any{"jti": i*1_000_000 + j}), nil)
				}
				if _, err := v.Verify(context.Background(), tk); err != nil {
					t.Errorf("Verify: %v", err)
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	v.Close()
	time.Sleep(10 * time.Millisecond)
	close(stop)
	wg.Wait()
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("Verify after Close: %v", err)
	}
}

// TestCloseFreesTokenCache: a closed Verifier lets go of its token cache (ristretto's counters
// and buffers are megabytes), since the handler that owns it may stay reachable after a reload.
func TestCloseFreesTokenCache(t *testing.T) {
	v, key, clock := newMinted(t, nil)
	tok := key.sign(t, mintedClaims(clock.Now()), nil)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	v.Close()
	if v.cache.c != nil {
		t.Fatal("the token cache is still held after Close")
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("Verify after Close: %v", err)
	}
}

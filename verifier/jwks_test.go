package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// ready waits for the prefetch New starts, so tests count only the fetches they cause.
func (f *trustedFixture) ready(t *testing.T) {
	t.Helper()
	if _, err := f.verify(t, clerkClaims(f.clock.Now())); err != nil {
		t.Fatalf("first Verify: %v", err)
	}
	if n := f.srv.hits.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches after the first Verify, want 1", n)
	}
}

func TestPrefetchAtNew(t *testing.T) {
	f := newTrusted(t, nil)
	waitFor(t, "the prefetch", func() bool { return f.srv.hits.Load() == 1 })
}

// TestRemovedKeyRefusedAfterTTL: a key the issuer stops serving is refused once the TTL has
// passed, also for a token the cache holds.
func TestRemovedKeyRefusedAfterTTL(t *testing.T) {
	f := newTrusted(t, nil)
	claims := with(clerkClaims(f.clock.Now()), map[string]any{"exp": f.clock.Now().Add(time.Hour).Unix()})
	tok := f.key.sign(t, claims, nil)
	if _, err := f.v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	f.v.cache.wait()
	f.srv.setKeys() // the issuer rotates the key out

	f.clock.Advance(4 * time.Minute)
	if _, err := f.v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("within the TTL: %v", err)
	}
	f.clock.Advance(time.Minute + time.Second)
	if _, err := f.v.Verify(context.Background(), tok); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("after the TTL: err = %v, want ErrUnknownKey", err)
	}
	if _, err := f.v.Verify(context.Background(), f.key.sign(t, claims, nil)); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("new token after the TTL: err = %v, want ErrUnknownKey", err)
	}
}

// TestUnknownKidStorm: many concurrent requests with unknown kids cause at most one fetch per
// refetch interval, shared by all of them, and the fetch at New (or a scheduled refresh) does
// not count as it; a key added by the issuer is found by that fetch.
func TestUnknownKidStorm(t *testing.T) {
	f := newTrusted(t, nil)
	f.ready(t)

	storm := func(rotated *testKey, wantFound bool) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, 1000)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k := &testKey{kid: fmt.Sprintf("random-%d", i), alg: "EdDSA", priv: rotated.priv}
				if i == 0 {
					k = rotated
				}
				_, errs[i] = f.v.Verify(context.Background(), k.sign(t, clerkClaims(f.clock.Now()), nil))
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if i == 0 && wantFound {
				if err != nil {
					t.Errorf("rotated-in key: %v", err)
				}
				continue
			}
			if !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("request %d: err = %v, want ErrUnknownKey", i, err)
			}
		}
	}

	// Right after the prefetch: the storm's own refetch, shared, finds the new key.
	rotated := newEd25519(t, "clerk-2")
	f.srv.setKeys(f.key.jwk(t, true), rotated.jwk(t, false))
	storm(rotated, true)
	if n := f.srv.hits.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (the prefetch and one refetch)", n)
	}
	// Within the interval after that refetch: no fetch at all.
	again := newEd25519(t, "clerk-3")
	f.srv.setKeys(f.key.jwk(t, true), rotated.jwk(t, false), again.jwk(t, false))
	storm(again, false)
	if n := f.srv.hits.Load(); n != 2 {
		t.Fatalf("%d fetches within the refetch interval, want still 2", n)
	}
	// After it: one fetch, shared, which finds the newer key.
	f.clock.Advance(10 * time.Second)
	storm(again, true)
	if n := f.srv.hits.Load(); n != 3 {
		t.Fatalf("%d fetches, want 3", n)
	}
	f.clock.Advance(9 * time.Second)
	storm(again, true)
	if n := f.srv.hits.Load(); n != 3 {
		t.Fatalf("%d fetches 9s later, want still 3", n)
	}
}

// TestIssuerDownKeepsServing: with keys cached, an issuer that is down does not stop tokens,
// even past the TTL; the failure is logged (rate-limited) and retried once per interval.
func TestIssuerDownKeepsServing(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	f := newTrusted(t, func(c *Config) { c.Logger = zap.New(core) })
	f.ready(t)
	f.srv.setStatus(http.StatusInternalServerError)

	for i, step := range []time.Duration{5*time.Minute + time.Second, time.Second, 10 * time.Second, 30 * time.Minute} {
		f.clock.Advance(step)
		for j := range 20 {
			claims := with(clerkClaims(f.clock.Now()), map[string]any{"jti": fmt.Sprint(i, j)})
			if _, err := f.verify(t, claims); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
	}
	// One fetch after the TTL, none within the interval, one at 10s, one 30 minutes later.
	if n := f.srv.hits.Load(); n != 4 {
		t.Errorf("%d fetches, want 4", n)
	}
	warnings := logs.FilterMessageSnippet("keeping its last good keys").All()
	if len(warnings) != 2 {
		t.Errorf("%d warnings, want 2 (rate-limited): %v", len(warnings), warnings)
	}
	for _, w := range warnings {
		if s := fmt.Sprint(w.ContextMap()); strings.Contains(s, "eyJ") {
			t.Errorf("a warning carries a token: %s", s)
		}
	}

	// Back up without the key: refused at the next fetch.
	f.srv.setStatus(0)
	f.srv.setKeys()
	f.clock.Advance(10 * time.Second)
	if _, err := f.verify(t, clerkClaims(f.clock.Now())); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("after recovery: err = %v, want ErrUnknownKey", err)
	}
}

func TestIssuerDownNoKeys(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(*jwksServer)
	}{
		{"status 500", func(s *jwksServer) { s.setStatus(http.StatusInternalServerError) }},
		{"status 404", func(s *jwksServer) { s.setStatus(http.StatusNotFound) }},
		{"not JSON", func(s *jwksServer) { s.setBody([]byte("<html>")) }},
		{"connection refused", func(s *jwksServer) { s.Close() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			key := newRSA(t, "clerk-1")
			srv := newJWKSServer(t, key.jwk(t, true))
			tt.setup(srv)
			clock := newClock()
			v := newTestVerifier(t, Config{Projects: []Project{{ID: project, TenantID: tenant,
				Trust: []Trust{{Issuer: clerkIssuer, JWKSURL: srv.URL}}}}, Now: clock.Now})
			tok := key.sign(t, clerkClaims(clock.Now()), nil)
			for range 3 {
				if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrIssuerUnavailable) {
					t.Fatalf("err = %v, want ErrIssuerUnavailable", err)
				}
			}
			if n := srv.hits.Load(); n > 1 {
				t.Errorf("%d fetches within the refetch interval, want at most 1", n)
			}
		})
	}
}

func TestJWKSBodyCap(t *testing.T) {
	key := newRSA(t, "clerk-1")
	srv := newJWKSServer(t, key.jwk(t, true))
	body := fmt.Sprintf(`{"keys":[%s],"pad":"%s"}`, mustJSON(t, key.jwk(t, true)), strings.Repeat("x", 4096))
	srv.setBody([]byte(body))
	for _, tt := range []struct {
		limit int64
		want  error
	}{
		{int64(len(body)), nil},
		{int64(len(body)) - 1, ErrIssuerUnavailable},
	} {
		clock := newClock()
		v := newTestVerifier(t, Config{Projects: []Project{{ID: project, TenantID: tenant,
			Trust: []Trust{{Issuer: clerkIssuer, JWKSURL: srv.URL}}}}, MaxJWKSBytes: tt.limit, Now: clock.Now})
		_, err := v.Verify(context.Background(), key.sign(t, clerkClaims(clock.Now()), nil))
		if (tt.want == nil && err != nil) || !errors.Is(err, tt.want) {
			t.Errorf("cap %d for a %d-byte body: err = %v, want %v", tt.limit, len(body), err, tt.want)
		}
	}
}

// TestJWKSTimeout: a hanging issuer costs at most the client's timeout, and a request's own
// context ends its wait sooner without cancelling the shared fetch.
func TestJWKSTimeout(t *testing.T) {
	key := newRSA(t, "clerk-1")
	srv := newJWKSServer(t, key.jwk(t, true))
	srv.setHang(true)
	clock := newClock()
	v := newTestVerifier(t, Config{Projects: []Project{{ID: project, TenantID: tenant,
		Trust: []Trust{{Issuer: clerkIssuer, JWKSURL: srv.URL}}}},
		HTTPClient: &http.Client{Timeout: 1500 * time.Millisecond}, Now: clock.Now})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := v.Verify(ctx, key.sign(t, clerkClaims(clock.Now()), nil))
	if !errors.Is(err, ErrIssuerUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrIssuerUnavailable and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("waited %v with a 20ms deadline (the client's timeout is 1.5s)", d)
	}

	clock.Advance(time.Minute) // past the refetch interval, should the first fetch be over
	start = time.Now()
	_, err = v.Verify(context.Background(), key.sign(t, clerkClaims(clock.Now()), nil))
	if !errors.Is(err, ErrIssuerUnavailable) {
		t.Fatalf("err = %v, want ErrIssuerUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("waited %v with a 1.5s client timeout", d)
	}
}

// TestJWKSKeyFilter: keys without kid, for encryption, or symmetric are never used.
func TestJWKSKeyFilter(t *testing.T) {
	clock := newClock()
	sig := newEd25519(t, "sig")
	enc := newEd25519(t, "enc")
	encJWK := enc.jwk(t, false)
	must(t, encJWK.Set("use", "enc"))
	body := fmt.Sprintf(`{"keys":[%s,%s,{"kty":"oct","kid":"oct","k":"c2VjcmV0"}]}`,
		mustJSON(t, sig.jwk(t, false)), mustJSON(t, encJWK))
	srv := newJWKSServer(t)
	srv.setBody([]byte(body))
	v := newTestVerifier(t, Config{Projects: []Project{{ID: project, TenantID: tenant,
		Trust: []Trust{{Issuer: clerkIssuer, JWKSURL: srv.URL}}}}, Now: clock.Now})
	if _, err := v.Verify(context.Background(), sig.sign(t, clerkClaims(clock.Now()), nil)); err != nil {
		t.Fatalf("sig key: %v", err)
	}
	if _, err := v.Verify(context.Background(), enc.sign(t, clerkClaims(clock.Now()), nil)); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("enc key: err = %v, want ErrUnknownKey", err)
	}
	oct := (&testKey{kid: "oct", alg: "HS256", priv: sig.priv}).sign(t, clerkClaims(clock.Now()), nil)
	if _, err := v.Verify(context.Background(), oct); !errors.Is(err, ErrAlgorithm) {
		t.Errorf("oct key: err = %v, want ErrAlgorithm", err)
	}
}

// TestJWKSSharedByProjects: projects trusting one issuer share one key cache and one fetch.
func TestJWKSSharedByProjects(t *testing.T) {
	f := newTrusted(t, func(c *Config) {
		p2 := c.Projects[0]
		p2.ID = "p_two"
		c.Projects = append(c.Projects, p2)
	})
	f.ready(t)
	if _, err := f.verify(t, with(clerkClaims(f.clock.Now()), map[string]any{"pid": "p_two"})); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.hits.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
}

// TestBackgroundRefresh: keys near expiry are refreshed without a request waiting.
func TestBackgroundRefresh(t *testing.T) {
	f := newTrusted(t, func(c *Config) {
		c.JWKSCacheTTL = 5 * time.Second // the refresher ticks every second
		c.RefetchInterval = time.Second
	})
	f.ready(t)
	f.clock.Advance(4500 * time.Millisecond) // past 80% of the TTL
	waitFor(t, "the background refresh", func() bool { return f.srv.hits.Load() == 2 })
	f.clock.Advance(time.Second) // past the first fetch's TTL: the refreshed keys serve
	if _, err := f.verify(t, clerkClaims(f.clock.Now())); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.hits.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return string(b)
}

// TestHangingIssuerBoundedWait: against an issuer that never answers, each request waits at
// most the fetch timeout, however many wait together; once that fetch has failed, requests
// that need one are answered at once (no fetch, no wait) until the next attempt is due, one
// refetch interval after the failure.
func TestHangingIssuerBoundedWait(t *testing.T) {
	key := newRSA(t, "clerk-1")
	srv := newJWKSServer(t, key.jwk(t, true))
	srv.setHang(true)
	clock := newClock()
	const timeout = 300 * time.Millisecond
	v := newTestVerifier(t, Config{Projects: []Project{{ID: project, TenantID: tenant,
		Trust: []Trust{{Issuer: clerkIssuer, JWKSURL: srv.URL}}}}, FetchTimeout: timeout, Now: clock.Now})
	tok := key.sign(t, clerkClaims(clock.Now()), nil)

	var wg sync.WaitGroup
	waits := make([]time.Duration, 20)
	for i := range waits {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrIssuerUnavailable) {
				t.Errorf("request %d: err = %v, want ErrIssuerUnavailable", i, err)
			}
			waits[i] = time.Since(start)
		}()
	}
	// The hang lasts a whole refetch interval on the gateway's clock: the next attempt is due
	// an interval after the failure, not after the start of the fetch that hung.
	time.Sleep(timeout / 3)
	clock.Advance(10 * time.Second)
	wg.Wait()
	for i, d := range waits {
		// Bounded by the timeout, not by the issuer: the margin is for a loaded machine.
		if d > timeout+2*time.Second {
			t.Errorf("request %d waited %v with a %v fetch timeout", i, d, timeout)
		}
	}
	waitFor(t, "the hanging fetch to be given up", func() bool {
		v.jwks[srv.URL].mu.Lock()
		defer v.jwks[srv.URL].mu.Unlock()
		return v.jwks[srv.URL].inflight == nil
	})
	hits := srv.hits.Load()
	if hits != 1 {
		t.Errorf("%d fetches for 20 waiting requests, want 1", hits)
	}

	// Within the interval after the failure: answered from what is held (nothing), no fetch.
	for _, step := range []time.Duration{0, 5 * time.Second, 4 * time.Second} {
		clock.Advance(step)
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrIssuerUnavailable) {
			t.Fatalf("+%v after the failure: err = %v, want ErrIssuerUnavailable", step, err)
		}
		if n := srv.hits.Load(); n != hits {
			t.Fatalf("+%v after the failure: %d new fetches, want none", step, n-hits)
		}
	}
	// The next attempt is due: the issuer answers again and the token verifies.
	srv.setHang(false)
	clock.Advance(time.Second)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("after the refetch interval: %v", err)
	}
	if n := srv.hits.Load(); n != hits+1 {
		t.Errorf("%d fetches after the interval, want 1", n-hits)
	}
}

// TestKeyRotatedInAfterScheduledRefresh: the background refresh does not use up the
// unknown-kid refetch, so a key the issuer adds just after it is found at once; the refetch
// that finds it is then the interval's.
func TestKeyRotatedInAfterScheduledRefresh(t *testing.T) {
	f := newTrusted(t, func(c *Config) {
		c.JWKSCacheTTL = 5 * time.Second // the refresher ticks every second
	})
	f.ready(t)
	f.clock.Advance(4500 * time.Millisecond) // past 80% of the TTL: the refresher fetches
	waitFor(t, "the background refresh", func() bool { return f.srv.hits.Load() == 2 })

	rotated := newEd25519(t, "clerk-2")
	f.srv.setKeys(f.key.jwk(t, true), rotated.jwk(t, false))
	if _, err := f.v.Verify(context.Background(), rotated.sign(t, clerkClaims(f.clock.Now()), nil)); err != nil {
		t.Fatalf("a key rotated in just after the scheduled refresh: %v", err)
	}
	if n := f.srv.hits.Load(); n != 3 {
		t.Errorf("%d fetches, want 3", n)
	}
	// That refetch was the interval's: another unknown kid at once fetches nothing.
	stranger := newEd25519(t, "clerk-3")
	if _, err := f.v.Verify(context.Background(), stranger.sign(t, clerkClaims(f.clock.Now()), nil)); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown kid within the interval: err = %v, want ErrUnknownKey", err)
	}
	if n := f.srv.hits.Load(); n != 3 {
		t.Errorf("%d fetches, want still 3", n)
	}
}

// TestIssuerDownUnknownKidUnavailable: while the issuer is down, a kid the last good keys lack
// may be a key it rotated in: 503 (try again), not 401; known kids keep verifying.
func TestIssuerDownUnknownKidUnavailable(t *testing.T) {
	f := newTrusted(t, nil)
	f.ready(t)
	f.srv.setStatus(http.StatusInternalServerError)
	rotated := newEd25519(t, "clerk-2")
	if _, err := f.v.Verify(context.Background(), rotated.sign(t, clerkClaims(f.clock.Now()), nil)); !errors.Is(err, ErrIssuerUnavailable) {
		t.Fatalf("unknown kid, issuer down: err = %v, want ErrIssuerUnavailable", err)
	}
	if _, err := f.verify(t, with(clerkClaims(f.clock.Now()), map[string]any{"jti": "other"})); err != nil {
		t.Fatalf("known kid, issuer down: %v", err)
	}
}

// TestOnFetch: every fetch is reported with its outcome, for metrics.
func TestOnFetch(t *testing.T) {
	var mu sync.Mutex
	var outcomes []string
	f := newTrusted(t, func(c *Config) {
		c.OnFetch = func(issuer string, err error) {
			mu.Lock()
			defer mu.Unlock()
			outcomes = append(outcomes, fmt.Sprint(issuer == clerkIssuer, err == nil))
		}
	})
	f.ready(t)
	f.srv.setStatus(http.StatusInternalServerError)
	f.clock.Advance(10 * time.Minute)
	if _, err := f.verify(t, clerkClaims(f.clock.Now())); err != nil {
		t.Fatal(err) // the last good keys serve
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"true true", "true false"}; fmt.Sprint(outcomes) != fmt.Sprint(want) {
		t.Errorf("fetches reported %v, want %v", outcomes, want)
	}
}

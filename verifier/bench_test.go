package verifier

import (
	"context"
	"testing"
	"time"
)

// BenchmarkVerifyCacheHit is the hot path: a token seen before.
func BenchmarkVerifyCacheHit(b *testing.B) {
	v, ed, clock := newMinted(b, nil)
	tok := ed.sign(b, mintedClaims(clock.Now()), nil)
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	v.cache.wait()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCacheHitParallel is the hot path under contention.
func BenchmarkVerifyCacheHitParallel(b *testing.B) {
	v, ed, clock := newMinted(b, nil)
	tok := ed.sign(b, mintedClaims(clock.Now()), nil)
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	v.cache.wait()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkVerifyMissEdDSA is a minted token seen for the first time: parse, signature, claims,
// cache store.
func BenchmarkVerifyMissEdDSA(b *testing.B) {
	v, ed, clock := newMinted(b, nil)
	toks := make([]string, 4096)
	for i := range toks {
		toks[i] = ed.sign(b, with(mintedClaims(clock.Now()), map[string]any{"jti": i}), nil)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		// Each token once; when the pool is used up, start a fresh cache so it stays a miss.
		if i == len(toks) {
			b.StopTimer()
			v.cache.close()
			c, err := newTokenCache(defaultCacheBytes)
			if err != nil {
				b.Fatal(err)
			}
			v.cache, i = c, 0
			b.StartTimer()
		}
		if _, err := v.Verify(ctx, toks[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkVerifyMissRS256 is a trusted-issuer (Clerk-like) token seen for the first time, keys
// cached.
func BenchmarkVerifyMissRS256(b *testing.B) {
	clock := newClock()
	key := newRSA(b, "clerk-1")
	srv := newJWKSServer(b, key.jwk(b, true))
	v := newTestVerifier(b, Config{Projects: []Project{{ID: project, TenantID: tenant, DefaultTier: "1",
		Trust: []Trust{{Issuer: clerkIssuer, JWKSURL: srv.URL}}}}, Now: clock.Now})
	toks := make([]string, 1024)
	for i := range toks {
		toks[i] = key.sign(b, with(clerkClaims(clock.Now()), map[string]any{"jti": i}), nil)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i == len(toks) {
			b.StopTimer()
			v.cache.close()
			c, err := newTokenCache(defaultCacheBytes)
			if err != nil {
				b.Fatal(err)
			}
			v.cache, i = c, 0
			b.StartTimer()
		}
		if _, err := v.Verify(ctx, toks[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkTokenCacheHeap fills a token cache with distinct users' tokens and reads the heap
// after GC: with room for all of them, the heap and the charge per entry; in the default 64 MiB
// cache, how many it keeps and the heap it holds, its own structures included. Each round
// verifies 20k to 100k tokens: run it with -benchtime=1x.
func BenchmarkTokenCacheHeap(b *testing.B) {
	for _, bc := range []struct {
		name  string
		n     int
		size  int64
		token func(int, time.Time) string
	}{
		{"small-100k-room", 100_000, 512 << 20, smallToken},
		{"large-20k-room", 20_000, 512 << 20, largeToken},
		{"small-100k-64MiB", 100_000, defaultCacheBytes, smallToken},
		{"large-30k-64MiB", 30_000, defaultCacheBytes, largeToken},
	} {
		if testing.Short() {
			bc.n /= 20 // CI runs every benchmark once, for correctness
		}
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				before := heapAlloc()
				v, clock := cacheTestVerifier(b, bc.size)
				charged := fillCache(b, v, clock, bc.n, bc.token)
				held := heapAlloc() - before
				entries := cached(v, clock, bc.n, bc.token)
				v.Close()
				b.ReportMetric(float64(held)/(1<<20), "heap-MiB")
				b.ReportMetric(float64(entries), "entries")
				b.ReportMetric(float64(held)/float64(entries), "heap-B/entry")
				b.ReportMetric(float64(charged)/float64(bc.n), "charged-B/entry")
			}
		})
	}
}

package verifier

import (
	"context"
	"testing"
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
			c, err := newTokenCache(defaultCacheEntries)
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
			c, err := newTokenCache(defaultCacheEntries)
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

package verifier_test

import (
	"context"
	"testing"
	"time"

	"github.com/behest/caddy-behest/mint"
	"github.com/behest/caddy-behest/verifier"
)

// benchEnv is a verifier of EdDSA minted tokens at a fixed time, with the default cache size.
func benchEnv(b *testing.B) *mintedEnv {
	b.Helper()
	return newMintedEnv(b, nil, func(c *verifier.Config) { c.CacheBytes = 64 << 20 })
}

// BenchmarkVerifyCached is the common case: a token seen before, answered from the cache.
func BenchmarkVerifyCached(b *testing.B) {
	e := benchEnv(b)
	tok := e.mint(b, nil)
	verifyUntilCached(b, e.v, tok.Token)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.v.Verify(ctx, tok.Token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyUncached verifies a token never seen before on every iteration: parsing, the
// Ed25519 signature, the claims, and the cache insert. Tokens are minted before the timer.
func BenchmarkVerifyUncached(b *testing.B) {
	e := benchEnv(b)
	tokens := make([]string, b.N)
	for i := range tokens {
		tokens[i] = e.mint(b, func(c *mint.Claims) { c.TTL = time.Hour }).Token
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.v.Verify(ctx, tokens[i]); err != nil {
			b.Fatal(err)
		}
	}
}

package verifier

import (
	"context"
	"errors"
	"testing"
	"time"
)

func newMinted(t testing.TB, edit func(*Config)) (*Verifier, *testKey, *fakeClock) {
	clock := newClock()
	ed := newEd25519(t, "m1")
	cfg := Config{MintedKeys: keySource{"m1": ed.jwk(t, false)}, Projects: []Project{mintedProject()}, Now: clock.Now}
	if edit != nil {
		edit(&cfg)
	}
	return newTestVerifier(t, cfg), ed, clock
}

// TestCacheHit: a token seen again gets the same identity, without allocating, until its exp
// (plus leeway) on the configured clock.
func TestCacheHit(t *testing.T) {
	v, ed, clock := newMinted(t, nil)
	tok := ed.sign(t, with(mintedClaims(clock.Now()), map[string]any{"exp": clock.Now().Add(time.Minute).Unix()}), nil)
	ctx := context.Background()
	first, err := v.Verify(ctx, tok)
	must(t, err)
	v.cache.wait()

	second, err := v.Verify(ctx, tok)
	must(t, err)
	if second != first {
		t.Fatal("the second Verify did not come from the cache")
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = v.Verify(ctx, tok) }); allocs != 0 {
		t.Errorf("a cache hit allocates %v times", allocs)
	}

	clock.Advance(time.Minute + 29*time.Second) // exp + leeway - 1s
	if id, err := v.Verify(ctx, tok); err != nil || id != first {
		t.Fatalf("within leeway: %p, %v; want the cached identity", id, err)
	}
	clock.Advance(2 * time.Second)
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("after exp + leeway: err = %v, want ErrExpired", err)
	}
}

// TestCacheComparesTokens: an entry is served only to the token it was stored for, whatever the
// hash says.
func TestCacheComparesTokens(t *testing.T) {
	v, ed, clock := newMinted(t, nil)
	tokA := ed.sign(t, mintedClaims(clock.Now()), nil)
	tokB := ed.sign(t, with(mintedClaims(clock.Now()), map[string]any{"uid": "someone_else"}), nil)
	idB, err := v.Verify(context.Background(), tokB)
	must(t, err)
	// Plant B's entry under A's key, as a hash collision would.
	v.cache.c.SetWithTTL(tokA, &cachedToken{token: tokB, id: idB, validUntil: clock.Now().Add(time.Hour)}, 1, time.Hour)
	v.cache.wait()
	if _, ok := v.cache.get(tokA, clock.Now()); ok {
		t.Fatal("the cache served another token's identity")
	}
	idA, err := v.Verify(context.Background(), tokA)
	if err != nil || idA.UserID != "org_9:user_2abc" {
		t.Fatalf("Verify(A) = %+v, %v", idA, err)
	}
}

// TestCacheSmall: a tiny cache still verifies; it only evicts.
func TestCacheSmall(t *testing.T) {
	v, ed, clock := newMinted(t, func(c *Config) { c.CacheEntries = 2 })
	for i := range 50 {
		tok := ed.sign(t, with(mintedClaims(clock.Now()), map[string]any{"jti": i}), nil)
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
}

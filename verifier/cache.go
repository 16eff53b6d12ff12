package verifier

import (
	"sync"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/dgraph-io/ristretto/v2/z"
)

// tokenCache remembers verified tokens so that a token seen again costs a map lookup instead of
// a signature check. An entry is served only to the very same token (the hash is not trusted
// alone) and only until validUntil: the token's exp (plus leeway) or the expiry of the keys that
// verified it, whichever is first, so a removed key or an expired token is never served.
type tokenCache struct {
	// mu is held shared around every use of c and exclusively by close: ristretto panics when
	// used while it closes, and a Verify may still be running when Caddy cleans up a handler.
	mu     sync.RWMutex
	closed bool
	c      *ristretto.Cache[string, *cachedToken]
}

type cachedToken struct {
	token      string
	id         *Identity
	validUntil time.Time
}

// tokenHash hashes a token for ristretto with the runtime's seeded hash only. Ristretto's
// default adds a second, conflict hash (xxhash over the whole token, a fifth of a cache hit);
// get compares the stored token instead, so a conflict hash of 0 (unchecked) is enough.
func tokenHash(token string) (uint64, uint64) {
	return z.MemHashString(token), 0
}

func newTokenCache(entries int64) (*tokenCache, error) {
	c, err := ristretto.NewCache(&ristretto.Config[string, *cachedToken]{
		NumCounters: entries * 10, // ristretto's advice: ten counters per entry
		MaxCost:     entries,
		BufferItems: 64,
		// Every entry costs 1, so MaxCost counts entries; ristretto's own per-item overhead
		// would otherwise be added to that cost and shrink the cache many times over.
		IgnoreInternalCost: true,
		KeyToHash:          tokenHash,
	})
	if err != nil {
		return nil, err
	}
	return &tokenCache{c: c}, nil
}

// get returns the identity of token when it was verified before and is still valid at now.
func (tc *tokenCache) get(token string, now time.Time) (*Identity, bool) {
	tc.mu.RLock()
	if tc.closed {
		tc.mu.RUnlock()
		return nil, false
	}
	e, ok := tc.c.Get(token)
	tc.mu.RUnlock()
	if !ok || e.token != token || !now.Before(e.validUntil) {
		return nil, false
	}
	return e.id, true
}

// set remembers id for token until validUntil. Ristretto applies sets asynchronously and may
// drop them under contention: a later get can miss, which only costs a verification.
func (tc *tokenCache) set(token string, id *Identity, validUntil, now time.Time) {
	ttl := validUntil.Sub(now)
	if ttl <= 0 {
		return
	}
	e := &cachedToken{token: token, id: id, validUntil: validUntil}
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	if !tc.closed {
		// The TTL (on ristretto's real clock) only frees memory early; validUntil decides.
		tc.c.SetWithTTL(token, e, 1, ttl)
	}
}

func (tc *tokenCache) close() {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if !tc.closed {
		tc.closed = true
		tc.c.Close()
		// The old config's handler can stay reachable for a while after a reload (idle upstream
		// connections hold it): let go of ristretto's counters and buffers, megabytes each.
		tc.c = nil
	}
}

package verifier

import (
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/dgraph-io/ristretto/v2/z"
)

// tokenCache remembers verified tokens so that a token seen again costs a map lookup instead of
// a signature check. An entry is served only to the very same token (the hash is not trusted
// alone) and only until validUntil: the token's exp (plus leeway) or the expiry of the keys that
// verified it, whichever is first, so a removed key or an expired token is never served.
//
// The cache is bounded by bytes: each entry costs an estimate of the memory it keeps alive (see
// entryBytes), and ristretto's fixed structures are taken off the budget first. A nil
// *tokenCache is a cache that is off: it holds nothing.
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

const (
	// MinCacheBytes is the smallest token cache: ristretto's own structures take about 490 KB.
	MinCacheBytes = 1 << 20
	// defaultCacheBytes bounds the token cache when the config says nothing.
	defaultCacheBytes = 64 << 20
	// expectedEntryBytes sizes ristretto's admission counters (ten per entry it expects when
	// full): a minted token's entry is charged about 2.3 KB, a token with many claims' more.
	expectedEntryBytes = 2 << 10
	// itemOverheadBytes is what ristretto keeps per entry besides the value, at most: a slot of
	// its store shard's map (hash, then conflict, value, expiration: 56 bytes), one of its
	// policy's cost map (16) and one of its expiry bucket (16), each with a control byte, in maps
	// that can be as little as 7/16 full just after they doubled: (57+17+17) * 16/7.
	itemOverheadBytes = 208
	// storeShards is the number of ristretto's store shards, each a map of its own.
	storeShards = 256
)

// tokenHash hashes a token for ristretto with the runtime's seeded hash only. Ristretto's
// default adds a second, conflict hash (xxhash over the whole token, a fifth of a cache hit);
// get compares the stored token instead, so a conflict hash of 0 (unchecked) is enough.
func tokenHash(token string) (uint64, uint64) {
	return z.MemHashString(token), 0
}

// newTokenCache makes a cache whose entries and ristretto's structures take about maxBytes.
func newTokenCache(maxBytes int64) (*tokenCache, error) {
	if maxBytes < MinCacheBytes {
		return nil, fmt.Errorf("a token cache of %d bytes is too small: it needs at least %d", maxBytes, MinCacheBytes)
	}
	counters := maxBytes / expectedEntryBytes * 10 // ristretto's advice: ten counters per entry
	c, err := ristretto.NewCache(&ristretto.Config[string, *cachedToken]{
		NumCounters: counters,
		MaxCost:     maxBytes - fixedBytes(counters),
		BufferItems: 64,
		// Ristretto's goroutine charges each entry as it applies the set (set passes cost 0),
		// so the estimate is never made on the request path.
		Cost: func(e *cachedToken) int64 { return entryBytes(e.token, e.id) },
		// entryBytes already counts ristretto's per-item structures (itemOverheadBytes);
		// ristretto's own addition (56 bytes) would count part of them twice.
		IgnoreInternalCost: true,
		KeyToHash:          tokenHash,
	})
	if err != nil {
		return nil, err
	}
	return &tokenCache{c: c}, nil
}

// fixedBytes is what a ristretto cache holds whatever its entries: the set buffer (32768
// pointers) and its small structures, the count-min sketch (four rows of 4-bit counters, a power
// of two long), the doorkeeper bloom filter (1% false positives: 9.6 bits per counter, a power
// of two of them), and the first group of each store shard's map.
func fixedBytes(counters int64) int64 {
	sketch := 2 * nextPow2(counters)
	bloom := nextPow2(counters*96/10) / 8
	storeItem := int(2*unsafe.Sizeof(uint64(0)) + unsafe.Sizeof(&cachedToken{}) + unsafe.Sizeof(time.Time{}))
	shardGroup := allocBytes(8 + 8*(8+storeItem))
	return 320<<10 + sketch + bloom + storeShards*shardGroup
}

// get returns the identity of token when it was verified before and is still valid at now.
func (tc *tokenCache) get(token string, now time.Time) (*Identity, bool) {
	if tc == nil {
		return nil, false
	}
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
	if tc == nil || ttl <= 0 {
		return
	}
	e := &cachedToken{token: token, id: id, validUntil: validUntil}
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	if !tc.closed {
		// The TTL (on ristretto's real clock) only frees memory early; validUntil decides.
		// Cost 0: ristretto's goroutine charges the entry (Config.Cost).
		tc.c.SetWithTTL(token, e, 0, ttl)
	}
}

func (tc *tokenCache) close() {
	if tc == nil {
		return
	}
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

// entryBytes estimates the heap an entry keeps alive, on the high side: the token, the entry
// and its Identity, the Identity's strings (counted even where they share a claim's bytes), the
// claims, and ristretto's per-item structures. The project's ids are the config's, not counted.
func entryBytes(token string, id *Identity) int64 {
	n := itemOverheadBytes + allocBytes(int(unsafe.Sizeof(cachedToken{}))) + allocBytes(len(token))
	if id != nil {
		n += allocBytes(int(unsafe.Sizeof(Identity{}))) +
			allocBytes(len(id.UserID)) + allocBytes(len(id.OrgID)) + allocBytes(len(id.Tier)) +
			allocBytes(len(id.SessionID)) + allocBytes(len(id.Issuer)) + allocBytes(len(id.TokenID)) +
			objectBytes(id.Claims)
	}
	return n
}

// objectBytes estimates a decoded JSON object: the map and every key and value in it.
func objectBytes(m map[string]any) int64 {
	if m == nil {
		return 0
	}
	n := mapBytes(len(m), int(unsafe.Sizeof("")+unsafe.Sizeof(any(nil))))
	for k, v := range m {
		n += allocBytes(len(k)) + valueBytes(v)
	}
	return n
}

// valueBytes estimates what a claim value keeps alive besides its interface word pair: a
// string or slice header is boxed, a number too (8 bytes, but in a 16-byte tiny block that the
// decoder's garbage shared), a map is a pointer of its own.
func valueBytes(v any) int64 {
	switch x := v.(type) {
	case nil, bool:
		return 0
	case string:
		return allocBytes(int(unsafe.Sizeof(""))) + allocBytes(len(x))
	case int64, float64:
		return 16
	case map[string]any:
		return objectBytes(x)
	case []any:
		n := allocBytes(int(unsafe.Sizeof([]any(nil)))) + allocBytes(cap(x)*int(unsafe.Sizeof(any(nil))))
		for _, e := range x {
			n += valueBytes(e)
		}
		return n
	}
	// Claims hold only the types above (plainClaims); anything else counts as a small object.
	return 64
}

// mapBytes estimates a Go (swiss table) map of n entries whose slots take slot bytes each:
// groups of eight slots and a control word, at most 7/8 full, grown by doubling, split into
// tables of at most 1024 slots; the Map header (48 bytes) and each table (32) besides.
func mapBytes(n, slot int) int64 {
	const header, table, maxTable = 48, 32, 1024
	group := 8 + 8*slot
	switch {
	case n == 0:
		return header
	case n <= 8:
		return header + allocBytes(group)
	}
	slots := nextPow2(int64((n*8 + 6) / 7))
	tables := max(slots/maxTable, 1)
	perTable := min(slots, maxTable)
	return header + allocBytes(int(8*tables)) + tables*(table+allocBytes(int(perTable/8)*group))
}

// allocBytes is what the allocator hands out for n bytes: the size class n falls in, whole 8
// KiB pages above 32 KiB, and 16 bytes up to 16: the tiny allocator packs small strings into
// 16-byte blocks, which any one of them still alive keeps whole.
func allocBytes(n int) int64 {
	switch {
	case n <= 0:
		return 0
	case n <= 16:
		return 16
	case n > 32<<10:
		return int64(n+8191) &^ 8191
	}
	i, _ := slices.BinarySearch(sizeClasses[:], uint16(n))
	return int64(sizeClasses[i])
}

// sizeClasses are the Go allocator's object sizes up to 32 KiB (the runtime's sizeclasses.go).
var sizeClasses = [...]uint16{
	8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288,
	320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536,
	1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192,
	9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576,
	27264, 28672, 32768,
}

func nextPow2(n int64) int64 {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len64(uint64(n-1))
}

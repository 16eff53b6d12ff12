package verifier

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
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
	v, ed, clock := newMinted(t, func(c *Config) { c.CacheBytes = MinCacheBytes })
	for i := range 50 {
		tok := ed.sign(t, with(mintedClaims(clock.Now()), map[string]any{"jti": i}), nil)
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
}

// --- The byte bound. ---

var cacheSecret = []byte("cache-test-secret-of-at-least-32-bytes")

// cacheTestVerifier verifies HS256 tokens of one issuer (the fastest real Verify, so memory tests
// can use many tokens) with a token cache of size bytes.
func cacheTestVerifier(t testing.TB, size int64) (*Verifier, *fakeClock) {
	clock := newClock()
	v := newTestVerifier(t, Config{Projects: []Project{{ID: project, TenantID: tenant, Tiers: []string{"1"}, DefaultTier: "1",
		Trust: []Trust{{Issuer: clerkIssuer, Secret: cacheSecret}}}}, Now: clock.Now, CacheBytes: size})
	return v, clock
}

// smallToken is user i's token as the contract's Clerk template writes it: 12 claims, ~400 bytes.
func smallToken(i int, now time.Time) string {
	return hs256Token(fmt.Sprintf(`{"azp":"https://app.example.com","email":"user%[1]d@example.com","exp":%[2]d,"iat":%[3]d,`+
		`"iss":%[4]q,"jti":"jti_%[1]d","nbf":%[3]d,"pid":%[5]q,"sub":"user_%[1]d","tid":%[6]q,"tier":1,"uid":"org_%[7]d:user_%[1]d"}`,
		i, now.Add(time.Hour).Unix(), now.Unix(), clerkIssuer, project, tenant, i%100))
}

// largeToken is user i's token with many claims, ~2.7 KB: the template's claims, a metadata
// object of 20 strings, a list of 40 roles and ids, and 20 numbers.
func largeToken(i int, now time.Time) string {
	var b strings.Builder
	small := smallToken(i, now)
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(small, ".")[1])
	b.Write(payload[:len(payload)-1])
	b.WriteString(`,"public_metadata":{`)
	for j := range 20 {
		fmt.Fprintf(&b, `%s"field_%d":"%s%08d"`, map[bool]string{true: ",", false: ""}[j > 0], j, strings.Repeat("x", 32), i)
	}
	b.WriteString(`},"roles":[`)
	for j := range 20 {
		fmt.Fprintf(&b, `%s"role-%d",%d`, map[bool]string{true: ",", false: ""}[j > 0], j, i*1000+j)
	}
	b.WriteString(`]`)
	for j := range 20 {
		fmt.Fprintf(&b, `,"extra_%d":%d`, j, i*12345+j)
	}
	b.WriteString(`}`)
	return hs256Token(b.String())
}

func hs256Token(claims string) string {
	input := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(claims))
	mac := hmac.New(sha256.New, cacheSecret)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// heapAlloc is the live heap after full collections (two: sync.Pool keeps a victim cache
// through one).
func heapAlloc() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// fillCache verifies tokens 0..n-1 made by token (none kept), waits until the cache has taken
// them, and returns the bytes charged for them.
func fillCache(t testing.TB, v *Verifier, clock *fakeClock, n int, token func(int, time.Time) string) (charged int64) {
	t.Helper()
	for i := range n {
		tok := token(i, clock.Now())
		id, err := v.Verify(context.Background(), tok)
		if err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		charged += entryBytes(tok, id)
		if i%1024 == 1023 {
			v.cache.wait() // keep ristretto's set buffer from dropping sets
		}
	}
	v.cache.wait()
	return charged
}

// cached counts the tokens 0..n-1 the cache holds.
func cached(v *Verifier, clock *fakeClock, n int, token func(int, time.Time) string) int {
	held := 0
	for i := range n {
		if _, ok := v.cache.get(token(i, clock.Now()), clock.Now()); ok {
			held++
		}
	}
	return held
}

// TestCacheBoundedByBytes: filled with many times its size of distinct tokens, the cache holds
// no more heap than its size, ristretto's structures included; it holds many more small tokens
// than large ones; and Close gives the memory back.
func TestCacheBoundedByBytes(t *testing.T) {
	const size = 4 << 20
	const slack = 256 << 10 // the Verifier itself, the runtime's own noise
	before := heapAlloc()
	v, clock := cacheTestVerifier(t, size)
	charged := fillCache(t, v, clock, 1500, largeToken) // ~17 MB of entries
	filled := heapAlloc()
	bigHeld := cached(v, clock, 1500, largeToken)
	t.Logf("large tokens: %d of 1500 held, heap +%d KiB for a %d KiB cache (%d KiB charged in all)",
		bigHeld, (filled-before)>>10, size>>10, charged>>10)
	if filled-before > size+slack {
		t.Errorf("the cache of %d KiB holds %d KiB of heap", size>>10, (filled-before)>>10)
	}
	entriesBytes := size - fixedBytes(size/expectedEntryBytes*10)
	if want := int(entriesBytes / (charged / 1500) / 2); bigHeld < want {
		t.Errorf("%d large tokens held, want at least %d: the cache is not used", bigHeld, want)
	}
	v.Close()
	if after := heapAlloc(); after-before > slack {
		t.Errorf("after Close the heap is still %d KiB above where it was", (after-before)>>10)
	}

	v, clock = cacheTestVerifier(t, size)
	fillCache(t, v, clock, 6000, smallToken)
	if h := heapAlloc(); h-before > size+slack {
		t.Errorf("small tokens: the cache of %d KiB holds %d KiB of heap", size>>10, (h-before)>>10)
	}
	smallHeld := cached(v, clock, 6000, smallToken)
	t.Logf("small tokens: %d of 6000 held", smallHeld)
	if smallHeld < 3*bigHeld {
		t.Errorf("%d small tokens held, %d large ones: small tokens should fit several times as many", smallHeld, bigHeld)
	}
}

// TestEntryBytesCoversHeap: what an entry is charged covers the heap it holds, and is not far
// above it, for small and large tokens (the heap measured with nothing evicted).
func TestEntryBytesCoversHeap(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     int
		token func(int, time.Time) string
	}{{"small", 5000, smallToken}, {"large", 2000, largeToken}} {
		t.Run(tc.name, func(t *testing.T) {
			v, clock := cacheTestVerifier(t, 64<<20)
			before := heapAlloc()
			charged := fillCache(t, v, clock, tc.n, tc.token)
			held := heapAlloc() - before
			if got := cached(v, clock, tc.n, tc.token); got != tc.n {
				t.Fatalf("%d of %d held: the measurement needs all", got, tc.n)
			}
			perEntry, chargedPerEntry := held/int64(tc.n), charged/int64(tc.n)
			t.Logf("%s tokens (%d bytes): heap %d B per entry, charged %d", tc.name, len(tc.token(0, clock.Now())), perEntry, chargedPerEntry)
			if perEntry > chargedPerEntry || perEntry < chargedPerEntry*6/10 {
				t.Errorf("an entry holds %d bytes of heap and is charged %d", perEntry, chargedPerEntry)
			}
		})
	}
}

// TestFixedBytesCoversHeap: an empty cache holds less than fixedBytes, which the cache's budget
// pays first (fixedBytes also counts the shards' first groups, which come with entries), and not
// far less.
func TestFixedBytesCoversHeap(t *testing.T) {
	for _, size := range []int64{MinCacheBytes, 4 << 20, defaultCacheBytes} {
		fixed := fixedBytes(size / expectedEntryBytes * 10)
		before := heapAlloc()
		c, err := newTokenCache(size)
		must(t, err)
		held := heapAlloc() - before
		c.close()
		if held > fixed || held < fixed/2 {
			t.Errorf("an empty cache of %d bytes holds %d, counted %d", size, held, fixed)
		}
	}
}

// TestMapBytes: the map estimate covers what the runtime allocates, for maps as small as a
// token's and as large as a 32 KiB token's claims can make.
func TestMapBytes(t *testing.T) {
	keys := make([]string, 5000)
	for i := range keys {
		keys[i] = fmt.Sprint(i)
	}
	for _, n := range []int{0, 1, 8, 9, 14, 15, 100, 896, 897, 2000, 5000} {
		maps := make([]map[string]any, max(10_000/max(n, 1), 10))
		before := heapAlloc()
		for i := range maps {
			maps[i] = make(map[string]any)
			for _, k := range keys[:n] {
				maps[i][k] = nil
			}
		}
		held := (heapAlloc() - before) / int64(len(maps))
		runtime.KeepAlive(maps)
		if est := mapBytes(n, 32); held > est || held < est/3 {
			t.Errorf("map of %d: %d bytes, estimated %d", n, held, est)
		}
	}
}

// TestCacheOff: with the cache off every Verify checks the token, and gets a fresh identity.
func TestCacheOff(t *testing.T) {
	v, ed, clock := newMinted(t, func(c *Config) { c.DisableCache = true })
	if v.cache != nil {
		t.Fatal("a cache was made")
	}
	tok := ed.sign(t, with(mintedClaims(clock.Now()), map[string]any{"exp": clock.Now().Add(time.Minute).Unix()}), nil)
	first, err := v.Verify(context.Background(), tok)
	must(t, err)
	second, err := v.Verify(context.Background(), tok)
	must(t, err)
	if first == second || second.UserID != "org_9:user_2abc" {
		t.Errorf("the second Verify gave %p (%+v), the first %p: want a fresh identity", second, second, first)
	}
	clock.Advance(2 * time.Minute)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrExpired) {
		t.Errorf("expired: %v, want ErrExpired", err)
	}
	v.Close()
	if _, err := v.Verify(context.Background(), ed.sign(t, mintedClaims(clock.Now()), nil)); err != nil {
		t.Errorf("Verify after Close: %v", err)
	}
}

package verifier

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// t0 is where every fake clock starts.
var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// fakeClock is a clock tests advance instead of sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testKey is a key pair that signs tokens with any header, including broken ones.
type testKey struct {
	kid  string
	alg  string
	priv crypto.Signer
}

var (
	rsaOnce sync.Once
	rsaPriv *rsa.PrivateKey
)

// sharedRSA is generated once: RSA key generation is slow under the race detector.
func sharedRSA(t testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaPriv = k
	})
	return rsaPriv
}

func newEd25519(t testing.TB, kid string) *testKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{kid: kid, alg: "EdDSA", priv: priv}
}

func newEC(t testing.TB, kid string, curve elliptic.Curve, alg string) *testKey {
	priv, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{kid: kid, alg: alg, priv: priv}
}

func newRSA(t testing.TB, kid string) *testKey {
	return &testKey{kid: kid, alg: "RS256", priv: sharedRSA(t)}
}

// jwk is the public JWK of k with its kid and, when withAlg, its alg.
func (k *testKey) jwk(t testing.TB, withAlg bool) jwk.Key {
	pub, err := jwk.Import(k.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	must(t, pub.Set(jwk.KeyIDKey, k.kid))
	must(t, pub.Set(jwk.KeyUsageKey, "sig"))
	if withAlg {
		must(t, pub.Set(jwk.AlgorithmKey, k.alg))
	}
	return pub
}

// sign makes a compact JWS of claims with header {"alg": k.alg, "kid": k.kid} plus extra
// (a nil value in extra deletes the field). The signature is k's own, except for a header alg
// of "none" (no signature) or "HS256" (an HMAC keyed with the public key: algorithm confusion).
func (k *testKey) sign(t testing.TB, claims map[string]any, extra map[string]any) string {
	hdr := map[string]any{"alg": k.alg, "kid": k.kid}
	for n, v := range extra {
		if v == nil {
			delete(hdr, n)
		} else {
			hdr[n] = v
		}
	}
	input := b64json(t, hdr) + "." + b64json(t, claims)
	alg, _ := hdr["alg"].(string)
	if alg != "none" && alg != "HS256" {
		alg = k.alg
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(k.signature(t, alg, []byte(input)))
}

func (k *testKey) signature(t testing.TB, alg string, input []byte) []byte {
	digest := func(h hash.Hash) []byte { h.Write(input); return h.Sum(nil) }
	var sig []byte
	var err error
	switch alg {
	case "none":
		return nil
	case "EdDSA":
		sig = ed25519.Sign(k.priv.(ed25519.PrivateKey), input)
	case "RS256":
		sig, err = rsa.SignPKCS1v15(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, digest(sha256.New()))
	case "PS256":
		sig, err = rsa.SignPSS(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, digest(sha256.New()),
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) // what JWS requires
	case "ES256", "ES384":
		p := k.priv.(*ecdsa.PrivateKey)
		d := digest(sha256.New())
		if alg == "ES384" {
			d = digest(sha512.New384())
		}
		r, s, e := ecdsa.Sign(rand.Reader, p, d)
		if e != nil {
			t.Fatal(e)
		}
		n := (p.Curve.Params().BitSize + 7) / 8
		sig = make([]byte, 2*n)
		r.FillBytes(sig[:n])
		s.FillBytes(sig[n:])
	case "HS256":
		// Algorithm confusion: the public key, as a verifier might hold it, used as the secret.
		pub, e := json.Marshal(k.priv.Public())
		if e != nil {
			t.Fatal(e)
		}
		sig = digest(hmac.New(sha256.New, pub))
	default:
		t.Fatalf("test signer: alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func b64json(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// keySource is a KeySource over a fixed map, standing in for the mint keyring.
type keySource map[string]jwk.Key

func (s keySource) PublicKey(kid string) (jwk.Key, bool) {
	k, ok := s[kid]
	return k, ok
}

// jwksServer serves a JWKS and counts the requests it gets.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64

	mu     sync.Mutex
	keys   []jwk.Key
	status int           // answered instead of 200 when set
	body   []byte        // served instead of the keys when set
	hang   chan struct{} // when set, requests wait until it is closed or they are cancelled
}

func newJWKSServer(t testing.TB, keys ...jwk.Key) *jwksServer {
	s := &jwksServer{keys: append([]jwk.Key{}, keys...)}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		s.setHang(false)
		s.Close()
	})
	return s
}

func (s *jwksServer) serve(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	s.mu.Lock()
	keys, status, body, hang := s.keys, s.status, s.body, s.hang
	s.mu.Unlock()
	if r.Method != http.MethodGet || r.Header.Get("Accept") != "application/json" {
		http.Error(w, "want GET with Accept: application/json", http.StatusNotAcceptable)
		return
	}
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		}
	}
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	if body == nil {
		var err error
		if body, err = json.Marshal(map[string]any{"keys": keys}); err != nil {
			panic(err)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func (s *jwksServer) setKeys(keys ...jwk.Key) {
	if keys == nil {
		keys = []jwk.Key{} // {"keys":[]}, not null
	}
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

func (s *jwksServer) setStatus(code int) {
	s.mu.Lock()
	s.status = code
	s.mu.Unlock()
}

func (s *jwksServer) setBody(b []byte) {
	s.mu.Lock()
	s.body = b
	s.mu.Unlock()
}

// setHang makes requests hang (true) or releases them (false).
func (s *jwksServer) setHang(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on && s.hang == nil {
		s.hang = make(chan struct{})
	}
	if !on && s.hang != nil {
		close(s.hang)
		s.hang = nil
	}
}

// waitFor polls cond on the real clock, for what happens in goroutines (fetches, the refresher).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Test fixtures: one tenant, a project that mints and trusts an issuer.
const (
	testIssuer  = "https://gw.example.com"
	clerkIssuer = "https://clerk.example.com"
	tenant      = "t_123"
	project     = "p_456"
)

// newTestVerifier makes a Verifier with cfg's zero fields filled in for tests, closed at cleanup.
func newTestVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = testIssuer
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// clerkClaims are the claims of the Clerk JWT template of the contract, at now.
func clerkClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": clerkIssuer, "sub": "user_2abc", "azp": "https://app.example.com",
		"iat": now.Unix(), "nbf": now.Unix() - 5, "exp": now.Add(time.Minute).Unix(), "jti": "jti_1",
		"tid": tenant, "pid": project, "uid": "org_9:user_2abc", "tier": 1, "email": "a@example.com",
	}
}

// with returns a copy of claims with changes applied; a nil value deletes the claim.
func with(claims map[string]any, changes map[string]any) map[string]any {
	out := make(map[string]any, len(claims))
	for k, v := range claims {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// null is a JSON null claim value (a nil in with() deletes).
var null = json.RawMessage("null")

// wait blocks until the cache has applied earlier sets (ristretto applies them asynchronously).
func (tc *tokenCache) wait() {
	if tc == nil {
		return
	}
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	if !tc.closed {
		tc.c.Wait()
	}
}

// mustRSA generates an RSA key of its own (slow: only where a second key is needed).
func mustRSA(t testing.TB) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

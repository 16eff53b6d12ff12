// Black-box tests of the verifier through its exported API, with tokens minted by package mint
// and JWKS served by httptest servers. They live in verifier_test so that they can import mint.
package verifier_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/behest/caddy-behest/mint"
	"github.com/behest/caddy-behest/verifier"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// start is where every fake clock starts.
var start = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// clock is a fake clock: tests advance it instead of sleeping.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: start} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// --- Signing tokens by hand, with any header, including broken ones. ---

var (
	rsaKeysOnce sync.Once
	rsaKeys     [3]*rsa.PrivateKey
)

// rsaKey returns one of three RSA keys shared by all tests (generating RSA keys is slow).
func rsaKey(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	rsaKeysOnce.Do(func() {
		for j := range rsaKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys[j] = k
		}
	})
	return rsaKeys[i]
}

// signer signs tokens with a private key under a kid.
type signer struct {
	kid  string
	alg  string // the alg its tokens name by default
	priv crypto.Signer
}

func newRSASigner(t testing.TB, kid string, i int) *signer {
	return &signer{kid: kid, alg: "RS256", priv: rsaKey(t, i)}
}

func newECSigner(t testing.TB, kid string) *signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{kid: kid, alg: "ES256", priv: k}
}

func newEdSigner(t testing.TB, kid string) *signer {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{kid: kid, alg: "EdDSA", priv: k}
}

// publicJWK is the signer's public key as a JWKS serves it; alg and use are left out when "".
func (s *signer) publicJWK(t testing.TB, alg, use string) jwk.Key {
	t.Helper()
	k, err := jwk.Import(s.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	must(t, k.Set(jwk.KeyIDKey, s.kid))
	if alg != "" {
		a, ok := jwa.LookupSignatureAlgorithm(alg)
		if !ok {
			t.Fatalf("unknown alg %s", alg)
		}
		must(t, k.Set(jwk.AlgorithmKey, a))
	}
	if use != "" {
		must(t, k.Set(jwk.KeyUsageKey, use))
	}
	return k
}

// token signs claims with the signer's kid and alg. hdr entries are added to the header; a nil
// value removes one.
func (s *signer) token(t testing.TB, claims map[string]any, hdr map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": s.alg, "kid": s.kid, "typ": "JWT"}
	for k, v := range hdr {
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	alg, _ := h["alg"].(string)
	input := b64json(t, h) + "." + b64json(t, claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(s.signature(t, alg, []byte(input)))
}

func (s *signer) signature(t testing.TB, alg string, input []byte) []byte {
	t.Helper()
	digest := sha256.Sum256(input)
	switch alg {
	case "RS256":
		sig, err := rsa.SignPKCS1v15(rand.Reader, s.priv.(*rsa.PrivateKey), crypto.SHA256, digest[:])
		must(t, err)
		return sig
	case "PS256":
		sig, err := rsa.SignPSS(rand.Reader, s.priv.(*rsa.PrivateKey), crypto.SHA256, digest[:],
			&rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		must(t, err)
		return sig
	case "ES256":
		r, ss, err := ecdsa.Sign(rand.Reader, s.priv.(*ecdsa.PrivateKey), digest[:])
		must(t, err)
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		ss.FillBytes(sig[32:])
		return sig
	case "EdDSA":
		return ed25519.Sign(s.priv.(ed25519.PrivateKey), input)
	case "none":
		return nil
	}
	t.Fatalf("signer cannot sign %s", alg)
	return nil
}

// hmacToken signs claims with HS256 under secret: the algorithm-confusion attack, where the
// secret is the issuer's public key.
func hmacToken(t testing.TB, kid string, secret []byte, claims map[string]any) string {
	input := b64json(t, map[string]any{"alg": "HS256", "kid": kid, "typ": "JWT"}) + "." + b64json(t, claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func b64json(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// with returns a copy of claims with changes applied; a nil change removes the claim (use
// json.RawMessage("null") for a JSON null).
func with(claims map[string]any, changes map[string]any) map[string]any {
	out := make(map[string]any, len(claims)+len(changes))
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

var jtiSeq atomic.Int64

func nextJTI() string { return fmt.Sprintf("jti_%d", jtiSeq.Add(1)) }

// --- A fake identity provider serving a JWKS. ---

type idp struct {
	srv     *httptest.Server
	hits    atomic.Int32
	release chan struct{} // closed at cleanup, ends hanging requests

	mu     sync.Mutex
	body   []byte
	status int
	hang   bool
}

func newIDP(t testing.TB, keys ...jwk.Key) *idp {
	t.Helper()
	p := &idp{status: http.StatusOK, release: make(chan struct{})}
	p.setKeys(t, keys...)
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	t.Cleanup(func() { close(p.release) }) // runs before srv.Close
	return p
}

func (p *idp) serve(w http.ResponseWriter, r *http.Request) {
	p.hits.Add(1)
	p.mu.Lock()
	body, status, hang := p.body, p.status, p.hang
	p.mu.Unlock()
	if hang {
		select {
		case <-r.Context().Done():
		case <-p.release:
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (p *idp) setKeys(t testing.TB, keys ...jwk.Key) {
	t.Helper()
	if keys == nil {
		keys = []jwk.Key{}
	}
	b, err := json.Marshal(map[string][]jwk.Key{"keys": keys})
	must(t, err)
	p.setBody(b)
}

func (p *idp) setBody(b []byte) {
	p.mu.Lock()
	p.body = b
	p.mu.Unlock()
}

func (p *idp) setStatus(code int) {
	p.mu.Lock()
	p.status = code
	p.mu.Unlock()
}

func (p *idp) setHang(on bool) {
	p.mu.Lock()
	p.hang = on
	p.mu.Unlock()
}

func (p *idp) url() string { return p.srv.URL + "/.well-known/jwks.json" }

func newVerifier(t testing.TB, cfg verifier.Config) *verifier.Verifier {
	t.Helper()
	if cfg.CacheBytes == 0 {
		cfg.CacheBytes = 4 << 20 // a few thousand entries; the default's counters are slow under -race
	}
	v, err := verifier.New(cfg)
	if err != nil {
		t.Fatalf("verifier.New: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

// --- Minted tokens: package mint signs, the verifier checks. ---

const gatewayIssuer = "https://gw.behest.test"

type mintedEnv struct {
	clock  *clock
	key    *mint.SigningKey
	ring   *mint.Keyring
	minter *mint.Minter
	v      *verifier.Verifier
}

func mintedProject() verifier.Project {
	return verifier.Project{ID: "p_1", TenantID: "t_1", Tiers: []string{"1", "2", "pro"}, DefaultTier: "free"}
}

// newMintedEnv makes a verifier of minted tokens signed by key (a fresh Ed25519 key when nil).
func newMintedEnv(t testing.TB, key *mint.SigningKey, edit func(*verifier.Config)) *mintedEnv {
	t.Helper()
	if key == nil {
		var err error
		key, err = mint.GenerateKey()
		must(t, err)
	}
	e := &mintedEnv{clock: newClock(), key: key, ring: mint.NewKeyring(key)}
	e.minter = &mint.Minter{Issuer: gatewayIssuer, Keys: e.ring, Now: e.clock.Now}
	cfg := verifier.Config{
		Issuer: gatewayIssuer, MintedKeys: e.ring, Projects: []verifier.Project{mintedProject()}, Now: e.clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	e.v = newVerifier(t, cfg)
	return e
}

func (e *mintedEnv) mint(t testing.TB, edit func(*mint.Claims)) mint.Token {
	t.Helper()
	c := mint.Claims{TenantID: "t_1", ProjectID: "p_1", UserID: "user_42", Tier: "pro", TTL: 15 * time.Minute}
	if edit != nil {
		edit(&c)
	}
	tok, err := e.minter.Mint(c)
	must(t, err)
	return tok
}

func p256PKCS8(t testing.TB) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	must(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func TestVerifyMintedIdentity(t *testing.T) {
	es256, err := mint.ParseKeyPEM(p256PKCS8(t))
	must(t, err)
	if es256.Algorithm() != "ES256" {
		t.Fatalf("P-256 key signs %s", es256.Algorithm())
	}
	for _, tc := range []struct {
		name string
		key  *mint.SigningKey
	}{
		{"EdDSA", nil},
		{"ES256", es256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newMintedEnv(t, tc.key, nil)
			tok := e.mint(t, nil)
			id, err := e.v.Verify(context.Background(), tok.Token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := verifier.Identity{
				TenantID: "t_1", ProjectID: "p_1", UserID: "user_42", Tier: "pro", SessionID: tok.SessionID,
				Issuer: gatewayIssuer, Minted: true, IssuedAt: start, ExpiresAt: start.Add(15 * time.Minute),
			}
			if id.TenantID != want.TenantID || id.ProjectID != want.ProjectID || id.UserID != want.UserID ||
				id.Tier != want.Tier || id.SessionID != want.SessionID || id.Issuer != want.Issuer ||
				id.Minted != want.Minted || !id.IssuedAt.Equal(want.IssuedAt) || !id.ExpiresAt.Equal(want.ExpiresAt) ||
				id.TierUnknown {
				t.Errorf("Identity = %+v\nwant       %+v", *id, want)
			}
			if id.TokenID == "" || id.TokenID != id.Claims["jti"] {
				t.Errorf("TokenID %q, claims jti %v", id.TokenID, id.Claims["jti"])
			}
			if id.Claims["exp"] != start.Add(15*time.Minute).Unix() {
				t.Errorf("Claims[exp] = %#v, want int64 %d", id.Claims["exp"], start.Add(15*time.Minute).Unix())
			}
		})
	}
}

func TestVerifyMintedTiers(t *testing.T) {
	e := newMintedEnv(t, nil, nil)
	for _, tc := range []struct {
		tier, want string
		unknown    bool
	}{
		{"1", "1", false},
		{"pro", "pro", false},
		{"free", "free", false}, // the default tier is one of the project's
		{"", "free", false},
		{"enterprise", "free", true},
	} {
		tok := e.mint(t, func(c *mint.Claims) { c.Tier = tc.tier })
		id, err := e.v.Verify(context.Background(), tok.Token)
		if err != nil {
			t.Fatalf("tier %q: %v", tc.tier, err)
		}
		if id.Tier != tc.want || id.TierUnknown != tc.unknown {
			t.Errorf("tier %q: Tier %q TierUnknown %v, want %q %v", tc.tier, id.Tier, id.TierUnknown, tc.want, tc.unknown)
		}
	}
}

// A minted token signed by hand with the gateway's key (to set claims Mint never would).
func handMinted(t *testing.T) (*mintedEnv, *signer, map[string]any) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	must(t, err)
	key, err := mint.ParseKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	must(t, err)
	e := newMintedEnv(t, key, nil)
	s := &signer{kid: key.KeyID(), alg: "EdDSA", priv: priv}
	now := e.clock.Now().Unix()
	claims := map[string]any{
		"iss": gatewayIssuer, "sub": "user_42", "aud": "p_1", "uid": "user_42", "tid": "t_1", "pid": "p_1",
		"tier": "pro", "sid": "sess_x", "iat": now, "nbf": now, "exp": now + 900, "jti": "j1",
	}
	return e, s, claims
}

func TestVerifyMintedRefused(t *testing.T) {
	e := newMintedEnv(t, nil, nil)
	other, err := mint.GenerateKey()
	must(t, err)
	foreign := &mint.Minter{Issuer: gatewayIssuer, Keys: mint.NewKeyring(other), Now: e.clock.Now}
	foreignTok, err := foreign.Mint(mint.Claims{TenantID: "t_1", ProjectID: "p_1", UserID: "u", TTL: time.Minute})
	must(t, err)

	for _, tc := range []struct {
		name  string
		token string
		want  error
	}{
		{"wrong tid", e.mint(t, func(c *mint.Claims) { c.TenantID = "t_other" }).Token, verifier.ErrPermission},
		{"no tid", e.mint(t, func(c *mint.Claims) { c.TenantID = "" }).Token, verifier.ErrPermission},
		{"unknown pid", e.mint(t, func(c *mint.Claims) { c.ProjectID = "p_nope" }).Token, verifier.ErrPermission},
		{"key not in the keyring", foreignTok.Token, verifier.ErrUnknownKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := e.v.Verify(context.Background(), tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %+v, %v; want %v", id, err, tc.want)
			}
		})
	}

	t.Run("hand-signed", func(t *testing.T) {
		e, s, claims := handMinted(t)
		if _, err := e.v.Verify(context.Background(), s.token(t, claims, map[string]any{"typ": "behest+jwt"})); err != nil {
			t.Fatalf("a correctly hand-signed minted token is refused: %v", err)
		}
		for _, tc := range []struct {
			name   string
			claims map[string]any
			hdr    map[string]any
			want   error
		}{
			{"wrong aud", with(claims, map[string]any{"aud": "p_other"}), nil, verifier.ErrAudience},
			{"no aud", with(claims, map[string]any{"aud": nil}), nil, verifier.ErrAudience},
			{"aud list with pid", with(claims, map[string]any{"aud": []string{"x", "p_1"}}), nil, nil},
			{"no pid", with(claims, map[string]any{"pid": nil}), nil, verifier.ErrMissingClaim},
			{"no exp", with(claims, map[string]any{"exp": nil}), nil, verifier.ErrMissingClaim},
			{"no kid", claims, map[string]any{"kid": nil}, verifier.ErrMissingClaim},
			{"ES256 header on an EdDSA signature", claims, map[string]any{"alg": "ES256"}, verifier.ErrAlgorithm},
			{"alg none", claims, map[string]any{"alg": "none"}, verifier.ErrAlgorithm},
		} {
			t.Run(tc.name, func(t *testing.T) {
				hdr := tc.hdr
				tok := ""
				if hdr != nil && hdr["alg"] != nil && hdr["alg"] != "EdDSA" {
					// Keep the EdDSA signature but claim another alg.
					good := s.token(t, tc.claims, nil)
					tok = swapHeader(t, good, map[string]any{"alg": hdr["alg"], "kid": s.kid})
				} else {
					tok = s.token(t, tc.claims, hdr)
				}
				_, err := e.v.Verify(context.Background(), tok)
				if tc.want == nil {
					if err != nil {
						t.Fatalf("Verify: %v", err)
					}
					return
				}
				if !errors.Is(err, tc.want) {
					t.Fatalf("Verify err = %v, want %v", err, tc.want)
				}
			})
		}
	})
}

// swapHeader replaces the header of a signed token, keeping its payload and signature.
func swapHeader(t testing.TB, token string, hdr map[string]any) string {
	t.Helper()
	i := indexByte(token, '.')
	return b64json(t, hdr) + token[i:]
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func TestVerifyMintedExpiry(t *testing.T) {
	const leeway = 30 * time.Second // the default
	ttl := 15 * time.Minute
	for _, tc := range []struct {
		name    string
		advance time.Duration
		want    error
	}{
		{"fresh", 0, nil},
		{"at exp", ttl, nil},
		{"just inside the leeway", ttl + leeway - time.Second, nil},
		{"at exp+leeway", ttl + leeway, verifier.ErrExpired},
		{"past exp+leeway", ttl + leeway + time.Second, verifier.ErrExpired},
		{"long expired", 24 * time.Hour, verifier.ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newMintedEnv(t, nil, nil)
			tok := e.mint(t, func(c *mint.Claims) { c.TTL = ttl })
			e.clock.Advance(tc.advance)
			_, err := e.v.Verify(context.Background(), tok.Token)
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("Verify after %v: %v, want %v", tc.advance, err, tc.want)
			}
		})
	}
}

func TestVerifyMintedLeewayConfigured(t *testing.T) {
	e := newMintedEnv(t, nil, func(c *verifier.Config) { c.Leeway = 5 * time.Second })
	tok := e.mint(t, func(c *mint.Claims) { c.TTL = time.Minute })
	e.clock.Advance(time.Minute + 4*time.Second)
	if _, err := e.v.Verify(context.Background(), tok.Token); err != nil {
		t.Fatalf("4s past exp with 5s leeway: %v", err)
	}
	e.clock.Advance(time.Second)
	if _, err := e.v.Verify(context.Background(), tok.Token); !errors.Is(err, verifier.ErrExpired) {
		t.Fatalf("5s past exp with 5s leeway: %v, want ErrExpired", err)
	}
}

func TestVerifyMintedRotation(t *testing.T) {
	e := newMintedEnv(t, nil, nil)
	old := e.mint(t, nil)
	next, err := mint.GenerateKey()
	must(t, err)
	must(t, e.ring.Rotate(next, e.key.PublicJWK()))
	cur := e.mint(t, nil)
	for name, tok := range map[string]string{"previous key": old.Token, "current key": cur.Token} {
		if _, err := e.v.Verify(context.Background(), tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Dropping the previous key refuses its tokens (not cached yet: a fresh one).
	stale := (&mint.Minter{Issuer: gatewayIssuer, Keys: mint.NewKeyring(e.key), Now: e.clock.Now})
	staleTok, err := stale.Mint(mint.Claims{TenantID: "t_1", ProjectID: "p_1", UserID: "u", TTL: time.Minute})
	must(t, err)
	must(t, e.ring.Rotate(next))
	if _, err := e.v.Verify(context.Background(), staleTok.Token); !errors.Is(err, verifier.ErrUnknownKey) {
		t.Errorf("token of a dropped key: %v, want ErrUnknownKey", err)
	}
}

func TestVerifyMintedDisabledWithoutKeys(t *testing.T) {
	e := newMintedEnv(t, nil, nil)
	tok := e.mint(t, nil)
	v := newVerifier(t, verifier.Config{Projects: []verifier.Project{mintedProject()}, Now: e.clock.Now})
	if _, err := v.Verify(context.Background(), tok.Token); !errors.Is(err, verifier.ErrUnknownIssuer) {
		t.Errorf("minted token with no MintedKeys: %v, want ErrUnknownIssuer", err)
	}
}

// --- Verify cache. ---

// verifyUntilCached verifies token until two calls return the same *Identity (ristretto applies
// sets asynchronously), and returns it.
func verifyUntilCached(t testing.TB, v *verifier.Verifier, token string) *verifier.Identity {
	t.Helper()
	first, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	for i := 0; i < 100; i++ {
		id, err := v.Verify(context.Background(), token)
		if err != nil {
			t.Fatalf("Verify again: %v", err)
		}
		if id == first {
			return id
		}
		first = id
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the token was never served from the cache")
	return nil
}

func TestVerifyCache(t *testing.T) {
	e := newMintedEnv(t, nil, nil)
	tok := e.mint(t, func(c *mint.Claims) { c.TTL = time.Minute })
	id := verifyUntilCached(t, e.v, tok.Token)
	if again, err := e.v.Verify(context.Background(), tok.Token); err != nil || again != id {
		t.Errorf("a cached token returned %p, %v; want the cached %p", again, err, id)
	}

	// Another token of the same user is not the cached one.
	other := e.mint(t, func(c *mint.Claims) { c.TTL = time.Minute })
	if id2, err := e.v.Verify(context.Background(), other.Token); err != nil || id2 == id || id2.SessionID == id.SessionID {
		t.Errorf("another token got the cached identity (%v)", err)
	}

	// A tampered copy of a cached token is not served from the cache.
	bad := tok.Token[:len(tok.Token)-2] + flip(tok.Token[len(tok.Token)-2:])
	if _, err := e.v.Verify(context.Background(), bad); !errors.Is(err, verifier.ErrSignature) && !errors.Is(err, verifier.ErrMalformed) {
		t.Errorf("tampered copy of a cached token: %v, want ErrSignature", err)
	}

	// Past exp plus leeway, the cache refuses it too.
	e.clock.Advance(time.Minute + 30*time.Second)
	if got, err := e.v.Verify(context.Background(), tok.Token); !errors.Is(err, verifier.ErrExpired) {
		t.Fatalf("cached token after exp: %+v, %v; want ErrExpired", got, err)
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

// --- NormalizeTier. ---

func TestNormalizeTierTable(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
		ok   bool
	}{
		{json.Number("1"), "1", true},
		{json.Number("1.0"), "1", true},
		{json.Number("1e1"), "10", true},
		{json.Number("-2"), "-2", true},
		{json.Number("1.5"), "1.5", true},
		{json.Number("abc"), "", false},
		{float64(1), "1", true},
		{1.0, "1", true},
		{2.5, "2.5", true},
		{int64(3), "3", true},
		{4, "4", true},
		{"1", "1", true},
		{" 1 ", "1", true},
		{"1.0", "1", true},
		{"01", "1", true},
		{"pro", "pro", true},
		{"  pro\t", "pro", true},
		{"Pro", "Pro", true},
		{"", "", false},
		{"   ", "", false},
		{nil, "", false},
		{true, "", false},
		{false, "", false},
		{map[string]any{"plan": "pro"}, "", false},
		{[]any{"1"}, "", false},
	} {
		got, ok := verifier.NormalizeTier(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NormalizeTier(%#v) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

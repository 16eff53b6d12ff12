package mint_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"github.com/behest/caddy-behest/mint"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

var mintT0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func mustGenerate(t testing.TB) *mint.SigningKey {
	t.Helper()
	k, err := mint.GenerateKey()
	if err != nil {
		t.Fatalf("mint.GenerateKey: %v", err)
	}
	return k
}

// p256PEM returns a fresh P-256 key as PKCS#8 ("PRIVATE KEY") or SEC1 ("EC PRIVATE KEY") PEM.
func p256PEM(t testing.TB, sec1 bool) []byte {
	t.Helper()
	return ecPEM(t, elliptic.P256(), sec1)
}

func ecPEM(t testing.TB, curve elliptic.Curve, sec1 bool) []byte {
	t.Helper()
	priv, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if sec1 {
		der, err := x509.MarshalECPrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func newMinter(k *mint.SigningKey) *mint.Minter {
	return &mint.Minter{Issuer: "https://gw.example", Keys: mint.NewKeyring(k), Now: func() time.Time { return mintT0 }}
}

var testClaims = mint.Claims{TenantID: "t_1", ProjectID: "p_1", UserID: "user_42", Tier: "pro", TTL: 15 * time.Minute}

// decodePart decodes one base64url segment of a compact JWS into a generic map.
func decodePart(t *testing.T, seg string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("segment is not raw base64url: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("segment is not a JSON object: %v (%s)", err, b)
	}
	return m
}

func TestMintVerifiesWithJWX(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  func(t *testing.T) *mint.SigningKey
		alg  jwa.SignatureAlgorithm
	}{
		{"EdDSA", func(t *testing.T) *mint.SigningKey { return mustGenerate(t) }, jwa.EdDSA()},
		{"ES256 PKCS8", func(t *testing.T) *mint.SigningKey {
			k, err := mint.ParseKeyPEM(p256PEM(t, false))
			if err != nil {
				t.Fatal(err)
			}
			return k
		}, jwa.ES256()},
		{"ES256 SEC1", func(t *testing.T) *mint.SigningKey {
			k, err := mint.ParseKeyPEM(p256PEM(t, true))
			if err != nil {
				t.Fatal(err)
			}
			return k
		}, jwa.ES256()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.key(t)
			if k.Algorithm() != tc.alg.String() {
				t.Fatalf("Algorithm() = %q, want %q", k.Algorithm(), tc.alg)
			}
			tok, err := newMinter(k).Mint(testClaims)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			payload, err := jws.Verify([]byte(tok.Token), jws.WithKey(tc.alg, k.PublicJWK()))
			if err != nil {
				t.Fatalf("jws.Verify: %v", err)
			}
			parts := strings.Split(tok.Token, ".")
			if len(parts) != 3 {
				t.Fatalf("token has %d parts", len(parts))
			}
			if got, _ := base64.RawURLEncoding.DecodeString(parts[1]); string(got) != string(payload) {
				t.Errorf("verified payload differs from the token's")
			}
			// A different key of the same kind must not verify it.
			other := mustGenerate(t)
			if tc.alg == jwa.EdDSA() {
				if _, err := jws.Verify([]byte(tok.Token), jws.WithKey(tc.alg, other.PublicJWK())); err == nil {
					t.Errorf("token verified with an unrelated key")
				}
			}
			// Tampering with the payload must break the signature.
			tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), "user_42", "user_43", 2))) + "." + parts[2]
			if _, err := jws.Verify([]byte(tampered), jws.WithKey(tc.alg, k.PublicJWK())); err == nil {
				t.Errorf("tampered token verified")
			}
		})
	}
}

func TestMintHeaderAndClaims(t *testing.T) {
	k := mustGenerate(t)
	tok, err := newMinter(k).Mint(testClaims)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok.Token, ".")

	hdr := decodePart(t, parts[0])
	wantHdr := map[string]any{"alg": "EdDSA", "kid": k.KeyID(), "typ": "behest+jwt"}
	if len(hdr) != len(wantHdr) {
		t.Errorf("header = %v, want exactly %v", hdr, wantHdr)
	}
	for name, want := range wantHdr {
		if hdr[name] != want {
			t.Errorf("header %s = %v, want %v", name, hdr[name], want)
		}
	}

	cl := decodePart(t, parts[1])
	iat := mintT0.Unix()
	ttl := int64(testClaims.TTL / time.Second)
	wantStr := map[string]string{
		"iss": "https://gw.example", "sub": "user_42", "aud": "p_1", "uid": "user_42",
		"tid": "t_1", "pid": "p_1", "tier": "pro",
	}
	for name, want := range wantStr {
		if cl[name] != want {
			t.Errorf("claim %s = %#v, want %q", name, cl[name], want)
		}
	}
	wantNum := map[string]int64{"iat": iat, "nbf": iat, "exp": iat + ttl}
	for name, want := range wantNum {
		n, ok := cl[name].(json.Number)
		if !ok {
			t.Errorf("claim %s = %#v, want a number", name, cl[name])
			continue
		}
		if got, err := n.Int64(); err != nil || got != want {
			t.Errorf("claim %s = %s, want %d", name, n, want)
		}
	}
	sid, _ := cl["sid"].(string)
	if !strings.HasPrefix(sid, "sess_") || len(sid) <= len("sess_") {
		t.Errorf("sid = %q, want sess_…", sid)
	}
	if jti, _ := cl["jti"].(string); jti == "" {
		t.Errorf("jti is empty")
	}
	if len(cl) != len(wantStr)+len(wantNum)+2 {
		t.Errorf("claims have %d members, want %d: %v", len(cl), len(wantStr)+len(wantNum)+2, cl)
	}

	// The response body agrees with the token.
	if tok.TTL != ttl || tok.ExpiresAt != iat+ttl || tok.SessionID != sid {
		t.Errorf("mint.Token = {TTL:%d ExpiresAt:%d SessionID:%q}, want {%d %d %q}", tok.TTL, tok.ExpiresAt, tok.SessionID, ttl, iat+ttl, sid)
	}
	body, _ := json.Marshal(tok)
	for _, name := range []string{`"token"`, `"ttl"`, `"sessionId"`, `"expiresAt"`} {
		if !strings.Contains(string(body), name) {
			t.Errorf("mint.Token JSON %s lacks %s", body, name)
		}
	}
}

func TestMintTTLTruncatesToSeconds(t *testing.T) {
	m := newMinter(mustGenerate(t))
	c := testClaims
	c.TTL = 90*time.Second + 900*time.Millisecond
	tok, err := m.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	if tok.TTL != 90 || tok.ExpiresAt != mintT0.Unix()+90 {
		t.Errorf("TTL %d ExpiresAt %d, want 90 and iat+90", tok.TTL, tok.ExpiresAt)
	}
}

func TestMintRefuses(t *testing.T) {
	m := newMinter(mustGenerate(t))
	for _, tc := range []struct {
		name string
		edit func(*mint.Claims)
		want error
	}{
		{"no user", func(c *mint.Claims) { c.UserID = "" }, mint.ErrNoSubject},
		{"no project", func(c *mint.Claims) { c.ProjectID = "" }, mint.ErrNoSubject},
		{"zero ttl", func(c *mint.Claims) { c.TTL = 0 }, mint.ErrTTLTooShort},
		{"sub-second ttl", func(c *mint.Claims) { c.TTL = 999 * time.Millisecond }, mint.ErrTTLTooShort},
		{"negative ttl", func(c *mint.Claims) { c.TTL = -time.Minute }, mint.ErrTTLTooShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testClaims
			tc.edit(&c)
			if tok, err := m.Mint(c); !errors.Is(err, tc.want) {
				t.Errorf("Mint(%+v) = %q, %v; want %v", c, tok.Token, err, tc.want)
			}
		})
	}
	for name, m := range map[string]*mint.Minter{"nil keyring": {Issuer: "i"}, "zero Minter": {}} {
		if _, err := m.Mint(testClaims); !errors.Is(err, mint.ErrNoKey) {
			t.Errorf("%s: Mint err = %v, want ErrNoKey", name, err)
		}
	}
}

// Ids with characters JSON must escape survive the hand-written claims exactly.
func TestMintEscapesClaims(t *testing.T) {
	k := mustGenerate(t)
	for _, id := range []string{
		`quote"and\backslash`, "jos\u00e9", "caf\u00e9 \u2028 line sep", "emoji \U0001F600", "<script>&",
		"tab\tinside", "\x7f del",
	} {
		c := testClaims
		c.UserID, c.TenantID, c.Tier = id, id+"-t", id+"-tier"
		m := &mint.Minter{Issuer: id + "-iss", Keys: mint.NewKeyring(k), Now: func() time.Time { return mintT0 }}
		tok, err := m.Mint(c)
		if err != nil {
			t.Fatalf("Mint(%q): %v", id, err)
		}
		payload, err := jws.Verify([]byte(tok.Token), jws.WithKey(jwa.EdDSA(), k.PublicJWK()))
		if err != nil {
			t.Fatalf("Mint(%q) does not verify: %v", id, err)
		}
		var cl map[string]any
		if err := json.Unmarshal(payload, &cl); err != nil {
			t.Fatalf("Mint(%q) claims are not JSON: %v (%s)", id, err, payload)
		}
		for name, want := range map[string]string{"sub": id, "uid": id, "tid": id + "-t", "tier": id + "-tier", "iss": id + "-iss"} {
			if cl[name] != want {
				t.Errorf("claim %s = %q, want %q", name, cl[name], want)
			}
		}
	}
}

// ES256 signatures are r||s, each padded to 32 bytes; r or s with leading zero bytes (about one
// signature in 128) must still verify.
func TestMintES256ManySignatures(t *testing.T) {
	k, err := mint.ParseKeyPEM(p256PEM(t, false))
	if err != nil {
		t.Fatal(err)
	}
	m := newMinter(k)
	n := 500
	if testing.Short() {
		n = 50
	}
	for i := 0; i < n; i++ {
		tok, err := m.Mint(testClaims)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := base64.RawURLEncoding.DecodeString(strings.Split(tok.Token, ".")[2])
		if err != nil || len(sig) != 64 {
			t.Fatalf("mint %d: signature of %d bytes (%v), want 64", i, len(sig), err)
		}
		if _, err := jws.Verify([]byte(tok.Token), jws.WithKey(jwa.ES256(), k.PublicJWK())); err != nil {
			t.Fatalf("mint %d does not verify: %v", i, err)
		}
	}
}

func TestKeyringRotateRefuses(t *testing.T) {
	k := mustGenerate(t)
	ring := mint.NewKeyring(k)
	before := string(ring.JWKS())
	if err := ring.Rotate(nil); err == nil {
		t.Errorf("Rotate(nil) succeeded")
	}
	if ring.Current() != k || string(ring.JWKS()) != before {
		t.Errorf("a refused Rotate changed the keyring")
	}
	secret, err := jwk.Import([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Rotate(mustGenerate(t), secret); err == nil {
		t.Errorf("Rotate with a symmetric previous key succeeded")
	}
	if ring.Current() != k || string(ring.JWKS()) != before {
		t.Errorf("a refused Rotate changed the keyring")
	}
	// NewKeyring leaves such a key out rather than publishing it.
	if raw := string(mint.NewKeyring(k, secret).JWKS()); strings.Contains(raw, `"oct"`) || strings.Contains(raw, `"k"`) {
		t.Errorf("JWKS publishes a symmetric key: %s", raw)
	}
}

func TestMintDefaultClockIsNow(t *testing.T) {
	m := &mint.Minter{Issuer: "i", Keys: mint.NewKeyring(mustGenerate(t))}
	before := time.Now().Unix()
	tok, err := m.Mint(testClaims)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().Unix()
	iat := tok.ExpiresAt - tok.TTL
	if iat < before || iat > after {
		t.Errorf("iat %d not within [%d, %d]", iat, before, after)
	}
}

func TestMintSessionAndTokenIDsUnique(t *testing.T) {
	m := newMinter(mustGenerate(t))
	const n = 1000
	sids := make(map[string]bool, n)
	jtis := make(map[string]bool, n)
	for i := 0; i < n; i++ {
		tok, err := m.Mint(testClaims)
		if err != nil {
			t.Fatal(err)
		}
		cl := decodePart(t, strings.Split(tok.Token, ".")[1])
		sid, jti := cl["sid"].(string), cl["jti"].(string)
		if sids[sid] {
			t.Fatalf("sid %q repeated after %d mints", sid, i)
		}
		if jtis[jti] {
			t.Fatalf("jti %q repeated after %d mints", jti, i)
		}
		if sid != tok.SessionID {
			t.Fatalf("claim sid %q != SessionID %q", sid, tok.SessionID)
		}
		sids[sid], jtis[jti] = true, true
	}
}

func TestKeyPEMFormats(t *testing.T) {
	ed := mustGenerate(t)
	edPEM, err := ed.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPKCS8, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	rsaPKCS1 := x509.MarshalPKCS1PrivateKey(rsaKey)

	for _, tc := range []struct {
		name    string
		pem     []byte
		wantAlg string
		wantErr string // substring of the error; "" means success
	}{
		{"Ed25519 PKCS8", edPEM, "EdDSA", ""},
		{"P-256 PKCS8", p256PEM(t, false), "ES256", ""},
		{"P-256 SEC1", p256PEM(t, true), "ES256", ""},
		{"P-384 PKCS8", ecPEM(t, elliptic.P384(), false), "", "P-384"},
		{"P-384 SEC1", ecPEM(t, elliptic.P384(), true), "", "P-384"},
		{"RSA PKCS8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaPKCS8}), "", "RSA"},
		{"RSA PKCS1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: rsaPKCS1}), "", "RSA"},
		{"public key", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}), "", "not a private key"},
		{"garbage", []byte("this is not PEM at all"), "", "no PEM"},
		{"empty", nil, "", "no PEM"},
		{"corrupt PKCS8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("garbage")}), "", "parsing the"},
		{"corrupt SEC1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("garbage")}), "", "parsing the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := mint.ParseKeyPEM(tc.pem)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("mint.ParseKeyPEM succeeded (alg %s), want an error containing %q", k.Algorithm(), tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q does not mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("mint.ParseKeyPEM: %v", err)
			}
			if k.Algorithm() != tc.wantAlg {
				t.Errorf("Algorithm() = %q, want %q", k.Algorithm(), tc.wantAlg)
			}
			// A key parsed back from its own PEM is the same key.
			again, err := k.MarshalPEM()
			if err != nil {
				t.Fatal(err)
			}
			k2, err := mint.ParseKeyPEM(again)
			if err != nil {
				t.Fatal(err)
			}
			if k2.KeyID() != k.KeyID() {
				t.Errorf("round-tripped KeyID %q, want %q", k2.KeyID(), k.KeyID())
			}
		})
	}
	if k, _ := mint.ParseKeyPEM(edPEM); k.KeyID() != ed.KeyID() {
		t.Errorf("Ed25519 key parsed from its PEM has kid %q, want %q", k.KeyID(), ed.KeyID())
	}
}

func TestSigningKeyPublicJWK(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  func(t *testing.T) *mint.SigningKey
		alg  string
	}{
		{"EdDSA", func(t *testing.T) *mint.SigningKey { return mustGenerate(t) }, "EdDSA"},
		{"ES256", func(t *testing.T) *mint.SigningKey {
			k, err := mint.ParseKeyPEM(p256PEM(t, false))
			if err != nil {
				t.Fatal(err)
			}
			return k
		}, "ES256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.key(t)
			pub := k.PublicJWK()
			if kid, _ := pub.KeyID(); kid != k.KeyID() || kid == "" {
				t.Errorf("jwk kid %q, KeyID %q", kid, k.KeyID())
			}
			if alg, _ := pub.Algorithm(); alg.String() != tc.alg {
				t.Errorf("jwk alg %v, want %s", alg, tc.alg)
			}
			if use, _ := pub.KeyUsage(); use != "sig" {
				t.Errorf("jwk use %q, want sig", use)
			}
			b, _ := json.Marshal(pub)
			if strings.Contains(string(b), `"d"`) {
				t.Errorf("public JWK carries a private part: %s", b)
			}
		})
	}
}

func TestLoadKeyFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	k := mustGenerate(t)
	data, _ := k.MarshalPEM()
	path := dir + "/key.pem"
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := mint.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.KeyID() != k.KeyID() {
		t.Errorf("KeyID %q, want %q", got.KeyID(), k.KeyID())
	}
	if _, err := mint.LoadKeyFile(dir + "/absent.pem"); err == nil {
		t.Errorf("mint.LoadKeyFile of a missing file succeeded")
	}
}

func TestKeyringRotate(t *testing.T) {
	clock := mintT0
	old := mustGenerate(t)
	ring := mint.NewKeyring(old)
	m := &mint.Minter{Issuer: "i", Keys: ring, Now: func() time.Time { return clock }}
	oldTok, err := m.Mint(testClaims)
	if err != nil {
		t.Fatal(err)
	}

	cur := mustGenerate(t)
	if err := ring.Rotate(cur, old.PublicJWK()); err != nil {
		t.Fatal(err)
	}
	if ring.Current() != cur {
		t.Fatalf("Current() is not the rotated-in key")
	}
	newTok, err := m.Mint(testClaims)
	if err != nil {
		t.Fatal(err)
	}
	if kid := decodePart(t, strings.Split(newTok.Token, ".")[0])["kid"]; kid != cur.KeyID() {
		t.Errorf("new token kid %v, want %s", kid, cur.KeyID())
	}

	for name, tc := range map[string]struct {
		tok string
		kid string
	}{
		"previous key": {oldTok.Token, old.KeyID()},
		"current key":  {newTok.Token, cur.KeyID()},
	} {
		pub, ok := ring.PublicKey(tc.kid)
		if !ok {
			t.Errorf("%s: PublicKey(%q) not found", name, tc.kid)
			continue
		}
		if _, err := jws.Verify([]byte(tc.tok), jws.WithKey(jwa.EdDSA(), pub)); err != nil {
			t.Errorf("%s: token does not verify with the keyring's key: %v", name, err)
		}
	}
	if _, ok := ring.PublicKey("nope"); ok {
		t.Errorf("PublicKey(unknown) found a key")
	}

	set := parseJWKS(t, ring.JWKS())
	if set.Len() != 2 {
		t.Errorf("JWKS has %d keys after a rotation, want 2", set.Len())
	}
	for _, kid := range []string{old.KeyID(), cur.KeyID()} {
		if _, ok := set.LookupKeyID(kid); !ok {
			t.Errorf("JWKS lacks kid %s", kid)
		}
	}

	// A previous key given twice, or equal to the current one, is listed once.
	if err := ring.Rotate(cur, old.PublicJWK(), old.PublicJWK(), cur.PublicJWK()); err != nil {
		t.Fatal(err)
	}
	if n := parseJWKS(t, ring.JWKS()).Len(); n != 2 {
		t.Errorf("JWKS has %d keys with duplicate previous keys, want 2", n)
	}

	// Rotating without previous keys drops them.
	if err := ring.Rotate(cur); err != nil {
		t.Fatal(err)
	}
	if _, ok := ring.PublicKey(old.KeyID()); ok {
		t.Errorf("previous key still known after a rotation that dropped it")
	}
}

func TestKeyringJWKS(t *testing.T) {
	ed := mustGenerate(t)
	ec, err := mint.ParseKeyPEM(p256PEM(t, true))
	if err != nil {
		t.Fatal(err)
	}
	ring := mint.NewKeyring(ed, ec.PublicJWK())
	raw := ring.JWKS()
	if strings.Contains(string(raw), `"d"`) {
		t.Fatalf("JWKS carries a private part: %s", raw)
	}
	var generic struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	for _, k := range generic.Keys {
		if _, ok := k["d"]; ok {
			t.Errorf("key %v has d", k["kid"])
		}
		if k["use"] != "sig" || k["kid"] == nil || k["alg"] == nil {
			t.Errorf("key %v lacks use/kid/alg", k)
		}
	}
	set := parseJWKS(t, raw)
	if set.Len() != 2 {
		t.Fatalf("JWKS has %d keys, want 2", set.Len())
	}
	for _, sk := range []*mint.SigningKey{ed, ec} {
		k, ok := set.LookupKeyID(sk.KeyID())
		if !ok {
			t.Errorf("JWKS lacks %s", sk.KeyID())
			continue
		}
		if alg, _ := k.Algorithm(); alg.String() != sk.Algorithm() {
			t.Errorf("JWKS key %s alg %v, want %s", sk.KeyID(), alg, sk.Algorithm())
		}
		pk, ok := ring.PublicKey(sk.KeyID())
		if !ok {
			t.Errorf("PublicKey(%s) not found", sk.KeyID())
			continue
		}
		if _, err := jwk.PublicKeyOf(pk); err != nil {
			t.Errorf("PublicKey(%s) is not usable: %v", sk.KeyID(), err)
		}
	}
	// Tokens minted with the current key verify against the served set, as a client would do it.
	tok, err := newMinter(ed).Mint(testClaims)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify([]byte(tok.Token), jws.WithKeySet(set)); err != nil {
		t.Errorf("token does not verify against the JWKS: %v", err)
	}
}

func parseJWKS(t *testing.T, raw []byte) jwk.Set {
	t.Helper()
	set, err := jwk.Parse(raw)
	if err != nil {
		t.Fatalf("jwk.Parse(%s): %v", raw, err)
	}
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		if k.Has("d") {
			t.Errorf("JWKS key %d has d", i)
		}
	}
	return set
}

func BenchmarkMint(b *testing.B) {
	ec, err := mint.ParseKeyPEM(p256PEM(b, false))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		key  *mint.SigningKey
	}{
		{"EdDSA", mustGenerate(b)},
		{"ES256", ec},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := newMinter(bc.key)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Mint(testClaims); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

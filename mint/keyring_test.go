package mint

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// TestKeyringPreviousKeys covers the forms a previous key may be given in; whatever the form,
// the keyring keeps and publishes only public material, and never changes the caller's key.
func TestKeyringPreviousKeys(t *testing.T) {
	current := mustGenerate(t)
	privEd, err := jwk.Import(newEd25519(t))
	if err != nil {
		t.Fatal(err)
	}
	noKid, err := jwk.Import(newEd25519(t).Public())
	if err != nil {
		t.Fatal(err)
	}
	tp, err := noKid.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	noKidThumbprint := base64.RawURLEncoding.EncodeToString(tp)
	secret, err := jwk.Import([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	_ = secret.Set(jwk.KeyIDKey, "hmac")

	tests := []struct {
		name      string
		previous  jwk.Key
		wantKid   string // "" when the key must be left out
		rotateErr string // Rotate's error; "" when it accepts the key
	}{
		{name: "public key", previous: mustES256(t).PublicJWK()},
		{name: "private key", previous: privEd},
		{name: "no kid: its thumbprint", previous: noKid, wantKid: noKidThumbprint},
		{name: "symmetric key", previous: secret, rotateErr: "no public form"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kid := tt.wantKid
			if kid == "" && tt.rotateErr == "" {
				kid, _ = tt.previous.KeyID()
				if kid == "" {
					tp, _ := tt.previous.Thumbprint(crypto.SHA256)
					kid = base64.RawURLEncoding.EncodeToString(tp)
				}
			}
			before, _ := json.Marshal(tt.previous)
			r := NewKeyring(current, tt.previous)
			if after, _ := json.Marshal(tt.previous); string(after) != string(before) {
				t.Errorf("NewKeyring changed the caller's key:\n%s\n%s", before, after)
			}
			if _, ok := r.PublicKey(current.KeyID()); !ok {
				t.Error("the current key is not published")
			}
			set := parseKeySet(t, r.JWKS())
			if tt.rotateErr != "" {
				if set.Len() != 1 {
					t.Errorf("JWKS has %d keys, want only the current one", set.Len())
				}
				if _, ok := r.PublicKey("hmac"); ok {
					t.Error("a symmetric key is published")
				}
			} else {
				pub, ok := r.PublicKey(kid)
				if !ok {
					t.Fatalf("PublicKey(%q) not found", kid)
				}
				if private, _ := jwk.IsPrivateKey(pub); private {
					t.Error("PublicKey returned a private key")
				}
				if _, ok := set.LookupKeyID(kid); !ok || set.Len() != 2 {
					t.Errorf("JWKS (%d keys) lacks %q", set.Len(), kid)
				}
			}

			err := r.Rotate(current, tt.previous)
			if tt.rotateErr == "" && err != nil {
				t.Errorf("Rotate: %v", err)
			}
			if tt.rotateErr != "" && (err == nil || !strings.Contains(err.Error(), tt.rotateErr)) {
				t.Errorf("Rotate error = %v, want one containing %q", err, tt.rotateErr)
			}
		})
	}
	if err := NewKeyring(current).Rotate(nil); err == nil {
		t.Error("Rotate(nil) succeeded")
	}
}

// parseKeySet parses a JWKS and fails the test if any key in it carries a private member.
func parseKeySet(t *testing.T, raw []byte) jwk.Set {
	t.Helper()
	set, err := jwk.Parse(raw)
	if err != nil {
		t.Fatalf("jwk.Parse: %v\n%s", err, raw)
	}
	var generic struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	for _, k := range generic.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Errorf("JWKS key has private member %q: %s", private, raw)
			}
		}
	}
	return set
}

// TestKeyringJWKSCached: the JWKS is marshalled once per key change, not per request.
func TestKeyringJWKSCached(t *testing.T) {
	r := NewKeyring(mustGenerate(t))
	a, b := r.JWKS(), r.JWKS()
	if &a[0] != &b[0] {
		t.Error("JWKS() marshalled again")
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = r.JWKS() }); allocs != 0 {
		t.Errorf("JWKS() allocates %.0f times", allocs)
	}
	if err := r.Rotate(mustGenerate(t)); err != nil {
		t.Fatal(err)
	}
	if c := r.JWKS(); string(c) == string(a) {
		t.Error("JWKS() unchanged after Rotate")
	}
}

// TestKeyringConcurrentRotate runs minting, lookups and JWKS reads against rotations, for the
// race detector; every token minted must verify with a key the keyring published.
func TestKeyringConcurrentRotate(t *testing.T) {
	keys := []*SigningKey{mustGenerate(t), mustES256(t), mustGenerate(t)}
	r := NewKeyring(keys[0])
	m := &Minter{Issuer: "behest", Keys: r, Now: func() time.Time { return fixedNow }}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok, err := m.Mint(Claims{ProjectID: "p", UserID: "u", TTL: time.Minute})
				if err != nil {
					t.Error(err)
					return
				}
				hdr, _ := base64.RawURLEncoding.DecodeString(strings.SplitN(tok.Token, ".", 2)[0])
				var h struct{ Kid string }
				_ = json.Unmarshal(hdr, &h)
				if _, ok := r.PublicKey(h.Kid); !ok {
					// Only keys rotated out entirely may be missing; all three stay listed below.
					t.Errorf("minted with kid %q that the keyring does not know", h.Kid)
					return
				}
				_ = r.JWKS()
			}
		}()
	}
	for i := range 50 {
		cur := keys[i%len(keys)]
		var prev []jwk.Key
		for _, k := range keys {
			prev = append(prev, k.PublicJWK())
		}
		if err := r.Rotate(cur, prev...); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

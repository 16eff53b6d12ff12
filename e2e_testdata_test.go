package behest_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// TestTestdataKeys runs the gateway with the keys in testdata/: an ES256 signing key from a PEM
// file, and a trusted issuer whose JWKS is testdata/jwks.json (its private key is
// testdata/keys/issuer-rs256.pem).
func TestTestdataKeys(t *testing.T) {
	prov := newProvider(t)
	jwksServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		http.ServeFile(w, r, "testdata/jwks.json")
	}))
	t.Cleanup(jwksServer.Close)
	keyPath, err := filepath.Abs("testdata/keys/es256.pem")
	if err != nil {
		t.Fatal(err)
	}
	tester := gateway(t, config(prov.URL, jwksServer.URL, "signing_key "+keyPath, ""))
	c := tester.Client

	m := mintToken(t, c, "test-project-key", `{"user_id":"es256_user"}`)
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(m.Token, ".")[0])
	if !strings.Contains(string(hdr), `"alg":"ES256"`) || !strings.Contains(string(hdr), `"typ":"behest+jwt"`) {
		t.Fatalf("header of a token signed with a P-256 PEM: %s", hdr)
	}
	if resp := do(t, c, "POST", "/v1/chat/completions", m.Token, chatBody, nil); readBody(t, resp) == nil || resp.StatusCode != 200 {
		t.Fatalf("ES256 token: %d", resp.StatusCode)
	}
	resp := do(t, c, "GET", "/.well-known/jwks.json", "", "", nil)
	if b := readBody(t, resp); !strings.Contains(string(b), `"crv":"P-256"`) {
		t.Fatalf("jwks: %s", b)
	}

	data, err := os.ReadFile("testdata/keys/issuer-rs256.pem")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, _ := jwt.NewBuilder().Issuer(jwksServer.URL).Subject("user_from_file").IssuedAt(now).Expiration(now.Add(time.Minute)).
		Claim("pid", "p_456").Claim("tid", "t_123").Claim("uid", "user_from_file").Claim("tier", 2).Build()
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, "testdata-issuer-1")
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.RS256(), priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	if resp := do(t, c, "POST", "/v1/chat/completions", string(signed), chatBody, nil); readBody(t, resp) == nil || resp.StatusCode != 200 {
		t.Fatalf("token of the testdata issuer: %d", resp.StatusCode)
	}
	if up, _ := prov.last(t); up.Header.Get("X-Behest-User-Id") != "user_from_file" || up.Header.Get("X-Behest-Tier") != "2" {
		t.Fatalf("provider saw %v", up.Header)
	}
}

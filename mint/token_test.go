package mint

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// TestAppendJSONString checks the hand-written claims encoder against encoding/json on the
// strings that need escaping, since a user_id or issuer may hold any of them.
func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{
		"", "user_123", "org_9:user_2abc", "https://gw.example/x?y=1&z=<2>",
		`quote " and backslash \`, "newline\n tab\t nul\x00", "del\x7f", "josé", "日本語", "emoji 🚀",
		"invalid utf8 \xff\xfe", "line sep \u2028", "</script>",
	} {
		got := appendJSONString([]byte("prefix:"), s)
		if !strings.HasPrefix(string(got), "prefix:") {
			t.Fatalf("appendJSONString(%q) lost what dst held: %q", s, got)
		}
		enc := got[len("prefix:"):]
		var back string
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Errorf("appendJSONString(%q) = %s, not a JSON string: %v", s, enc, err)
			continue
		}
		var want string
		ref, _ := json.Marshal(s)
		_ = json.Unmarshal(ref, &want) // encoding/json's reading of s (invalid UTF-8 becomes U+FFFD)
		if back != want {
			t.Errorf("appendJSONString(%q) decodes to %q, want %q", s, back, want)
		}
	}
}

// TestMintClaimsNeedingEscapes: ids with quotes, control characters and non-ASCII survive the
// round trip through a signed token exactly.
func TestMintClaimsNeedingEscapes(t *testing.T) {
	k := mustGenerate(t)
	m := &Minter{Issuer: `https://gw.example/"x"`, Keys: NewKeyring(k), Now: func() time.Time { return fixedNow }}
	c := Claims{TenantID: "t_\\1", ProjectID: "p_é", UserID: "org_9:\"user\"\n🚀", Tier: "<pro>", TTL: time.Minute}
	tok, err := m.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := jws.Verify([]byte(tok.Token), jws.WithKey(jwa.EdDSA(), k.PublicJWK()))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatalf("claims are not JSON: %v\n%s", err, payload)
	}
	for name, want := range map[string]string{
		"iss": m.Issuer, "sub": c.UserID, "uid": c.UserID, "aud": c.ProjectID, "pid": c.ProjectID,
		"tid": c.TenantID, "tier": c.Tier,
	} {
		if got[name] != want {
			t.Errorf("%s = %q, want %q", name, got[name], want)
		}
	}
}

var (
	sessionIDPattern = regexp.MustCompile(`^sess_[A-Za-z0-9_-]{22}$`)
	tokenIDPattern   = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)
)

// TestMintManyES256 verifies every one of many ES256 tokens: about one signature in 128 has an
// r or s shorter than 32 bytes, which the DER to r||s conversion must pad. It also checks that
// sid and jti are 128 random bits, base64url without padding.
func TestMintManyES256(t *testing.T) {
	k := mustES256(t)
	m := &Minter{Issuer: "behest", Keys: NewKeyring(k), Now: func() time.Time { return fixedNow }}
	c := Claims{TenantID: "t_1", ProjectID: "p_1", UserID: "u_1", Tier: "1", TTL: 900 * time.Second}
	n := 1000
	if testing.Short() {
		n = 100
	}
	for range n {
		tok, err := m.Mint(c)
		if err != nil {
			t.Fatal(err)
		}
		payload, err := jws.Verify([]byte(tok.Token), jws.WithKey(jwa.ES256(), k.PublicJWK()))
		if err != nil {
			t.Fatalf("token %s does not verify: %v", tok.Token, err)
		}
		var cl struct {
			SID string `json:"sid"`
			JTI string `json:"jti"`
		}
		if err := json.Unmarshal(payload, &cl); err != nil {
			t.Fatal(err)
		}
		if !sessionIDPattern.MatchString(cl.SID) || cl.SID != tok.SessionID {
			t.Fatalf("sid %q (SessionID %q) is not sess_ and 22 base64url characters", cl.SID, tok.SessionID)
		}
		if !tokenIDPattern.MatchString(cl.JTI) {
			t.Fatalf("jti %q is not 22 base64url characters", cl.JTI)
		}
		if b, err := base64.RawURLEncoding.DecodeString(cl.JTI); err != nil || len(b) != 16 {
			t.Fatalf("jti %q does not decode to 16 bytes", cl.JTI)
		}
	}
}

func TestMintWithoutKey(t *testing.T) {
	c := Claims{ProjectID: "p_1", UserID: "u_1", TTL: time.Minute}
	for _, m := range []*Minter{{Issuer: "behest"}, {Issuer: "behest", Keys: &Keyring{}}} {
		if _, err := m.Mint(c); !errors.Is(err, ErrNoKey) {
			t.Errorf("Mint without a key: err = %v, want ErrNoKey", err)
		}
	}
}

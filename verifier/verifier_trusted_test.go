package verifier_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/behest/caddy-behest/verifier"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

const clerkIssuer = "https://clerk.example.test"

// trustedEnv is a verifier trusting one fake identity provider (Clerk-like, RS256).
type trustedEnv struct {
	clock *clock
	idp   *idp
	key   *signer // kid k1, served with alg RS256
	v     *verifier.Verifier
}

func clerkProject(idpURL string) verifier.Project {
	return verifier.Project{
		ID: "p_456", TenantID: "t_123", Tiers: []string{"1", "2", "pro"}, DefaultTier: "free",
		Trust: []verifier.Trust{{Issuer: clerkIssuer, JWKSURL: idpURL}},
	}
}

// newTrustedEnv makes the environment; edit may change the config before New.
func newTrustedEnv(t testing.TB, edit func(*verifier.Config)) *trustedEnv {
	t.Helper()
	e := &trustedEnv{clock: newClock(), key: newRSASigner(t, "k1", 0)}
	e.idp = newIDP(t, e.key.publicJWK(t, "RS256", "sig"))
	cfg := verifier.Config{Projects: []verifier.Project{clerkProject(e.idp.url())}, Now: e.clock.Now}
	if edit != nil {
		edit(&cfg)
	}
	e.v = newVerifier(t, cfg)
	return e
}

// clerkClaims are a Clerk JWT template's claims as of now: Clerk's own and the template's.
func clerkClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": clerkIssuer, "sub": "user_2abc", "azp": "https://app.example.test",
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Add(-5 * time.Second).Unix(),
		"jti": nextJTI(), "tid": "t_123", "pid": "p_456", "uid": "user_2abc", "tier": 1,
		"email": "ada@example.test",
	}
}

func (e *trustedEnv) claims() map[string]any { return clerkClaims(e.clock.Now()) }

func (e *trustedEnv) verify(t testing.TB, claims map[string]any) (*verifier.Identity, error) {
	t.Helper()
	return e.v.Verify(context.Background(), e.key.token(t, claims, nil))
}

func TestVerifyTrustedClerkIdentity(t *testing.T) {
	e := newTrustedEnv(t, nil)
	claims := e.claims()
	id, err := e.verify(t, claims)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if id.TenantID != "t_123" || id.ProjectID != "p_456" || id.UserID != "user_2abc" || id.Tier != "1" ||
		id.TierUnknown || id.Minted || id.Issuer != clerkIssuer || id.TokenID != claims["jti"] || id.SessionID != "" {
		t.Errorf("Identity = %+v", *id)
	}
	if !id.IssuedAt.Equal(start) || !id.ExpiresAt.Equal(start.Add(5*time.Minute)) {
		t.Errorf("IssuedAt %v ExpiresAt %v", id.IssuedAt, id.ExpiresAt)
	}
	if id.Claims["email"] != "ada@example.test" || id.Claims["tier"] != int64(1) || id.Claims["azp"] != "https://app.example.test" {
		t.Errorf("Claims = %#v", id.Claims)
	}
}

func TestVerifyTrustedTier(t *testing.T) {
	e := newTrustedEnv(t, nil)
	for _, tc := range []struct {
		name    string
		tier    any // nil: claim absent
		want    string
		unknown bool
	}{
		{"number 1", 1, "1", false},
		{"string 1", "1", "1", false},
		{"number 1.0", json.RawMessage("1.0"), "1", false},
		{"number 2", 2, "2", false},
		{"padded string", " 2 ", "2", false},
		{"name", "pro", "pro", false},
		{"null (unset shortcode)", json.RawMessage("null"), "free", false},
		{"missing", nil, "free", false},
		{"empty string", "", "free", false},
		{"unknown name", "enterprise", "free", true},
		{"unknown number", 7, "free", true},
		{"bool", true, "free", true},
		{"object", map[string]any{"plan": "pro"}, "free", true},
		{"the default tier by name", "free", "free", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claims := with(e.claims(), map[string]any{"tier": nil})
			if tc.tier != nil {
				claims["tier"] = tc.tier
			}
			id, err := e.verify(t, claims)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.Tier != tc.want || id.TierUnknown != tc.unknown {
				t.Errorf("Tier %q TierUnknown %v, want %q %v", id.Tier, id.TierUnknown, tc.want, tc.unknown)
			}
		})
	}
}

func TestVerifyTrustedClaimMapping(t *testing.T) {
	e := newTrustedEnv(t, func(c *verifier.Config) {
		c.Projects[0].Trust[0].Claims = map[string]string{
			"uid": "sub", "tier": "public_metadata.plan", "tid": "org.tenant", "sid": "sid",
		}
	})
	base := with(e.claims(), map[string]any{
		"uid": "template_uid", "sub": "user_sub", "tier": 2, "tid": "t_ignored",
		"public_metadata": map[string]any{"plan": "pro"}, "org": map[string]any{"tenant": "t_123"},
		"sid": "sess_clerk",
	})
	for _, tc := range []struct {
		name     string
		changes  map[string]any
		wantUID  string
		wantTier string
		wantErr  error
	}{
		{"mapped paths", nil, "user_sub", "pro", nil},
		{"nested tier number", map[string]any{"public_metadata": map[string]any{"plan": 1}}, "user_sub", "1", nil},
		{"nested tier absent", map[string]any{"public_metadata": map[string]any{}}, "user_sub", "free", nil},
		{"parent object absent", map[string]any{"public_metadata": nil}, "user_sub", "free", nil},
		{"parent not an object", map[string]any{"public_metadata": "pro"}, "user_sub", "free", nil},
		{"mapped tid mismatch", map[string]any{"org": map[string]any{"tenant": "t_other"}}, "", "", verifier.ErrPermission},
		{"mapped tid absent is allowed", map[string]any{"org": nil}, "user_sub", "pro", nil},
		{"mapped uid absent", map[string]any{"sub": nil}, "", "", verifier.ErrMissingClaim},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := e.verify(t, with(with(base, map[string]any{"jti": nextJTI()}), tc.changes))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Verify = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.UserID != tc.wantUID || id.Tier != tc.wantTier || id.SessionID != "sess_clerk" {
				t.Errorf("UserID %q Tier %q SessionID %q, want %q %q sess_clerk", id.UserID, id.Tier, id.SessionID, tc.wantUID, tc.wantTier)
			}
		})
	}
}

func TestVerifyTrustedUIDFallsBackToSub(t *testing.T) {
	e := newTrustedEnv(t, nil)
	for _, tc := range []struct {
		name    string
		changes map[string]any
		want    string
		wantErr error
	}{
		{"uid present", map[string]any{"uid": "u_template"}, "u_template", nil},
		{"uid absent", map[string]any{"uid": nil}, "user_2abc", nil},
		{"uid null", map[string]any{"uid": json.RawMessage("null")}, "user_2abc", nil},
		{"uid empty", map[string]any{"uid": ""}, "user_2abc", nil},
		{"uid numeric", map[string]any{"uid": 12345}, "12345", nil},
		{"uid and sub absent", map[string]any{"uid": nil, "sub": nil}, "", verifier.ErrMissingClaim},
		{"uid an object", map[string]any{"uid": map[string]any{"id": "x"}}, "", verifier.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := e.verify(t, with(e.claims(), tc.changes))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Verify = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.UserID != tc.want {
				t.Errorf("UserID %q, want %q", id.UserID, tc.want)
			}
		})
	}
}

// A trust that maps uid elsewhere does not fall back to sub: a template that forgot the user
// must not turn the IdP's subject into the user silently.
func TestVerifyTrustedMappedUIDDoesNotFallBack(t *testing.T) {
	e := newTrustedEnv(t, func(c *verifier.Config) {
		c.Projects[0].Trust[0].Claims = map[string]string{"uid": "metadata.user"}
	})
	id, err := e.verify(t, with(e.claims(), map[string]any{"metadata": map[string]any{"user": "u_meta"}}))
	if err != nil || id.UserID != "u_meta" {
		t.Fatalf("mapped uid present: %+v, %v; want u_meta", id, err)
	}
	if id, err := e.verify(t, e.claims()); !errors.Is(err, verifier.ErrMissingClaim) {
		t.Fatalf("mapped uid absent, sub present: %+v, %v; want ErrMissingClaim", id, err)
	}
}

func TestVerifyTrustedProjectSelection(t *testing.T) {
	idpKey := newRSASigner(t, "k1", 0)
	p := newIDP(t, idpKey.publicJWK(t, "RS256", "sig"))
	c := newClock()
	twoTrust := func(cfg *verifier.Config) {
		second := clerkProject(p.url())
		second.ID, second.TenantID = "p_789", "t_123"
		cfg.Projects = append(cfg.Projects, second)
	}
	oneTrust := func(cfg *verifier.Config) {
		cfg.Projects = append(cfg.Projects, verifier.Project{ID: "p_other", TenantID: "t_123", DefaultTier: "1",
			Trust: []verifier.Trust{{Issuer: "https://other-idp.example.test", JWKSURL: p.url()}}})
	}
	for _, tc := range []struct {
		name    string
		edit    func(*verifier.Config)
		changes map[string]any
		wantPID string
		wantErr error
	}{
		{"one project, pid given", oneTrust, nil, "p_456", nil},
		{"one project trusts it, no pid", oneTrust, map[string]any{"pid": nil}, "p_456", nil},
		{"pid of a project not trusting the issuer", oneTrust, map[string]any{"pid": "p_other"}, "", verifier.ErrPermission},
		{"pid of no project", oneTrust, map[string]any{"pid": "p_nope"}, "", verifier.ErrPermission},
		{"two projects trust it, pid picks one", twoTrust, map[string]any{"pid": "p_789"}, "p_789", nil},
		{"two projects trust it, pid picks the other", twoTrust, nil, "p_456", nil},
		{"two projects trust it, no pid", twoTrust, map[string]any{"pid": nil}, "", verifier.ErrPermission},
		{"tid mismatch", oneTrust, map[string]any{"tid": "t_other"}, "", verifier.ErrPermission},
		{"tid absent is allowed", oneTrust, map[string]any{"tid": nil}, "p_456", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := verifier.Config{Projects: []verifier.Project{clerkProject(p.url())}, Now: c.Now}
			tc.edit(&cfg)
			v := newVerifier(t, cfg)
			id, err := v.Verify(context.Background(), idpKey.token(t, with(clerkClaims(c.Now()), tc.changes), nil))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Verify = %+v, %v; want %v", id, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.ProjectID != tc.wantPID {
				t.Errorf("ProjectID %q, want %q", id.ProjectID, tc.wantPID)
			}
		})
	}
}

// Every way a token must be refused, with the sentinel error the code gives.
func TestVerifyTrustedRefused(t *testing.T) {
	e := newTrustedEnv(t, func(c *verifier.Config) {
		tr := &c.Projects[0].Trust[0]
		tr.AuthorizedParties = []string{"https://app.example.test"}
	})
	now := e.clock.Now()
	ec := newECSigner(t, "ec1")
	stranger := newRSASigner(t, "k1", 1) // same kid as the issuer's key, another key

	pubDER, err := x509.MarshalPKIXPublicKey(rsaKey(t, 0).Public())
	must(t, err)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	jwkJSON, err := json.Marshal(e.key.publicJWK(t, "RS256", "sig"))
	must(t, err)
	good := e.key.token(t, e.claims(), nil)
	hdrPart, rest, _ := cut(good)
	payloadPart, sigPart, _ := cut(rest)
	flipped := []byte(sigPart)
	// Another letter of the base64url alphabet: the same spelling rules, another signature.
	if flipped[10] == 'A' {
		flipped[10] = 'B'
	} else {
		flipped[10] = 'A'
	}

	for _, tc := range []struct {
		name  string
		token string
		want  error
	}{
		{"not a JWS", "not-a-token", verifier.ErrMalformed},
		{"empty", "", verifier.ErrMalformed},
		{"over 32 KiB", e.key.token(t, with(e.claims(), map[string]any{"pad": strings.Repeat("x", 32<<10)}), nil), verifier.ErrMalformed},
		{"two parts", hdrPart + "." + payloadPart, verifier.ErrMalformed},
		{"four parts", good + ".x", verifier.ErrMalformed},
		{"header not base64", "!!!." + payloadPart + "." + sigPart, verifier.ErrMalformed},
		{"payload not JSON", hdrPart + ".bm90IGpzb24." + sigPart, verifier.ErrMalformed},
		{"no kid", e.key.token(t, e.claims(), map[string]any{"kid": nil}), verifier.ErrMissingClaim},
		{"empty kid", e.key.token(t, e.claims(), map[string]any{"kid": ""}), verifier.ErrMissingClaim},
		{"no iss", e.key.token(t, with(e.claims(), map[string]any{"iss": nil}), nil), verifier.ErrMissingClaim},
		{"alg none", e.key.token(t, e.claims(), map[string]any{"alg": "none"}), verifier.ErrAlgorithm},
		{"alg none, good signature kept", b64json(t, map[string]any{"alg": "none", "kid": "k1"}) + "." + payloadPart + ".", verifier.ErrAlgorithm},
		{"HS256 keyed with the RSA public key PEM", hmacToken(t, "k1", pubPEM, e.claims()), verifier.ErrAlgorithm},
		{"HS256 keyed with the RSA public key DER", hmacToken(t, "k1", pubDER, e.claims()), verifier.ErrAlgorithm},
		{"HS256 keyed with the JWK JSON", hmacToken(t, "k1", jwkJSON, e.claims()), verifier.ErrAlgorithm},
		{"kid of a key the issuer does not serve", ec.token(t, e.claims(), nil), verifier.ErrUnknownKey},
		{"RS384 not in the default allowlist", swapHeader(t, good, map[string]any{"alg": "RS384", "kid": "k1"}), verifier.ErrAlgorithm},
		{"crit header", e.key.token(t, e.claims(), map[string]any{"crit": []string{"exp"}}), verifier.ErrMalformed},
		{"b64 header", e.key.token(t, e.claims(), map[string]any{"b64": false}), verifier.ErrMalformed},
		{"expired", e.key.token(t, with(e.claims(), map[string]any{"exp": now.Add(-31 * time.Second).Unix()}), nil), verifier.ErrExpired},
		{"no exp", e.key.token(t, with(e.claims(), map[string]any{"exp": nil}), nil), verifier.ErrMissingClaim},
		{"exp a string", e.key.token(t, with(e.claims(), map[string]any{"exp": "tomorrow"}), nil), verifier.ErrMalformed},
		{"nbf in the future", e.key.token(t, with(e.claims(), map[string]any{"nbf": now.Add(31 * time.Second).Unix()}), nil), verifier.ErrNotYetValid},
		{"iat in the future", e.key.token(t, with(e.claims(), map[string]any{"iat": now.Add(31 * time.Second).Unix()}), nil), verifier.ErrNotYetValid},
		{"bad signature", hdrPart + "." + payloadPart + "." + string(flipped), verifier.ErrSignature},
		{"payload swapped under a good signature", hdrPart + "." + b64json(t, with(e.claims(), map[string]any{"uid": "admin"})) + "." + sigPart, verifier.ErrSignature},
		{"signed by another key under the issuer's kid", stranger.token(t, e.claims(), nil), verifier.ErrSignature},
		{"unknown issuer", e.key.token(t, with(e.claims(), map[string]any{"iss": "https://evil.example.test"}), nil), verifier.ErrUnknownIssuer},
		{"issuer differs by a trailing slash", e.key.token(t, with(e.claims(), map[string]any{"iss": clerkIssuer + "/"}), nil), verifier.ErrUnknownIssuer},
		{"tid mismatch", e.key.token(t, with(e.claims(), map[string]any{"tid": "t_other"}), nil), verifier.ErrPermission},
		{"azp not allowed", e.key.token(t, with(e.claims(), map[string]any{"azp": "https://evil.example.test"}), nil), verifier.ErrPermission},
		{"unknown kid", e.key.token(t, e.claims(), map[string]any{"kid": "k_unknown"}), verifier.ErrUnknownKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := e.v.Verify(context.Background(), tc.token)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %+v, %v; want %v", id, err, tc.want)
			}
		})
	}

	// The edges of the same rules, accepted.
	for _, tc := range []struct {
		name    string
		changes map[string]any
	}{
		{"exp just inside the leeway", map[string]any{"exp": now.Add(-29 * time.Second).Unix()}},
		{"nbf just inside the leeway", map[string]any{"nbf": now.Add(29 * time.Second).Unix()}},
		{"iat just inside the leeway", map[string]any{"iat": now.Add(29 * time.Second).Unix()}},
		{"no nbf, no iat", map[string]any{"nbf": nil, "iat": nil}},
		{"azp allowed", map[string]any{"azp": "https://app.example.test"}},
		{"no azp", map[string]any{"azp": nil}},
		{"fractional exp", map[string]any{"exp": json.RawMessage("1795780800.5")}},
	} {
		t.Run("accepted/"+tc.name, func(t *testing.T) {
			if _, err := e.verify(t, with(e.claims(), tc.changes)); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func cut(s string) (before, after string, ok bool) {
	if i := indexByte(s, '.'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

func TestVerifyTrustedAlgorithms(t *testing.T) {
	rsa := newRSASigner(t, "rsa1", 0)
	ec := newECSigner(t, "ec1")
	ed := newEdSigner(t, "ed1")
	noAlg := newRSASigner(t, "rsa-noalg", 1)
	p := newIDP(t,
		rsa.publicJWK(t, "RS256", "sig"), ec.publicJWK(t, "ES256", "sig"), ed.publicJWK(t, "EdDSA", ""),
		noAlg.publicJWK(t, "", "sig"))
	c := newClock()
	mk := func(t *testing.T, algs []string) *verifier.Verifier {
		pr := clerkProject(p.url())
		pr.Trust[0].Algorithms = algs
		return newVerifier(t, verifier.Config{Projects: []verifier.Project{pr}, Now: c.Now})
	}
	for _, tc := range []struct {
		name  string
		algs  []string
		token func(t *testing.T) string
		want  error
	}{
		{"RS256 by default", nil, func(t *testing.T) string { return rsa.token(t, clerkClaims(c.Now()), nil) }, nil},
		{"ES256 by default", nil, func(t *testing.T) string { return ec.token(t, clerkClaims(c.Now()), nil) }, nil},
		{"EdDSA by default", nil, func(t *testing.T) string { return ed.token(t, clerkClaims(c.Now()), nil) }, nil},
		{"ES256 not in an RS256-only allowlist", []string{"RS256"},
			func(t *testing.T) string { return ec.token(t, clerkClaims(c.Now()), nil) }, verifier.ErrAlgorithm},
		{"PS256 allowed, but the JWK says RS256", []string{"RS256", "PS256"},
			func(t *testing.T) string { return rsa.token(t, clerkClaims(c.Now()), map[string]any{"alg": "PS256"}) }, verifier.ErrAlgorithm},
		{"PS256 allowed, JWK without alg", []string{"RS256", "PS256"},
			func(t *testing.T) string { return noAlg.token(t, clerkClaims(c.Now()), map[string]any{"alg": "PS256"}) }, nil},
		{"RS256 header on an EC key", []string{"RS256", "ES256"},
			func(t *testing.T) string {
				return swapHeader(t, ec.token(t, clerkClaims(c.Now()), nil), map[string]any{"alg": "RS256", "kid": "ec1"})
			}, verifier.ErrAlgorithm},
		{"ES256 header on an RSA key", []string{"RS256", "ES256"},
			func(t *testing.T) string {
				return swapHeader(t, rsa.token(t, clerkClaims(c.Now()), nil), map[string]any{"alg": "ES256", "kid": "rsa1"})
			}, verifier.ErrAlgorithm},
		{"EdDSA header on an RSA key", []string{"RS256", "EdDSA"},
			func(t *testing.T) string {
				return swapHeader(t, rsa.token(t, clerkClaims(c.Now()), nil), map[string]any{"alg": "EdDSA", "kid": "rsa1"})
			}, verifier.ErrAlgorithm},
		{"HS256 never", []string{"RS256"},
			func(t *testing.T) string { return hmacToken(t, "rsa1", []byte("secret"), clerkClaims(c.Now())) }, verifier.ErrAlgorithm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := mk(t, tc.algs)
			_, err := v.Verify(context.Background(), tc.token(t))
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}

	// A trust may not allow what no public key can safely do.
	for _, alg := range []string{"none", "HS256", "HS512", "rs256", ""} {
		pr := clerkProject(p.url())
		pr.Trust[0].Algorithms = []string{alg}
		if v, err := verifier.New(verifier.Config{Projects: []verifier.Project{pr}}); err == nil {
			v.Close()
			t.Errorf("New accepted algorithm %q", alg)
		}
	}
}

func TestVerifyTrustedLeewayClamped(t *testing.T) {
	e := newTrustedEnv(t, func(c *verifier.Config) { c.Leeway = 10 * time.Minute })
	now := e.clock.Now()
	if _, err := e.verify(t, with(e.claims(), map[string]any{"exp": now.Add(-2 * time.Minute).Unix()})); !errors.Is(err, verifier.ErrExpired) {
		t.Errorf("expired 2 min ago with Leeway 10m: %v, want ErrExpired (leeway is at most 60s)", err)
	}
	if _, err := e.verify(t, with(e.claims(), map[string]any{"nbf": now.Add(2 * time.Minute).Unix()})); !errors.Is(err, verifier.ErrNotYetValid) {
		t.Errorf("nbf 2 min ahead with Leeway 10m: %v, want ErrNotYetValid", err)
	}
	if _, err := e.verify(t, with(e.claims(), map[string]any{"exp": now.Add(-59 * time.Second).Unix()})); err != nil {
		t.Errorf("expired 59s ago with Leeway 10m (clamped to 60s): %v", err)
	}
	if _, err := e.verify(t, with(e.claims(), map[string]any{"exp": now.Add(-60 * time.Second).Unix()})); !errors.Is(err, verifier.ErrExpired) {
		t.Errorf("expired 60s ago with Leeway 10m (clamped to 60s): %v, want ErrExpired", err)
	}
}

func TestVerifyTrustedAudience(t *testing.T) {
	e := newTrustedEnv(t, func(c *verifier.Config) { c.Projects[0].Trust[0].Audience = "behest-gateway" })
	for _, tc := range []struct {
		name string
		aud  any
		want error
	}{
		{"string", "behest-gateway", nil},
		{"in a list", []string{"other", "behest-gateway"}, nil},
		{"other string", "other", verifier.ErrAudience},
		{"list without it", []string{"a", "b"}, verifier.ErrAudience},
		{"absent", nil, verifier.ErrAudience},
		{"a number", 5, verifier.ErrAudience},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.verify(t, with(e.claims(), map[string]any{"aud": tc.aud}))
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}

// Keys come only from the configured JWKS: a token naming its own key (jwk, jku, x5u, x5c) is
// refused, and the URLs it names are never fetched.
func TestVerifyTrustedIgnoresKeysInToken(t *testing.T) {
	e := newTrustedEnv(t, nil)
	var attackerHits atomic.Int32
	attacker := newRSASigner(t, "attacker", 2)
	attackerJWK := attacker.publicJWK(t, "RS256", "sig")
	attackerJWKS, err := json.Marshal(map[string][]jwk.Key{"keys": {attackerJWK}})
	must(t, err)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		_, _ = w.Write(attackerJWKS)
	}))
	t.Cleanup(evil.Close)

	for _, tc := range []struct {
		name string
		kid  string
		want error
	}{
		{"attacker's kid", "attacker", verifier.ErrUnknownKey},
		{"issuer's kid", "k1", verifier.ErrSignature},
	} {
		for _, hdrName := range []string{"jwk", "jku", "x5u", "all"} {
			t.Run(tc.name+"/"+hdrName, func(t *testing.T) {
				hdr := map[string]any{"kid": tc.kid}
				if hdrName == "jwk" || hdrName == "all" {
					hdr["jwk"] = attackerJWK
				}
				if hdrName == "jku" || hdrName == "all" {
					hdr["jku"] = evil.URL + "/jwks.json"
				}
				if hdrName == "x5u" || hdrName == "all" {
					hdr["x5u"] = evil.URL + "/cert.pem"
				}
				tok := attacker.token(t, e.claims(), hdr)
				if _, err := e.v.Verify(context.Background(), tok); !errors.Is(err, tc.want) {
					t.Fatalf("Verify: %v, want %v", err, tc.want)
				}
			})
		}
	}
	// The unknown kid may make the verifier refetch the issuer's JWKS, never the attacker's.
	if n := attackerHits.Load(); n != 0 {
		t.Errorf("the attacker's server got %d requests, want 0", n)
	}
}

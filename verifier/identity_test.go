package verifier

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// hmacToken signs claims with secret under alg (HS256, HS384, HS512), with an optional kid.
func hmacToken(t *testing.T, alg string, secret []byte, claims map[string]any, kid string) string {
	hdr := map[string]any{"alg": alg, "typ": "JWT"}
	if kid != "" {
		hdr["kid"] = kid
	}
	input := b64json(t, hdr) + "." + b64json(t, claims)
	h := map[string]func() hash.Hash{"HS256": sha256.New, "HS384": sha512.New384, "HS512": sha512.New}[alg]
	mac := hmac.New(h, secret)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

const supabaseIssuer = "https://abcdefghij.supabase.co/auth/v1"

var supabaseSecret = []byte("super-secret-jwt-token-with-at-least-32-characters-long")

// TestHMACOnlyWithSecret: an HMAC issuer's tokens verify with its secret and only its secret;
// HMAC is never accepted from a JWKS issuer, nor an asymmetric token from an HMAC issuer.
func TestHMACOnlyWithSecret(t *testing.T) {
	clock := newClock()
	rsaKey := newRSA(t, "rsa")
	srv := newJWKSServer(t, rsaKey.jwk(t, true))
	v := newTestVerifier(t, Config{Projects: []Project{{ID: project, TenantID: tenant, Tiers: []string{"1"}, DefaultTier: "1",
		Trust: []Trust{
			{Issuer: supabaseIssuer, Secret: supabaseSecret, Claims: map[string]string{"uid": "sub"}},
			{Issuer: clerkIssuer, JWKSURL: srv.URL},
		}}}, Now: clock.Now})
	now := clock.Now()
	supa := map[string]any{"iss": supabaseIssuer, "sub": "8f2b0c8e-uuid", "aud": "authenticated", "role": "authenticated",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "app_metadata": map[string]any{"provider": "email"}}
	for _, tc := range []struct {
		name  string
		token string
		want  error
	}{
		{"HS256 with the secret, no kid", hmacToken(t, "HS256", supabaseSecret, supa, ""), nil},
		{"HS384 with the secret and a kid", hmacToken(t, "HS384", supabaseSecret, supa, "any"), nil},
		{"HS512, the secret too short for it", hmacToken(t, "HS512", supabaseSecret, supa, ""), ErrAlgorithm},
		{"another secret", hmacToken(t, "HS256", []byte("another-secret-of-at-least-32-bytes!!"), supa, ""), ErrSignature},
		{"RS256 on the HMAC issuer", rsaKey.sign(t, with(supa, nil), nil), ErrAlgorithm},
		{"HS256 on the JWKS issuer, keyed with its public key", rsaKey.sign(t, clerkClaims(now), map[string]any{"alg": "HS256"}), ErrAlgorithm},
		{"HS256 on the JWKS issuer, with the other issuer's secret", hmacToken(t, "HS256", supabaseSecret, clerkClaims(now), "rsa"), ErrAlgorithm},
		{"alg none on the HMAC issuer", hmacToken(t, "HS256", supabaseSecret, supa, "")[:0] + rsaKey.sign(t, supa, map[string]any{"alg": "none"}), ErrAlgorithm},
		{"expired", hmacToken(t, "HS256", supabaseSecret, with(supa, map[string]any{"exp": now.Add(-time.Hour).Unix()}), ""), ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), tc.token)
			if tc.want == nil {
				if err != nil || id.UserID != "8f2b0c8e-uuid" {
					t.Fatalf("Verify = %+v, %v", id, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
	if n := srv.hits.Load(); n > 1 {
		t.Errorf("the JWKS was fetched %d times", n)
	}

	// Config: HMAC algorithms only with a secret, long enough, and never beside a jwks_url.
	for _, tc := range []struct {
		trust Trust
		want  string
	}{
		{Trust{Issuer: "https://i.example", Algorithms: []string{"HS256"}}, "needs the issuer's secret"},
		{Trust{Issuer: "https://i.example", Secret: []byte("short")}, "at least 32"},
		{Trust{Issuer: "https://i.example", Secret: supabaseSecret, Algorithms: []string{"RS256"}}, "only HS256, HS384 and HS512"},
		{Trust{Issuer: "https://i.example", Secret: supabaseSecret, Algorithms: []string{"HS512"}}, "at least 64"},
		{Trust{Issuer: "https://i.example", Secret: supabaseSecret, JWKSURL: "https://i.example/jwks"}, "exclude each other"},
	} {
		_, err := New(Config{Issuer: testIssuer, Projects: []Project{{ID: project, Trust: []Trust{tc.trust}}}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want it to say %q", tc.trust, err, tc.want)
		}
	}
}

// TestClaimPathsOrgAndTierMap: JSON Pointer paths (namespaced claims with dots and slashes),
// dot paths into arrays, the org claim and its default, and tier_map over strings and lists.
func TestClaimPathsOrgAndTierMap(t *testing.T) {
	clock := newClock()
	key := newRSA(t, "k1")
	srv := newJWKSServer(t, key.jwk(t, true))
	const auth0 = "https://tenant.us.auth0.com/"
	v := newTestVerifier(t, Config{Projects: []Project{{ID: project, TenantID: tenant, Tiers: []string{"free", "pro", "team"}, DefaultTier: "free",
		Trust: []Trust{
			{Issuer: auth0, JWKSURL: srv.URL, Audience: "https://api.behest.example", Claims: map[string]string{
				"uid": "sub", "tier": "/https:~1~1app.example~1plan", "org": "/https:~1~1app.example~1org~0id"}},
			{Issuer: "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc", JWKSURL: srv.URL, Claims: map[string]string{
				"uid": "sub", "tier": "cognito:groups"},
				TierMap: []TierMapping{{"premium", "pro"}, {"teams", "team"}, {"users", "free"}}},
			{Issuer: "https://api.workos.com", JWKSURL: srv.URL, Claims: map[string]string{"uid": "sub", "org": "org_id", "tier": "role"},
				TierMap: []TierMapping{{"admin", "team"}, {"member", "pro"}}},
			{Issuer: "https://securetoken.google.com/my-app", JWKSURL: srv.URL, Claims: map[string]string{
				"uid": "user_id", "tier": "firebase.sign_in_provider"}, TierMap: []TierMapping{{"anonymous", "free"}, {"password", "pro"}}},
			{Issuer: "https://arrays.example", JWKSURL: srv.URL, Claims: map[string]string{"uid": "sub", "tier": "plans.1"}},
			{Issuer: supabaseIssuer, JWKSURL: srv.URL, Claims: map[string]string{"uid": "sub", "tier": "is_anonymous"},
				TierMap: []TierMapping{{"true", "free"}, {"false", "pro"}}},
		}}}, Now: clock.Now})
	now := clock.Now()
	base := func(iss string, claims map[string]any) map[string]any {
		c := map[string]any{"iss": iss, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "sub": "user_1"}
		for k, v := range claims {
			c[k] = v
		}
		return c
	}
	for _, tc := range []struct {
		name            string
		claims          map[string]any
		user, org, tier string
		unknown         bool
		wantErr         error
	}{
		{"Auth0 namespaced claims, aud a list", base(auth0, map[string]any{"aud": []string{"https://api.behest.example", "https://tenant.us.auth0.com/userinfo"},
			"https://app.example/plan": "pro", "https://app.example/org~id": "org_acme"}), "user_1", "org_acme", "pro", false, nil},
		{"Auth0 without the audience", base(auth0, map[string]any{"aud": []string{"https://other"}}), "", "", "", false, ErrAudience},
		{"Cognito groups, the first tier_map line the list holds", base("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc",
			map[string]any{"cognito:groups": []string{"users", "teams"}}), "user_1", "", "team", false, nil},
		{"Cognito, no group mapped", base("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc",
			map[string]any{"cognito:groups": []string{"other"}}), "user_1", "", "free", true, nil},
		{"Cognito, no groups", base("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc", nil), "user_1", "", "free", false, nil},
		{"WorkOS org_id and role", base("https://api.workos.com", map[string]any{"org_id": "org_01HXYZ", "role": "member"}), "user_1", "org_01HXYZ", "pro", false, nil},
		{"WorkOS org with CR LF", base("https://api.workos.com", map[string]any{"org_id": "org\r\nx"}), "", "", "", false, ErrMalformed},
		{"Firebase anonymous sign-in", base("https://securetoken.google.com/my-app", map[string]any{"user_id": "fb_uid",
			"firebase": map[string]any{"sign_in_provider": "anonymous"}}), "fb_uid", "", "free", false, nil},
		{"Firebase password sign-in", base("https://securetoken.google.com/my-app", map[string]any{"user_id": "fb_uid",
			"firebase": map[string]any{"sign_in_provider": "password"}}), "fb_uid", "", "pro", false, nil},
		{"a dot path into an array", base("https://arrays.example", map[string]any{"plans": []string{"free", "team"}}), "user_1", "", "team", false, nil},
		{"the default org: the uid before ':'", base("https://arrays.example", map[string]any{"sub": "org_9:user_2"}), "org_9:user_2", "org_9", "free", false, nil},
		{"Supabase anonymous: a boolean mapped", base(supabaseIssuer, map[string]any{"is_anonymous": true}), "user_1", "", "free", false, nil},
		{"Supabase signed in", base(supabaseIssuer, map[string]any{"is_anonymous": false}), "user_1", "", "pro", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), key.sign(t, tc.claims, nil))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Verify: %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || id.UserID != tc.user || id.OrgID != tc.org || id.Tier != tc.tier || id.TierUnknown != tc.unknown {
				t.Fatalf("Verify = %+v, %v; want user %q org %q tier %q unknown %v", id, err, tc.user, tc.org, tc.tier, tc.unknown)
			}
		})
	}
	for _, bad := range []struct{ path, want string }{{"/a~2b", "~0"}, {"a..b", "not a claim path"}, {"", "empty"}} {
		_, err := New(Config{Issuer: testIssuer, Projects: []Project{{ID: project, Trust: []Trust{{Issuer: auth0, JWKSURL: srv.URL,
			Claims: map[string]string{"tier": bad.path}}}}}})
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("claim path %q: err = %v, want %q", bad.path, err, bad.want)
		}
	}
	if _, err := New(Config{Issuer: testIssuer, Projects: []Project{{ID: project, Tiers: []string{"1"}, Trust: []Trust{{Issuer: auth0,
		JWKSURL: srv.URL, TierMap: []TierMapping{{"pro", "gold"}}}}}}}); err == nil || !strings.Contains(err.Error(), `"gold"`) {
		t.Errorf("tier_map to an unknown tier: %v", err)
	}
}

// idp is an identity provider serving a discovery document and its JWKS at paths of its own,
// counting each.
type idp struct {
	*httptest.Server
	mu        sync.Mutex
	doc       map[string]any // nil: 404
	keys      []jwk.Key
	docHits   atomic.Int64
	jwksHits  atomic.Int64
	otherHits atomic.Int64
}

func newIDP(t *testing.T, keys ...jwk.Key) *idp {
	p := &idp{keys: keys}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			p.docHits.Add(1)
			if p.doc == nil {
				http.NotFound(w, r)
				return
			}
			_ = json.NewEncoder(w).Encode(p.doc)
		case "/oauth/v2/keys", "/.well-known/jwks.json":
			p.jwksHits.Add(1)
			_ = json.NewEncoder(w).Encode(map[string]any{"keys": p.keys})
		default:
			p.otherHits.Add(1)
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *idp) setDoc(doc map[string]any) {
	p.mu.Lock()
	p.doc = doc
	p.mu.Unlock()
}

// TestDiscovery: without jwks_url the keys are at the discovery document's jwks_uri, when the
// document names the trusted issuer exactly; else at the default path. The document is cached
// like the keys and refetched by the same rules.
func TestDiscovery(t *testing.T) {
	key := newRSA(t, "k1")
	claims := func(iss string, now time.Time) map[string]any {
		return map[string]any{"iss": iss, "sub": "u1", "exp": now.Add(time.Hour).Unix()}
	}
	verifierFor := func(t *testing.T, issuer string, clock *fakeClock) *Verifier {
		return newTestVerifier(t, Config{Projects: []Project{{ID: project, TenantID: tenant, Trust: []Trust{{Issuer: issuer}}}}, Now: clock.Now})
	}

	t.Run("jwks_uri on a path of its own", func(t *testing.T) {
		p := newIDP(t, key.jwk(t, true))
		p.setDoc(map[string]any{"issuer": p.URL, "jwks_uri": p.URL + "/oauth/v2/keys"})
		clock := newClock()
		v := verifierFor(t, p.URL, clock)
		if _, err := v.Verify(context.Background(), key.sign(t, claims(p.URL, clock.Now()), nil)); err != nil {
			t.Fatal(err)
		}
		if p.docHits.Load() != 1 || p.jwksHits.Load() != 1 {
			t.Fatalf("document %d, keys %d fetches; want 1 each", p.docHits.Load(), p.jwksHits.Load())
		}
		// Cached like the keys: within the TTL nothing is fetched, past it both are.
		clock.Advance(4 * time.Minute)
		if _, err := v.Verify(context.Background(), key.sign(t, with(claims(p.URL, clock.Now()), map[string]any{"jti": "2"}), nil)); err != nil {
			t.Fatal(err)
		}
		if p.docHits.Load() != 1 {
			t.Fatalf("the document was fetched again within the TTL")
		}
		clock.Advance(2 * time.Minute)
		if _, err := v.Verify(context.Background(), key.sign(t, with(claims(p.URL, clock.Now()), map[string]any{"jti": "3"}), nil)); err != nil {
			t.Fatal(err)
		}
		if p.docHits.Load() != 2 || p.jwksHits.Load() != 2 {
			t.Fatalf("past the TTL: document %d, keys %d fetches; want 2 each", p.docHits.Load(), p.jwksHits.Load())
		}
		// An unknown kid refetches both, once per refetch interval.
		stranger := newRSA(t, "k2")
		for range 3 {
			_, _ = v.Verify(context.Background(), stranger.sign(t, claims(p.URL, clock.Now()), nil))
		}
		if p.docHits.Load() != 3 || p.jwksHits.Load() != 3 {
			t.Fatalf("unknown kids: document %d, keys %d fetches; want 3 each", p.docHits.Load(), p.jwksHits.Load())
		}
	})

	t.Run("a document naming another issuer is not used", func(t *testing.T) {
		p := newIDP(t, key.jwk(t, true))
		evil := newIDP(t, newRSA(t, "evil").jwk(t, true))
		p.setDoc(map[string]any{"issuer": "https://evil.example", "jwks_uri": evil.URL + "/oauth/v2/keys"})
		clock := newClock()
		v := verifierFor(t, p.URL, clock)
		if _, err := v.Verify(context.Background(), key.sign(t, claims(p.URL, clock.Now()), nil)); err != nil {
			t.Fatalf("keys at the default path: %v", err)
		}
		if evil.jwksHits.Load() != 0 {
			t.Fatal("the document's jwks_uri of another issuer was fetched")
		}
	})

	t.Run("a trailing slash is part of the issuer", func(t *testing.T) {
		p := newIDP(t, key.jwk(t, true))
		p.setDoc(map[string]any{"issuer": p.URL, "jwks_uri": p.URL + "/oauth/v2/keys"})
		clock := newClock()
		v := verifierFor(t, p.URL+"/", clock) // the trust says ".../", the document "..."
		if _, err := v.Verify(context.Background(), key.sign(t, claims(p.URL+"/", clock.Now()), nil)); err != nil {
			t.Fatalf("keys at the default path: %v", err)
		}
		if p.jwksHits.Load() != 1 || p.docHits.Load() != 1 {
			t.Fatalf("document %d keys %d", p.docHits.Load(), p.jwksHits.Load())
		}
	})

	t.Run("without a document, the default path", func(t *testing.T) {
		p := newIDP(t, key.jwk(t, true))
		clock := newClock()
		v := verifierFor(t, p.URL, clock)
		if _, err := v.Verify(context.Background(), key.sign(t, claims(p.URL, clock.Now()), nil)); err != nil {
			t.Fatal(err)
		}
		if p.docHits.Load() != 1 || p.jwksHits.Load() != 1 || p.otherHits.Load() != 0 {
			t.Fatalf("document %d, keys %d, other %d fetches", p.docHits.Load(), p.jwksHits.Load(), p.otherHits.Load())
		}
	})
}

// TestAttestation: a valid attestation token verifies; one that is missing, of another
// audience or issuer, expired, or signed by a key the service does not serve does not.
func TestAttestation(t *testing.T) {
	appCheck := newRSA(t, "appcheck-1")
	srv := newJWKSServer(t, appCheck.jwk(t, true))
	clock := newClock()
	const iss = "https://firebaseappcheck.googleapis.com/123456789"
	v := newTestVerifier(t, Config{Projects: []Project{{ID: project, TenantID: tenant,
		Attest: &Attest{Issuer: iss, JWKSURL: srv.URL, Audience: "projects/123456789"}}}, Now: clock.Now})
	now := clock.Now()
	good := map[string]any{"iss": iss, "sub": "1:123456789:web:abc", "aud": []string{"projects/123456789", "projects/my-app"},
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "jti": "attest-1"}
	other := newRSA(t, "appcheck-1")
	other.priv = mustRSA(t)
	for _, tc := range []struct {
		name  string
		token string
		ok    bool
	}{
		{"valid", appCheck.sign(t, good, nil), true},
		{"missing", "", false},
		{"another audience", appCheck.sign(t, with(good, map[string]any{"aud": []string{"projects/999"}}), nil), false},
		{"another issuer", appCheck.sign(t, with(good, map[string]any{"iss": "https://firebaseappcheck.googleapis.com/999"}), nil), false},
		{"expired", appCheck.sign(t, with(good, map[string]any{"exp": now.Add(-time.Hour).Unix()}), nil), false},
		{"no exp", appCheck.sign(t, with(good, map[string]any{"exp": nil}), nil), false},
		{"a foreign key under the service's kid", other.sign(t, good, nil), false},
		{"no kid", appCheck.sign(t, good, map[string]any{"kid": nil}), false},
		{"padded", appCheck.sign(t, good, nil) + "=", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := v.VerifyAttestation(context.Background(), project, tc.token)
			if tc.ok {
				if err != nil || a.ID != "attest-1" || a.Subject != "1:123456789:web:abc" || !a.ExpiresAt.Equal(time.Unix(now.Add(time.Hour).Unix(), 0)) {
					t.Fatalf("VerifyAttestation = %+v, %v", a, err)
				}
				return
			}
			if !errors.Is(err, ErrAttestation) {
				t.Fatalf("VerifyAttestation: %v, want ErrAttestation", err)
			}
		})
	}
	if _, err := New(Config{Issuer: testIssuer, Projects: []Project{{ID: project, Attest: &Attest{Issuer: iss, JWKSURL: srv.URL}}}}); err == nil ||
		!strings.Contains(err.Error(), "audience is required") {
		t.Errorf("an attestation without audience: %v", err)
	}
}

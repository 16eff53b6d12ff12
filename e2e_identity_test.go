package behest_test

// Identity beyond Clerk: tokens in each identity provider's documented shape, made here with
// jwx, verified through a real Caddy; and device attestation.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// idpHost serves several identity providers on one server, each under a path of its own: its
// discovery document (naming its issuer and a JWKS at the path the provider uses), and its
// JWKS. Fake only in that it is local.
type idpHost struct {
	*httptest.Server
	mu   sync.Mutex
	docs map[string]map[string]string // discovery path -> document
	sets map[string]jwk.Set           // JWKS path -> keys
}

func newIDPHost(t *testing.T) *idpHost {
	h := &idpHost{docs: map[string]map[string]string{}, sets: map[string]jwk.Set{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		defer h.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if doc, ok := h.docs[r.URL.Path]; ok {
			_ = json.NewEncoder(w).Encode(doc)
			return
		}
		if set, ok := h.sets[r.URL.Path]; ok {
			_ = json.NewEncoder(w).Encode(set)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(h.Close)
	return h
}

// idpKey is a signing key of one provider, with its kid and algorithm.
type idpKey struct {
	alg jwa.SignatureAlgorithm
	kid string
	key any // private
}

// provider adds a provider whose issuer is at issuerPath (a discovery document there, unless
// jwksPath is served without one) with its keys at jwksPath, and returns its issuer URL.
func (h *idpHost) provider(t *testing.T, issuerPath, jwksPath string, discovery bool, keys ...idpKey) string {
	issuer := h.URL + issuerPath
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := jwk.PublicKeyOf(k.key)
		if err != nil {
			t.Fatal(err)
		}
		_ = pub.Set(jwk.KeyIDKey, k.kid)
		_ = pub.Set(jwk.AlgorithmKey, k.alg)
		_ = pub.Set(jwk.KeyUsageKey, "sig")
		if err := set.AddKey(pub); err != nil {
			t.Fatal(err)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sets[jwksPath] = set
	if discovery {
		h.docs[strings.TrimSuffix(issuerPath, "/")+"/.well-known/openid-configuration"] = map[string]string{
			"issuer": issuer, "jwks_uri": h.URL + jwksPath}
	}
	return issuer
}

func rsaKey(t *testing.T, kid string) idpKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return idpKey{alg: jwa.RS256(), kid: kid, key: k}
}

func ecKey(t *testing.T, kid string) idpKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return idpKey{alg: jwa.ES256(), kid: kid, key: k}
}

// signJWT signs claims with k (exp an hour away and iat now unless given).
func signJWT(t *testing.T, k idpKey, claims map[string]any) string {
	t.Helper()
	tok := jwt.New()
	now := time.Now()
	base := map[string]any{"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	for n, v := range claims {
		base[n] = v
	}
	for n, v := range base {
		if err := tok.Set(n, v); err != nil {
			t.Fatal(err)
		}
	}
	hdr := jws.NewHeaders()
	if k.kid != "" {
		_ = hdr.Set(jws.KeyIDKey, k.kid)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(k.alg, k.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// supabaseLegacySecret is a project's legacy JWT secret, as Supabase gives it (40+ characters).
const supabaseLegacySecret = "super-secret-jwt-token-with-at-least-32-characters-long"

// TestIdentityProviders: a token of each provider, in its documented shape, maps to the right
// user, org and tier, end to end.
func TestIdentityProviders(t *testing.T) {
	prov := newProvider(t)
	h := newIDPHost(t)
	clerkKey, auth0Key, supaKey, fbKey, cognitoKey, workosKey := rsaKey(t, "ins_2abc"), rsaKey(t, "auth0-1"), ecKey(t, "supa-ec"),
		rsaKey(t, "fb-1"), rsaKey(t, "cognito-1"), rsaKey(t, "workos-1")
	clerk := h.provider(t, "/clerk", "/clerk/.well-known/jwks.json", true, clerkKey)
	auth0 := h.provider(t, "/auth0/", "/auth0/.well-known/jwks.json", true, auth0Key)
	supa := h.provider(t, "/abcdefgh.supabase.co/auth/v1", "/abcdefgh.supabase.co/auth/v1/.well-known/jwks.json", true, supaKey)
	legacy := h.URL + "/legacyref.supabase.co/auth/v1"
	// Firebase's discovery names a JWKS elsewhere (on googleapis.com): the document says where.
	firebase := h.provider(t, "/securetoken.google.com/my-app", "/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com", true, fbKey)
	cognito := h.provider(t, "/cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC", "/cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC/.well-known/jwks.json", false, cognitoKey)
	workos := h.provider(t, "/user_management/client_01", "/sso/jwks/client_01", false, workosKey)

	project := fmt.Sprintf(`tier free {
				requests_per_minute 100
			}
			tier pro {
				requests_per_minute 100
			}
			tier team {
				requests_per_minute 100
			}
			trust %s {
				claim org org_id
				claim tier public_metadata.plan
			}
			trust %s {
				audience https://api.behest.example
				claim uid sub
				claim org org_id
				claim tier /https:~1~1app.example~1plan
			}
			trust %s {
				audience authenticated
				algorithms ES256
				claim uid sub
				claim tier app_metadata.plan
			}
			trust %s {
				secret %s
				audience authenticated
				claim uid sub
				claim tier is_anonymous
				tier_map true free
				tier_map false pro
			}
			trust %s {
				audience my-app
				claim uid user_id
				claim tier firebase.sign_in_provider
				tier_map anonymous free
				tier_map password pro
			}
			trust %s {
				claim uid sub
				claim tier cognito:groups
				tier_map teams team
				tier_map premium pro
			}
			trust %s {
				jwks_url %s/sso/jwks/client_01
				claim uid sub
				claim org org_id
				claim tier role
				tier_map admin team
				tier_map member pro
			}`, clerk, auth0, supa, legacy, supabaseLegacySecret, firebase, cognito, workos, h.URL)
	cfg := strings.Replace(config(prov.URL, "", "", project), "default_tier 1", "default_tier free", 1)
	cfg = strings.Replace(strings.Replace(cfg, "tier 1 {\n\t\t\t\trequests_per_minute 100\n\t\t\t}", "", 1),
		"tier 2 {\n\t\t\t\trequests_per_minute 200\n\t\t\t}", "", 1)
	tester := gateway(t, cfg)

	hmacKey := idpKey{alg: jwa.HS256(), key: []byte(supabaseLegacySecret)}
	for _, tc := range []struct {
		name            string
		token           string
		user, org, tier string
		session         string
	}{
		{"Clerk, with the org_id of the active organization", signJWT(t, clerkKey, map[string]any{
			"iss": clerk, "sub": "user_2abcd", "azp": "http://localhost:3000", "sid": "sess_2xyz", "org_id": "org_2qrs",
			"org_role": "org:admin", "uid": "user_2abcd", "public_metadata": map[string]any{"plan": "pro"}}),
			"user_2abcd", "org_2qrs", "pro", "sess_2xyz"},
		{"Auth0, a namespaced claim and aud a list", signJWT(t, auth0Key, map[string]any{
			"iss": auth0, "sub": "auth0|64f1c2", "aud": []string{"https://api.behest.example", auth0 + "userinfo"},
			"azp": "client123", "scope": "openid profile", "org_id": "org_aBc", "https://app.example/plan": "team"}),
			"auth0|64f1c2", "org_aBc", "team", ""},
		{"Supabase, ES256 from its JWKS, app_metadata", signJWT(t, supaKey, map[string]any{
			"iss": supa, "sub": "7c2a9f0e-uuid", "aud": "authenticated", "role": "authenticated", "session_id": "s-1",
			"is_anonymous": false, "app_metadata": map[string]any{"provider": "email", "plan": "pro"}}),
			"7c2a9f0e-uuid", "", "pro", ""},
		{"Supabase, the legacy HS256 secret, an anonymous user", signJWT(t, hmacKey, map[string]any{
			"iss": legacy, "sub": "0b8e-anon", "aud": "authenticated", "role": "authenticated", "is_anonymous": true,
			"app_metadata": map[string]any{"provider": "anonymous"}}),
			"0b8e-anon", "", "free", ""},
		{"Firebase, the securetoken issuer, aud the project, anonymous sign-in", signJWT(t, fbKey, map[string]any{
			"iss": firebase, "aud": "my-app", "auth_time": time.Now().Unix(), "user_id": "fbUid123", "sub": "fbUid123",
			"firebase": map[string]any{"identities": map[string]any{}, "sign_in_provider": "anonymous"}}),
			"fbUid123", "", "free", ""},
		{"Cognito, the groups list", signJWT(t, cognitoKey, map[string]any{
			"iss": cognito, "sub": "a1b2c3d4-cognito", "token_use": "access", "client_id": "7abc", "username": "ada",
			"cognito:groups": []string{"users", "premium"}}),
			"a1b2c3d4-cognito", "", "pro", ""},
		{"WorkOS, org_id and role", signJWT(t, workosKey, map[string]any{
			"iss": workos, "sub": "user_01HXYZ", "sid": "session_01HXYZ", "org_id": "org_01HABC", "role": "admin",
			"permissions": []string{"posts:read"}}),
			"user_01HXYZ", "org_01HABC", "team", "session_01HXYZ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, tester.Client, "POST", "/v1/chat/completions", tc.token, chatBody, map[string]string{"Origin": "http://localhost:3000"})
			if b := readBody(t, resp); resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			up, _ := prov.last(t)
			for k, v := range map[string]string{"X-Behest-User-Id": tc.user, "X-Behest-Org-Id": tc.org, "X-Behest-Tier": tc.tier,
				"X-Behest-Session-Id": tc.session, "X-Behest-Project-Id": "p_456"} {
				if got := up.Header.Get(k); got != v {
					t.Errorf("provider saw %s %q, want %q", k, got, v)
				}
			}
		})
	}
	// The org claim, not the user id, groups usage by org.
	eventually(t, func() error {
		orgs := map[string]int64{}
		for _, row := range usage(t, tester.Client, "group_by=org").Data {
			orgs[row.Key] = row.Requests
		}
		if orgs["org_2qrs"] != 1 || orgs["org_aBc"] != 1 || orgs["org_01HABC"] != 1 {
			return fmt.Errorf("usage by org %v", orgs)
		}
		return nil
	})

	// The HMAC issuer takes no asymmetric token, and a JWKS issuer no HMAC one.
	for name, token := range map[string]string{
		"HS256 on a JWKS issuer": signJWT(t, idpKey{alg: jwa.HS256(), kid: "ins_2abc", key: []byte(supabaseLegacySecret)},
			map[string]any{"iss": clerk, "sub": "x"}),
		"a wrong secret": signJWT(t, idpKey{alg: jwa.HS256(), key: []byte("another-secret-that-is-also-32-bytes!")},
			map[string]any{"iss": legacy, "sub": "x", "aud": "authenticated"}),
		"RS256 on the HMAC issuer": signJWT(t, clerkKey, map[string]any{"iss": legacy, "sub": "x", "aud": "authenticated"}),
	} {
		resp := do(t, tester.Client, "POST", "/v1/chat/completions", token, chatBody, nil)
		if b := readBody(t, resp); resp.StatusCode != 401 {
			t.Errorf("%s: %d %s, want 401", name, resp.StatusCode, b)
		}
	}
}

// attestHost is a fake Firebase App Check: its JWKS, and tokens for an app.
type attestHost struct {
	*idpHost
	key    idpKey
	issuer string
}

const attestAudience = "projects/123456789"

func newAttestHost(t *testing.T) *attestHost {
	h := &attestHost{idpHost: newIDPHost(t), key: rsaKey(t, "appcheck-key-1")}
	h.issuer = h.provider(t, "/firebaseappcheck/123456789", "/firebaseappcheck/v1/jwks", false, h.key)
	return h
}

func (h *attestHost) token(t *testing.T, jti string, claims map[string]any) string {
	c := map[string]any{"iss": h.issuer, "sub": "1:123456789:web:abc123", "aud": []string{attestAudience, "projects/my-app"},
		"exp": time.Now().Add(5 * time.Minute).Unix(), "jti": jti}
	for k, v := range claims {
		c[k] = v
	}
	return signJWT(t, h.key, c)
}

// attestProject makes tier 1 attest, with single-use tokens; tier 2 does not.
func attestProject(h *attestHost) string {
	return fmt.Sprintf(`attest %s {
				jwks_url %s/firebaseappcheck/v1/jwks
				audience %s
				single_use
				tiers 1
			}`, h.issuer, h.URL, attestAudience)
}

// TestAttestation: a tier that must attest is refused without a valid attestation token
// (missing, another audience, expired, a foreign key) and when one is replayed; other tiers are
// unaffected; the header never reaches the provider.
func TestAttestation(t *testing.T) {
	prov := newProvider(t)
	ac := newAttestHost(t)
	tester := gateway(t, config(prov.URL, "", "", attestProject(ac)))
	c := tester.Client
	m := mintToken(t, c, "test-project-key", `{"user_id":"user_attest","tier":1}`)
	other := mintToken(t, c, "test-project-key", `{"user_id":"user_free_of_it","tier":2}`)
	send := func(token, attestation string) *http.Response {
		hdr := map[string]string{}
		if attestation != "" {
			hdr["X-Firebase-AppCheck"] = attestation
		}
		return do(t, c, "POST", "/v1/chat/completions", token, chatBody, hdr)
	}

	foreign := rsaKey(t, "appcheck-key-1") // the service's kid, another key
	for name, att := range map[string]string{
		"missing":          "",
		"another audience": ac.token(t, "a1", map[string]any{"aud": []string{"projects/999"}}),
		"expired":          ac.token(t, "a2", map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}),
		"a foreign key":    signJWT(t, foreign, map[string]any{"iss": ac.issuer, "aud": attestAudience, "jti": "a3"}),
		"another issuer":   ac.token(t, "a4", map[string]any{"iss": ac.URL + "/firebaseappcheck/999"}),
		"not a token":      "garbage",
	} {
		b := wantError(t, send(m.Token, att), 401, "attestation_required")
		if !strings.Contains(string(b), "attestation") {
			t.Errorf("%s: %s", name, b)
		}
	}
	if n := prov.count(); n != 0 {
		t.Fatalf("the provider received %d requests without a valid attestation", n)
	}

	good := ac.token(t, "once-1", nil)
	if resp := send(m.Token, good); resp.StatusCode != 200 {
		t.Fatalf("a valid attestation: %d %s", resp.StatusCode, readBody(t, resp))
	} else {
		readBody(t, resp)
	}
	up, _ := prov.last(t)
	if up.Header.Get("X-Firebase-AppCheck") != "" {
		t.Error("the attestation header reached the provider")
	}
	wantError(t, send(m.Token, good), 401, "attestation_replayed")

	// Tier 2 need not attest; a header it sends anyway is still not passed on.
	for _, att := range []string{"", "anything"} {
		if resp := send(other.Token, att); resp.StatusCode != 200 {
			t.Fatalf("tier 2: %d %s", resp.StatusCode, readBody(t, resp))
		} else {
			readBody(t, resp)
		}
		if up, _ := prov.last(t); up.Header.Get("X-Firebase-AppCheck") != "" {
			t.Error("the attestation header reached the provider")
		}
	}
	// The preflight lets a page send the header.
	resp := do(t, c, "OPTIONS", "/v1/chat/completions", "", "", map[string]string{"Origin": "http://localhost:3000",
		"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, x-firebase-appcheck"})
	readBody(t, resp)
	if !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "x-firebase-appcheck") {
		t.Errorf("preflight allows %q", resp.Header.Get("Access-Control-Allow-Headers"))
	}
}

// TestAttestationReplayAcrossInstances: a single-use attestation token used on one instance is
// refused on another sharing its Redis.
func TestAttestationReplayAcrossInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Caddy processes and redis-server")
	}
	rs := startRedis(t)
	prov := newProvider(t)
	ac := newAttestHost(t)
	storage := t.TempDir()
	var gws [2]*caddyProcess
	for i := range gws {
		port := freePort()
		cfg := fmt.Sprintf(`{
	admin off
	auto_https off
	storage file_system %s
}
http://127.0.0.1:%d {
	behest {
		issuer https://gateway.example
		store redis %s
		project p_456 {
			tenant t_123
			api_key test-project-key
			tier 1 {
				requests_per_minute 50
			}
			%s
		}
	}
	reverse_proxy %s
}`, storage, port, rs.url(), attestProject(ac), prov.Listener.Addr().String())
		gws[i] = startCaddy(t, cfg, t.TempDir(), port)
	}
	_, body := gws[0].do(t, "POST", "/v1/auth/mint", "test-project-key", `{"user_id":"user_two_sites","tier":1}`)
	var m minted
	_ = json.Unmarshal(body, &m)
	att := ac.token(t, "shared-once", nil)
	send := func(gw *caddyProcess) (int, string) {
		req, _ := http.NewRequest("POST", gw.base+"/v1/chat/completions", strings.NewReader(chatBody))
		req.Header.Set("Authorization", "Bearer "+m.Token)
		req.Header.Set("X-Firebase-AppCheck", att)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(readBody(t, resp))
	}
	if status, b := send(gws[0]); status != 200 {
		t.Fatalf("first use: %d %s", status, b)
	}
	if status, b := send(gws[1]); status != 401 || !strings.Contains(b, "attestation_replayed") {
		t.Fatalf("the same token on the other instance: %d %s", status, b)
	}
}

package behest_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

func TestOptionAMintThenChat(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "", ""))

	m := mintToken(t, tester.Client, "test-project-key", `{"user_id":"org_9:user_2abc","tier":2,"ttl":600}`)
	if m.Token == "" || m.TTL != 600 || !strings.HasPrefix(m.SessionID, "sess_") {
		t.Fatalf("mint response %+v", m)
	}
	if d := time.Until(time.Unix(m.ExpiresAt, 0)); d < 590*time.Second || d > 601*time.Second {
		t.Fatalf("expiresAt is %s away, want ~600s", d)
	}

	resp := do(t, tester.Client, "POST", "/v1/chat/completions", m.Token, chatBody, map[string]string{
		"X-Session-Id":       m.SessionID,
		"X-Behest-User-Id":   "admin", // spoofed: must never arrive
		"X-Behest-Tenant-Id": "t_evil",
		"X-Behest-Anything":  "x",
	})
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("chat: status %d: %s", resp.StatusCode, body)
	}
	if !strings.Contains(string(body), `"Hello."`) {
		t.Fatalf("chat body %s", body)
	}
	if got := resp.Header.Get("X-Ratelimit-Limit-Requests"); got != "200" {
		t.Errorf("x-ratelimit-limit-requests %q, want the tier's 200 (not the provider's)", got)
	}
	if got := resp.Header.Get("X-Ratelimit-Remaining-Requests"); got != "199" {
		t.Errorf("x-ratelimit-remaining-requests %q, want 199", got)
	}

	up, _ := prov.last(t)
	want := map[string]string{
		"X-Behest-Tenant-Id":  "t_123",
		"X-Behest-Project-Id": "p_456",
		"X-Behest-User-Id":    "org_9:user_2abc",
		"X-Behest-Tier":       "2",
		"X-Behest-Session-Id": m.SessionID,
		"Authorization":       "Bearer provider-secret",
	}
	for k, v := range want {
		if got := up.Header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("provider saw %s %q, want %q", k, got, v)
		}
	}
	if up.Header.Get("X-Behest-Anything") != "" {
		t.Error("a client's X-Behest-* header reached the provider")
	}
	for k, vs := range up.Header {
		for _, v := range vs {
			if strings.Contains(v, m.Token) {
				t.Errorf("the client's token reached the provider in %s", k)
			}
		}
	}

	// The public keys are published, and contain no private material.
	resp = do(t, tester.Client, "GET", "/.well-known/jwks.json", "", "", nil)
	jwks := readBody(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(string(jwks), `"kty":"OKP"`) || strings.Contains(string(jwks), `"d":`) {
		t.Fatalf("jwks: %d %s", resp.StatusCode, jwks)
	}
}

func TestOptionATrustedRS256(t *testing.T) {
	prov := newProvider(t)
	is := newIssuer(t)
	tester := gateway(t, config(prov.URL, is.URL, "", ""))

	tok := is.token(t, is.kid, map[string]any{"uid": "user_clerk", "tier": "2"})
	resp := do(t, tester.Client, "POST", "/v1/chat/completions", tok, chatBody, map[string]string{"X-Session-Id": "chat-42"})
	if b := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	up, _ := prov.last(t)
	for k, v := range map[string]string{"X-Behest-User-Id": "user_clerk", "X-Behest-Tier": "2",
		"X-Behest-Session-Id": "chat-42", "X-Behest-Project-Id": "p_456", "X-Behest-Tenant-Id": "t_123"} {
		if got := up.Header.Get(k); got != v {
			t.Errorf("provider saw %s %q, want %q", k, got, v)
		}
	}

	// An unset Clerk shortcode renders as null: the project's default tier.
	tok = is.token(t, is.kid, map[string]any{"tier": nil, "jti": "j2"})
	resp = do(t, tester.Client, "POST", "/v1/chat/completions", tok, chatBody, nil)
	if b := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if up, _ := prov.last(t); up.Header.Get("X-Behest-Tier") != "1" {
		t.Errorf("null tier became %q, want the default tier 1", up.Header.Get("X-Behest-Tier"))
	}

	// A tier the project does not have is the default tier too, and is counted.
	tok = is.token(t, is.kid, map[string]any{"tier": "gold", "jti": "j3"})
	resp = do(t, tester.Client, "POST", "/v1/chat/completions", tok, chatBody, nil)
	if b := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if up, _ := prov.last(t); up.Header.Get("X-Behest-Tier") != "1" {
		t.Errorf("unknown tier became %q, want the default tier 1", up.Header.Get("X-Behest-Tier"))
	}
	mresp, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", caddytest.Default.AdminPort))
	if err != nil {
		t.Fatal(err)
	}
	if m := readBody(t, mresp); !strings.Contains(string(m), `caddy_behest_tier_unknown_total{project="p_456"}`) {
		t.Errorf("the unknown tier was not counted in the metrics")
	}
}

func TestContractErrors(t *testing.T) {
	prov := newProvider(t)
	is := newIssuer(t)
	tester := gateway(t, config(prov.URL, is.URL, "", `tier 3 {
				requests_per_minute 2
			}`))
	c := tester.Client
	good := is.token(t, is.kid, nil)

	t.Run("no token", func(t *testing.T) {
		resp := do(t, c, "POST", "/v1/chat/completions", "", chatBody, nil)
		wantError(t, resp, 401, "invalid_api_key")
		if h := resp.Header.Get("WWW-Authenticate"); h != `Bearer error="invalid_token"` {
			t.Errorf("WWW-Authenticate %q", h)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		wantError(t, do(t, c, "POST", "/v1/chat/completions", "not.a.jwt", chatBody, nil), 401, "invalid_api_key")
	})
	t.Run("bad signature", func(t *testing.T) {
		parts := strings.Split(good, ".")
		sig := []byte(parts[2])
		sig[5] ^= 0x01
		bad := parts[0] + "." + parts[1] + "." + string(sig)
		wantError(t, do(t, c, "POST", "/v1/chat/completions", bad, chatBody, nil), 401, "invalid_api_key")
	})
	t.Run("expired", func(t *testing.T) {
		old := is.token(t, is.kid, map[string]any{"exp": time.Now().Add(-2 * time.Minute).Unix(), "iat": time.Now().Add(-5 * time.Minute).Unix(), "nbf": time.Now().Add(-5 * time.Minute).Unix()})
		wantError(t, do(t, c, "POST", "/v1/chat/completions", old, chatBody, nil), 401, "invalid_api_key")
	})
	t.Run("project does not trust issuer", func(t *testing.T) {
		tok := is.token(t, is.kid, map[string]any{"pid": "p_other", "tid": "t_999"})
		wantError(t, do(t, c, "POST", "/v1/chat/completions", tok, chatBody, nil), 403, "permission_denied")
	})
	t.Run("tenant mismatch", func(t *testing.T) {
		tok := is.token(t, is.kid, map[string]any{"tid": "t_evil"})
		wantError(t, do(t, c, "POST", "/v1/chat/completions", tok, chatBody, nil), 403, "permission_denied")
	})
	t.Run("minted for another project", func(t *testing.T) {
		// A token minted with project B's key is not valid for project A's trusted issuer rules,
		// but it is a valid token of project B: it must work there and carry B's identity.
		m := mintToken(t, c, "other-project-key", `{"user_id":"u1"}`)
		resp := do(t, c, "POST", "/v1/chat/completions", m.Token, chatBody, nil)
		readBody(t, resp)
		if up, _ := prov.last(t); up.Header.Get("X-Behest-Project-Id") != "p_other" {
			t.Fatalf("project %q", up.Header.Get("X-Behest-Project-Id"))
		}
	})
	t.Run("rate limited", func(t *testing.T) {
		m := mintToken(t, c, "test-project-key", `{"user_id":"limited-user","tier":3}`)
		for i := 0; i < 2; i++ {
			if resp := do(t, c, "POST", "/v1/chat/completions", m.Token, chatBody, nil); readBody(t, resp) == nil || resp.StatusCode != 200 {
				t.Fatalf("request %d: status %d", i, resp.StatusCode)
			}
		}
		resp := do(t, c, "POST", "/v1/chat/completions", m.Token, chatBody, nil)
		wantError(t, resp, 429, "rate_limit_exceeded")
		if resp.Header.Get("Retry-After") == "" || resp.Header.Get("Retry-After-Ms") == "" {
			t.Errorf("429 without Retry-After / retry-after-ms: %v", resp.Header)
		}
		if resp.Header.Get("X-Ratelimit-Remaining-Requests") != "0" {
			t.Errorf("x-ratelimit-remaining-requests %q", resp.Header.Get("X-Ratelimit-Remaining-Requests"))
		}
		if resp.Header.Get("X-Should-Retry") == "false" {
			t.Error("a per-minute limit says x-should-retry: false, but waiting helps")
		}
	})
	t.Run("mint bad key", func(t *testing.T) {
		wantError(t, do(t, c, "POST", "/v1/auth/mint", "wrong", `{"user_id":"u"}`, nil), 401, "invalid_api_key")
	})
	t.Run("mint bad bodies", func(t *testing.T) {
		for _, body := range []string{`not json`, `{}`, `{"user_id":"u","ttl":5}`, `{"user_id":"u","ttl":7200}`, `{"user_id":"u","tier":"gold"}`,
			`{"user_id":"` + strings.Repeat("a", 70<<10) + `"}`} {
			b := wantError(t, do(t, c, "POST", "/v1/auth/mint", "test-project-key", body, nil), 400, "invalid_request")
			if len(body) < 100 {
				t.Logf("%s -> %s", body, b)
			}
		}
	})
}

func TestIssuerUnavailable(t *testing.T) {
	prov := newProvider(t)
	is := newIssuer(t)
	is.down.Store(true)
	tester := gateway(t, config(prov.URL, is.URL, "", ""))
	tok := is.token(t, is.kid, nil)
	wantError(t, do(t, tester.Client, "POST", "/v1/chat/completions", tok, chatBody, nil), 503, "issuer_unavailable")
}

func TestJWKSKeyRemovedIsRefusedAfterTTL(t *testing.T) {
	prov := newProvider(t)
	is := newIssuer(t)
	tester := gateway(t, config(prov.URL, is.URL, "jwks_cache_ttl 1s", ""))
	tok := is.token(t, is.kid, nil)
	if resp := do(t, tester.Client, "POST", "/v1/chat/completions", tok, chatBody, nil); readBody(t, resp) == nil || resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	is.removeKeys()
	// Within the TTL the cached key still serves.
	time.Sleep(1500 * time.Millisecond)
	wantError(t, do(t, tester.Client, "POST", "/v1/chat/completions", tok, chatBody, nil), 401, "invalid_api_key")
}

func TestIssuerDownKeepsCachedKeys(t *testing.T) {
	prov := newProvider(t)
	is := newIssuer(t)
	tester := gateway(t, config(prov.URL, is.URL, "jwks_cache_ttl 1s", ""))
	tok := is.token(t, is.kid, nil)
	if resp := do(t, tester.Client, "POST", "/v1/chat/completions", tok, chatBody, nil); readBody(t, resp) == nil || resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	is.down.Store(true)
	time.Sleep(1500 * time.Millisecond) // past the TTL: the refetch fails, the last good keys serve
	for i := 0; i < 3; i++ {
		tok := is.token(t, is.kid, map[string]any{"jti": fmt.Sprint("down-", i)})
		if resp := do(t, tester.Client, "POST", "/v1/chat/completions", tok, chatBody, nil); readBody(t, resp) == nil || resp.StatusCode != 200 {
			t.Fatalf("issuer down, keys cached: status %d", resp.StatusCode)
		}
	}
	if is.fetches.Load() < 2 {
		t.Fatalf("the gateway did not try to refetch the expired JWKS (%d fetches)", is.fetches.Load())
	}
}

func TestUnknownKidStampedeFetchesOnce(t *testing.T) {
	prov := newProvider(t)
	is := newIssuer(t)
	tester := gateway(t, config(prov.URL, is.URL, "", ""))
	// Warm: the first fetch happens at start or on the first request.
	tok := is.token(t, is.kid, nil)
	if resp := do(t, tester.Client, "POST", "/v1/chat/completions", tok, chatBody, nil); readBody(t, resp) == nil || resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	before := is.fetches.Load()
	start := time.Now()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1000, MaxConnsPerHost: 200}, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	codes := make([]int, 1000)
	toks := make([]string, 1000)
	for i := range toks {
		toks[i] = is.token(t, fmt.Sprint("unknown-kid-", i), nil)
	}
	for i := range toks {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req, _ := http.NewRequest("POST", gatewayURL("/v1/chat/completions"), strings.NewReader(chatBody))
			req.Header.Set("Authorization", "Bearer "+toks[i])
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	for i, c := range codes {
		if c != 401 {
			t.Fatalf("request %d with an unknown kid: status %d, want 401", i, c)
		}
	}
	fetches := is.fetches.Load() - before
	windows := int64(elapsed/(10*time.Second)) + 1
	if fetches > windows {
		t.Fatalf("%d JWKS fetches in %s for 1000 unknown kids, want at most %d (one per 10 s)", fetches, elapsed, windows)
	}
	t.Logf("1000 unknown kids: %d JWKS fetches in %s", fetches, elapsed)
	if prov.count() != 1 {
		t.Fatalf("requests with unknown kids reached the provider")
	}
}

func TestCORS(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "", ""))
	c := tester.Client

	resp := do(t, c, "OPTIONS", "/v1/chat/completions", "", "", map[string]string{
		"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "authorization, content-type, x-session-id, x-stainless-os, x-stainless-retry-count",
	})
	readBody(t, resp)
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"authorization", "content-type", "x-session-id", "x-stainless-os", "x-stainless-retry-count"} {
		if !strings.Contains(allowed, h) {
			t.Errorf("preflight does not allow %s: %q", h, allowed)
		}
	}
	if prov.count() != 0 {
		t.Fatal("a preflight reached the provider")
	}
	// The Anthropic and Gemini SDKs' headers, and nothing a page makes up.
	resp = do(t, c, "OPTIONS", "/anthropic/v1/messages", "", "", map[string]string{
		"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "x-api-key, anthropic-version, anthropic-beta, anthropic-dangerous-direct-browser-access, " +
			"x-goog-api-key, x-goog-api-client, x-stainless-lang, x-made-up",
	})
	readBody(t, resp)
	allowed = strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"x-api-key", "anthropic-version", "anthropic-beta", "anthropic-dangerous-direct-browser-access",
		"x-goog-api-key", "x-goog-api-client", "x-stainless-lang"} {
		if !strings.Contains(allowed, h) {
			t.Errorf("preflight does not allow %s: %q", h, allowed)
		}
	}
	if strings.Contains(allowed, "x-made-up") {
		t.Errorf("preflight allows a header no SDK sends: %q", allowed)
	}

	resp = do(t, c, "OPTIONS", "/v1/chat/completions", "", "", map[string]string{
		"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
	readBody(t, resp)
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("preflight allowed an origin no project lists")
	}

	m := mintToken(t, c, "test-project-key", `{"user_id":"u"}`)
	resp = do(t, c, "POST", "/v1/chat/completions", m.Token, chatBody, map[string]string{"Origin": "http://localhost:3000"})
	readBody(t, resp)
	if resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "x-ratelimit-remaining-requests") {
		t.Fatalf("actual request CORS headers: %v", resp.Header)
	}
	// Errors are readable by the page too, so the SDK can raise the right class.
	resp = do(t, c, "POST", "/v1/chat/completions", "", chatBody, map[string]string{"Origin": "http://localhost:3000"})
	readBody(t, resp)
	if resp.StatusCode != 401 || resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Fatalf("401 CORS headers: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestReloadKeepsCounters(t *testing.T) {
	prov := newProvider(t)
	tier := `tier 5 {
				requests_per_minute 3
			}`
	tester := gateway(t, config(prov.URL, "", "", tier))
	m := mintToken(t, tester.Client, "test-project-key", `{"user_id":"reload-user","tier":5}`)
	for i := 0; i < 2; i++ {
		if resp := do(t, tester.Client, "POST", "/v1/chat/completions", m.Token, chatBody, nil); readBody(t, resp) == nil || resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	// A changed config posted to the admin API: a reload, not a restart.
	gateway(t, strings.Replace(config(prov.URL, "", "", tier), "cors_origins http://localhost:3000", "cors_origins http://localhost:3001", 1))
	if resp := do(t, tester.Client, "POST", "/v1/chat/completions", m.Token, chatBody, nil); readBody(t, resp) == nil || resp.StatusCode != 200 {
		t.Fatalf("third request: status %d", resp.StatusCode)
	}
	wantError(t, do(t, tester.Client, "POST", "/v1/chat/completions", m.Token, chatBody, nil), 429, "rate_limit_exceeded")
}

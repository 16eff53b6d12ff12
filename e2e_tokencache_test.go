package behest_test

import (
	"net/http"
	"testing"
)

// TestTokenCacheOff: with token_cache_size off every request's token is verified again, and
// the gateway works as with the cache: tokens are served, revoked and tampered ones refused.
func TestTokenCacheOff(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "token_cache_size off", ""))

	m := mintToken(t, tester.Client, "test-project-key", `{"user_id":"org_9:user_2abc","ttl":600}`)
	for i := range 3 {
		resp := do(t, tester.Client, "POST", "/v1/chat/completions", m.Token, chatBody, nil)
		if body := readBody(t, resp); resp.StatusCode != http.StatusOK {
			t.Fatalf("chat %d: status %d: %s", i, resp.StatusCode, body)
		}
	}
	tampered := m.Token[:len(m.Token)-4] + "AAAA"
	if tampered == m.Token {
		tampered = m.Token[:len(m.Token)-4] + "BBBB"
	}
	wantError(t, do(t, tester.Client, "POST", "/v1/chat/completions", tampered, chatBody, nil), http.StatusUnauthorized, "invalid_api_key")

	resp := do(t, tester.Client, "POST", "/v1/auth/revoke", "test-project-key", `{"user_id":"org_9:user_2abc"}`, nil)
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: status %d: %s", resp.StatusCode, body)
	}
	wantError(t, do(t, tester.Client, "POST", "/v1/chat/completions", m.Token, chatBody, nil), http.StatusUnauthorized, "invalid_api_key")
}

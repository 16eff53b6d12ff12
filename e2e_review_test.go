package behest_test

// Regression tests for findings of a review of the handler: each failed before its fix.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// reviewTiers: a tier whose worst case can never fit its cost budget (so every metered request
// is refused), and a token-metered tier.
const reviewTiers = `tier tiny {
				cost_per_day 0.000001
				max_output_tokens 100
			}
			tier q {
				requests_per_minute 1000
				tokens_per_day 1000000
				max_output_tokens 100
			}
			price gpt-4o-mini 0.15 0.60
			price * 0.01 0.01`

// A token minted right after its user was revoked is valid, although iat has whole seconds: the
// revoke answers once its second is over.
func TestRevokeThenMintInTheSameSecond(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "", reviewTiers))
	c := tester.Client
	// Start just after a second boundary so revoke and mint land in the same second.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 20*time.Millisecond)))
	resp := do(t, c, "POST", "/v1/auth/revoke", "test-project-key", `{"user_id":"user_relogin"}`, nil)
	if b := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("revoke: %d %s", resp.StatusCode, b)
	}
	m := mintToken(t, c, "test-project-key", `{"user_id":"user_relogin","tier":"q"}`)
	resp = do(t, c, "POST", "/v1/chat/completions", m.Token, chatBody, nil)
	if b := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("a token minted AFTER the revocation is refused: %d %s", resp.StatusCode, b)
	}
}

// A non-streamed request whose client gives up before the provider answers is charged its
// reservation: the provider did (and bills) the work.
func TestClientGoneBeforeHeadersIsCharged(t *testing.T) {
	var served atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		time.Sleep(700 * time.Millisecond) // generating
		served.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":100}}`)
	}))
	t.Cleanup(slow.Close)
	tester := gateway(t, config(slow.URL, "", "", reviewTiers))
	m := mintToken(t, tester.Client, "test-project-key", `{"user_id":"user_gone","tier":"q"}`)

	impatient := &http.Client{Timeout: 250 * time.Millisecond}
	req, _ := http.NewRequest("POST", gatewayURL("/v1/chat/completions"), strings.NewReader(chatBody))
	req.Header.Set("Authorization", "Bearer "+m.Token)
	if resp, err := impatient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("expected the client to time out")
	}
	time.Sleep(time.Second)
	if served.Load() != 1 {
		t.Fatalf("provider served %d", served.Load())
	}
	u := usage(t, tester.Client, "group_by=user&user_id=user_gone")
	if len(u.Data) != 1 || u.Data[0].InputTokens+u.Data[0].OutputTokens == 0 {
		t.Fatalf("the provider did the work but the user was charged nothing: %+v", u.Data)
	}
}

// Endpoints the gateway cannot meter (images, audio, realtime, batches, dot-segment variants of
// the metered ones) are not served to end-user tokens: they would bypass every budget.
func TestUnmeteredEndpointsAreNotServed(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "", reviewTiers))
	c := tester.Client
	m := mintToken(t, c, "test-project-key", `{"user_id":"user_tiny","tier":"tiny"}`)
	wantError(t, do(t, c, "POST", "/v1/chat/completions", m.Token, chat("gpt-4o-mini", `,"stream":true`), nil), 429, "insufficient_quota")

	for i, path := range []string{"/v1/chat/completions/.", "/v1/images/generations"} {
		m := mintToken(t, c, "test-project-key", fmt.Sprintf(`{"user_id":"user_tiny_%d","tier":"tiny"}`, i))
		resp := do(t, c, "POST", path, m.Token, chat("gpt-4o-mini", `,"stream":true`), nil)
		b := readBody(t, resp)
		if resp.StatusCode == 200 {
			_, body := prov.last(t)
			t.Errorf("%s: admitted (%d) under a budget that refuses every request; provider got %s", path, resp.StatusCode, body)
		} else {
			t.Logf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
}

// Retrievals of stored objects (GET /v1/responses/{id}) are not served: they show every user's
// data under the shared provider key, and their usage must not be charged again.
func TestRetrievalIsNotCharged(t *testing.T) {
	stored := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"resp_1","object":"response","model":"gpt-4o-mini","status":"completed","output":[],"usage":{"input_tokens":5000,"output_tokens":1000}}`)
	}))
	t.Cleanup(stored.Close)
	tester := gateway(t, config(stored.URL, "", "", reviewTiers))
	m := mintToken(t, tester.Client, "test-project-key", `{"user_id":"user_poll","tier":"q"}`)
	for i := 0; i < 3; i++ {
		resp := do(t, tester.Client, "GET", "/v1/responses/resp_1", m.Token, "", nil)
		readBody(t, resp)
	}
	time.Sleep(200 * time.Millisecond)
	u := usage(t, tester.Client, "group_by=user&user_id=user_poll")
	if len(u.Data) == 1 && u.Data[0].InputTokens > 0 {
		t.Fatalf("three GETs of one stored response were charged %d input, %d output tokens", u.Data[0].InputTokens, u.Data[0].OutputTokens)
	}
}

// A provider that names the model differently (openai/gpt-4o-mini, a fine-tune suffix) settles
// at the requested model's own price, not at the "*" default.
func TestRequestedModelPricedBeforeDefault(t *testing.T) {
	prov := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"x","object":"chat.completion","model":"openai/gpt-4o-mini","choices":[],"usage":{"prompt_tokens":1000000,"completion_tokens":0}}`)
	}))
	t.Cleanup(prov.Close)
	tester := gateway(t, config(prov.URL, "", "", reviewTiers))
	m := mintToken(t, tester.Client, "test-project-key", `{"user_id":"user_price","tier":"q"}`)
	resp := do(t, tester.Client, "POST", "/v1/chat/completions", m.Token, chat("gpt-4o-mini", ""), nil)
	readBody(t, resp)
	time.Sleep(200 * time.Millisecond)
	u := usage(t, tester.Client, "group_by=user&user_id=user_price")
	if len(u.Data) != 1 || u.Data[0].CostUSD < 0.15 {
		t.Fatalf("1M input tokens of gpt-4o-mini (priced 0.15) charged $%v", u.Data)
	}
}

// A mint without ttl on a project whose max_ttl is under 900 s gets max_ttl.
func TestDefaultTTLWithinMaxTTL(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "", "max_ttl 5m"))
	resp := do(t, tester.Client, "POST", "/v1/auth/mint", "test-project-key", `{"user_id":"u"}`, nil)
	if b := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("mint without ttl under max_ttl 5m: %d %s", resp.StatusCode, b)
	}
}

// Client headers that pick the provider account billed (OpenAI-Project, -Organization) are dropped.
func TestOpenAIProjectHeaderDropped(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "", ""))
	m := mintToken(t, tester.Client, "test-project-key", `{"user_id":"u"}`)
	resp := do(t, tester.Client, "POST", "/v1/chat/completions", m.Token, chatBody, map[string]string{
		"OpenAI-Project": "proj_someone_else", "OpenAI-Organization": "org-someone-else"})
	readBody(t, resp)
	up, _ := prov.last(t)
	if up.Header.Get("OpenAI-Project") != "" || up.Header.Get("OpenAI-Organization") != "" {
		t.Fatalf("provider saw OpenAI-Project %q OpenAI-Organization %q from the client",
			up.Header.Get("OpenAI-Project"), up.Header.Get("OpenAI-Organization"))
	}
}

// The model name is client-chosen and becomes a usage key: over 256 bytes it is refused.
func TestHugeModelNameRefused(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "", ""))
	m := mintToken(t, tester.Client, "test-project-key", `{"user_id":"user_bigmodel"}`)
	big := strings.Repeat("m", 1<<20)
	resp := do(t, tester.Client, "POST", "/v1/chat/completions", m.Token, chat(big, ""), nil)
	readBody(t, resp)
	time.Sleep(200 * time.Millisecond)
	r := do(t, tester.Client, "GET", "/v1/usage?group_by=model&user_id=user_bigmodel", "test-project-key", "", nil)
	var u usageResponse
	_ = json.Unmarshal(readBody(t, r), &u)
	for _, d := range u.Data {
		if len(d.Key) >= 1<<20 {
			t.Fatalf("a 1 MiB model name was accepted (status %d) and stored as a usage key", resp.StatusCode)
		}
	}
}

// A trusted-issuer token that carries its own sid keeps it: an X-Session-Id header cannot step
// around a revocation of that session.
func TestSessionRevocationNotBypassedByHeader(t *testing.T) {
	prov := newProvider(t)
	is := newIssuer(t)
	tester := gateway(t, config(prov.URL, is.URL, "", ""))
	c := tester.Client
	tok := is.token(t, is.kid, map[string]any{"sid": "sess_clerk_1", "uid": "user_sidrev", "iat": time.Now().Add(-10 * time.Second).Unix()})
	resp := do(t, c, "POST", "/v1/auth/revoke", "test-project-key", `{"session_id":"sess_clerk_1"}`, nil)
	if b := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("revoke: %d %s", resp.StatusCode, b)
	}
	wantError(t, do(t, c, "POST", "/v1/chat/completions", tok, chatBody, nil), 401, "invalid_api_key")
	resp = do(t, c, "POST", "/v1/chat/completions", tok, chatBody, map[string]string{"X-Session-Id": "anything"})
	if readBody(t, resp); resp.StatusCode == 200 {
		t.Fatalf("a token of a revoked session is admitted once the client names another session: %d", resp.StatusCode)
	}
}

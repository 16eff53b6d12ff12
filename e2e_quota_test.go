package behest_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// quotaProject adds a metered tier and prices to the e2e project.
const quotaProject = `tier q {
				requests_per_minute 1000
				tokens_per_minute 1000000
				max_output_tokens 100
			}
			tier tiny {
				cost_per_day 0.000001
				max_output_tokens 100
			}
			price gpt-4o-mini 0.15 0.60
			price * 1.00 2.00`

type usageResponse struct {
	Object  string `json:"object"`
	GroupBy string `json:"group_by"`
	Data    []struct {
		Key          string  `json:"key"`
		Requests     int64   `json:"requests"`
		InputTokens  int64   `json:"input_tokens"`
		OutputTokens int64   `json:"output_tokens"`
		CostUSD      float64 `json:"cost_usd"`
	} `json:"data"`
}

func usage(t *testing.T, c *http.Client, query string) usageResponse {
	t.Helper()
	resp := do(t, c, "GET", "/v1/usage?"+query, "test-project-key", "", nil)
	b := readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("usage: %d %s", resp.StatusCode, b)
	}
	var u usageResponse
	if err := json.Unmarshal(b, &u); err != nil {
		t.Fatalf("usage: %v: %s", err, b)
	}
	return u
}

// eventually retries check for a second: a request is settled just after its response ends.
func eventually(t *testing.T, check func() error) {
	t.Helper()
	var err error
	for i := 0; i < 50; i++ {
		if err = check(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal(err)
}

func chat(model string, extra string) string {
	return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Hi"}]%s}`, model, extra)
}

func TestUsageEqualsWhatTheProviderReported(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "", quotaProject))
	c := tester.Client
	m := mintToken(t, c, "test-project-key", `{"user_id":"org_9:user_usage","tier":"q"}`)
	for i := 0; i < 3; i++ {
		resp := do(t, c, "POST", "/v1/chat/completions", m.Token, chat("gpt-4o-mini", ""), nil)
		if b := readBody(t, resp); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	}
	resp := do(t, c, "POST", "/v1/chat/completions", m.Token, chat("gpt-4o-mini", `,"stream":true`), nil)
	if b := readBody(t, resp); resp.StatusCode != 200 || !strings.Contains(string(b), "[DONE]") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	// The stream asked the provider for its usage.
	_, body := prov.last(t)
	if !strings.Contains(string(body), `"include_usage":true`) || !strings.Contains(string(body), `"max_tokens":100`) {
		t.Fatalf("the provider got %s, want stream_options.include_usage and the tier's max_tokens", body)
	}

	// 3 x (12 in, 3 out) at gpt-4o-mini, and a stream of (10 in, 2 out) reported as the dated
	// gpt-4o-mini-2024-07-18, which falls back to gpt-4o-mini's price.
	wantCost := (3*(12*0.15+3*0.60) + (10*0.15 + 2*0.60)) / 1e6
	for _, group := range []string{"user", "org", "tier", "day"} {
		eventually(t, func() error {
			u := usage(t, c, "group_by="+group+"&user_id=org_9:user_usage")
			if len(u.Data) != 1 {
				return fmt.Errorf("group_by=%s: %+v", group, u)
			}
			d := u.Data[0]
			if d.Requests != 4 || d.InputTokens != 46 || d.OutputTokens != 11 || fmt.Sprintf("%.9f", d.CostUSD) != fmt.Sprintf("%.9f", wantCost) {
				return fmt.Errorf("group_by=%s: %+v, want 4 requests, 46 in, 11 out, $%.9f", group, d, wantCost)
			}
			want := map[string]string{"user": "org_9:user_usage", "org": "org_9", "tier": "q", "day": time.Now().UTC().Format(time.DateOnly)}[group]
			if d.Key != want {
				return fmt.Errorf("group_by=%s: key %q, want %q", group, d.Key, want)
			}
			return nil
		})
	}
	u := usage(t, c, "group_by=model&user_id=org_9:user_usage")
	if len(u.Data) != 1 || u.Data[0].Key != "gpt-4o-mini" {
		t.Fatalf("group_by=model: %+v", u)
	}
	u = usage(t, c, "group_by=session&user_id=org_9:user_usage")
	if len(u.Data) != 1 || u.Data[0].Key != m.SessionID {
		t.Fatalf("group_by=session: %+v", u)
	}
	wantError(t, do(t, c, "GET", "/v1/usage?group_by=color", "test-project-key", "", nil), 400, "invalid_request")
	wantError(t, do(t, c, "GET", "/v1/usage?from=yesterday", "test-project-key", "", nil), 400, "invalid_request")
	wantError(t, do(t, c, "GET", "/v1/usage", "", "", nil), 401, "invalid_api_key")
}

func TestCutOffAndProviderErrors(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "", quotaProject))
	c := tester.Client

	// A provider error with no usage costs nothing.
	m := mintToken(t, c, "test-project-key", `{"user_id":"user_err","tier":"q"}`)
	resp := do(t, c, "POST", "/v1/chat/completions", m.Token, chat("fail-500", ""), nil)
	if b := readBody(t, resp); resp.StatusCode != 500 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	eventually(t, func() error {
		u := usage(t, c, "user_id=user_err")
		if len(u.Data) != 1 || u.Data[0].Requests != 1 || u.Data[0].InputTokens != 0 || u.Data[0].OutputTokens != 0 || u.Data[0].CostUSD != 0 {
			return fmt.Errorf("after a provider error: %+v, want 1 request costing nothing", u.Data)
		}
		return nil
	})

	// A stream cut off before its usage is charged its reservation: the body size for the
	// prompt and the tier's max_output_tokens for the output.
	m = mintToken(t, c, "test-project-key", `{"user_id":"user_cut","tier":"q"}`)
	body := chat("drop-stream", `,"stream":true`)
	resp = do(t, c, "POST", "/v1/chat/completions", m.Token, body, nil)
	_, _ = io.Copy(io.Discard, resp.Body) // ends in an error: the stream was cut
	resp.Body.Close()
	eventually(t, func() error {
		u := usage(t, c, "user_id=user_cut")
		if len(u.Data) != 1 || u.Data[0].OutputTokens != 100 || u.Data[0].InputTokens != int64(len(body)) || u.Data[0].CostUSD <= 0 {
			return fmt.Errorf("after a cut-off stream: %+v, want %d in, 100 out, a cost", u.Data, len(body))
		}
		return nil
	})
}

func TestStreamReachesClientBeforeItEnds(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "", quotaProject))
	m := mintToken(t, tester.Client, "test-project-key", `{"user_id":"user_stream","tier":"q"}`)
	start := time.Now()
	resp := do(t, tester.Client, "POST", "/v1/chat/completions", m.Token, chat("slow-stream", `,"stream":true`), nil)
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first line %q: %v", line, err)
	}
	firstByte := time.Since(start)
	for err == nil {
		_, err = r.ReadString('\n')
	}
	total := time.Since(start)
	// The provider pauses 400 ms after each of its three chunks.
	if total < 1200*time.Millisecond || firstByte > total-800*time.Millisecond {
		t.Fatalf("first chunk after %s, stream ended after %s: the stream was buffered", firstByte, total)
	}
	t.Logf("first chunk after %s, end after %s", firstByte, total)
}

func TestQuotaErrors(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "", quotaProject))
	c := tester.Client

	m := mintToken(t, c, "test-project-key", `{"user_id":"user_q","tier":"q"}`)
	b := wantError(t, do(t, c, "POST", "/v1/chat/completions", m.Token, chat("gpt-4o-mini", `,"max_tokens":4000`), nil), 400, "max_tokens_exceeded")
	if !strings.Contains(string(b), "100") {
		t.Errorf("max_tokens_exceeded does not say the tier's cap: %s", b)
	}

	// The tiny tier's daily budget cannot hold one request's worst case.
	m = mintToken(t, c, "test-project-key", `{"user_id":"user_tiny","tier":"tiny"}`)
	resp := do(t, c, "POST", "/v1/chat/completions", m.Token, chat("gpt-4o-mini", ""), nil)
	wantError(t, resp, 429, "insufficient_quota")
	if resp.Header.Get("X-Should-Retry") != "false" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("insufficient_quota headers: %v", resp.Header)
	}
	if prov.count() != 0 {
		t.Fatal("a refused request reached the provider")
	}
}

func TestModelNotPriced(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "", `tier b {
				cost_per_month 10
				max_output_tokens 100
			}
			price gpt-4o-mini 0.15 0.60`))
	m := mintToken(t, tester.Client, "test-project-key", `{"user_id":"user_np","tier":"b"}`)
	wantError(t, do(t, tester.Client, "POST", "/v1/chat/completions", m.Token, chat("mystery-model", ""), nil), 400, "model_not_priced")
	if resp := do(t, tester.Client, "POST", "/v1/chat/completions", m.Token, chat("gpt-4o-mini-2024-07-18", ""), nil); readBody(t, resp) == nil || resp.StatusCode != 200 {
		t.Fatalf("a dated variant of a priced model: %d", resp.StatusCode)
	}
}

func TestRevokeAndMe(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "", quotaProject))
	c := tester.Client
	m1 := mintToken(t, c, "test-project-key", `{"user_id":"user_rv","tier":"q"}`)
	m2 := mintToken(t, c, "test-project-key", `{"user_id":"user_rv","tier":"q"}`)

	resp := do(t, c, "GET", "/v1/me", m1.Token, "", nil)
	b := readBody(t, resp)
	var me struct {
		UserID    string                     `json:"user_id"`
		Tier      string                     `json:"tier"`
		SessionID string                     `json:"session_id"`
		Limits    map[string]json.RawMessage `json:"limits"`
	}
	if err := json.Unmarshal(b, &me); err != nil || resp.StatusCode != 200 {
		t.Fatalf("me: %d %s", resp.StatusCode, b)
	}
	if me.UserID != "user_rv" || me.Tier != "q" || me.SessionID != m1.SessionID || string(me.Limits["requests_per_minute"]) != `{"limit":1000,"remaining":1000}` {
		t.Fatalf("me: %s", b)
	}

	revoke := func(body string) {
		resp := do(t, c, "POST", "/v1/auth/revoke", "test-project-key", body, nil)
		if b := readBody(t, resp); resp.StatusCode != 200 {
			t.Fatalf("revoke %s: %d %s", body, resp.StatusCode, b)
		}
	}
	revoke(`{"session_id":"` + m1.SessionID + `"}`)
	wantError(t, do(t, c, "POST", "/v1/chat/completions", m1.Token, chatBody, nil), 401, "invalid_api_key")
	wantError(t, do(t, c, "GET", "/v1/me", m1.Token, "", nil), 401, "invalid_api_key")
	if resp := do(t, c, "POST", "/v1/chat/completions", m2.Token, chatBody, nil); readBody(t, resp) == nil || resp.StatusCode != 200 {
		t.Fatalf("another session of the user: %d", resp.StatusCode)
	}
	revoke(`{"user_id":"user_rv"}`)
	wantError(t, do(t, c, "POST", "/v1/chat/completions", m2.Token, chatBody, nil), 401, "invalid_api_key")
	// Tokens issued after the revocation work at once (the revoke answers after its second).
	m3 := mintToken(t, c, "test-project-key", `{"user_id":"user_rv","tier":"q"}`)
	if resp := do(t, c, "POST", "/v1/chat/completions", m3.Token, chatBody, nil); readBody(t, resp) == nil || resp.StatusCode != 200 {
		t.Fatalf("a token minted after the revocation: %d %s", resp.StatusCode, resp.Header)
	}
	wantError(t, do(t, c, "POST", "/v1/auth/revoke", "test-project-key", `{}`, nil), 400, "invalid_request")
	wantError(t, do(t, c, "POST", "/v1/auth/revoke", "wrong-key", `{"user_id":"x"}`, nil), 401, "invalid_api_key")
}

// A prompt its body does not bound (an image by URL, stored context) reserves the tier's
// max_input_tokens: 100 bytes of JSON can cost tens of thousands of tokens.
func TestIndirectInputReservesMaxInputTokens(t *testing.T) {
	prov := newProvider(t)
	tester := gateway(t, config(prov.URL, "", "", `tier small {
				tokens_per_minute 50000
				max_output_tokens 100
			}
			tier sized {
				tokens_per_minute 50000
				max_output_tokens 100
				max_input_tokens 2000
			}
			price * 1.00 2.00`))
	c := tester.Client
	image := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/cat.png","detail":"high"}}]}]}`
	stored := `{"model":"gpt-4o-mini","previous_response_id":"resp_123","input":"and then?"}`

	m := mintToken(t, c, "test-project-key", `{"user_id":"user_img","tier":"small"}`)
	// The default 128000-token floor is over the tier's 50000 tokens per minute by itself.
	resp := do(t, c, "POST", "/v1/chat/completions", m.Token, image, nil)
	wantError(t, resp, 429, "rate_limit_exceeded")
	if resp.Header.Get("X-Should-Retry") != "false" {
		t.Errorf("a request over the limit by itself must not be retried: %v", resp.Header)
	}
	wantError(t, do(t, c, "POST", "/v1/responses", m.Token, stored, nil), 429, "rate_limit_exceeded")
	// A plain prompt of the same size is bounded by its body and goes through.
	if resp := do(t, c, "POST", "/v1/chat/completions", m.Token, chatBody, nil); readBody(t, resp) == nil || resp.StatusCode != 200 {
		t.Fatalf("a plain prompt: %d", resp.StatusCode)
	}

	m = mintToken(t, c, "test-project-key", `{"user_id":"user_img2","tier":"sized"}`)
	resp = do(t, c, "POST", "/v1/chat/completions", m.Token, image, nil)
	if b := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("with max_input_tokens 2000: %d %s", resp.StatusCode, b)
	}
	// 2000 reserved for the prompt + 100 for the output, before the settle.
	if got := resp.Header.Get("X-Ratelimit-Remaining-Tokens"); got != "47900" {
		t.Errorf("x-ratelimit-remaining-tokens %q, want 47900 (50000 - 2000 - 100)", got)
	}
}

// Every admitted response carries the limits: the provider's answer, and the error Caddy
// writes when the provider cannot be reached.
func TestRateLimitHeadersOnEveryAdmittedResponse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	tester := gateway(t, config(dead, "", "", ""))
	c := tester.Client
	m := mintToken(t, c, "test-project-key", `{"user_id":"user_unreachable"}`)
	resp := do(t, c, "POST", "/v1/chat/completions", m.Token, chat("gpt-4o-mini", ""), nil)
	readBody(t, resp)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	if got := resp.Header.Get("X-Ratelimit-Limit-Requests"); got != "100" {
		t.Errorf("x-ratelimit-limit-requests on a 502 = %q, want 100; headers %v", got, resp.Header)
	}
	if got := resp.Header.Get("X-Ratelimit-Remaining-Requests"); got != "99" {
		t.Errorf("x-ratelimit-remaining-requests on a 502 = %q, want 99", got)
	}

	prov := newProvider(t)
	tester = gateway(t, config(prov.URL, "", "", ""))
	resp = do(t, tester.Client, "POST", "/v1/chat/completions", m.Token, chat("gpt-4o-mini", ""), nil)
	readBody(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("X-Ratelimit-Limit-Requests") != "100" ||
		len(resp.Header.Values("X-Ratelimit-Limit-Requests")) != 1 {
		t.Errorf("a 200: status %d, x-ratelimit-limit-requests %q", resp.StatusCode, resp.Header.Values("X-Ratelimit-Limit-Requests"))
	}
}

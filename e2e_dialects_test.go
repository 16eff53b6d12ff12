package behest_test

// Every SDK's own API through one gateway: Anthropic Messages and Gemini beside OpenAI, each
// behind its own reverse_proxy, with one set of limits and one budget per end user.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// fakeAPI is a fake provider speaking one API's wire format; it records what it received.
type fakeAPI struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
	bodies   [][]byte
}

func newFakeAPI(t testing.TB, serve func(w http.ResponseWriter, r *http.Request, body []byte)) *fakeAPI {
	f := &fakeAPI{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.requests = append(f.requests, r)
		f.bodies = append(f.bodies, body)
		f.mu.Unlock()
		serve(w, r, body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) last(t *testing.T) (*http.Request, []byte) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		t.Fatal("the provider received no request")
	}
	return f.requests[len(f.requests)-1], f.bodies[len(f.bodies)-1]
}

func (f *fakeAPI) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// anthropicUsage is what the fake Anthropic reports: 10 new input tokens, 200 read from the
// cache, 100 written to it; the output is max_tokens, its worst case.
const (
	anthropicIn, anthropicCacheRead, anthropicCacheWrite = 10, 200, 100
	geminiPrompt, geminiCached, geminiThoughts           = 30, 20, 5
)

// newFakeAnthropic answers /v1/messages as Anthropic does, in JSON or as its SSE stream, with
// output_tokens equal to the request's max_tokens (the most it may use).
func newFakeAnthropic(t testing.TB) *fakeAPI {
	return newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		var req struct {
			Model     string `json:"model"`
			MaxTokens int64  `json:"max_tokens"`
			Stream    bool   `json:"stream"`
		}
		_ = json.Unmarshal(body, &req)
		w.Header().Set("anthropic-ratelimit-requests-remaining", "4999") // the gateway's account
		if r.URL.Path == "/v1/messages/count_tokens" {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"input_tokens":42}`)
			return
		}
		if r.URL.Path != "/v1/messages" || r.Header.Get("X-Api-Key") != "anthropic-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"type":"error","error":{"type":"authentication_error","message":"fake: %s without its key"}}`, r.URL.Path)
			return
		}
		model := req.Model + "-20251001"
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":%q,"content":[{"type":"text","text":"Hello."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d,"output_tokens":%d}}`,
				model, anthropicIn, anthropicCacheWrite, anthropicCacheRead, req.MaxTokens)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		events := []string{
			fmt.Sprintf(`event: message_start`+"\n"+`data: {"type":"message_start","message":{"id":"msg_2","type":"message","role":"assistant","model":%q,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d,"output_tokens":1}}}`, model, anthropicIn, anthropicCacheWrite, anthropicCacheRead),
			`event: content_block_start` + "\n" + `data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
			`event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}`,
			`event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo."}}`,
			`event: content_block_stop` + "\n" + `data: {"type":"content_block_stop","index":0}`,
			fmt.Sprintf(`event: message_delta`+"\n"+`data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":%d}}`, req.MaxTokens),
			`event: message_stop` + "\n" + `data: {"type":"message_stop"}`,
		}
		for _, e := range events {
			fmt.Fprint(w, e+"\n\n")
			w.(http.Flusher).Flush()
		}
	})
}

// newFakeGemini answers the Gemini API: candidates use the request's maxOutputTokens, less the
// thoughts, so output is the worst case; embedContent reports no usage, as the real API.
func newFakeGemini(t testing.TB) *fakeAPI {
	return newFakeAPI(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		var req struct {
			GenerationConfig struct {
				MaxOutputTokens int64 `json:"maxOutputTokens"`
			} `json:"generationConfig"`
		}
		_ = json.Unmarshal(body, &req)
		if r.Header.Get("X-Goog-Api-Key") != "gemini-secret" {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"error":{"code":403,"message":"fake: no key","status":"PERMISSION_DENIED"}}`)
			return
		}
		_, call, _ := strings.Cut(r.URL.Path, ":")
		model := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1beta/models/"), ":"+call)
		usage := func(candidates int64) string {
			return fmt.Sprintf(`{"promptTokenCount":%d,"candidatesTokenCount":%d,"cachedContentTokenCount":%d,"thoughtsTokenCount":%d,"totalTokenCount":%d}`,
				geminiPrompt, candidates, geminiCached, geminiThoughts, geminiPrompt+candidates+geminiThoughts)
		}
		out := max(req.GenerationConfig.MaxOutputTokens-geminiThoughts, 0)
		switch call {
		case "countTokens":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"totalTokens":42}`)
		case "embedContent":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"embedding":{"values":[0.1,-0.2,0.3]}}`)
		case "generateContent":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"candidates":[{"content":{"parts":[{"text":"Hello."}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":%s,"modelVersion":%q,"responseId":"r1"}`, usage(out), model)
		case "streamGenerateContent":
			w.Header().Set("Content-Type", "text/event-stream")
			for i, text := range []string{"Hel", "lo."} {
				finish := ""
				n := out / 2
				if i == 1 {
					finish, n = `,"finishReason":"STOP"`, out
				}
				fmt.Fprintf(w, "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":%q}],\"role\":\"model\"}%s,\"index\":0}],\"usageMetadata\":%s,\"modelVersion\":%q}\r\n\r\n", text, finish, usage(n), model)
				w.(http.Flusher).Flush()
			}
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
}

// dialectConfig is one gateway in front of the three APIs, each behind its own reverse_proxy
// that sets its own provider key, as an operator writes it.
func dialectConfig(openai, anthropic, gemini, project string) string {
	return fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	auto_https off
	skip_install_trust
}
http://127.0.0.1:%d {
	behest {
		issuer http://127.0.0.1:%d
		project p_456 {
			tenant t_123
			api_key test-project-key
			cors_origins http://localhost:3000
			default_tier 1
			tier 1 {
				requests_per_minute 1000
			}
			%s
		}
	}
	handle_path /anthropic/* {
		reverse_proxy %s {
			header_up x-api-key anthropic-secret
		}
	}
	handle_path /gemini/* {
		reverse_proxy %s {
			header_up x-goog-api-key gemini-secret
		}
	}
	handle {
		reverse_proxy %s {
			header_up Authorization "Bearer provider-secret"
		}
	}
}`, caddytest.Default.AdminPort, gatewayPort, gatewayPort, gatewayPort, project,
		strings.TrimPrefix(anthropic, "http://"), strings.TrimPrefix(gemini, "http://"), strings.TrimPrefix(openai, "http://"))
}

// dialectTiers: a roomy tier with an allowlist and an output cap, and prices with cached and
// cache-write prices (USD per 1M tokens).
const dialectTiers = `tier pro {
				requests_per_minute 1000
				max_output_tokens 100
				models gpt-4o-mini claude-haiku-* gemini-*-flash* gemini-embedding-*
			}
			price gpt-4o-mini 0.15 0.60
			price claude-haiku-4-5 1.00 5.00 0.10 1.25
			price gemini-2.5-flash 0.30 2.50 0.03
			price gemini-embedding-001 0.15 0`

// send makes a request to the gateway with a token in header (Authorization gets "Bearer ").
func send(t *testing.T, c *http.Client, method, path, header, token, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, gatewayURL(path), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if header == "Authorization" {
		token = "Bearer " + token
	}
	if token != "" {
		req.Header.Set(header, token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

type modelRow struct {
	Key          string  `json:"key"`
	Requests     int64   `json:"requests"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	CostUSD      float64 `json:"cost_usd"`
}

func usageByModel(t *testing.T, c *http.Client, user string) map[string]modelRow {
	t.Helper()
	resp := do(t, c, "GET", "/v1/usage?group_by=model&user_id="+user, "test-project-key", "", nil)
	b := readBody(t, resp)
	var u struct{ Data []modelRow }
	if err := json.Unmarshal(b, &u); err != nil || resp.StatusCode != 200 {
		t.Fatalf("usage: %d %s", resp.StatusCode, b)
	}
	rows := map[string]modelRow{}
	for _, r := range u.Data {
		rows[r.Key] = r
	}
	return rows
}

// noTokenSeen fails when a request the provider got carries the token, or misses its own key.
func noTokenSeen(t *testing.T, r *http.Request, token, keyHeader, key string) {
	t.Helper()
	for name, vs := range r.Header {
		for _, v := range vs {
			if strings.Contains(v, token) {
				t.Errorf("the provider saw the client's token in %s", name)
			}
		}
	}
	if got := r.Header.Values(keyHeader); len(got) != 1 || got[0] != key {
		t.Errorf("the provider saw %s %q, want its own key only", keyHeader, got)
	}
	if r.Header.Get("X-Behest-User-Id") == "" || r.Header.Get("X-Behest-Project-Id") != "p_456" {
		t.Errorf("the provider did not get the identity headers: %v", r.Header)
	}
}

func TestAnthropicThroughGateway(t *testing.T) {
	oai, ant, gem := newProvider(t), newFakeAnthropic(t), newFakeGemini(t)
	tester := gateway(t, dialectConfig(oai.URL, ant.URL, gem.URL, dialectTiers))
	c := tester.Client
	m := mintToken(t, c, "test-project-key", `{"user_id":"user_claude","tier":"pro"}`)

	// x-api-key (Anthropic's own header): JSON, max_tokens set from the tier.
	resp := send(t, c, "POST", "/anthropic/v1/messages", "X-Api-Key", m.Token,
		`{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"Hi"}]}`)
	if b := readBody(t, resp); resp.StatusCode != 200 || !strings.Contains(string(b), `"Hello."`) {
		t.Fatalf("messages: %d %s", resp.StatusCode, b)
	}
	if resp.Header.Get("Anthropic-Ratelimit-Requests-Remaining") != "" {
		t.Error("the provider's own rate-limit headers reached the client")
	}
	up, body := ant.last(t)
	noTokenSeen(t, up, m.Token, "X-Api-Key", "anthropic-secret")
	if !strings.Contains(string(body), `"max_tokens":100`) {
		t.Errorf("max_tokens not set from the tier: %s", body)
	}

	// Authorization: Bearer (what the SDKs send for authToken), streamed.
	resp = send(t, c, "POST", "/anthropic/v1/messages", "Authorization", m.Token,
		`{"model":"claude-haiku-4-5","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"Hi"}]}`)
	if b := readBody(t, resp); resp.StatusCode != 200 || !strings.Contains(string(b), "event: message_stop") {
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	up, _ = ant.last(t)
	noTokenSeen(t, up, m.Token, "X-Api-Key", "anthropic-secret")

	// count_tokens is free: passed on, nothing charged.
	resp = send(t, c, "POST", "/anthropic/v1/messages/count_tokens", "X-Api-Key", m.Token,
		`{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"Hi"}]}`)
	if b := readBody(t, resp); resp.StatusCode != 200 || !strings.Contains(string(b), `"input_tokens":42`) {
		t.Fatalf("count_tokens: %d %s", resp.StatusCode, b)
	}

	// Usage: the provider's own numbers, cache reads and writes as input, at the cached prices;
	// the free token count is in none of it.
	in := int64(anthropicIn + anthropicCacheRead + anthropicCacheWrite)
	perRequest := func(out int64) float64 {
		return (anthropicIn*1.00 + anthropicCacheRead*0.10 + anthropicCacheWrite*1.25 + float64(out)*5.00) / 1e6
	}
	eventually(t, func() error {
		rows := usageByModel(t, c, "user_claude")
		row := rows["claude-haiku-4-5"]
		if len(rows) != 1 {
			return fmt.Errorf("usage rows %v, want claude-haiku-4-5 alone", rows)
		}
		want := modelRow{Key: "claude-haiku-4-5", Requests: 2, InputTokens: 2 * in, OutputTokens: 150}
		if row.Requests != want.Requests || row.InputTokens != want.InputTokens || row.OutputTokens != want.OutputTokens ||
			!closeTo(row.CostUSD, perRequest(100)+perRequest(50)) {
			return fmt.Errorf("usage %+v (all: %v), want %+v at $%.9f", row, rows, want, perRequest(100)+perRequest(50))
		}
		return nil
	})
}

func closeTo(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestGeminiThroughGateway(t *testing.T) {
	oai, ant, gem := newProvider(t), newFakeAnthropic(t), newFakeGemini(t)
	tester := gateway(t, dialectConfig(oai.URL, ant.URL, gem.URL, dialectTiers))
	c := tester.Client
	m := mintToken(t, c, "test-project-key", `{"user_id":"user_gemini","tier":"pro"}`)
	const content = `{"contents":[{"role":"user","parts":[{"text":"Hi"}]}]}`

	resp := send(t, c, "POST", "/gemini/v1beta/models/gemini-2.5-flash:generateContent", "X-Goog-Api-Key", m.Token, content)
	if b := readBody(t, resp); resp.StatusCode != 200 || !strings.Contains(string(b), `"Hello."`) {
		t.Fatalf("generateContent: %d %s", resp.StatusCode, b)
	}
	up, body := gem.last(t)
	noTokenSeen(t, up, m.Token, "X-Goog-Api-Key", "gemini-secret")
	if !strings.Contains(string(body), `"generationConfig":{"maxOutputTokens":100}`) {
		t.Errorf("maxOutputTokens not set from the tier: %s", body)
	}

	resp = send(t, c, "POST", "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", "X-Goog-Api-Key", m.Token,
		`{"contents":[],"generationConfig":{"maxOutputTokens":40}}`)
	if b := readBody(t, resp); resp.StatusCode != 200 || !strings.Contains(string(b), `"finishReason":"STOP"`) {
		t.Fatalf("streamGenerateContent: %d %s", resp.StatusCode, b)
	}
	// A stream the gateway cannot meter as it goes, and a key in the URL, are refused.
	wantGeminiError(t, send(t, c, "POST", "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent", "X-Goog-Api-Key", m.Token, content), 400, "INVALID_ARGUMENT", "invalid_request")
	wantGeminiError(t, send(t, c, "POST", "/gemini/v1beta/models/gemini-2.5-flash:generateContent?key="+m.Token, "", "", content), 401, "UNAUTHENTICATED", "invalid_api_key")

	// Embeddings report no usage: charged the reservation (the body's size), never nothing.
	embed := `{"content":{"parts":[{"text":"embed me"}]}}`
	resp = send(t, c, "POST", "/gemini/v1beta/models/gemini-embedding-001:embedContent", "X-Goog-Api-Key", m.Token, embed)
	if b := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("embedContent: %d %s", resp.StatusCode, b)
	}
	// Token counts and the model listing are free.
	resp = send(t, c, "POST", "/gemini/v1beta/models/gemini-2.5-flash:countTokens", "X-Goog-Api-Key", m.Token, content)
	if b := readBody(t, resp); resp.StatusCode != 200 || !strings.Contains(string(b), "totalTokens") {
		t.Fatalf("countTokens: %d %s", resp.StatusCode, b)
	}

	in, perRequest := int64(geminiPrompt), func(out int64) float64 {
		return ((geminiPrompt-geminiCached)*0.30 + geminiCached*0.03 + float64(out)*2.50) / 1e6
	}
	eventually(t, func() error {
		rows := usageByModel(t, c, "user_gemini")
		flash, emb := rows["gemini-2.5-flash"], rows["gemini-embedding-001"]
		if flash.Requests != 2 || flash.InputTokens != 2*in || flash.OutputTokens != 140 || !closeTo(flash.CostUSD, perRequest(100)+perRequest(40)) {
			return fmt.Errorf("gemini-2.5-flash usage %+v, want 2 requests, %d in, 140 out, $%.9f", flash, 2*in, perRequest(100)+perRequest(40))
		}
		if emb.Requests != 1 || emb.InputTokens != int64(len(embed)) || emb.OutputTokens != 0 {
			return fmt.Errorf("embedding usage %+v, want its reservation: %d input tokens", emb, len(embed))
		}
		return nil
	})
}

// wantGeminiError checks a Gemini-shaped error: {"error":{"code","message","status"}}.
func wantGeminiError(t *testing.T, resp *http.Response, status int, rpcStatus, code string) {
	t.Helper()
	b := readBody(t, resp)
	var e struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Status  string `json:"status"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || resp.StatusCode != status || e.Error.Code != status ||
		e.Error.Status != rpcStatus || !strings.HasPrefix(e.Error.Message, code+": ") {
		t.Fatalf("got %d %s; want %d %s with %s in the message", resp.StatusCode, b, status, rpcStatus, code)
	}
}

// wantAnthropicError checks an Anthropic-shaped error: {"type":"error","error":{"type","message"}}.
func wantAnthropicError(t *testing.T, resp *http.Response, status int, typ, code string) {
	t.Helper()
	b := readBody(t, resp)
	var e struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || resp.StatusCode != status || e.Type != "error" ||
		e.Error.Type != typ || !strings.HasPrefix(e.Error.Message, code+": ") {
		t.Fatalf("got %d %s; want %d %s with %s in the message", resp.StatusCode, b, status, typ, code)
	}
}

// TestDialectErrors: each API gets the gateway's errors in its own shape, with the same
// statuses and retry headers, and a model outside the tier's list is refused before anything
// is reserved or sent.
func TestDialectErrors(t *testing.T) {
	oai, ant, gem := newProvider(t), newFakeAnthropic(t), newFakeGemini(t)
	tester := gateway(t, dialectConfig(oai.URL, ant.URL, gem.URL, dialectTiers+`
			tier broke {
				cost_per_day 0.000001
				max_output_tokens 100
			}`))
	c := tester.Client
	m := mintToken(t, c, "test-project-key", `{"user_id":"user_errors","tier":"pro"}`)
	broke := mintToken(t, c, "test-project-key", `{"user_id":"user_broke","tier":"broke"}`)
	const msgs, gen = "/anthropic/v1/messages", "/gemini/v1beta/models/%s:generateContent"

	wantAnthropicError(t, send(t, c, "POST", msgs, "X-Api-Key", "not-a-token", `{}`), 401, "authentication_error", "invalid_api_key")
	wantAnthropicError(t, send(t, c, "POST", msgs, "X-Api-Key", m.Token, `{"model":"claude-opus-4-1","max_tokens":10}`), 403, "permission_error", "model_not_allowed")
	wantAnthropicError(t, send(t, c, "POST", msgs, "X-Api-Key", m.Token, `{"model":"claude-haiku-4-5","max_tokens":1000}`), 400, "invalid_request_error", "max_tokens_exceeded")
	wantAnthropicError(t, send(t, c, "POST", msgs, "X-Api-Key", m.Token, `{"model":"claude-haiku-4-5","max_tokens":"ten"}`), 400, "invalid_request_error", "invalid_request")
	resp := send(t, c, "POST", msgs, "X-Api-Key", broke.Token, `{"model":"claude-haiku-4-5","max_tokens":10}`)
	if resp.Header.Get("x-should-retry") != "false" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("429 headers %v", resp.Header)
	}
	wantAnthropicError(t, resp, 429, "rate_limit_error", "insufficient_quota")

	wantGeminiError(t, send(t, c, "POST", fmt.Sprintf(gen, "gemini-2.5-flash"), "X-Goog-Api-Key", "not-a-token", `{}`), 401, "UNAUTHENTICATED", "invalid_api_key")
	wantGeminiError(t, send(t, c, "POST", fmt.Sprintf(gen, "gemini-2.5-pro"), "X-Goog-Api-Key", m.Token, `{}`), 403, "PERMISSION_DENIED", "model_not_allowed")
	wantGeminiError(t, send(t, c, "POST", fmt.Sprintf(gen, "gemini-2.5-flash"), "X-Goog-Api-Key", m.Token, `{"generationConfig":{"maxOutputTokens":1000}}`), 400, "INVALID_ARGUMENT", "max_tokens_exceeded")
	resp = send(t, c, "POST", fmt.Sprintf(gen, "gemini-2.5-flash"), "X-Goog-Api-Key", broke.Token, `{}`)
	if resp.Header.Get("x-should-retry") != "false" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("429 headers %v", resp.Header)
	}
	wantGeminiError(t, resp, 429, "RESOURCE_EXHAUSTED", "insufficient_quota")

	// Token counts are free, but held to the allowlist too.
	wantAnthropicError(t, send(t, c, "POST", msgs+"/count_tokens", "X-Api-Key", m.Token, `{"model":"claude-opus-4-1","messages":[]}`), 403, "permission_error", "model_not_allowed")
	wantGeminiError(t, send(t, c, "POST", "/gemini/v1beta/models/gemini-2.5-pro:countTokens", "X-Goog-Api-Key", m.Token, `{}`), 403, "PERMISSION_DENIED", "model_not_allowed")
	// What no dialect serves is refused in the shape of the API it belongs to.
	wantAnthropicError(t, send(t, c, "POST", msgs+"/batches", "X-Api-Key", m.Token, `{"requests":[]}`), 403, "permission_error", "permission_denied")
	wantGeminiError(t, send(t, c, "POST", "/gemini/v1beta/cachedContents", "X-Goog-Api-Key", m.Token, `{}`), 403, "PERMISSION_DENIED", "permission_denied")

	// OpenAI's shape, for the same refusals.
	wantError(t, send(t, c, "POST", "/v1/chat/completions", "Authorization", m.Token, chat("gpt-4o", "")), 403, "model_not_allowed")
	wantError(t, send(t, c, "POST", "/v1/chat/completions", "Authorization", m.Token, chat("gpt-4o-mini", `,"max_tokens":1000`)), 400, "max_tokens_exceeded")

	if n := ant.count() + gem.count() + oai.count(); n != 0 {
		t.Fatalf("the providers received %d refused requests", n)
	}
	// Nothing was reserved or recorded for the refused requests.
	if rows := usageByModel(t, c, "user_errors"); len(rows) != 0 {
		t.Errorf("refused requests were recorded: %v", rows)
	}
}

// TestMixedDialectsNeverOverspend: one end user's small daily budget holds across the three
// APIs: concurrent requests mixing them never push spend past it, whatever order they settle in.
func TestMixedDialectsNeverOverspend(t *testing.T) {
	oai, ant, gem := newProvider(t), newFakeAnthropic(t), newFakeGemini(t)
	// Each request's worst case is a few hundred thousandths of a dollar: some fit, most not.
	tester := gateway(t, dialectConfig(oai.URL, ant.URL, gem.URL, `tier tight {
				cost_per_day 0.002
				max_output_tokens 100
			}
			price gpt-4o-mini 2.00 4.00
			price claude-haiku-4-5 2.00 4.00 0.20 2.50
			price gemini-2.5-flash 2.00 4.00 0.20`))
	c := tester.Client
	m := mintToken(t, c, "test-project-key", `{"user_id":"user_mixed","tier":"tight"}`)
	// The fake Anthropic reports 310 input tokens (most of them cache reads and writes): the
	// prompt they came from is in the body, as with the real API, so the body bounds them.
	system := `"system":"` + strings.Repeat("Be brief. ", 32) + `",`
	calls := []struct{ path, header, body string }{
		{"/v1/chat/completions", "Authorization", chat("gpt-4o-mini", `,"max_tokens":100`)},
		{"/anthropic/v1/messages", "X-Api-Key", `{"model":"claude-haiku-4-5","max_tokens":100,` + system + `"messages":[{"role":"user","content":"Hi"}]}`},
		{"/anthropic/v1/messages", "Authorization", `{"model":"claude-haiku-4-5","max_tokens":100,"stream":true,` + system + `"messages":[{"role":"user","content":"Hi"}]}`},
		{"/gemini/v1beta/models/gemini-2.5-flash:generateContent", "X-Goog-Api-Key", `{"contents":[{"parts":[{"text":"Hi"}]}]}`},
		{"/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", "X-Goog-Api-Key", `{"contents":[{"parts":[{"text":"Hi"}]}]}`},
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for i := range 40 {
		wg.Go(func() {
			call := calls[i%len(calls)]
			resp := send(t, c, "POST", call.path, call.header, m.Token, call.body)
			readBody(t, resp)
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if statuses[200] == 0 || statuses[429] == 0 || statuses[200]+statuses[429] != 40 {
		t.Fatalf("statuses %v: want some admitted and the rest refused with 429", statuses)
	}
	time.Sleep(100 * time.Millisecond) // the last settles
	var spent float64
	for _, row := range usageByModel(t, c, "user_mixed") {
		spent += row.CostUSD
	}
	if spent > 0.002+1e-12 {
		t.Fatalf("spent $%.6f of a $0.002 daily budget (%v)", spent, statuses)
	}
	t.Logf("%v; spent $%.6f of $0.002", statuses, spent)
}

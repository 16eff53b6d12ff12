package behest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// benchHandler provisions a handler with quotas, prices and metering on, over an embedded store
// in dir, and mints n users' tokens.
func benchHandler(b *testing.B, n int) (*Handler, []string) {
	b.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	h := &Handler{
		SigningKey: "testdata/keys/ed25519.pem", // Caddy's storage needs a config: a key file does not
		StoreRaw:   []byte(fmt.Sprintf(`{"type":"embedded","path":%q}`, filepath.Join(b.TempDir(), "l.db"))),
		Projects: []*Project{{ID: "p_bench", Tenant: "t_bench", APIKeys: []string{"bench-key"},
			Tiers: []*Tier{{Name: "1", RequestsPerMinute: 1e9, TokensPerMinute: 1e12, TokensPerDay: 1e12, CostPerDay: 1e6,
				ConcurrentRequests: 1000, MaxOutputTokens: 1024}},
			Prices:       map[string]Price{"*": {Input: 1, Output: 2}},
			CostPerMonth: 1e8}},
	}
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Cleanup() })
	tokens := make([]string, n)
	for i := range tokens {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/v1/auth/mint", strings.NewReader(fmt.Sprintf(`{"user_id":"org_%d:user_%d"}`, i%10, i)))
		r.Header.Set("Authorization", "Bearer bench-key")
		if err := h.ServeHTTP(rec, r, nil); err != nil || rec.Code != 200 {
			b.Fatalf("mint: %d %s", rec.Code, rec.Body)
		}
		tokens[i] = strings.Split(strings.Split(rec.Body.String(), `"token":"`)[1], `"`)[0]
	}
	return h, tokens
}

// providerReply is the next handler: a provider's answer, written as reverse_proxy would.
func providerReply(contentType string, chunks ...string) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(200)
		for _, c := range chunks {
			_, _ = io.WriteString(w, c)
		}
		return nil
	})
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkHandler is behest's own cost per request, in process: verify a token (cached),
// admit, rewrite, meter the response, settle; the next handler stands for the provider.
func BenchmarkHandler(b *testing.B) {
	for _, bc := range []struct {
		name, path, header, body, contentType string
		reply                                 []string
	}{
		{"openai", "/v1/chat/completions", "Authorization", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}`,
			"application/json", []string{`{"id":"chatcmpl-1","object":"chat.completion","created":1764201234,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}`}},
		{"openai-stream", "/v1/chat/completions", "Authorization", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello"}]}`,
			"text/event-stream", []string{
				"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello there,\"}}],\"usage\":null}\n\n",
				"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" how can I help?\"},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
				"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":9,\"total_tokens\":21}}\n\n",
				"data: [DONE]\n\n"}},
		{"anthropic", "/v1/messages", "X-Api-Key", `{"model":"claude-haiku-4-5","max_tokens":256,"messages":[{"role":"user","content":"Say hello"}]}`,
			"application/json", []string{`{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5-20251001","content":[{"type":"text","text":"Hello there."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":9}}`}},
		{"gemini", "/v1beta/models/gemini-2.5-flash:generateContent", "X-Goog-Api-Key", `{"contents":[{"parts":[{"text":"Say hello"}]}]}`,
			"application/json", []string{`{"candidates":[{"content":{"parts":[{"text":"Hello there."}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":9,"totalTokenCount":21},"modelVersion":"gemini-2.5-flash"}`}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h, tokens := benchHandler(b, 100)
			next := providerReply(bc.contentType, bc.reply...)
			body := []byte(bc.body)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r, _ := http.NewRequest("POST", bc.path, bytes.NewReader(body))
				r.ContentLength = int64(len(body))
				tok := tokens[i%len(tokens)]
				i++
				if bc.header == "Authorization" {
					tok = "Bearer " + tok
				}
				r.Header.Set(bc.header, tok)
				r.Header.Set("Content-Type", "application/json")
				repl := caddy.NewReplacer()
				r = caddyhttp.PrepareRequest(r, repl, w, nil)
				clear(w.h)
				if err := h.ServeHTTP(w, r, next); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package loadtest

import (
	"context"
	"net/http"
	"strings"
)

// Scenario is one kind of model request sent through the gateway.
type Scenario struct {
	Name, Path, Body string
	// Header carries the token: Authorization (as Bearer), x-api-key or x-goog-api-key, the
	// header each API's SDK sends its key in.
	Header string
}

// Scenarios are the three APIs, each as JSON and streamed.
var Scenarios = []Scenario{
	{"openai", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}`, "Authorization"},
	{"openai-stream", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello"}]}`, "Authorization"},
	{"anthropic", "/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":256,"messages":[{"role":"user","content":"Say hello"}]}`, "x-api-key"},
	{"anthropic-stream", "/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"Say hello"}]}`, "x-api-key"},
	{"gemini", "/v1beta/models/gemini-2.5-flash:generateContent", `{"contents":[{"parts":[{"text":"Say hello"}]}]}`, "x-goog-api-key"},
	{"gemini-stream", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", `{"contents":[{"parts":[{"text":"Say hello"}]}]}`, "x-goog-api-key"},
}

// Stream tells whether the scenario's answer is a stream of server-sent events.
func (s Scenario) Stream() bool { return strings.HasSuffix(s.Name, "-stream") }

// HeaderValue is what s.Header carries for token.
func (s Scenario) HeaderValue(token string) string {
	if s.Header == "Authorization" {
		return "Bearer " + token
	}
	return token
}

// NewRequest is the scenario's request to base (scheme://host:port) with token.
func (s Scenario) NewRequest(ctx context.Context, base, token string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+s.Path, strings.NewReader(s.Body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(s.Header, s.HeaderValue(token))
	return req, nil
}

package meter

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestRecognize: every dialect's paths, by method and by the headers its SDK sends, and the
// paths refused for their case or form.
func TestRecognize(t *testing.T) {
	tests := []struct {
		method, target string
		header         []string
		dialect        Dialect
		kind           Kind
		endpoint       Endpoint
		model          string
		err            bool
	}{
		// OpenAI, whatever the prefix.
		{"POST", "/v1/chat/completions", nil, OpenAI, Metered, ChatCompletions, "", false},
		{"POST", "/openai/v1/chat/completions", nil, OpenAI, Metered, ChatCompletions, "", false},
		{"POST", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", nil, OpenAI, Metered, ChatCompletions, "", false},
		{"POST", "/chat/completions", nil, OpenAI, Metered, ChatCompletions, "", false},
		{"POST", "/v1/completions", nil, OpenAI, Metered, Completions, "", false},
		{"POST", "/v1/responses", nil, OpenAI, Metered, Responses, "", false},
		{"POST", "/api/openai/v1/responses", nil, OpenAI, Metered, Responses, "", false},
		{"POST", "/v1/embeddings", nil, OpenAI, Metered, Embeddings, "", false},
		{"GET", "/v1/models", nil, OpenAI, Free, models, "", false},
		{"GET", "/v1/models/gpt-4o-mini", nil, OpenAI, Free, models, "", false},
		{"GET", "/openai/v1/models", nil, OpenAI, Free, models, "", false},
		{"HEAD", "/v1/models", nil, OpenAI, Free, models, "", false},
		{"GET", "/v1/models", []string{"Upgrade", "websocket"}, OpenAI, NotServed, Other, "", false},
		{"POST", "/v1/models", nil, OpenAI, NotServed, Other, "", false},
		{"DELETE", "/v1/models/ft:gpt-4o:org", nil, OpenAI, NotServed, Other, "", false},
		{"GET", "/v1/files/models", nil, OpenAI, NotServed, Other, "", false},
		{"GET", "/v1/models/x/y", nil, OpenAI, NotServed, Other, "", false},
		{"GET", "/v1/chat/completions", nil, OpenAI, NotServed, Other, "", false},
		{"GET", "/v1/responses/resp_123", nil, OpenAI, NotServed, Other, "", false},
		{"POST", "/v1/chat/completions/chatcmpl-123/messages", nil, OpenAI, NotServed, Other, "", false},
		{"POST", "/v1/images/generations", nil, OpenAI, NotServed, Other, "", false},
		{"POST", "/v1/xcompletions", nil, OpenAI, NotServed, Other, "", false},
		{"POST", "/v1/chat/completionsx", nil, OpenAI, NotServed, Other, "", false},
		{"POST", "/", nil, OpenAI, NotServed, Other, "", false},
		// Another case than the API's, where it changes what the path names: refused.
		{"POST", "/v1/CHAT/completions", nil, OpenAI, NotServed, Other, "", true},
		{"POST", "/v1/Chat/Completions", nil, OpenAI, NotServed, Other, "", true},
		{"POST", "/v1/EMBEDDINGS", nil, OpenAI, NotServed, Other, "", true},
		{"GET", "/v1/MODELS", nil, OpenAI, NotServed, Other, "", true},
		{"POST", "/V1/chat/completions", nil, OpenAI, Metered, ChatCompletions, "", false}, // the prefix is the Caddyfile's
		{"POST", "/v1/IMAGES/generations", nil, OpenAI, NotServed, Other, "", false},

		// Anthropic.
		{"POST", "/v1/messages", nil, Anthropic, Metered, Messages, "", false},
		{"POST", "/anthropic/v1/messages", nil, Anthropic, Metered, Messages, "", false},
		{"POST", "/v1/messages/count_tokens", nil, Anthropic, Free, messagesCountTokens, "", false},
		{"GET", "/v1/messages", nil, Anthropic, NotServed, Other, "", false},

		{"GET", "/v1/models", []string{"anthropic-version", "2023-06-01"}, Anthropic, Free, models, "", false},
		{"POST", "/v1/Messages", nil, Anthropic, NotServed, Other, "", true},
		{"POST", "/v1/messages/COUNT_TOKENS", nil, Anthropic, NotServed, Other, "", true},

		// Gemini.
		{"POST", "/v1beta/models/gemini-2.5-flash:generateContent", nil, Gemini, Metered, GenerateContent, "gemini-2.5-flash", false},
		{"POST", "/gemini/v1beta/models/gemini-2.5-flash:generateContent", nil, Gemini, Metered, GenerateContent, "gemini-2.5-flash", false},
		{"POST", "/v1/models/gemini-2.5-pro:generateContent", nil, Gemini, Metered, GenerateContent, "gemini-2.5-pro", false},
		{"POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", nil, Gemini, Metered, StreamGenerateContent, "gemini-2.5-flash", false},
		{"POST", "/v1beta/models/gemini-embedding-001:embedContent", nil, Gemini, Metered, EmbedContent, "gemini-embedding-001", false},
		{"POST", "/v1beta/models/gemini-embedding-001:batchEmbedContents", nil, Gemini, Metered, BatchEmbedContents, "gemini-embedding-001", false},
		{"POST", "/v1beta/models/gemini-2.5-flash:countTokens", nil, Gemini, Free, countTokens, "gemini-2.5-flash", false},
		{"GET", "/v1beta/models", nil, Gemini, Free, models, "", false},
		{"GET", "/v1beta/models/gemini-2.5-flash", nil, Gemini, Free, models, "", false},
		{"GET", "/v1/models", []string{"x-goog-api-key", "k"}, Gemini, Free, models, "", false},
		{"POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", nil, Gemini, NotServed, Other, "", true},
		{"POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=json", nil, Gemini, NotServed, Other, "", true},
		{"POST", "/v1beta/models/gemini-2.5-flash:GenerateContent", nil, Gemini, NotServed, Other, "", true},
		{"POST", "/v1beta/Models/gemini-2.5-flash:generateContent", nil, Gemini, NotServed, Other, "", true},
		{"POST", "/v1beta/models/:generateContent", nil, Gemini, NotServed, Other, "", true},
		{"GET", "/v1beta/models/gemini-2.5-flash:generateContent", nil, Gemini, NotServed, Other, "", false},
		{"POST", "/v1beta/models/gemini-2.5-flash:predictLongRunning", nil, Gemini, NotServed, Other, "", false},
		// Not served, in the shape of the API the request looks like.
		{"POST", "/v1beta/tunedModels/my-model:generateContent", nil, Gemini, NotServed, Other, "", false},
		{"POST", "/v1beta/cachedContents", nil, Gemini, NotServed, Other, "", false},
		{"POST", "/gemini/v1beta/files", nil, Gemini, NotServed, Other, "", false},
		{"POST", "/v1/files", []string{"x-goog-api-client", "google-genai-sdk/2"}, Gemini, NotServed, Other, "", false},
		{"POST", "/v1/messages/batches", nil, Anthropic, NotServed, Other, "", false},
		{"GET", "/v1/files", []string{"anthropic-version", "2023-06-01"}, Anthropic, NotServed, Other, "", false},
		{"POST", "/v1/images/generations", []string{"x-stainless-lang", "js"}, OpenAI, NotServed, Other, "", false},
		// A served path is its API's whatever token header carries the token.
		{"POST", "/v1/chat/completions", []string{"x-goog-api-key", "k"}, OpenAI, Metered, ChatCompletions, "", false},
	}
	for _, tt := range tests {
		rt, err := recognize(t, tt.method, tt.target, tt.header...)
		if (err != nil) != tt.err {
			t.Errorf("%s %s: err = %v, want error %v", tt.method, tt.target, err, tt.err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("%s %s: %v is not an ErrInvalidRequest", tt.method, tt.target, err)
			}
			if rt.Dialect != tt.dialect {
				t.Errorf("%s %s: error in the %s dialect, want %s", tt.method, tt.target, rt.Dialect.Name(), tt.dialect.Name())
			}
			continue
		}
		if rt.Dialect != tt.dialect || rt.Kind != tt.kind || rt.Endpoint != tt.endpoint || rt.Model != tt.model {
			t.Errorf("%s %s: %s %v %q model %q; want %s %v %q model %q", tt.method, tt.target,
				rt.Dialect.Name(), rt.Kind, rt.Endpoint, rt.Model, tt.dialect.Name(), tt.kind, tt.endpoint, tt.model)
		}
	}
}

// feed writes data to p in pieces of size bytes (all at once when size <= 0).
func feed(p Parser, data []byte, size int) (Usage, bool) {
	if size <= 0 {
		size = len(data) + 1
	}
	for len(data) > 0 {
		n := min(size, len(data))
		if got, err := p.Write(data[:n]); got != n || err != nil {
			panic(fmt.Sprintf("Write = %d, %v; want %d, nil", got, err, n))
		}
		data = data[n:]
	}
	return p.Usage()
}

// checkDialectSplits checks that data gives want whole, a byte at a time, in pieces, and split
// in two at every byte.
func checkDialectSplits(t *testing.T, newParser func() Parser, data []byte, want Usage, wantOK bool) {
	t.Helper()
	check := func(how string, got Usage, ok bool) {
		t.Helper()
		if ok != wantOK || got != want {
			t.Fatalf("%s: Usage() = %+v, %v; want %+v, %v", how, got, ok, want, wantOK)
		}
	}
	for _, size := range []int{0, 1, 2, 3, 7, 64, 4096} {
		got, ok := feed(newParser(), data, size)
		check(fmt.Sprintf("pieces of %d", size), got, ok)
	}
	for i := 0; i <= len(data); i++ {
		p := newParser()
		p.Write(data[:i])
		p.Write(data[i:])
		got, ok := p.Usage()
		check(fmt.Sprintf("split at %d", i), got, ok)
	}
}

// usageCases are recorded responses of each dialect, JSON and SSE, with the usage they carry.
var usageCases = []struct {
	dialect     Dialect
	endpoint    Endpoint
	fixture     string
	contentType string
	want        Usage
	ok          bool
}{
	{OpenAI, ChatCompletions, "chat.json", jsonType, Usage{InputTokens: 1117, OutputTokens: 46, Model: "gpt-4o-2024-08-06"}, true},
	{OpenAI, ChatCompletions, "chat_cached.json", jsonType, Usage{InputTokens: 2006, CachedInputTokens: 1920, OutputTokens: 300, Model: "gpt-4o-2024-08-06"}, true},
	{OpenAI, ChatCompletions, "chat_stream_usage.sse", sseType, Usage{InputTokens: 19, OutputTokens: 18, Model: "gpt-4o-mini-2024-07-18"}, true},
	{OpenAI, ChatCompletions, "chat_stream_no_usage.sse", sseType, Usage{}, false},
	{OpenAI, Responses, "responses.json", jsonType, Usage{InputTokens: 36, OutputTokens: 87, Model: "gpt-4.1-2025-04-14"}, true},
	{OpenAI, Responses, "responses_stream_cached.sse", sseType, Usage{InputTokens: 3000, CachedInputTokens: 2048, OutputTokens: 12, Model: "gpt-4.1-2025-04-14"}, true},
	{Anthropic, Messages, "anthropic/message.json", jsonType,
		Usage{InputTokens: 1820, CachedInputTokens: 300, CacheWriteTokens: 1500, OutputTokens: 30, Model: "claude-sonnet-4-5-20250929"}, true},
	{Anthropic, Messages, "anthropic/stream.sse", sseType,
		Usage{InputTokens: 2520, CachedInputTokens: 2048, OutputTokens: 12, Model: "claude-haiku-4-5-20251001"}, true},
	{Anthropic, Messages, "anthropic/stream_cache_write.sse", sseType,
		Usage{InputTokens: 1825, CacheWriteTokens: 1800, OutputTokens: 64, Model: "claude-sonnet-4-5-20250929"}, true},
	{Anthropic, Messages, "anthropic/stream_cut.sse", sseType, Usage{}, false},
	{Gemini, GenerateContent, "gemini/generate.json", jsonType, Usage{InputTokens: 8, OutputTokens: 2, Model: "gemini-2.5-flash"}, true},
	{Gemini, StreamGenerateContent, "gemini/stream.sse", sseType, Usage{InputTokens: 8, CachedInputTokens: 4, OutputTokens: 37, Model: "gemini-2.5-flash"}, true},
	{Gemini, StreamGenerateContent, "gemini/stream_cut.sse", sseType, Usage{}, false},
	{Gemini, EmbedContent, "gemini/embed.json", jsonType, Usage{}, false},
}

// TestDialectUsage: each dialect reads its recorded responses' usage, however the body is split
// across writes, and never takes text that mentions usage for usage.
func TestDialectUsage(t *testing.T) {
	for _, tc := range usageCases {
		t.Run(tc.dialect.Name()+"/"+tc.fixture, func(t *testing.T) {
			data := fixture(t, tc.fixture)
			rt := Route{Dialect: tc.dialect, Kind: Metered, Endpoint: tc.endpoint}
			checkDialectSplits(t, func() Parser { return tc.dialect.NewParser(rt, tc.contentType) }, data, tc.want, tc.ok)
		})
	}
}

// TestDialectConformance is what every dialect must do, whatever its API.
func TestDialectConformance(t *testing.T) {
	names := map[string]bool{}
	for _, d := range Dialects() {
		t.Run(d.Name(), func(t *testing.T) {
			if d.Name() == "" || names[d.Name()] {
				t.Fatalf("name %q is empty or taken", d.Name())
			}
			names[d.Name()] = true

			// Errors: valid JSON, with the gateway's code and message somewhere a developer sees.
			for _, status := range []int{400, 401, 403, 404, 405, 413, 429, 500, 503} {
				e := Error{Status: status, Code: "some_code", Type: "some_type", Param: "p", Message: `A "quoted" <message> é.`}
				body := d.ErrorBody(e)
				var v any
				if err := json.Unmarshal(body, &v); err != nil {
					t.Fatalf("ErrorBody(%d) is not JSON: %v: %s", status, err, body)
				}
				text := string(body)
				if !strings.Contains(text, "some_code") || !strings.Contains(text, `A \"quoted\"`) {
					t.Errorf("ErrorBody(%d) = %s lacks the code or the message", status, body)
				}
			}

			// Browser headers: lower case, and the usual ones there.
			hdrs := d.RequestHeaders()
			for _, h := range hdrs {
				if h != strings.ToLower(h) || h == "" {
					t.Errorf("request header %q is not lower case", h)
				}
			}
			if !slices.Contains(hdrs, "content-type") || !slices.Contains(hdrs, "authorization") {
				t.Errorf("request headers %v lack content-type or authorization", hdrs)
			}

			// A parser takes any input, never fails, and a fresh one reports nothing.
			for _, ct := range []string{jsonType, sseType, ""} {
				p := d.NewParser(Route{Dialect: d}, ct)
				if _, ok := p.Usage(); ok {
					t.Errorf("an empty %q body reports usage", ct)
				}
				garbage := []byte("\x00{garbage\n\ndata: [\n\n")
				if n, err := p.Write(garbage); n != len(garbage) || err != nil {
					t.Errorf("Write = %d, %v", n, err)
				}
			}
		})
	}
}

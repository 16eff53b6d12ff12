package meter

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckPath(t *testing.T) {
	for _, tt := range []struct {
		path string
		ok   bool
	}{
		{"/v1/chat/completions", true},
		{"/anthropic/v1/messages", true},
		{"/v1beta/models/gemini-2.0-flash:streamGenerateContent", true},
		{"/", true},
		{"/v1/chat%2fcompletions", false},
		{"/v1/chat%2Fcompletions", false},
		{"/v1/files%23/chat/completions", false},
		{"/v1/%63hat/completions", false},
		{"//v1/chat/completions", false},
		{"/v1//chat/completions", false},
		{"/v1/audio/../chat/completions", false},
		{"/v1/./chat/completions", false},
		{"/v1/chat/completions/.", false},
		{"/v1/chat/completions/", false},
		{`/v1\chat/completions`, false},
		{"/v1/chat/completions;x=1", false},
		{"v1/chat/completions", false},
		{"", false},
	} {
		err := CheckPath(tt.path)
		if (err == nil) != tt.ok {
			t.Errorf("CheckPath(%q) = %v, want ok %v", tt.path, err, tt.ok)
		}
		if err != nil && (!errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "canonical")) {
			t.Errorf("CheckPath(%q) = %v: want an ErrInvalidRequest saying what is wrong", tt.path, err)
		}
	}
}

func TestInspectFields(t *testing.T) {
	tests := []struct {
		name string
		path string
		body string
		want RequestInfo
	}{
		{"chat, no cap", "/v1/chat/completions",
			`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`,
			RequestInfo{Endpoint: ChatCompletions, Model: "gpt-4o-mini", Choices: 1}},
		{"chat max_tokens, stream", "/v1/chat/completions",
			`{"model":"gpt-4o-mini","stream":true,"max_tokens":256,"messages":[]}`,
			RequestInfo{Endpoint: ChatCompletions, Model: "gpt-4o-mini", Stream: true, MaxOutput: 256, HasMaxOutput: true, MaxOutputField: "max_tokens", Choices: 1}},
		{"chat max_completion_tokens", "/v1/chat/completions",
			`{"model":"o3-mini","max_completion_tokens":4096}`,
			RequestInfo{Endpoint: ChatCompletions, Model: "o3-mini", MaxOutput: 4096, HasMaxOutput: true, MaxOutputField: "max_completion_tokens", Choices: 1}},
		{"chat both caps: the larger", "/v1/chat/completions",
			`{"model":"m","max_tokens":900,"max_completion_tokens":100}`,
			RequestInfo{Endpoint: ChatCompletions, Model: "m", MaxOutput: 900, HasMaxOutput: true, MaxOutputField: "max_tokens", Choices: 1}},
		{"chat both caps, max_completion_tokens larger", "/v1/chat/completions",
			`{"model":"m","max_tokens":100,"max_completion_tokens":900}`,
			RequestInfo{Endpoint: ChatCompletions, Model: "m", MaxOutput: 900, HasMaxOutput: true, MaxOutputField: "max_completion_tokens", Choices: 1}},
		{"chat null max_completion_tokens: max_tokens", "/v1/chat/completions",
			`{"model":"m","max_tokens":100,"max_completion_tokens":null}`,
			RequestInfo{Endpoint: ChatCompletions, Model: "m", MaxOutput: 100, HasMaxOutput: true, MaxOutputField: "max_tokens", Choices: 1}},
		{"chat null cap, null stream, null model", "/v1/chat/completions",
			`{"model":null,"stream":null,"max_tokens":null,"max_completion_tokens":null}`,
			RequestInfo{Endpoint: ChatCompletions, Choices: 1}},
		{"chat stream false", "/v1/chat/completions",
			`{"model":"m","stream":false}`,
			RequestInfo{Endpoint: ChatCompletions, Model: "m", Choices: 1}},
		{"chat n", "/v1/chat/completions",
			`{"model":"m","n":4,"max_tokens":10}`,
			RequestInfo{Endpoint: ChatCompletions, Model: "m", MaxOutput: 10, HasMaxOutput: true, MaxOutputField: "max_tokens", Choices: 4}},
		{"escaped key is the same key", "/v1/chat/completions",
			`{"model":"m","max\u005ftokens":77}`,
			RequestInfo{Endpoint: ChatCompletions, Model: "m", MaxOutput: 77, HasMaxOutput: true, MaxOutputField: "max_tokens", Choices: 1}},
		{"escaped model", "/v1/chat/completions",
			`{"model":"gpt-4o\u002dmini"}`,
			RequestInfo{Endpoint: ChatCompletions, Model: "gpt-4o-mini", Choices: 1}},
		{"case differs: not the field", "/v1/chat/completions",
			`{"model":"m","MAX_TOKENS":"abc","Stream":"yes"}`,
			RequestInfo{Endpoint: ChatCompletions, Model: "m", Choices: 1}},
		{"whitespace everywhere", "/v1/chat/completions",
			" \n{ \"model\" : \"m\" ,\r\n \"max_tokens\"\t:\t12 , \"stream\" : true } \n",
			RequestInfo{Endpoint: ChatCompletions, Model: "m", Stream: true, MaxOutput: 12, HasMaxOutput: true, MaxOutputField: "max_tokens", Choices: 1}},
		{"nested max_tokens is not the cap", "/v1/chat/completions",
			`{"model":"m","metadata":{"max_tokens":"x"},"messages":[{"max_tokens":5}]}`,
			RequestInfo{Endpoint: ChatCompletions, Model: "m", Choices: 1}},
		{"completions", "/v1/completions",
			`{"model":"gpt-3.5-turbo-instruct","prompt":"Say this is a test","max_tokens":7,"stream":true}`,
			RequestInfo{Endpoint: Completions, Model: "gpt-3.5-turbo-instruct", Stream: true, MaxOutput: 7, HasMaxOutput: true, MaxOutputField: "max_tokens", Choices: 1}},
		{"completions ignores max_completion_tokens", "/v1/completions",
			`{"model":"m","max_completion_tokens":7}`,
			RequestInfo{Endpoint: Completions, Model: "m", Choices: 1}},
		{"completions n, best_of, prompts", "/v1/completions",
			`{"model":"m","prompt":["a","b","c"],"n":2,"best_of":5,"max_tokens":7}`,
			RequestInfo{Endpoint: Completions, Model: "m", MaxOutput: 7, HasMaxOutput: true, MaxOutputField: "max_tokens", Choices: 15}},
		{"completions token-id prompt is one", "/v1/completions",
			`{"model":"m","prompt":[1212,318,257],"n":2}`,
			RequestInfo{Endpoint: Completions, Model: "m", Choices: 2}},
		{"completions token-id prompts", "/v1/completions",
			`{"model":"m","prompt":[[1212,318],[257]]}`,
			RequestInfo{Endpoint: Completions, Model: "m", Choices: 2}},
		{"responses", "/v1/responses",
			`{"model":"gpt-4.1","input":"hi","max_output_tokens":500,"stream":true}`,
			RequestInfo{Endpoint: Responses, Model: "gpt-4.1", Stream: true, MaxOutput: 500, HasMaxOutput: true, MaxOutputField: "max_output_tokens", Choices: 1}},
		{"responses ignores max_tokens and n", "/v1/responses",
			`{"model":"gpt-4.1","max_tokens":5,"n":3}`,
			RequestInfo{Endpoint: Responses, Model: "gpt-4.1", Choices: 1}},
		{"embeddings", "/v1/embeddings",
			`{"model":"text-embedding-3-small","input":["a","b"],"max_tokens":5}`,
			RequestInfo{Endpoint: Embeddings, NoOutput: true, Model: "text-embedding-3-small", Choices: 1}},
		{"other endpoint: body not read", "/v1/audio/speech",
			`not json at all`,
			RequestInfo{Endpoint: Other, Choices: 1}},
		{"big integer elsewhere", "/v1/chat/completions",
			`{"model":"m","seed":12345678901234567890}`,
			RequestInfo{Endpoint: ChatCompletions, Model: "m", Choices: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := openAIInspect(tt.path, []byte(tt.body))
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			got.valid = checkedBody{} // where the body was: not part of what was read
			if got != tt.want {
				t.Errorf("Inspect =\n %+v, want\n %+v", got, tt.want)
			}
		})
	}
}

func TestInspectRejects(t *testing.T) {
	tests := []struct {
		name  string
		path  string
		body  string
		param string // the field the error must name; "" for the whole body
	}{
		{"empty", "/v1/chat/completions", ``, ""},
		{"not json", "/v1/chat/completions", `model=gpt-4o`, ""},
		{"array", "/v1/chat/completions", `[{"model":"m"}]`, ""},
		{"string", "/v1/responses", `"hi"`, ""},
		{"null", "/v1/embeddings", `null`, ""},
		{"truncated", "/v1/chat/completions", `{"model":"m","max_tokens":5`, ""},
		{"trailing garbage", "/v1/chat/completions", `{"model":"m"} {}`, ""},
		{"max_tokens string", "/v1/chat/completions", `{"max_tokens":"abc"}`, "max_tokens"},
		{"max_tokens numeric string", "/v1/chat/completions", `{"max_tokens":"100"}`, "max_tokens"},
		{"max_tokens negative", "/v1/chat/completions", `{"max_tokens":-1}`, "max_tokens"},
		{"max_tokens zero", "/v1/completions", `{"max_tokens":0}`, "max_tokens"},
		{"max_tokens float", "/v1/chat/completions", `{"max_tokens":100.5}`, "max_tokens"},
		{"max_tokens exponent", "/v1/chat/completions", `{"max_tokens":1e3}`, "max_tokens"},
		{"max_tokens overflows", "/v1/chat/completions", `{"max_tokens":12345678901234567890}`, "max_tokens"},
		{"max_tokens object", "/v1/chat/completions", `{"max_tokens":{"n":1}}`, "max_tokens"},
		{"max_tokens bad even when max_completion_tokens is set", "/v1/chat/completions", `{"max_completion_tokens":5,"max_tokens":"x"}`, "max_tokens"},
		{"max_completion_tokens bool", "/v1/chat/completions", `{"max_completion_tokens":true}`, "max_completion_tokens"},
		{"max_output_tokens string", "/v1/responses", `{"max_output_tokens":"lots"}`, "max_output_tokens"},
		{"model number", "/v1/chat/completions", `{"model":4}`, "model"},
		{"model object", "/v1/embeddings", `{"model":{"name":"m"}}`, "model"},
		{"stream string", "/v1/chat/completions", `{"stream":"true"}`, "stream"},
		{"stream number", "/v1/responses", `{"stream":1}`, "stream"},
		{"n zero", "/v1/chat/completions", `{"n":0}`, "n"},
		{"best_of string", "/v1/completions", `{"best_of":"2"}`, "best_of"},
		{"duplicate max_tokens", "/v1/chat/completions", `{"max_tokens":10,"max_tokens":100000}`, "max_tokens"},
		{"duplicate via escape", "/v1/chat/completions", `{"max_tokens":10,"max\u005ftokens":null}`, "max_tokens"},
		{"duplicate stream", "/v1/chat/completions", `{"stream":false,"stream":true}`, "stream"},
		{"duplicate model", "/v1/responses", `{"model":"a","model":"b"}`, "model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := openAIInspect(tt.path, []byte(tt.body))
			if err == nil {
				t.Fatal("Inspect succeeded, want an error")
			}
			if !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("error %v is not ErrInvalidRequest", err)
			}
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error %T is not a *RequestError", err)
			}
			if re.Param != tt.param {
				t.Errorf("Param = %q, want %q (message %q)", re.Param, tt.param, re.Message)
			}
			if tt.param != "" && !strings.HasPrefix(re.Message, tt.param+" ") {
				t.Errorf("message %q does not name %s", re.Message, tt.param)
			}
			if !strings.HasSuffix(re.Message, ".") {
				t.Errorf("message %q is not a sentence", re.Message)
			}
		})
	}
}

func TestInspectErrorMessageIsShort(t *testing.T) {
	_, err := openAIInspect("/v1/chat/completions", []byte(`{"max_tokens":"`+strings.Repeat("x", 10000)+`"}`))
	if err == nil || len(err.Error()) > 120 {
		t.Fatalf("error = %v, want a short sentence", err)
	}
}

func TestOutputBound(t *testing.T) {
	tests := []struct {
		choices, perChoice, want int64
	}{
		{1, 100, 100},
		{0, 100, 100}, // a zero RequestInfo still counts one output
		{4, 100, 400},
		{3, 0, 0},
		{2, -5, 0},
		{1 << 62, 4, math.MaxInt64},
		{math.MaxInt64, math.MaxInt64, math.MaxInt64},
	}
	for _, tt := range tests {
		if got := (RequestInfo{Choices: tt.choices}).OutputBound(tt.perChoice); got != tt.want {
			t.Errorf("OutputBound(%d) with %d choices = %d, want %d", tt.perChoice, tt.choices, got, tt.want)
		}
	}
	// n times many prompts saturates instead of wrapping.
	info, err := openAIInspect("/v1/completions", []byte(`{"n":9223372036854775807,"prompt":["a","b"]}`))
	if err != nil || info.Choices != math.MaxInt64 {
		t.Fatalf("Inspect = %+v, %v; want Choices saturated", info, err)
	}
}

func TestInspectErrorKeepsUTF8(t *testing.T) {
	_, err := openAIInspect("/v1/chat/completions", []byte(`{"model":["`+strings.Repeat("é", 40)+`"]}`))
	if err == nil || !utf8.ValidString(err.Error()) {
		t.Fatalf("error = %q, want valid UTF-8", err)
	}
}

// The fast path of stringField (no escapes) must read every string as encoding/json does.
func TestStringFieldMatchesUnmarshal(t *testing.T) {
	for _, raw := range []string{`"gpt-4o-mini"`, `""`, `"caf\u00e9"`, `"a\"b"`, `"tab\tx"`, "\"caf\xc3\xa9\"", "\"bad\xff\"", `"ü"`} {
		var want string
		if err := json.Unmarshal([]byte(raw), &want); err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		got, err := stringField("model", []byte(raw))
		if err != nil || got != want {
			t.Errorf("stringField(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
}

// A markerSet finds exactly what bytes.Contains of each marker finds.
func TestMarkerSetIsContains(t *testing.T) {
	markers := []string{`"url"`, `"file_id"`, `"file"`, `"web_search`, `"mcp"`}
	ms := newMarkerSet(markers...)
	for _, body := range []string{``, `"`, `""`, `"u`, `"url`, `"url"`, `x"url"`, `{"urls":1}`, `{"a":"\"file\""}`,
		`{"a":"file"}`, `{"web_searc":1}`, `{"x":"web_search_2025"}`, `"mc"`, `""mcp"`, `{"file_i":"d"}`, `"""file_id"`} {
		want := false
		for _, m := range markers {
			want = want || strings.Contains(body, m)
		}
		if got := ms.in([]byte(body)); got != want {
			t.Errorf("in(%q) = %v; want %v", body, got, want)
		}
	}
}

func FuzzMarkerSet(f *testing.F) {
	f.Add([]byte(`{"messages":[{"content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		want := false
		for _, m := range openAIIndirect.all {
			want = want || bytes.Contains(body, m)
		}
		if got := openAIIndirect.in(body); got != want {
			t.Fatalf("in(%q) = %v; want %v", body, got, want)
		}
	})
}

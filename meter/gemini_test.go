package meter

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

var (
	generateRoute = Route{Dialect: Gemini, Kind: Metered, Endpoint: GenerateContent, Model: "gemini-2.5-flash"}
	streamRoute   = Route{Dialect: Gemini, Kind: Metered, Endpoint: StreamGenerateContent, Model: "gemini-2.5-flash", Stream: true}
	embedRoute    = Route{Dialect: Gemini, Kind: Metered, Endpoint: EmbedContent, Model: "gemini-embedding-001"}
)

func TestGeminiInspect(t *testing.T) {
	base := RequestInfo{Endpoint: GenerateContent, Model: "gemini-2.5-flash", Choices: 1}
	capped := func(n int64, field string, choices int64) RequestInfo {
		i := base
		i.MaxOutput, i.HasMaxOutput, i.MaxOutputField, i.Choices = n, true, field, choices
		return i
	}
	indirect := base
	indirect.IndirectInput = true
	tests := []struct {
		name string
		rt   Route
		body string
		want RequestInfo
	}{
		{"no config", generateRoute, `{"contents":[{"role":"user","parts":[{"text":"Hi"}]}]}`, base},
		{"cap", generateRoute, `{"contents":[],"generationConfig":{"maxOutputTokens":500,"temperature":0.2}}`,
			capped(500, "generationConfig.maxOutputTokens", 1)},
		{"cap, snake_case", generateRoute, `{"generation_config":{"max_output_tokens":500}}`,
			capped(500, "generationConfig.max_output_tokens", 1)},
		{"candidates multiply the cap", generateRoute, `{"generationConfig":{"maxOutputTokens":100,"candidateCount":3}}`,
			capped(100, "generationConfig.maxOutputTokens", 3)},
		{"a thinking budget adds to the cap", generateRoute, `{"generationConfig":{"maxOutputTokens":100,"thinkingConfig":{"thinkingBudget":1024}}}`,
			capped(1124, "generationConfig.maxOutputTokens", 1)},
		{"dynamic thinking adds nothing", generateRoute, `{"generationConfig":{"maxOutputTokens":100,"thinkingConfig":{"thinkingBudget":-1}}}`,
			capped(100, "generationConfig.maxOutputTokens", 1)},
		{"null config", generateRoute, `{"generationConfig":null}`, base},
		{"cached content", generateRoute, `{"cachedContent":"cachedContents/abc","contents":[]}`, indirect},
		{"file by URI", generateRoute, `{"contents":[{"parts":[{"fileData":{"mimeType":"application/pdf","fileUri":"https://x"}}]}]}`, indirect},
		{"search tool", generateRoute, `{"contents":[],"tools":[{"googleSearch":{}}]}`, indirect},
		{"inline data is bounded by the body", generateRoute, `{"contents":[{"parts":[{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}}]}]}`, base},
		{"stream from the path", streamRoute, `{"contents":[]}`,
			RequestInfo{Endpoint: StreamGenerateContent, Model: "gemini-2.5-flash", Stream: true, Choices: 1}},
		{"embeddings have no output", embedRoute, `{"content":{"parts":[{"text":"x"}]},"generationConfig":{"maxOutputTokens":"ignored"}}`,
			RequestInfo{Endpoint: EmbedContent, Model: "gemini-embedding-001", Choices: 1, NoOutput: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Gemini.Inspect(tt.rt, []byte(tt.body))
			got.valid = checkedBody{} // where the body was: not part of what was read
			if err != nil || got != tt.want {
				t.Fatalf("Inspect = %+v, %v\nwant %+v", got, err, tt.want)
			}
		})
	}
	for _, bad := range []struct{ body, param string }{
		{`[]`, ""},
		{`{"generationConfig":[]}`, "generationConfig"},
		{`{"generationConfig":{"maxOutputTokens":0}}`, "maxOutputTokens"},
		{`{"generationConfig":{"maxOutputTokens":"100"}}`, "maxOutputTokens"},
		{`{"generationConfig":{"candidateCount":-1}}`, "candidateCount"},
		{`{"generationConfig":{"maxOutputTokens":1,"thinkingConfig":{"thinkingBudget":-5}}}`, "thinkingBudget"},
		// One field in two spellings: the gateway must read the copy the provider uses.
		{`{"generationConfig":{"maxOutputTokens":10},"generation_config":{"maxOutputTokens":100000}}`, "generation_config"},
		{`{"generationConfig":{"maxOutputTokens":10,"max_output_tokens":100000}}`, "max_output_tokens"},
		{`{"generationConfig":{"maxOutputTokens":10,"maxOutputTokens":100000}}`, "maxOutputTokens"},
	} {
		_, err := Gemini.Inspect(generateRoute, []byte(bad.body))
		var re *RequestError
		if !errors.As(err, &re) || re.Param != bad.param {
			t.Errorf("Inspect(%s) = %v; want a RequestError naming %q", bad.body, err, bad.param)
		}
	}
}

func TestGeminiRewrite(t *testing.T) {
	for _, tt := range []struct {
		name   string
		rt     Route
		body   string
		setMax int64
		want   string // "": unchanged, the same slice
	}{
		{"config added", generateRoute, `{"contents":[]}`, 1024, `{"contents":[],"generationConfig":{"maxOutputTokens":1024}}`},
		{"into the client's config", generateRoute, `{"contents":[],"generationConfig":{"temperature":0.1}}`, 64,
			`{"contents":[],"generationConfig":{"maxOutputTokens":64,"temperature":0.1}}`},
		{"into a snake_case config", generateRoute, `{"generation_config":{"top_k":3}}`, 64,
			`{"generation_config":{"maxOutputTokens":64,"top_k":3}}`},
		{"into an empty config", generateRoute, `{"generationConfig":{ }}`, 64, `{"generationConfig":{"maxOutputTokens":64 }}`},
		{"null config replaced", generateRoute, `{"generationConfig":null,"contents":[]}`, 64,
			`{"generationConfig":{"maxOutputTokens":64},"contents":[]}`},
		{"null cap replaced", generateRoute, `{"generationConfig":{"maxOutputTokens":null}}`, 64, `{"generationConfig":{"maxOutputTokens":64}}`},
		{"client cap kept", generateRoute, `{"generationConfig":{"maxOutputTokens":10}}`, 64, ""},
		{"embeddings untouched", embedRoute, `{"content":{"parts":[]}}`, 64, ""},
		{"nothing asked", streamRoute, `{"contents":[]}`, 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			info, err := Gemini.Inspect(tt.rt, body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Gemini.Rewrite(body, info, tt.setMax, true)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if &got[0] != &body[0] || len(got) != len(body) {
					t.Fatalf("Rewrite changed the body to %s", got)
				}
				return
			}
			if string(got) != tt.want || !json.Valid(got) {
				t.Fatalf("Rewrite =\n%s\nwant\n%s", got, tt.want)
			}
			after, err := Gemini.Inspect(tt.rt, got)
			if err != nil || after.MaxOutput != tt.setMax {
				t.Fatalf("after Rewrite: %+v, %v; want the cap %d", after, err, tt.setMax)
			}
			if again, _ := Gemini.Rewrite(got, after, tt.setMax, true); !bytes.Equal(again, got) {
				t.Fatalf("a second Rewrite changed %s to %s", got, again)
			}
		})
	}
}

func TestGeminiErrorBody(t *testing.T) {
	for status, name := range map[int]string{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
		404: "NOT_FOUND", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"} {
		var e struct {
			Error struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
				Status  string `json:"status"`
			} `json:"error"`
		}
		body := Gemini.ErrorBody(Error{Status: status, Code: "model_not_allowed", Message: "No."})
		if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != status || e.Error.Status != name ||
			e.Error.Message != "model_not_allowed: No." {
			t.Errorf("ErrorBody(%d) = %s; want status %s", status, body, name)
		}
	}
}

func FuzzGeminiParser(f *testing.F) {
	for _, name := range []string{"gemini/stream.sse", "gemini/stream_cut.sse", "gemini/generate.json", "gemini/embed.json"} {
		data := fixture(f, name)
		f.Add(data, uint16(len(data)/2), bytes.HasSuffix([]byte(name), []byte(".sse")))
	}
	f.Add([]byte("data: {\"usageMetadata\":{\"promptTokenCount\":1},\"candidates\":[{\"finishReason\":\"STOP\"}]}\r\r"), uint16(3), true)
	fuzzParser(f, Gemini, streamRoute)
}

package meter

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func TestRewriteSplices(t *testing.T) {
	tests := []struct {
		name         string
		path         string
		body         string
		setMax       int64
		includeUsage bool
		want         string // "" means: body returned unchanged, as the same slice
	}{
		{"chat: cap set", "/v1/chat/completions",
			`{"model":"m","messages":[{"role":"user","content":"hi"}]}`, 1024, false,
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":1024}`},
		{"chat: client cap kept", "/v1/chat/completions",
			`{"model":"m","max_tokens":10}`, 1024, false, ""},
		{"chat: client max_completion_tokens kept", "/v1/chat/completions",
			`{"model":"m","max_completion_tokens":10}`, 1024, false, ""},
		{"chat: null cap replaced in place", "/v1/chat/completions",
			`{"model":"m","max_tokens":null,"temperature":0.7}`, 64, false,
			`{"model":"m","max_tokens":64,"temperature":0.7}`},
		{"chat: nothing asked", "/v1/chat/completions",
			`{"model":"m","stream":true}`, 0, false, ""},
		{"chat: include_usage added", "/v1/chat/completions",
			`{"model":"m","stream":true}`, 0, true,
			`{"model":"m","stream":true,"stream_options":{"include_usage":true}}`},
		{"chat: include_usage not for a non-stream", "/v1/chat/completions",
			`{"model":"m","stream":false}`, 0, true, ""},
		{"chat: include_usage merged into stream_options", "/v1/chat/completions",
			`{"model":"m","stream":true,"stream_options":{"continuous_usage_stats":false}}`, 0, true,
			`{"model":"m","stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":false}}`},
		{"chat: include_usage false turned true", "/v1/chat/completions",
			`{"model":"m","stream":true,"stream_options":{ "include_usage" : false }}`, 0, true,
			`{"model":"m","stream":true,"stream_options":{ "include_usage" : true }}`},
		{"chat: include_usage already true", "/v1/chat/completions",
			`{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, 0, true, ""},
		{"chat: empty stream_options", "/v1/chat/completions",
			`{"model":"m","stream":true,"stream_options":{ }}`, 0, true,
			`{"model":"m","stream":true,"stream_options":{"include_usage":true }}`},
		{"chat: null stream_options", "/v1/chat/completions",
			`{"model":"m","stream":true,"stream_options":null}`, 0, true,
			`{"model":"m","stream":true,"stream_options":{"include_usage":true}}`},
		{"chat: cap and include_usage", "/v1/chat/completions",
			`{"model":"m","stream":true}`, 512, true,
			`{"model":"m","stream":true,"max_tokens":512,"stream_options":{"include_usage":true}}`},
		{"chat: both, formatting and big numbers kept", "/v1/chat/completions",
			"{\n  \"model\": \"m\",\n  \"seed\": 12345678901234567890,\n  \"logit_bias\": {\"50256\": -100},\n  \"temperature\": 1.0000000000000002,\n  \"stream\": true,\n  \"stream_options\": {\"x\": 1e400}\n}\n", 5, true,
			"{\n  \"model\": \"m\",\n  \"seed\": 12345678901234567890,\n  \"logit_bias\": {\"50256\": -100},\n  \"temperature\": 1.0000000000000002,\n  \"stream\": true,\n  \"stream_options\": {\"include_usage\":true,\"x\": 1e400},\"max_tokens\":5\n}\n"},
		{"chat: html and unicode kept", "/v1/chat/completions",
			`{"model":"m","messages":[{"content":"<b>&</b> é \u00e9 \ud83d\ude00"}]}`, 8, false,
			`{"model":"m","messages":[{"content":"<b>&</b> é \u00e9 \ud83d\ude00"}],"max_tokens":8}`},
		{"empty object", "/v1/chat/completions", `{}`, 8, false, `{"max_tokens":8}`},
		{"empty object with space", "/v1/chat/completions", "{ \n}", 8, false, "{ \n\"max_tokens\":8}"},
		{"null stream_options last, cap added after it", "/v1/chat/completions",
			`{"stream":true,"stream_options":null}`, 9, true,
			`{"stream":true,"stream_options":{"include_usage":true},"max_tokens":9}`},
		{"completions: cap and include_usage", "/v1/completions",
			`{"model":"m","prompt":"x","stream":true}`, 16, true,
			`{"model":"m","prompt":"x","stream":true,"max_tokens":16,"stream_options":{"include_usage":true}}`},
		{"responses: max_output_tokens", "/v1/responses",
			`{"model":"gpt-4.1","input":"hi","stream":true}`, 300, true,
			`{"model":"gpt-4.1","input":"hi","stream":true,"max_output_tokens":300}`},
		{"responses: client cap kept", "/v1/responses",
			`{"model":"gpt-4.1","max_output_tokens":30}`, 300, true, ""},
		{"embeddings: nothing", "/v1/embeddings",
			`{"model":"e","input":"hi"}`, 300, true, ""},
		{"other: nothing", "/v1/images/generations",
			`{"prompt":"a cat"}`, 300, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			info, err := openAIInspect(tt.path, body)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			got, err := openAIRewrite(body, info, tt.setMax, tt.includeUsage)
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			if tt.want == "" {
				if len(got) != len(body) || (len(body) > 0 && &got[0] != &body[0]) {
					t.Fatalf("Rewrite changed the body to %s, want the same slice", got)
				}
				return
			}
			if string(got) != tt.want {
				t.Fatalf("Rewrite =\n%s\nwant\n%s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Fatalf("Rewrite made invalid JSON: %s", got)
			}
			// What the provider will read must agree with what was asked.
			after, err := openAIInspect(tt.path, got)
			if err != nil {
				t.Fatalf("Inspect after Rewrite: %v", err)
			}
			if tt.setMax > 0 && !info.HasMaxOutput && after.MaxOutput != tt.setMax {
				t.Errorf("after Rewrite MaxOutput = %d, want %d", after.MaxOutput, tt.setMax)
			}
			if tt.includeUsage && info.Stream && (info.Endpoint == ChatCompletions || info.Endpoint == Completions) {
				var v struct {
					StreamOptions struct {
						IncludeUsage bool `json:"include_usage"`
					} `json:"stream_options"`
				}
				if err := json.Unmarshal(got, &v); err != nil || !v.StreamOptions.IncludeUsage {
					t.Errorf("after Rewrite include_usage is not true (%v)", err)
				}
			}
			// A second pass has nothing left to do.
			again, err := openAIRewrite(got, after, tt.setMax, tt.includeUsage)
			if err != nil || !bytes.Equal(again, got) {
				t.Errorf("second Rewrite = %s, %v; want no change", again, err)
			}
		})
	}
}

func TestRewriteRejects(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		param string
	}{
		{"stream_options string", `{"model":"m","stream":true,"stream_options":"yes"}`, "stream_options"},
		{"stream_options array", `{"model":"m","stream":true,"stream_options":[true]}`, "stream_options"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := openAIInspect("/v1/chat/completions", []byte(tt.body))
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			_, err = openAIRewrite([]byte(tt.body), info, 0, true)
			var re *RequestError
			if !errors.As(err, &re) || re.Param != tt.param || !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("Rewrite error = %v, want a RequestError naming %s", err, tt.param)
			}
		})
	}

	// Rewrite does not trust info: a body that is not an object is refused, not mangled.
	info := RequestInfo{Endpoint: ChatCompletions, Stream: true}
	if _, err := openAIRewrite([]byte(`[1,2]`), info, 5, true); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("Rewrite of an array: error = %v, want ErrInvalidRequest", err)
	}
}

func TestRewriteDuplicateIncludeUsage(t *testing.T) {
	// Inspect does not look inside stream_options; every copy must end up true.
	body := []byte(`{"stream":true,"stream_options":{"include_usage":false,"include_usage":true,"include_usage":null}}`)
	info, err := openAIInspect("/v1/chat/completions", body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := openAIRewrite(body, info, 0, true)
	want := `{"stream":true,"stream_options":{"include_usage":true,"include_usage":true,"include_usage":true}}`
	if err != nil || string(got) != want {
		t.Fatalf("Rewrite = %s, %v; want %s", got, err, want)
	}
}

// Rewrite trusts Inspect's check of the same bytes only: another body, even one of the same
// length in another place, is checked again.
func TestRewriteChecksAnotherBody(t *testing.T) {
	body := []byte(`{"model":"m","messages":[]}`)
	info, err := OpenAI.Inspect(Route{Dialect: OpenAI, Kind: Metered, Endpoint: ChatCompletions}, body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenAI.Rewrite(body, info, 10, false); err != nil {
		t.Fatalf("the body Inspect read: %v", err)
	}
	bad := []byte(`{"model":"m","messages":[}}`)
	if len(bad) != len(body) {
		t.Fatal("the bodies must have one length")
	}
	if _, err := OpenAI.Rewrite(bad, info, 10, false); err == nil {
		t.Error("an invalid body was rewritten with another body's info")
	}
}

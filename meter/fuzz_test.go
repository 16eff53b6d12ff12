package meter

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// FuzzParser: any input, split anywhere, never panics, and gives the same usage whole, a byte
// at a time and split in two, for SSE and JSON alike.
func FuzzParser(f *testing.F) {
	for _, name := range []string{"chat_stream_usage.sse", "chat_stream_no_usage.sse", "responses_stream.sse", "chat.json", "responses.json"} {
		data := fixture(f, name)
		f.Add(data, uint16(len(data)/2), bytes.HasSuffix([]byte(name), []byte(".sse")))
	}
	f.Add([]byte("data: {\"usage\":{\"prompt_tokens\":1}}\r\n\r\n"), uint16(9), true)
	f.Add([]byte("\xEF\xBB\xBFdata\r\rdata:{\"usage\":{\"input_tokens\":2}}\r\r"), uint16(2), true)
	f.Add([]byte(`{"a":"\\\"}","usage":{"prompt_tokens":3,"completion_tokens":4},"model":"m"}`), uint16(7), false)
	f.Add([]byte(`{"usage":{"prompt_tokens":1e2,"completion_tokens":-0}}`), uint16(3), false)
	f.Fuzz(func(t *testing.T, data []byte, split uint16, sse bool) {
		ct := jsonType
		if sse {
			ct = sseType
		}
		whole, wholeOK := parse(ct, data, 0)
		bytewise, bytewiseOK := parse(ct, data, 1)
		at := 0
		if len(data) > 0 {
			at = int(split) % (len(data) + 1)
		}
		halves, halvesOK := parseAt(ct, data, at)
		if whole != bytewise || wholeOK != bytewiseOK || whole != halves || wholeOK != halvesOK {
			t.Fatalf("split changes the result: whole %+v %v, bytewise %+v %v, split at %d %+v %v",
				whole, wholeOK, bytewise, bytewiseOK, at, halves, halvesOK)
		}
		if wholeOK && (whole.InputTokens < 0 || whole.OutputTokens < 0) {
			t.Fatalf("negative usage %+v", whole)
		}
	})
}

// FuzzRewrite: whatever body Inspect accepts, Rewrite leaves valid JSON that reads back with the
// cap set and include_usage on, and a second Rewrite changes nothing.
func FuzzRewrite(f *testing.F) {
	f.Add("/v1/chat/completions", []byte(`{"model":"m","stream":true,"stream_options":{"x":1}}`), int64(10), true)
	f.Add("/v1/chat/completions", []byte(`{ "max_tokens" : null , "stream" : true , "stream_options" : null }`), int64(10), true)
	f.Add("/v1/completions", []byte(`{}`), int64(1), true)
	f.Add("/v1/responses", []byte(`{"input":[{"role":"user","content":"{\"max_output_tokens\":1}"}]}`), int64(99), false)
	f.Fuzz(func(t *testing.T, path string, body []byte, setMax int64, includeUsage bool) {
		if u, err := url.ParseRequestURI(path); err != nil || !strings.HasPrefix(path, "/") || u.Host != "" ||
			strings.ContainsFunc(path, func(c rune) bool { return c <= ' ' || c >= 0x7f }) {
			return // not a request line a server would take
		}
		info, err := openAIInspect(path, body)
		if err != nil {
			return
		}
		out, err := openAIRewrite(body, info, setMax, includeUsage)
		if err != nil {
			return // only a stream_options that is not an object
		}
		if info.Endpoint == Other {
			if !bytes.Equal(out, body) {
				t.Fatalf("Rewrite changed a body of an Other endpoint")
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("Rewrite made invalid JSON from %q: %q", body, out)
		}
		after, err := openAIInspect(path, out)
		if err != nil {
			t.Fatalf("Inspect after Rewrite: %v\nbody %q\nout  %q", err, body, out)
		}
		if setMax > 0 && !info.HasMaxOutput && (info.Endpoint != Embeddings) && after.MaxOutput != setMax {
			t.Fatalf("cap not set: %+v\nout %q", after, out)
		}
		if includeUsage && info.Stream && (info.Endpoint == ChatCompletions || info.Endpoint == Completions) {
			var v struct {
				StreamOptions struct {
					IncludeUsage bool `json:"include_usage"`
				} `json:"stream_options"`
			}
			if err := json.Unmarshal(out, &v); err != nil || !v.StreamOptions.IncludeUsage {
				t.Fatalf("include_usage not set (%v): %q", err, out)
			}
		}
		if again, err := openAIRewrite(out, after, setMax, includeUsage); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("second Rewrite changed %q to %q (%v)", out, again, err)
		}
	})
}

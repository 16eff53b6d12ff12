package meter

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

var messagesRoute = Route{Dialect: Anthropic, Kind: Metered, Endpoint: Messages}

func TestAnthropicInspect(t *testing.T) {
	tests := []struct {
		name string
		body string
		want RequestInfo
	}{
		{"cap and stream", `{"model":"claude-haiku-4-5","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"Hi"}]}`,
			RequestInfo{Endpoint: Messages, Model: "claude-haiku-4-5", Stream: true, MaxOutput: 1024, HasMaxOutput: true, MaxOutputField: "max_tokens", Choices: 1}},
		{"no cap", `{"model":"claude-haiku-4-5","messages":[]}`,
			RequestInfo{Endpoint: Messages, Model: "claude-haiku-4-5", Choices: 1}},
		{"null cap", `{"model":"m","max_tokens":null}`, RequestInfo{Endpoint: Messages, Model: "m", Choices: 1}},
		{"image by url", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://x/y.png"}}]}]}`,
			RequestInfo{Endpoint: Messages, Model: "m", MaxOutput: 5, HasMaxOutput: true, MaxOutputField: "max_tokens", Choices: 1, IndirectInput: true}},
		{"document by file id", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"file","file_id":"file_01"}}]}]}`,
			RequestInfo{Endpoint: Messages, Model: "m", MaxOutput: 5, HasMaxOutput: true, MaxOutputField: "max_tokens", Choices: 1, IndirectInput: true}},
		{"web search tool", `{"model":"m","max_tokens":5,"tools":[{"type":"web_search_20250305","name":"web_search"}]}`,
			RequestInfo{Endpoint: Messages, Model: "m", MaxOutput: 5, HasMaxOutput: true, MaxOutputField: "max_tokens", Choices: 1, IndirectInput: true}},
		{"base64 image is bounded by the body", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]}]}`,
			RequestInfo{Endpoint: Messages, Model: "m", MaxOutput: 5, HasMaxOutput: true, MaxOutputField: "max_tokens", Choices: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Anthropic.Inspect(messagesRoute, []byte(tt.body))
			got.valid = checkedBody{} // where the body was: not part of what was read
			if err != nil || got != tt.want {
				t.Fatalf("Inspect = %+v, %v\nwant %+v", got, err, tt.want)
			}
		})
	}
	for _, bad := range []struct{ body, param string }{
		{`[]`, ""},
		{`{"model":1}`, "model"},
		{`{"stream":"yes"}`, "stream"},
		{`{"max_tokens":0}`, "max_tokens"},
		{`{"max_tokens":1.5}`, "max_tokens"},
		{`{"max_tokens":"10"}`, "max_tokens"},
		{`{"max_tokens":10,"max_tokens":1000000}`, "max_tokens"},
		{`{"model":"a","model":"b"}`, "model"},
	} {
		_, err := Anthropic.Inspect(messagesRoute, []byte(bad.body))
		var re *RequestError
		if !errors.As(err, &re) || re.Param != bad.param {
			t.Errorf("Inspect(%s) = %v; want a RequestError naming %q", bad.body, err, bad.param)
		}
	}
}

func TestAnthropicRewrite(t *testing.T) {
	for _, tt := range []struct {
		name   string
		body   string
		setMax int64
		want   string // "": unchanged, the same slice
	}{
		{"cap set", `{"model":"m","messages":[]}`, 1024, `{"model":"m","messages":[],"max_tokens":1024}`},
		{"null cap replaced", `{"model":"m","max_tokens":null,"stream":true}`, 64, `{"model":"m","max_tokens":64,"stream":true}`},
		{"client cap kept", `{"model":"m","max_tokens":10}`, 1024, ""},
		{"nothing asked", `{"model":"m"}`, 0, ""},
		{"streams need nothing", `{"model":"m","max_tokens":10,"stream":true}`, 0, ""},
		{"layout and numbers kept", "{\n \"model\": \"m\",\n \"temperature\": 1.0000000000000002, \"metadata\": {\"user_id\": \"u\"}\n}", 8,
			"{\n \"model\": \"m\",\n \"temperature\": 1.0000000000000002, \"metadata\": {\"user_id\": \"u\"},\"max_tokens\":8\n}"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			info, err := Anthropic.Inspect(messagesRoute, body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Anthropic.Rewrite(body, info, tt.setMax, true)
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
			after, err := Anthropic.Inspect(messagesRoute, got)
			if err != nil || after.MaxOutput != tt.setMax {
				t.Fatalf("after Rewrite: %+v, %v; want the cap %d", after, err, tt.setMax)
			}
			if again, _ := Anthropic.Rewrite(got, after, tt.setMax, true); !bytes.Equal(again, got) {
				t.Fatalf("a second Rewrite changed %s to %s", got, again)
			}
		})
	}
}

func TestAnthropicErrorBody(t *testing.T) {
	for status, typ := range map[int]string{400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
		404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large", 429: "rate_limit_error",
		500: "api_error", 503: "api_error"} {
		var e struct {
			Type  string `json:"type"`
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		body := Anthropic.ErrorBody(Error{Status: status, Code: "insufficient_quota", Message: "You exceeded your quota."})
		if err := json.Unmarshal(body, &e); err != nil || e.Type != "error" || e.Error.Type != typ ||
			e.Error.Message != "insufficient_quota: You exceeded your quota." {
			t.Errorf("ErrorBody(%d) = %s; want type %s", status, body, typ)
		}
	}
}

// FuzzAnthropicParser: any input, split anywhere, never panics, and gives the same usage whole,
// a byte at a time and split in two.
func FuzzAnthropicParser(f *testing.F) {
	for _, name := range []string{"anthropic/stream.sse", "anthropic/stream_cache_write.sse", "anthropic/stream_cut.sse", "anthropic/message.json"} {
		data := fixture(f, name)
		f.Add(data, uint16(len(data)/2), bytes.HasSuffix([]byte(name), []byte(".sse")))
	}
	f.Add([]byte("data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":1e2}}\n\n"), uint16(5), true)
	fuzzParser(f, Anthropic, messagesRoute)
}

// fuzzParser runs the split-invariance fuzz target for dialect d.
func fuzzParser(f *testing.F, d Dialect, rt Route) {
	f.Fuzz(func(t *testing.T, data []byte, split uint16, sse bool) {
		ct := jsonType
		if sse {
			ct = sseType
		}
		newParser := func() Parser { return d.NewParser(rt, ct) }
		whole, wholeOK := feed(newParser(), data, 0)
		bytewise, bytewiseOK := feed(newParser(), data, 1)
		at := 0
		if len(data) > 0 {
			at = int(split) % (len(data) + 1)
		}
		p := newParser()
		p.Write(data[:at])
		p.Write(data[at:])
		halves, halvesOK := p.Usage()
		if whole != bytewise || wholeOK != bytewiseOK || whole != halves || wholeOK != halvesOK {
			t.Fatalf("split changes the result: whole %+v %v, bytewise %+v %v, split at %d %+v %v",
				whole, wholeOK, bytewise, bytewiseOK, at, halves, halvesOK)
		}
		if wholeOK && (whole.InputTokens < 0 || whole.OutputTokens < 0 || whole.CachedInputTokens < 0 ||
			whole.CacheWriteTokens < 0 || whole.CachedInputTokens+whole.CacheWriteTokens > whole.InputTokens) {
			t.Fatalf("inconsistent usage %+v", whole)
		}
	})
}

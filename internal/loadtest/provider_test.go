package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// usageOf reads the token counts of an API's answer (or one streamed event): input, output,
// and the total when the API sends one (-1 when not).
func usageOf(t *testing.T, api string, data []byte) (in, out, total int) {
	t.Helper()
	var v struct {
		Usage *struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
			TotalTokens      int `json:"total_tokens"`
			InputTokens      int `json:"input_tokens"`
			OutputTokens     int `json:"output_tokens"`
		}
		Message *struct {
			Usage *struct {
				InputTokens  int `json:"input_tokens"`
				OutputTokens int `json:"output_tokens"`
			}
		}
		UsageMetadata *struct{ PromptTokenCount, CandidatesTokenCount, TotalTokenCount int }
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v: %s", api, err, data)
	}
	switch {
	case api == "gemini" && v.UsageMetadata != nil:
		u := v.UsageMetadata
		return u.PromptTokenCount, u.CandidatesTokenCount, u.TotalTokenCount
	case api == "anthropic" && v.Message != nil && v.Message.Usage != nil: // message_start
		return v.Message.Usage.InputTokens, v.Message.Usage.OutputTokens, -1
	case api == "anthropic" && v.Usage != nil:
		return v.Usage.InputTokens, v.Usage.OutputTokens, -1
	case api == "openai" && v.Usage != nil:
		return v.Usage.PromptTokens, v.Usage.CompletionTokens, v.Usage.TotalTokens
	}
	return 0, 0, -1
}

// sseEvents splits a stream into its events' names and data.
func sseEvents(t *testing.T, body string) (names, data []string) {
	t.Helper()
	body = strings.ReplaceAll(body, "\r\n", "\n")
	if !strings.HasSuffix(body, "\n\n") {
		t.Fatalf("the stream does not end with a blank line: %q", body)
	}
	for _, e := range strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		var name, d string
		for _, line := range strings.Split(e, "\n") {
			switch k, v, _ := strings.Cut(line, ": "); k {
			case "event":
				name = v
			case "data":
				d = v
			default:
				t.Fatalf("line %q in event %q", line, e)
			}
		}
		names, data = append(names, name), append(data, d)
	}
	return names, data
}

func TestProviderAnswersEachScenarioWithUsage(t *testing.T) {
	srv := httptest.NewServer(Provider{})
	defer srv.Close()
	for _, s := range Scenarios {
		t.Run(s.Name, func(t *testing.T) {
			api, _, _ := strings.Cut(s.Name, "-")
			req, err := s.NewRequest(context.Background(), srv.URL, "tok")
			if err != nil {
				t.Fatal(err)
			}
			if got := req.Header.Get(s.Header); got != s.HeaderValue("tok") || (s.Header == "Authorization") != (got == "Bearer tok") {
				t.Fatalf("%s: %q", s.Header, got)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			ct := resp.Header.Get("Content-Type")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if !s.Stream() {
				if ct != "application/json" {
					t.Fatalf("Content-Type %q", ct)
				}
				in, out, total := usageOf(t, api, body)
				if in <= 0 || out <= 0 || (total != -1 && total != in+out) {
					t.Fatalf("usage in %d, out %d, total %d: %s", in, out, total, body)
				}
				return
			}
			if ct != "text/event-stream" {
				t.Fatalf("Content-Type %q", ct)
			}
			names, data := sseEvents(t, string(body))
			var in, out int
			for i, d := range data {
				if d == "[DONE]" {
					if api != "openai" || i != len(data)-1 {
						t.Fatalf("[DONE] as event %d of %d", i, len(data))
					}
					continue
				}
				if api == "anthropic" {
					var typ struct{ Type string }
					_ = json.Unmarshal([]byte(d), &typ)
					if typ.Type != names[i] {
						t.Fatalf("event %q carries type %q", names[i], typ.Type)
					}
				}
				// Each API's last count is the whole (Anthropic: input at the start, output at the end).
				if i, o, _ := usageOf(t, api, []byte(d)); i > 0 || o > 0 {
					in, out = max(in, i), o
				}
			}
			if in <= 0 || out <= 0 {
				t.Fatalf("the stream's usage: in %d, out %d: %s", in, out, body)
			}
			if api == "openai" && data[len(data)-1] != "[DONE]" || api == "anthropic" && names[len(names)-1] != "message_stop" {
				t.Fatalf("the stream does not end as %s's does: %s", api, body)
			}
		})
	}
}

func TestProviderFlushesTheFirstEventThenWaits(t *testing.T) {
	const gap = 50 * time.Millisecond
	srv := httptest.NewServer(Provider{StreamGap: gap})
	defer srv.Close()
	s := Scenarios[1] // openai-stream
	req, _ := s.NewRequest(context.Background(), srv.URL, "tok")
	start := time.Now()
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 4096)
	n, err := resp.Body.Read(buf)
	if err != nil || string(buf[:n]) != openAIReply.events[0] {
		t.Fatalf("first read %q, %v; want the first event alone", buf[:n], err)
	}
	rest, _ := io.ReadAll(resp.Body)
	if d := time.Since(start); d < gap {
		t.Fatalf("the stream took %s, less than its gap %s", d, gap)
	}
	if want := strings.Join(openAIReply.events[1:], ""); string(rest) != want {
		t.Fatalf("the rest %q, want %q", rest, want)
	}
}

func TestProviderDetectsStreamsByBodyAndPath(t *testing.T) {
	for _, tc := range []struct {
		path, body string
		stream     bool
	}{
		{"/v1/chat/completions", `{"stream":false}`, false},
		{"/v1/chat/completions", `{"stream":true}`, true},
		{"/v1/messages", `{}`, false},
		{"/v1beta/models/gemini-2.5-flash:streamGenerateContent", `{}`, true},
		{"/v1/embeddings", `{}`, false}, // answered as a chat completion
	} {
		rec := httptest.NewRecorder()
		Provider{}.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body)))
		if got := rec.Header().Get("Content-Type") == "text/event-stream"; got != tc.stream {
			t.Errorf("%s %s: streamed %v, want %v", tc.path, tc.body, got, tc.stream)
		}
	}
}

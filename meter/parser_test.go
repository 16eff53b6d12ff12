package meter

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	sseType  = "text/event-stream; charset=utf-8"
	jsonType = "application/json"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// parse feeds data to a new parser in pieces of size bytes (all at once when size <= 0).
func parse(contentType string, data []byte, size int) (Usage, bool) {
	p := newOpenAIParser(contentType).(*openAIParser)
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

// parseAt feeds data in two pieces split at i.
func parseAt(contentType string, data []byte, i int) (Usage, bool) {
	p := newOpenAIParser(contentType).(*openAIParser)
	p.Write(data[:i])
	p.Write(data[i:])
	return p.Usage()
}

// checkSplits checks that data gives want whole, a byte at a time, and split at every byte.
func checkSplits(t *testing.T, contentType string, data []byte, want Usage, wantOK bool) {
	t.Helper()
	check := func(how string, got Usage, ok bool) {
		t.Helper()
		if ok != wantOK || got != want {
			t.Fatalf("%s: Usage() = %+v, %v; want %+v, %v", how, got, ok, want, wantOK)
		}
	}
	got, ok := parse(contentType, data, 0)
	check("whole", got, ok)
	got, ok = parse(contentType, data, 1)
	check("one byte at a time", got, ok)
	for _, size := range []int{2, 3, 7, 64, 4096} {
		got, ok = parse(contentType, data, size)
		check(fmt.Sprintf("pieces of %d", size), got, ok)
	}
	for i := 0; i <= len(data); i++ {
		got, ok = parseAt(contentType, data, i)
		check(fmt.Sprintf("split at %d", i), got, ok)
	}
}

func TestNewParserContentType(t *testing.T) {
	for ct, sse := range map[string]bool{
		"text/event-stream":                true,
		"text/event-stream; charset=utf-8": true,
		"Text/Event-Stream ;charset=UTF-8": true,
		"application/json":                 false,
		"application/json; charset=utf-8":  false,
		"":                                 false,
		"text/event-streamx":               false,
		"text/event-stream;;bad==":         true,
	} {
		if got := newOpenAIParser(ct).(*openAIParser).sse; got != sse {
			t.Errorf("newOpenAIParser(%q) reads SSE = %v, want %v", ct, got, sse)
		}
	}
}

func TestParserSSE(t *testing.T) {
	chat := fixture(t, "chat_stream_usage.sse")
	chatUsage := Usage{InputTokens: 19, OutputTokens: 18, Model: "gpt-4o-mini-2024-07-18"}
	responses := fixture(t, "responses_stream.sse")
	responsesUsage := Usage{InputTokens: 37, OutputTokens: 11, Model: "gpt-4.1-2025-04-14"}

	tests := []struct {
		name   string
		data   []byte
		want   Usage
		wantOK bool
	}{
		{"chat, usage in the last chunk", chat, chatUsage, true},
		{"chat, no usage at all", fixture(t, "chat_stream_no_usage.sse"), Usage{}, false},
		{"chat, \\r\\n line ends", bytes.ReplaceAll(chat, []byte("\n"), []byte("\r\n")), chatUsage, true},
		{"chat, \\r line ends", bytes.ReplaceAll(chat, []byte("\n"), []byte("\r")), chatUsage, true},
		{"chat, no space after data:", bytes.ReplaceAll(chat, []byte("data: "), []byte("data:")), chatUsage, true},
		{"chat, without [DONE]", bytes.TrimSuffix(chat, []byte("data: [DONE]\n\n")), chatUsage, true},
		{"chat, with a byte order mark", append([]byte("\xEF\xBB\xBF"), chat...), chatUsage, true},
		{"chat, cut off inside the usage chunk", chat[:bytes.LastIndex(chat, []byte(`"completion_tokens":18`))], Usage{}, false},
		{"chat, cut off before the usage chunk's blank line",
			chat[:bytes.LastIndex(chat, []byte("data: [DONE]"))-1], Usage{}, false},
		{"responses API", responses, responsesUsage, true},
		{"responses API, \\r\\n", bytes.ReplaceAll(responses, []byte("\n"), []byte("\r\n")), responsesUsage, true},
		{"responses API, cut off in response.completed",
			responses[:len(responses)-40], Usage{}, false},
		{"responses API, incomplete", []byte("event: response.incomplete\n" +
			`data: {"type":"response.incomplete","response":{"id":"resp_1","status":"incomplete","model":"o4-mini","incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":12,"output_tokens":64}}}` + "\n\n"),
			Usage{InputTokens: 12, OutputTokens: 64, Model: "o4-mini"}, true},
		{"responses API, failed", []byte(`data: {"type":"response.failed","response":{"model":"gpt-4.1","status":"failed","error":{"code":"server_error"},"usage":{"input_tokens":5,"output_tokens":0}}}` + "\n\n"),
			Usage{InputTokens: 5, Model: "gpt-4.1"}, true},
		{"comments, event, id and retry lines are ignored", []byte(": keep-alive\n\nevent: chunk\nid: 7\nretry: 1000\n:usage {\n" +
			`data: {"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}` + "\n\n"),
			Usage{InputTokens: 3, OutputTokens: 4, Model: "m"}, true},
		{"data split over lines is joined by \\n", []byte("data: {\"model\":\"m\",\ndata: \"usage\":\ndata:{\"prompt_tokens\":1,\ndata: \"completion_tokens\":2}}\n\n"),
			Usage{InputTokens: 1, OutputTokens: 2, Model: "m"}, true},
		{"a line named data without colon adds an empty line", []byte("data: {\"model\":\"m\",\"usage\":\ndata\ndata: {\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n"),
			Usage{InputTokens: 1, OutputTokens: 2, Model: "m"}, true},
		{"lines like data but not data are ignored", []byte("datax: {\"usage\":{\"prompt_tokens\":1}}\n dat: {\"usage\":{\"prompt_tokens\":1}}\nDATA: {\"usage\":{\"prompt_tokens\":1}}\n\n"),
			Usage{}, false},
		{"the last usage wins", []byte(`data: {"model":"a","usage":{"prompt_tokens":1,"completion_tokens":1}}` + "\n\n" +
			`data: {"model":"a","usage":{"prompt_tokens":9,"completion_tokens":30}}` + "\n\n"),
			Usage{InputTokens: 9, OutputTokens: 30, Model: "a"}, true},
		{"a later malformed usage does not erase a good one", []byte(`data: {"model":"a","usage":{"prompt_tokens":1,"completion_tokens":1}}` + "\n\n" +
			`data: {"model":"a","usage":{"prompt_tokens":"x"}}` + "\n\n" + `data: {"usage":{` + "\n\n"),
			Usage{InputTokens: 1, OutputTokens: 1, Model: "a"}, true},
		{"usage null everywhere", []byte(`data: {"model":"a","usage":null}` + "\n\n" + `data: {"model":"a","usage" : null}` + "\n\n"),
			Usage{}, false},
		{"usage only inside a string", []byte(`data: {"model":"a","choices":[{"delta":{"content":"\"usage\":{\"prompt_tokens\":5}"}}]}` + "\n\n"),
			Usage{}, false},
		{"usage nested below choices is not the chunk's", []byte(`data: {"model":"a","choices":[{"usage":{"prompt_tokens":5,"completion_tokens":5}}]}` + "\n\n"),
			Usage{}, false},
		{"float counts that are whole", []byte(`data: {"model":"a","usage":{"prompt_tokens":7.0,"completion_tokens":2e1}}` + "\n\n"),
			Usage{InputTokens: 7, OutputTokens: 20, Model: "a"}, true},
		{"negative counts are no usage", []byte(`data: {"usage":{"prompt_tokens":-7,"completion_tokens":2}}` + "\n\n"),
			Usage{}, false},
		{"fractional counts are no usage", []byte(`data: {"usage":{"prompt_tokens":7.5,"completion_tokens":2}}` + "\n\n"),
			Usage{}, false},
		{"[DONE] alone", []byte("data: [DONE]\n\n"), Usage{}, false},
		{"empty", nil, Usage{}, false},
		{"garbage", []byte("\x00\xff{{{\"usage\":{\r\r\n\n::data:\n\n"), Usage{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkSplits(t, sseType, tt.data, tt.want, tt.wantOK)
		})
	}
}

func TestParserSSEEventOverCap(t *testing.T) {
	usage := func(in int) string {
		return fmt.Sprintf(`data: {"model":"m","usage":{"prompt_tokens":%d,"completion_tokens":1}}`+"\n\n", in)
	}
	huge := `data: {"model":"m","usage":{"prompt_tokens":666,"completion_tokens":1},"pad":"` + strings.Repeat("x", maxEventBytes) + `"}` + "\n\n"
	hugeLines := "data: {\"model\":\"m\",\"usage\":{\"prompt_tokens\":666,\"completion_tokens\":1},\"pad\":\"\n" +
		strings.Repeat("data: "+strings.Repeat("y", 1000)+"\n", maxEventBytes/1000+1) + "data: \"}\n\n"

	tests := []struct {
		name   string
		stream string
		want   int64
	}{
		{"a long line, then a good event", usage(1) + huge + usage(2), 2},
		{"many lines, then a good event", usage(1) + hugeLines + usage(3), 3},
		{"a long event is not counted", usage(1) + huge, 1},
		{"a long comment does not matter", ":" + strings.Repeat("z", 3*maxEventBytes) + "\n" + usage(4), 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{0, 1 << 10, 32 << 10} {
				p := newOpenAIParser(sseType).(*openAIParser)
				data := []byte(tt.stream)
				for len(data) > 0 {
					n := len(data)
					if size > 0 {
						n = min(size, n)
					}
					p.Write(data[:n])
					data = data[n:]
					// Never more than one capped event held.
					if c := cap(p.ev.data); c > 2*maxEventBytes {
						t.Fatalf("parser holds %d bytes", c)
					}
				}
				got, ok := p.Usage()
				if !ok || got.InputTokens != tt.want {
					t.Fatalf("pieces of %d: Usage() = %+v, %v; want input %d", size, got, ok, tt.want)
				}
			}
		})
	}
}

func TestParserJSON(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		want   Usage
		wantOK bool
	}{
		{"chat completion, nested usage keys do not count", string(fixture(t, "chat.json")),
			Usage{InputTokens: 1117, OutputTokens: 46, Model: "gpt-4o-2024-08-06"}, true},
		{"responses API", string(fixture(t, "responses.json")),
			Usage{InputTokens: 36, OutputTokens: 87, Model: "gpt-4.1-2025-04-14"}, true},
		{"embeddings", `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292,-0.0028842222]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}`,
			Usage{InputTokens: 8, Model: "text-embedding-3-small"}, true},
		{"embeddings, base64", `{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AAAAPwAAgD8AAIA/AACAPw=="}],"model":"text-embedding-3-large","usage":{"prompt_tokens":5,"total_tokens":5}}`,
			Usage{InputTokens: 5, Model: "text-embedding-3-large"}, true},
		{"usage before data", `{"usage":{"prompt_tokens":4,"completion_tokens":2},"model":"m","data":[[1,2,{"usage":{"prompt_tokens":99}}]]}`,
			Usage{InputTokens: 4, OutputTokens: 2, Model: "m"}, true},
		{"legacy completion", `{"id":"cmpl-1","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct","choices":[{"text":"\n\nThis is indeed a test","index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}`,
			Usage{InputTokens: 5, OutputTokens: 7, Model: "gpt-3.5-turbo-instruct"}, true},
		{"strings with braces, quotes and escapes", `{"a":"}{][\"\\","b\"usage\"":{"usage":1},"c":"\\\"usage\\\":{","usage" : { "prompt_tokens" : 10 , "completion_tokens" : 20 } , "z":"\u0022}"}`,
			Usage{InputTokens: 10, OutputTokens: 20}, true},
		{"whitespace and a trailing newline", " \r\n\t{ \"model\" : \"m\" ,\n \"usage\"\n:\n{\"input_tokens\":3,\"output_tokens\":4}\n}\n",
			Usage{InputTokens: 3, OutputTokens: 4, Model: "m"}, true},
		{"usage last, no model", `{"usage":{"input_tokens":3,"output_tokens":4}}`,
			Usage{InputTokens: 3, OutputTokens: 4}, true},
		{"a non-string model keeps the usage", `{"model":7,"usage":{"input_tokens":3,"output_tokens":4}}`,
			Usage{InputTokens: 3, OutputTokens: 4}, true},
		{"provider error", `{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}`,
			Usage{}, false},
		{"usage null", `{"model":"m","usage":null}`, Usage{}, false},
		{"usage a number", `{"model":"m","usage":5}`, Usage{}, false},
		{"usage without counts", `{"usage":{"total_tokens":5}}`, Usage{}, false},
		{"cut off inside usage", `{"model":"m","usage":{"prompt_tokens":4,"completion_tokens":2`, Usage{}, false},
		{"cut off right after usage", `{"model":"m","usage":{"prompt_tokens":4,"completion_tokens":2}`, Usage{}, false},
		{"cut off after usage", `{"model":"m","usage":{"prompt_tokens":4,"completion_tokens":2},"x":[1,2`,
			Usage{InputTokens: 4, OutputTokens: 2, Model: "m"}, true},
		{"top-level array", `[{"usage":{"prompt_tokens":4,"completion_tokens":2}}]`, Usage{}, false},
		{"top-level string", `"usage"`, Usage{}, false},
		{"SSE sent as JSON", "data: {\"usage\":{\"prompt_tokens\":4}}\n\n", Usage{}, false},
		{"two documents: only the first", `{"model":"a"}{"usage":{"prompt_tokens":4,"completion_tokens":2}}`, Usage{}, false},
		{"garbage", "}}]]{\x00\xff\"usage\":{\"prompt_tokens\":1}}", Usage{}, false},
		{"empty", ``, Usage{}, false},
		{"long key prefixed usage", `{"usage_extra":{"prompt_tokens":4},"usagex":{"prompt_tokens":4}}`, Usage{}, false},
		{"escaped key is not recognised", `{"us\u0061ge":{"prompt_tokens":4}}`, Usage{}, false},
		{"a usage over the cap is dropped", `{"usage":{"prompt_tokens":4,"pad":"` + strings.Repeat("p", maxCapture) + `"}}`, Usage{}, false},
		{"a model over the cap is dropped, not the usage", `{"model":"` + strings.Repeat("m", maxCapture) + `","usage":{"prompt_tokens":4}}`,
			Usage{InputTokens: 4}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.body)
			if len(data) > 8<<10 {
				// Every split of a large body is slow under -race; a few sizes are enough.
				for _, size := range []int{0, 1, 5, 4096} {
					got, ok := parse(jsonType, data, size)
					if ok != tt.wantOK || got != tt.want {
						t.Fatalf("pieces of %d: Usage() = %+v, %v; want %+v, %v", size, got, ok, tt.want, tt.wantOK)
					}
				}
				return
			}
			checkSplits(t, jsonType, data, tt.want, tt.wantOK)
		})
	}
}

// embeddingsBody is an embeddings response of about size bytes, its usage after the vectors.
func embeddingsBody(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"object":"list","data":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"object":"embedding","index":%d,"embedding":[`, i)
		for j := range 1536 {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%.9f", float64((i*1536+j)%2000-1000)/1e4)
		}
		b.WriteString("]}")
	}
	b.WriteString(`],"model":"text-embedding-3-small","usage":{"prompt_tokens":8192,"total_tokens":8192}}`)
	return b.Bytes()
}

func TestParserJSONLargeEmbeddings(t *testing.T) {
	body := embeddingsBody(4 << 20)
	want := Usage{InputTokens: 8192, Model: "text-embedding-3-small"}
	for _, size := range []int{1 << 10, 32 << 10, 1<<20 + 3, len(body)} {
		p := newOpenAIParser(jsonType).(*openAIParser)
		for data := body; len(data) > 0; {
			n := min(size, len(data))
			p.Write(data[:n])
			data = data[n:]
		}
		got, ok := p.Usage()
		if !ok || got != want {
			t.Fatalf("pieces of %d: Usage() = %+v, %v; want %+v", size, got, ok, want)
		}
		// Nothing but the two small values is kept.
		if held := cap(p.js.cur) + cap(p.js.usage) + cap(p.js.model); held > 4<<10 {
			t.Fatalf("pieces of %d: parser holds %d bytes", size, held)
		}
	}
}

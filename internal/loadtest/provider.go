package loadtest

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Provider is a mock model provider speaking OpenAI chat completions, Anthropic messages and
// Gemini generateContent, answering every call at once with the same reply and the usage fields
// each provider sends. A streamed call ("stream":true in the body, or Gemini's
// :streamGenerateContent) is answered with server-sent events that end with the usage, as the
// provider streams it. Any other path is answered as a chat completion.
type Provider struct {
	// StreamGap is the pause between a stream's first event, which is flushed, and the rest: so
	// time to first byte can be told from the whole stream's, and a client can leave mid-stream.
	StreamGap time.Duration
}

// reply is one API's answer: whole as JSON, events as a stream.
type reply struct {
	whole  string
	events []string // each with its blank line
}

const openAIChunk = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764201234,"model":"gpt-4o-mini-2024-07-18","choices":[`

var (
	openAIReply = reply{
		whole: `{"id":"chatcmpl-1","object":"chat.completion","created":1764201234,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}`,
		events: []string{
			"data: " + openAIChunk + `{"index":0,"delta":{"role":"assistant","content":"Hello there,"},"finish_reason":null}],"usage":null}` + "\n\n",
			"data: " + openAIChunk + `{"index":0,"delta":{"content":" how can I help?"},"finish_reason":"stop"}],"usage":null}` + "\n\n",
			"data: " + openAIChunk + `],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}` + "\n\n",
			"data: [DONE]\n\n",
		},
	}
	anthropicReply = reply{
		whole: `{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5-20251001","content":[{"type":"text","text":"Hello there, how can I help?"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":9}}`,
		events: []string{
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-haiku-4-5-20251001\",\"content\":[],\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n",
			"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello there,\"}}\n\n",
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" how can I help?\"}}\n\n",
			"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
			"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\n",
			"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
		},
	}
	// Gemini ends its events with CRLF pairs.
	geminiReply = reply{
		whole: `{"candidates":[{"content":{"parts":[{"text":"Hello there, how can I help?"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":9,"totalTokenCount":21},"modelVersion":"gemini-2.5-flash"}`,
		events: []string{
			"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hello there,\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":3,\"totalTokenCount\":15},\"modelVersion\":\"gemini-2.5-flash\"}\r\n\r\n",
			"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" how can I help?\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":9,\"totalTokenCount\":21},\"modelVersion\":\"gemini-2.5-flash\"}\r\n\r\n",
		},
	}
)

// replyFor is the answer of the API at path.
func replyFor(path string) reply {
	switch {
	case strings.HasSuffix(path, "/v1/messages"):
		return anthropicReply
	case strings.Contains(path, ":"): // models/<model>:generateContent
		return geminiReply
	default:
		return openAIReply
	}
}

func (p Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rep := replyFor(r.URL.Path)
	if !bytes.Contains(body, []byte(`"stream":true`)) && !strings.Contains(r.URL.Path, ":streamGenerateContent") {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(rep.whole)))
		_, _ = io.WriteString(w, rep.whole)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	bw := bufio.NewWriter(w)
	for i, e := range rep.events {
		_, _ = bw.WriteString(e)
		if i == 0 {
			_ = bw.Flush()
			w.(http.Flusher).Flush()
			time.Sleep(p.StreamGap)
		}
	}
	_ = bw.Flush()
}

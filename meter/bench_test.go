package meter

import (
	"fmt"
	"testing"
)

// chatStreamEvents is a streamed chat completion of n content chunks as the provider sends them
// with include_usage: every chunk says "usage":null, and a last chunk carries the usage.
func chatStreamEvents(n int) [][]byte {
	const head = `data: {"id":"chatcmpl-AZx1Q8b3mKpL0Vv9tR2sYc4Hn7De","object":"chat.completion.chunk","created":1732662016,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_0705bf87c0","choices":[`
	events := make([][]byte, 0, n+2)
	for i := range n {
		events = append(events, fmt.Appendf(nil, head+`{"index":0,"delta":{"content":" token%d"},"logprobs":null,"finish_reason":null}],"usage":null}`+"\n\n", i))
	}
	events = append(events, []byte(head+`],"usage":{"prompt_tokens":1200,"completion_tokens":200,"total_tokens":1400,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}`+"\n\n"))
	return append(events, []byte("data: [DONE]\n\n"))
}

// BenchmarkParserChatStream writes a 200-chunk stream one event per Write, as the proxy flushes.
func BenchmarkParserChatStream(b *testing.B) {
	events := chatStreamEvents(200)
	size := 0
	for _, e := range events {
		size += len(e)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		p := newOpenAIParser("text/event-stream")
		for _, e := range events {
			p.Write(e)
		}
		if u, ok := p.Usage(); !ok || u.OutputTokens != 200 {
			b.Fatalf("Usage() = %+v, %v", u, ok)
		}
	}
}

// BenchmarkParserEmbeddingsJSON writes a 4 MiB embeddings body in the 32 KiB pieces io.Copy uses.
func BenchmarkParserEmbeddingsJSON(b *testing.B) {
	body := embeddingsBody(4 << 20)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		p := newOpenAIParser("application/json")
		for data := body; len(data) > 0; {
			n := min(32<<10, len(data))
			p.Write(data[:n])
			data = data[n:]
		}
		if u, ok := p.Usage(); !ok || u.InputTokens != 8192 {
			b.Fatalf("Usage() = %+v, %v", u, ok)
		}
	}
}

package meter

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// Usage is what a response reported it used.
type Usage struct {
	InputTokens  int64
	OutputTokens int64
	// Model is the model the provider says answered ("" when it did not say).
	Model string
}

// Parser reads a response body as it streams past, in pieces split at any byte, and keeps the
// last usage record it saw. It holds at most one SSE event (up to 1 MiB; a longer event is
// skipped, not buffered) or, for JSON, the raw top-level "usage" and "model" values (up to 64 KiB
// each), so metering never buffers a stream or a large body.
//
// Garbage, truncated or unrecognised input gives no usage, never an error or a panic. A Parser
// is for one response and one goroutine. The zero value reads a JSON body; NewParser picks SSE
// or JSON by content type.
type Parser struct {
	sse  bool
	ev   sseReader
	js   jsonScan
	last Usage
	seen bool
}

// NewParser makes a parser for a response of contentType: text/event-stream is read as SSE
// (chat completion chunks, Responses API events), anything else as one JSON document.
func NewParser(contentType string) *Parser {
	// Only the media type matters; a cut at ';' is all of mime.ParseMediaType this needs, without
	// its allocations on every response.
	mediaType, _, _ := strings.Cut(contentType, ";")
	return &Parser{sse: strings.EqualFold(strings.TrimSpace(mediaType), "text/event-stream")}
}

// Write feeds the next piece of the body. It always consumes all of b and never fails, so it can
// sit behind an io.MultiWriter or a response writer without ever failing the response.
func (p *Parser) Write(b []byte) (int, error) {
	if p.sse {
		p.ev.write(b, p.event)
	} else {
		p.js.write(b)
	}
	return len(b), nil
}

// Usage returns the last usage record the body carried; ok is false when it carried none (or
// only a truncated or malformed one).
func (p *Parser) Usage() (u Usage, ok bool) {
	if p.sse {
		return p.last, p.seen
	}
	usage, model := p.js.result()
	if usage == nil {
		return Usage{}, false
	}
	var rec usageRecord
	if json.Unmarshal(usage, &rec) != nil {
		return Usage{}, false
	}
	if u, ok = rec.usage(); ok && model != nil {
		_ = json.Unmarshal(model, &u.Model) // a non-string model is no reason to lose the usage
	}
	return u, ok
}

// usageRecord holds both naming schemes: prompt/completion (chat, completions, embeddings) and
// input/output (responses).
type usageRecord struct {
	PromptTokens     json.Number `json:"prompt_tokens"`
	CompletionTokens json.Number `json:"completion_tokens"`
	InputTokens      json.Number `json:"input_tokens"`
	OutputTokens     json.Number `json:"output_tokens"`
}

// usage converts a record; ok is false when it has no input count or a count is not a
// non-negative whole number.
func (r *usageRecord) usage() (Usage, bool) {
	if r == nil {
		return Usage{}, false
	}
	in, out := r.PromptTokens, r.CompletionTokens
	if in == "" {
		in, out = r.InputTokens, r.OutputTokens
	}
	if in == "" {
		return Usage{}, false
	}
	var u Usage
	var ok bool
	if u.InputTokens, ok = tokenCount(in); !ok {
		return Usage{}, false
	}
	if out != "" { // embeddings report no output
		if u.OutputTokens, ok = tokenCount(out); !ok {
			return Usage{}, false
		}
	}
	return u, true
}

// tokenCount reads a count, allowing a float that is a whole number (12.0) since some
// OpenAI-compatible servers write counts that way.
func tokenCount(n json.Number) (int64, bool) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i, i >= 0
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f < 0 || f >= math.MaxInt64 || f != math.Trunc(f) {
		return 0, false
	}
	return int64(f), true
}

// streamEvent is the part of a chat completion chunk or a Responses API event that carries
// usage: top-level in chunks, under "response" in response.completed (and .incomplete, .failed).
type streamEvent struct {
	Model    string       `json:"model"`
	Usage    *usageRecord `json:"usage"`
	Response *struct {
		Model string       `json:"model"`
		Usage *usageRecord `json:"usage"`
	} `json:"response"`
}

// event handles one SSE event's data. Most events are deltas without usage, and with
// include_usage every chunk says "usage":null, so an event is decoded only when some "usage" key
// in it holds an object.
func (p *Parser) event(data []byte) {
	if !hasUsageObject(data) {
		return
	}
	var ev streamEvent
	if json.Unmarshal(data, &ev) != nil {
		return
	}
	rec, model := ev.Usage, ev.Model
	if rec == nil && ev.Response != nil {
		rec, model = ev.Response.Usage, ev.Response.Model
	}
	if u, ok := rec.usage(); ok {
		u.Model = model
		p.last, p.seen = u, true
	}
}

var usageKey = []byte(`"usage"`)

// hasUsageObject reports whether data has a "usage" key whose value is an object. In valid JSON
// the bytes "usage" with both quotes bare can only be a key or the string "usage", never text
// inside another string, where the quotes would be escaped.
func hasUsageObject(data []byte) bool {
	for {
		i := bytes.Index(data, usageKey)
		if i < 0 {
			return false
		}
		data = data[i+len(usageKey):]
		j := skipSpace(data, 0)
		if j < len(data) && data[j] == ':' {
			if k := skipSpace(data, j+1); k < len(data) && data[k] == '{' {
				return true
			}
		}
	}
}

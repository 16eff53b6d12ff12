package meter

import (
	"encoding/json"
	"strings"
)

// Usage is what a response reported it used.
type Usage struct {
	InputTokens  int64
	OutputTokens int64
	// Model is the model the provider says answered ("" when it did not say).
	Model string
}

// usageJSON holds both naming schemes: chat and embeddings (prompt/completion) and responses
// (input/output).
type usageJSON struct {
	PromptTokens     *int64 `json:"prompt_tokens"`
	CompletionTokens *int64 `json:"completion_tokens"`
	InputTokens      *int64 `json:"input_tokens"`
	OutputTokens     *int64 `json:"output_tokens"`
}

func (u *usageJSON) usage() (Usage, bool) {
	if u == nil {
		return Usage{}, false
	}
	var out Usage
	switch {
	case u.PromptTokens != nil:
		out.InputTokens = *u.PromptTokens
		if u.CompletionTokens != nil {
			out.OutputTokens = *u.CompletionTokens
		}
	case u.InputTokens != nil:
		out.InputTokens = *u.InputTokens
		if u.OutputTokens != nil {
			out.OutputTokens = *u.OutputTokens
		}
	default:
		return Usage{}, false
	}
	if out.InputTokens < 0 || out.OutputTokens < 0 {
		return Usage{}, false
	}
	return out, true
}

// Parser reads a response body as it streams past, in pieces split anywhere, and keeps the last
// usage record it saw. It holds at most one SSE event or one captured JSON value, each capped.
type Parser struct {
	sse  bool
	ev   sseState
	js   jsonScan
	last Usage
	seen bool
}

// NewParser makes a parser for a response of contentType.
func NewParser(contentType string) *Parser {
	return &Parser{sse: strings.HasPrefix(strings.TrimSpace(strings.ToLower(contentType)), "text/event-stream")}
}

// Write feeds the next piece of the body. It always consumes all of b and never fails.
func (p *Parser) Write(b []byte) (int, error) {
	if p.sse {
		p.ev.write(b, p.event)
	} else {
		p.js.write(b)
	}
	return len(b), nil
}

// Usage returns the usage the body reported, if it did.
func (p *Parser) Usage() (Usage, bool) {
	if p.sse {
		return p.last, p.seen
	}
	var u usageJSON
	if p.js.usage == nil || json.Unmarshal(p.js.usage, &u) != nil {
		return Usage{}, false
	}
	out, ok := u.usage()
	if ok && p.js.model != nil {
		_ = json.Unmarshal(p.js.model, &out.Model)
	}
	return out, ok
}

// streamEvent is the part of a streamed chunk or Responses API event that matters here.
type streamEvent struct {
	Model    string     `json:"model"`
	Usage    *usageJSON `json:"usage"`
	Response *struct {
		Model string     `json:"model"`
		Usage *usageJSON `json:"usage"`
	} `json:"response"`
}

// usageMarker is looked for before decoding an event: most chunks are deltas without usage.
var usageMarker = []byte(`"usage"`)

func (p *Parser) event(data []byte) {
	if !containsBytes(data, usageMarker) {
		return
	}
	var ev streamEvent
	if json.Unmarshal(data, &ev) != nil {
		return
	}
	u, model := ev.Usage, ev.Model
	if ev.Response != nil && ev.Response.Usage != nil {
		u, model = ev.Response.Usage, ev.Response.Model
	}
	if out, ok := u.usage(); ok {
		out.Model = model
		p.last, p.seen = out, true
	}
}

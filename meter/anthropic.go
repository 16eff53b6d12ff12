package meter

import (
	"bytes"
	"net/http"
	"strings"
)

// Anthropic is the Anthropic Messages API: POST …/v1/messages is metered (JSON or SSE), POST
// …/v1/messages/count_tokens is free, and so is the models listing when the Anthropic SDK asks
// for it (it sends anthropic-version). Message batches are not served: they cannot be metered
// as they run.
var Anthropic Dialect = anthropic{}

type anthropic struct{}

// The Anthropic endpoints.
const (
	Messages            Endpoint = "messages"
	messagesCountTokens Endpoint = "messages/count_tokens"
)

func (anthropic) Name() string { return "anthropic" }

// anthropicEndpoint tells the endpoint from the path's suffix, whatever prefix routes it.
func anthropicEndpoint(path string) Endpoint {
	switch {
	case strings.HasSuffix(path, "/v1/messages"):
		return Messages
	case strings.HasSuffix(path, "/v1/messages/count_tokens"):
		return messagesCountTokens
	}
	return Other
}

func (anthropic) Route(r *http.Request) (Route, bool, error) {
	path := r.URL.Path
	ep := anthropicEndpoint(path)
	if ep == Other {
		if anthropicEndpoint(strings.ToLower(path)) != Other {
			return Route{}, false, caseError
		}
		// The models listing is OpenAI's path too: the SDK's header tells them apart, so
		// that its errors come in the shape the SDK reads.
		if r.Header.Get("Anthropic-Version") != "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
			openAIEndpoint(path) == models {
			return Route{Kind: Free, Endpoint: models}, true, nil
		}
		return Route{}, false, nil
	}
	if r.Method != http.MethodPost {
		return Route{}, true, nil // not served: GET …/messages is nothing
	}
	kind := Metered
	if ep == messagesCountTokens {
		kind = Free
	}
	return Route{Kind: kind, Endpoint: ep}, true, nil
}

var anthropicFields = newFieldSet([]string{"model", "stream", "max_tokens"}, nil)

// anthropicIndirect are the markers of content the body does not hold: documents and images by
// URL or Files API id, and server tools (web search and fetch, code execution, MCP servers,
// containers) that bring what they find into the context.
var anthropicIndirect = newMarkerSet(
	`"url"`, `"file_id"`, `"file"`, `"web_search`, `"web_fetch`, `"code_execution`, `"mcp_servers"`,
	`"container"`, `"tool_search_tool`,
)

// Inspect reads the model, stream and max_tokens (the output cap; the API requires it, and
// Rewrite sets it from the tier when the client sent none).
func (anthropic) Inspect(rt Route, body []byte) (RequestInfo, error) {
	info := RequestInfo{Endpoint: rt.Endpoint, Choices: 1}
	obj, err := parseObject(body)
	if err != nil {
		return info, err
	}
	info.valid = checked(body)
	f, err := anthropicFields.pick(&obj)
	if err != nil {
		return info, err
	}
	if info.Model, err = stringField("model", f[0].value(body)); err != nil {
		return info, err
	}
	if info.Stream, err = boolField("stream", f[1].value(body)); err != nil {
		return info, err
	}
	n, ok, err := positiveInt("max_tokens", f[2].value(body))
	if err != nil {
		return info, err
	}
	if ok {
		info.MaxOutput, info.HasMaxOutput, info.MaxOutputField = n, true, "max_tokens"
	}
	info.IndirectInput = anthropicIndirect.in(body)
	return info, nil
}

// Rewrite sets max_tokens; streams report their usage without being asked.
func (anthropic) Rewrite(body []byte, info RequestInfo, setMaxOutput int64, _ bool) ([]byte, error) {
	if setMaxOutput <= 0 || info.HasMaxOutput {
		return body, nil
	}
	obj, err := info.object(body)
	if err != nil {
		return nil, err
	}
	var e editor
	e.setTop(body, &obj, "max_tokens", e.number(setMaxOutput))
	return e.apply(body, &obj), nil
}

// NewParser reads a message's usage: input_tokens + cache_creation_input_tokens +
// cache_read_input_tokens are the input, output_tokens the output. In a stream, message_start
// carries the input and message_delta the output as a running total: the usage is complete
// (ok) once message_start and a message_delta with usage have been seen, and the delta's
// counts replace message_start's.
func (anthropic) NewParser(_ Route, contentType string) Parser {
	p := &anthropicParser{}
	p.init(contentType, "usage", "model")
	return p
}

type anthropicParser struct {
	parserCore
	rec   anthropicCounts
	model string
	start bool // message_start was seen: the input is known
	delta bool // a message_delta with usage was seen: the output is known
}

func (p *anthropicParser) Write(b []byte) (int, error) {
	if p.sse {
		p.ev.write(b, p.event)
	} else {
		p.js.write(b)
	}
	return len(b), nil
}

func (p *anthropicParser) Usage() (Usage, bool) {
	if p.sse {
		if !p.start || !p.delta {
			return Usage{}, false
		}
		u, ok := p.rec.usage()
		u.Model = p.model
		return u, ok
	}
	usage, model := p.js.result()
	var obj object
	if usage == nil || !jsonObject(usage, &obj) {
		return Usage{}, false
	}
	var rec anthropicCounts
	rec.merge(usage, &obj)
	u, ok := rec.usage()
	if ok && model != nil {
		u.Model = stringValue(model)
	}
	return u, ok
}

// anthropicCounts are a usage object's counts.
type anthropicCounts struct {
	input, cacheWrite, cacheRead, output count
}

// merge takes the counts a usage object (in doc) states over those held: a message_delta
// restates what it knows.
func (r *anthropicCounts) merge(doc []byte, obj *object) {
	list := obj.list()
	for i := range list {
		m := &list[i]
		var dst *count
		switch string(m.key) {
		case "input_tokens":
			dst = &r.input
		case "cache_creation_input_tokens":
			dst = &r.cacheWrite
		case "cache_read_input_tokens":
			dst = &r.cacheRead
		case "output_tokens":
			dst = &r.output
		default:
			continue
		}
		if c := readCount(m.value(doc)); c.set {
			*dst = c
		}
	}
}

func (r *anthropicCounts) usage() (Usage, bool) {
	if !r.input.set && !r.output.set {
		return Usage{}, false
	}
	in, ok1 := r.input.orZero()
	write, ok2 := r.cacheWrite.orZero()
	read, ok3 := r.cacheRead.orZero()
	out, ok4 := r.output.orZero()
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return Usage{}, false
	}
	return Usage{
		InputTokens:       addCounts(addCounts(in, write), read),
		CachedInputTokens: read,
		CacheWriteTokens:  write,
		OutputTokens:      out,
	}, true
}

var (
	messageStartType = []byte(`"message_start"`)
	messageDeltaType = []byte(`"message_delta"`)
)

// event reads only message_start (the message's model and usage) and message_delta (its own
// usage): content deltas, the bulk of a stream, carry no usage.
func (p *anthropicParser) event(data []byte) {
	if !bytes.Contains(data, messageStartType) && !bytes.Contains(data, messageDeltaType) {
		return
	}
	var ev object
	if !jsonObject(data, &ev) {
		return
	}
	typ := ev.last("type")
	if typ == nil {
		return
	}
	var usage object
	switch stringValue(typ.value(data)) {
	case "message_start":
		var msg object
		if !objectValue(data, ev.last("message"), &msg) || !objectValue(data, msg.last("usage"), &usage) {
			return
		}
		p.rec = anthropicCounts{}
		p.rec.merge(data, &usage)
		p.start = true
		if m := msg.last("model"); m != nil {
			p.model = stringValue(m.value(data))
		}
	case "message_delta":
		if objectValue(data, ev.last("usage"), &usage) {
			p.rec.merge(data, &usage)
			p.delta = true
		}
	}
}

// anthropicErrorTypes are the error types of the Anthropic API by status; the SDK raises its
// error classes by status, and shows the type.
var anthropicErrorTypes = map[int]string{
	http.StatusBadRequest:            "invalid_request_error",
	http.StatusUnauthorized:          "authentication_error",
	http.StatusForbidden:             "permission_error",
	http.StatusNotFound:              "not_found_error",
	http.StatusRequestEntityTooLarge: "request_too_large",
	http.StatusTooManyRequests:       "rate_limit_error",
}

// ErrorBody is {"type":"error","error":{"type":"…","message":"<code>: …"}}.
func (anthropic) ErrorBody(e Error) []byte {
	typ, ok := anthropicErrorTypes[e.Status]
	if !ok {
		typ = "invalid_request_error"
		if e.Status >= 500 {
			typ = "api_error"
		}
	}
	var b bytes.Buffer
	b.WriteString(`{"type":"error","error":{"type":`)
	writeJSONString(&b, typ)
	b.WriteString(`,"message":`)
	writeJSONString(&b, e.Code+": "+e.Message)
	b.WriteString("}}")
	return b.Bytes()
}

// Owns what the Anthropic SDK sends (it always sends anthropic-version), and the Messages API's
// other paths (message batches).
func (anthropic) Owns(r *http.Request) bool {
	return r.Header.Get("Anthropic-Version") != "" || strings.Contains(r.URL.Path, "/v1/messages/")
}

// RequestHeaders are the Anthropic SDK's, including the header that lets it run in a browser.
func (anthropic) RequestHeaders() []string {
	return []string{"authorization", "x-api-key", "content-type", "accept", "anthropic-version", "anthropic-beta",
		"anthropic-dangerous-direct-browser-access", "x-stainless-*"}
}

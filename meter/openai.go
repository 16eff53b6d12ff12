package meter

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"regexp"
	"strings"
)

// OpenAI is the OpenAI API (and every OpenAI-compatible provider): chat completions,
// completions, responses and embeddings are metered (POST), GET …/v1/models is free. The
// endpoint is told by the path's last segments, whatever comes before them (/v1, /openai/v1, an
// Azure deployment path). It is the default dialect: the gateway's own errors use its shape.
var OpenAI Dialect = openAI{}

type openAI struct{}

// The OpenAI endpoints.
const (
	ChatCompletions Endpoint = "chat/completions"
	Completions     Endpoint = "completions"
	Responses       Endpoint = "responses"
	Embeddings      Endpoint = "embeddings"
	models          Endpoint = "models"
)

func (openAI) Name() string { return "openai" }

// Route meters POSTs to the four endpoints and serves the models listing free. A path in
// another case than the API's own is refused when that case changes the endpoint it names
// (/v1/CHAT/completions is completions to a case-sensitive reader, chat completions to one that
// ignores case).
func (openAI) Route(r *http.Request) (Route, bool, error) {
	method, path := r.Method, r.URL.Path
	ep := openAIEndpoint(path)
	if lower := strings.ToLower(path); lower != path && openAIEndpoint(lower) != ep {
		return Route{}, false, caseError
	}
	switch {
	case ep == models:
		if (method == http.MethodGet || method == http.MethodHead) && r.Header.Get("Upgrade") == "" {
			return Route{Kind: Free, Endpoint: models}, true, nil
		}
	case ep != Other && method == http.MethodPost:
		return Route{Kind: Metered, Endpoint: ep}, true, nil
	}
	return Route{}, false, nil
}

// modelsPath matches the models endpoints under an API version segment (/v1, /openai/v1).
var modelsPath = regexp.MustCompile(`(?:^|/)v\d+[a-z0-9]*/models(?:/[^/]+)?$`)

func openAIEndpoint(path string) Endpoint {
	switch {
	case strings.HasSuffix(path, "/chat/completions"):
		return ChatCompletions
	case strings.HasSuffix(path, "/completions"):
		return Completions
	case strings.HasSuffix(path, "/responses"):
		return Responses
	case strings.HasSuffix(path, "/embeddings"):
		return Embeddings
	case modelsPath.MatchString(path):
		return models
	}
	return Other
}

// openAIFields are the top-level fields Inspect reads.
var openAIFields = newFieldSet([]string{"model", "stream", "max_tokens", "max_completion_tokens", "max_output_tokens",
	"n", "best_of", "prompt", "stream_options", "previous_response_id", "conversation"}, nil)

const (
	oaModel = iota
	oaStream
	oaMaxTokens
	oaMaxCompletionTokens
	oaMaxOutputTokens
	oaN
	oaBestOf
	oaPrompt
	_ // stream_options: read by Rewrite, but named only once
	oaPreviousResponseID
	oaConversation
)

// openAIIndirect are the keys of content parts and tools that bring input by reference or
// fetch it: images, files and audio by id or URL; hosted tools that put what they find into
// the context.
var openAIIndirect = newMarkerSet(
	`"image_url"`, `"input_image"`, `"file_id"`, `"input_file"`, `"file_url"`, `"file_data"`,
	`"input_audio"`, `"image"`, `"web_search`, `"file_search"`, `"code_interpreter"`, `"mcp"`,
	`"computer_use`,
)

// Inspect reads a body that must be a JSON object whose fields have the types the API
// documents, or the error names the field. The output cap is max_completion_tokens or
// max_tokens for chat completions (the larger when both are set, since providers differ in
// which one wins and the budget must hold either way), max_tokens for completions and
// max_output_tokens for responses; choices are n for chat, the larger of n and best_of times
// the number of prompts for completions.
func (openAI) Inspect(rt Route, body []byte) (RequestInfo, error) {
	info := RequestInfo{Endpoint: rt.Endpoint, Choices: 1, NoOutput: rt.Endpoint == Embeddings}
	obj, err := parseObject(body)
	if err != nil {
		return info, err
	}
	info.valid = checked(body)
	f, err := openAIFields.pick(&obj)
	if err != nil {
		return info, err
	}
	if info.Model, err = stringField("model", f[oaModel].value(body)); err != nil {
		return info, err
	}
	if info.Stream, err = boolField("stream", f[oaStream].value(body)); err != nil {
		return info, err
	}

	var caps []int
	switch rt.Endpoint {
	case ChatCompletions:
		caps = []int{oaMaxCompletionTokens, oaMaxTokens}
	case Completions:
		caps = []int{oaMaxTokens}
	case Responses:
		caps = []int{oaMaxOutputTokens}
	}
	for _, i := range caps {
		name := openAIFields.names[i]
		n, ok, err := positiveInt(name, f[i].value(body))
		if err != nil {
			return info, err
		}
		if ok && n > info.MaxOutput { // on a tie the first named (max_completion_tokens) is reported
			info.MaxOutput, info.HasMaxOutput, info.MaxOutputField = n, true, name
		}
	}

	for _, i := range []int{oaPreviousResponseID, oaConversation} {
		if raw := f[i].value(body); raw != nil && !isNull(raw) {
			info.IndirectInput = true
		}
	}
	info.IndirectInput = info.IndirectInput || openAIIndirect.in(body)

	switch rt.Endpoint {
	case ChatCompletions:
		if n, ok, err := positiveInt("n", f[oaN].value(body)); err != nil {
			return info, err
		} else if ok {
			info.Choices = n
		}
	case Completions:
		for _, i := range []int{oaN, oaBestOf} {
			n, ok, err := positiveInt(openAIFields.names[i], f[i].value(body))
			if err != nil {
				return info, err
			}
			if ok && n > info.Choices {
				info.Choices = n
			}
		}
		if prompts := promptCount(f[oaPrompt].value(body)); prompts > 1 {
			if info.Choices > math.MaxInt64/prompts {
				info.Choices = math.MaxInt64 // absurd, and refused by any budget; never wrapped
			} else {
				info.Choices *= prompts
			}
		}
	}
	return info, nil
}

// promptCount is how many prompts a completions "prompt" holds: each gets its own completions.
// A string or a list of token ids is one prompt; a list of strings or of token lists is many.
func promptCount(raw []byte) int64 {
	if len(raw) == 0 || raw[0] != '[' {
		return 1
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil || len(items) == 0 {
		return 1
	}
	if c := items[0][0]; c == '"' || c == '[' {
		return int64(len(items))
	}
	return 1
}

// Rewrite sets "max_tokens" (chat completions, completions) or "max_output_tokens"
// (responses), and for a streamed chat completion or completion merges
// "stream_options":{"include_usage":true} into any stream_options the client sent.
func (openAI) Rewrite(body []byte, info RequestInfo, setMaxOutput int64, includeUsage bool) ([]byte, error) {
	capField := ""
	if setMaxOutput > 0 && !info.HasMaxOutput {
		switch info.Endpoint {
		case ChatCompletions, Completions:
			capField = "max_tokens"
		case Responses:
			capField = "max_output_tokens"
		}
	}
	wantUsage := includeUsage && info.Stream && (info.Endpoint == ChatCompletions || info.Endpoint == Completions)
	if capField == "" && !wantUsage {
		return body, nil
	}
	obj, err := info.object(body)
	if err != nil {
		return nil, err
	}
	var e editor
	if capField != "" {
		e.setTop(body, &obj, capField, e.number(setMaxOutput))
	}
	if wantUsage {
		m := obj.last("stream_options")
		switch {
		case m == nil:
			e.add("stream_options", []byte(`{"include_usage":true}`))
		case isNull(m.value(body)):
			e.replace(m, []byte(`{"include_usage":true}`))
		case body[m.start] == '{':
			for _, sp := range includeUsageEdits(body, objectAt(body, m.start)) {
				e.edit(sp)
			}
		default:
			return nil, typeError("stream_options", "an object", m.value(body))
		}
	}
	return e.apply(body, &obj), nil
}

// includeUsageEdits makes a stream_options object say include_usage true: every copy of the
// field is set, so no parser can pick a false one; a missing field goes first.
func includeUsageEdits(body []byte, opts object) []splice {
	var edits []splice
	found := false
	for _, m := range opts.list() {
		if string(m.key) != "include_usage" {
			continue
		}
		found = true
		if string(m.value(body)) != "true" {
			edits = append(edits, splice{m.start, m.end, []byte("true")})
		}
	}
	if !found {
		edits = append(edits, insertFirst(opts, `"include_usage":true`))
	}
	return edits
}

// NewParser reads chat completion chunks and Responses API events in SSE, one JSON document
// otherwise: usage.prompt_tokens and completion_tokens (chat, completions, embeddings) or
// input_tokens and output_tokens (responses), with their cached parts.
func (openAI) NewParser(_ Route, contentType string) Parser {
	p := &openAIParser{}
	p.init(contentType, "usage", "model")
	return p
}

type openAIParser struct {
	parserCore
	last Usage
	seen bool
}

func (p *openAIParser) Write(b []byte) (int, error) {
	if p.sse {
		p.ev.write(b, p.event)
	} else {
		p.js.write(b)
	}
	return len(b), nil
}

func (p *openAIParser) Usage() (Usage, bool) {
	if p.sse {
		return p.last, p.seen
	}
	usage, model := p.js.result()
	var obj object
	if usage == nil || !jsonObject(usage, &obj) {
		return Usage{}, false
	}
	u, ok := openAIUsage(usage, &obj)
	if ok && model != nil {
		u.Model = stringValue(model) // a non-string model is no reason to lose the usage
	}
	return u, ok
}

// openAIUsage reads a usage object of either naming scheme: prompt/completion (chat,
// completions, embeddings) or input/output (responses), with the cached part of the input from
// its *_tokens_details. ok is false when it has no input count, or a count is not a
// non-negative whole number; a cached count over the input is capped at it.
func openAIUsage(doc []byte, obj *object) (Usage, bool) {
	var prompt, completion, input, output count
	var promptDetails, inputDetails *member
	list := obj.list()
	for i := range list {
		m := &list[i]
		switch string(m.key) {
		case "prompt_tokens":
			prompt = readCount(m.value(doc))
		case "completion_tokens":
			completion = readCount(m.value(doc))
		case "input_tokens":
			input = readCount(m.value(doc))
		case "output_tokens":
			output = readCount(m.value(doc))
		case "prompt_tokens_details":
			promptDetails = m
		case "input_tokens_details":
			inputDetails = m
		}
	}
	in, out, details := prompt, completion, promptDetails
	if !in.set {
		in, out, details = input, output, inputDetails
	}
	if !in.set || in.bad || out.bad { // embeddings report no output: out unset is 0
		return Usage{}, false
	}
	u := Usage{InputTokens: in.v, OutputTokens: out.v}
	var d object
	if objectValue(doc, details, &d) {
		cached := optionalCountFrom(doc, d.last("cached_tokens"))
		if cached.bad {
			return Usage{}, false
		}
		u.CachedInputTokens = min(cached.v, u.InputTokens)
	}
	return u, true
}

// event handles one SSE event's data: a chat completion chunk, whose usage is top-level, or a
// Responses API event, whose usage is under "response" (response.completed, .incomplete,
// .failed). Most events are deltas without usage, and with include_usage every chunk says
// "usage":null, so an event is read only when some "usage" key in it holds an object.
func (p *openAIParser) event(data []byte) {
	if !hasObjectAt(data, usageKey) {
		return
	}
	var ev object
	if !jsonObject(data, &ev) {
		return
	}
	usage, model := ev.last("usage"), ev.last("model")
	var resp object
	if (usage == nil || data[usage.start] != '{') && objectValue(data, ev.last("response"), &resp) {
		usage, model = resp.last("usage"), resp.last("model")
	}
	var rec object
	if !objectValue(data, usage, &rec) {
		return
	}
	if u, ok := openAIUsage(data, &rec); ok {
		if model != nil {
			u.Model = stringValue(model.value(data))
		}
		p.last, p.seen = u, true
	}
}

var usageKey = []byte(`"usage"`)

// ErrorBody is {"error":{"message","type","param","code"}}, so the OpenAI SDKs raise the class
// of the status with the gateway's code.
func (openAI) ErrorBody(e Error) []byte {
	var b bytes.Buffer
	b.WriteString(`{"error":{"message":`)
	writeJSONString(&b, e.Message)
	b.WriteString(`,"type":`)
	writeJSONString(&b, e.Type)
	b.WriteString(`,"param":`)
	if e.Param == "" {
		b.WriteString("null")
	} else {
		writeJSONString(&b, e.Param)
	}
	b.WriteString(`,"code":`)
	writeJSONString(&b, e.Code)
	b.WriteString("}}")
	return b.Bytes()
}

// Owns every request: OpenAI's is the default shape.
func (openAI) Owns(*http.Request) bool { return true }

// RequestHeaders are the OpenAI SDK's: its x-stainless-* telemetry and its organisation,
// project and beta headers (the gateway drops the first two before forwarding).
func (openAI) RequestHeaders() []string {
	return []string{"authorization", "content-type", "accept", "openai-organization", "openai-project",
		"openai-beta", "idempotency-key", "x-stainless-*"}
}

package meter

import (
	"bytes"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// Gemini is the Gemini API (/v1 and /v1beta), as @google/genai speaks it:
// models/<model>:generateContent, :streamGenerateContent (with ?alt=sse), :embedContent and
// :batchEmbedContents are metered; :countTokens and the models listing are free. The model is
// the path's. The Gemini API reads fields in lowerCamelCase and in snake_case alike, so both
// spellings are read, and a field given in both is refused.
var Gemini Dialect = gemini{}

type gemini struct{}

// The Gemini endpoints.
const (
	GenerateContent       Endpoint = "generateContent"
	StreamGenerateContent Endpoint = "streamGenerateContent"
	EmbedContent          Endpoint = "embedContent"
	BatchEmbedContents    Endpoint = "batchEmbedContents"
	countTokens           Endpoint = "countTokens"
)

var geminiMethods = [...]Endpoint{GenerateContent, StreamGenerateContent, EmbedContent, BatchEmbedContents, countTokens}

// geminiVersion is an API version segment: v1, v1beta, v1alpha.
var geminiVersion = regexp.MustCompile(`(?:^|/)v\d+(?:alpha|beta)?\d*$`)

func (gemini) Name() string { return "gemini" }

func (gemini) Route(r *http.Request) (Route, bool, error) {
	dir, last := cutLastSegment(r.URL.Path)
	model, method, isCall := strings.Cut(last, ":")
	if !isCall {
		return geminiListing(r, dir, last)
	}
	parent, coll := cutLastSegment(dir)
	if !strings.EqualFold(coll, "models") || !geminiVersion.MatchString(strings.ToLower(parent)) {
		return Route{}, false, nil
	}
	ep := Other
	for _, m := range geminiMethods {
		if strings.EqualFold(method, string(m)) {
			ep = m
		}
	}
	switch {
	case ep == Other:
		return Route{}, false, nil // another method (long-running predictions, an OpenAI fine-tune id): not ours to meter
	case string(ep) != method || coll != "models" || !geminiVersion.MatchString(parent):
		return Route{}, false, caseError
	case r.Method != http.MethodPost:
		return Route{}, true, nil
	case model == "":
		return Route{}, false, &RequestError{Message: "The request path names no model (models/<model>:" + method + ")."}
	case ep == countTokens:
		return Route{Kind: Free, Endpoint: ep, Model: model}, true, nil
	case ep == StreamGenerateContent && r.URL.Query().Get("alt") != "sse":
		return Route{}, false, &RequestError{Param: "alt", Message: "streamGenerateContent is served as server-sent events only: add ?alt=sse (as the Gemini SDKs do), so its usage can be read as it streams."}
	}
	return Route{Kind: Metered, Endpoint: ep, Model: model, Stream: ep == StreamGenerateContent}, true, nil
}

// geminiListing claims GET …/models and …/models/<model> under a beta or alpha version, or
// under /v1 when the Gemini SDK asks (OpenAI's models listing has the same path).
func geminiListing(r *http.Request, dir, last string) (Route, bool, error) {
	version := dir
	if _, coll := cutLastSegment(dir); coll == "models" {
		version, _ = cutLastSegment(dir) // …/models/<model>
	} else if last == "models" {
		version = dir // …/models
	} else {
		return Route{}, false, nil
	}
	_, v := cutLastSegment(version)
	sdk := r.Header.Get("X-Goog-Api-Key") != "" || r.Header.Get("X-Goog-Api-Client") != ""
	if !geminiVersion.MatchString(version) || !(sdk || strings.Contains(v, "beta") || strings.Contains(v, "alpha")) {
		return Route{}, false, nil
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return Route{}, true, nil
	}
	return Route{Kind: Free, Endpoint: models}, true, nil
}

var (
	geminiFields = newFieldSet([]string{"generationConfig", "cachedContent"},
		map[string]string{"generation_config": "generationConfig", "cached_content": "cachedContent"})
	geminiConfigFields = newFieldSet([]string{"maxOutputTokens", "candidateCount", "thinkingConfig"},
		map[string]string{"max_output_tokens": "maxOutputTokens", "candidate_count": "candidateCount", "thinking_config": "thinkingConfig"})
	geminiThinkingFields = newFieldSet([]string{"thinkingBudget"}, map[string]string{"thinking_budget": "thinkingBudget"})
)

// geminiIndirect are the markers of content the body does not hold (files by URI) and of tools
// that bring what they find into the context (search, URL context, code execution, maps).
var geminiIndirect = newMarkerSet(
	`"fileData"`, `"file_data"`, `"fileUri"`, `"file_uri"`, `"googleSearch`, `"google_search`,
	`"urlContext"`, `"url_context"`, `"codeExecution"`, `"code_execution"`, `"fileSearch"`,
	`"file_search"`, `"googleMaps"`, `"google_maps"`, `"retrieval"`, `"enterpriseWebSearch"`,
	`"enterprise_web_search"`, `"computerUse"`, `"computer_use"`,
)

// Inspect reads generationConfig: the output cap is maxOutputTokens (plus thinkingBudget when
// one is set, so thoughts are bounded too), times candidateCount; cachedContent and files by
// URI make the prompt unbounded by the body. Embeddings have no output.
func (gemini) Inspect(rt Route, body []byte) (RequestInfo, error) {
	info := RequestInfo{Endpoint: rt.Endpoint, Model: rt.Model, Stream: rt.Stream, Choices: 1,
		NoOutput: rt.Endpoint == EmbedContent || rt.Endpoint == BatchEmbedContents}
	obj, err := parseObject(body)
	if err != nil {
		return info, err
	}
	info.valid = checked(body)
	f, err := geminiFields.pick(&obj)
	if err != nil {
		return info, err
	}
	if m := f[1]; m != nil && !isNull(m.value(body)) {
		info.IndirectInput = true
	}
	info.IndirectInput = info.IndirectInput || geminiIndirect.in(body)
	if info.NoOutput || f[0] == nil || isNull(f[0].value(body)) {
		return info, nil
	}
	raw := f[0].value(body)
	if raw[0] != '{' {
		return info, typeError(f[0].name(), "an object", raw)
	}
	cfgObj := objectAt(body, f[0].start)
	cfg, err := geminiConfigFields.pick(&cfgObj)
	if err != nil {
		return info, err
	}
	n, ok, err := positiveInt(nameOf(cfg[0], "maxOutputTokens"), cfg[0].value(body))
	if err != nil {
		return info, err
	}
	if ok {
		info.MaxOutput, info.HasMaxOutput, info.MaxOutputField = n, true, "generationConfig."+cfg[0].name()
	}
	if c, ok, err := positiveInt(nameOf(cfg[1], "candidateCount"), cfg[1].value(body)); err != nil {
		return info, err
	} else if ok {
		info.Choices = c
	}
	if tc := cfg[2].value(body); tc != nil && !isNull(tc) {
		if tc[0] != '{' {
			return info, typeError(cfg[2].name(), "an object", tc)
		}
		thObj := objectAt(body, cfg[2].start)
		th, err := geminiThinkingFields.pick(&thObj)
		if err != nil {
			return info, err
		}
		// -1 asks for dynamic thinking, 0 for none: only a positive budget adds a bound.
		if raw := th[0].value(body); raw != nil && !isNull(raw) {
			b, err := strconv.ParseInt(string(raw), 10, 64)
			if err != nil || b < -1 {
				return info, typeError(th[0].name(), "a whole number of tokens (or -1)", raw)
			}
			if b > 0 && info.HasMaxOutput {
				info.MaxOutput = addCounts(info.MaxOutput, b)
			}
		}
	}
	return info, nil
}

func nameOf(m *member, fallback string) string {
	if m == nil {
		return fallback
	}
	return m.name()
}

// Rewrite sets generationConfig.maxOutputTokens: in the client's generationConfig (either
// spelling) when it has one, else in a new one.
func (gemini) Rewrite(body []byte, info RequestInfo, setMaxOutput int64, _ bool) ([]byte, error) {
	if setMaxOutput <= 0 || info.HasMaxOutput || info.NoOutput {
		return body, nil
	}
	obj, err := info.object(body)
	if err != nil {
		return nil, err
	}
	f, err := geminiFields.pick(&obj)
	if err != nil {
		return nil, err
	}
	var e editor
	value := e.number(setMaxOutput)
	switch m := f[0]; {
	case m == nil:
		e.add("generationConfig", append(append([]byte(`{"maxOutputTokens":`), value...), '}'))
	case isNull(m.value(body)):
		e.replace(m, append(append([]byte(`{"maxOutputTokens":`), value...), '}'))
	case body[m.start] == '{':
		cfg := objectAt(body, m.start)
		c, err := geminiConfigFields.pick(&cfg)
		if err != nil {
			return nil, err
		}
		if c[0] != nil { // present but null
			e.replace(c[0], value)
		} else {
			e.edit(insertFirst(cfg, `"maxOutputTokens":`+string(value)))
		}
	default:
		return nil, typeError(m.name(), "an object", m.value(body))
	}
	return e.apply(body, &obj), nil
}

// NewParser reads usageMetadata: promptTokenCount + toolUsePromptTokenCount are the input
// (cachedContentTokenCount its cached part), candidatesTokenCount + thoughtsTokenCount the
// output. Streamed chunks carry running totals: the last chunk's count, and the usage is
// complete (ok) once a chunk has finished a candidate (finishReason) or reported a blocked
// prompt, so a stream cut off earlier is charged its reservation.
func (gemini) NewParser(_ Route, contentType string) Parser {
	p := &geminiParser{}
	p.init(contentType, "usageMetadata", "modelVersion")
	return p
}

type geminiParser struct {
	parserCore
	last     Usage
	lastOK   bool
	model    string
	finished bool
}

func (p *geminiParser) Write(b []byte) (int, error) {
	if p.sse {
		p.ev.write(b, p.event)
	} else {
		p.js.write(b)
	}
	return len(b), nil
}

func (p *geminiParser) Usage() (Usage, bool) {
	if p.sse {
		if !p.finished || !p.lastOK {
			return Usage{}, false
		}
		u := p.last
		u.Model = p.model
		return u, true
	}
	usage, model := p.js.result()
	var obj object
	if usage == nil || !jsonObject(usage, &obj) {
		return Usage{}, false
	}
	u, ok := geminiUsage(usage, &obj)
	if ok && model != nil {
		u.Model = stringValue(model)
	}
	return u, ok
}

// geminiUsage reads a usageMetadata object.
func geminiUsage(doc []byte, obj *object) (Usage, bool) {
	var prompt, toolUse, cached, candidates, thoughts count
	list := obj.list()
	for i := range list {
		m := &list[i]
		switch string(m.key) {
		case "promptTokenCount":
			prompt = readCount(m.value(doc))
		case "toolUsePromptTokenCount":
			toolUse = readCount(m.value(doc))
		case "cachedContentTokenCount":
			cached = readCount(m.value(doc))
		case "candidatesTokenCount":
			candidates = readCount(m.value(doc))
		case "thoughtsTokenCount":
			thoughts = readCount(m.value(doc))
		}
	}
	if !prompt.set || prompt.bad || toolUse.bad || cached.bad || candidates.bad || thoughts.bad {
		return Usage{}, false
	}
	in := addCounts(prompt.v, toolUse.v)
	return Usage{InputTokens: in, CachedInputTokens: min(cached.v, in), OutputTokens: addCounts(candidates.v, thoughts.v)}, true
}

var usageMetadataKey = []byte(`"usageMetadata"`)

// event reads a streamed chunk's usageMetadata (running totals), its modelVersion, and whether
// it finishes a candidate or reports a blocked prompt.
func (p *geminiParser) event(data []byte) {
	if !hasObjectAt(data, usageMetadataKey) {
		return
	}
	var ch, usage object
	if !jsonObject(data, &ch) || !objectValue(data, ch.last("usageMetadata"), &usage) {
		return
	}
	p.last, p.lastOK = geminiUsage(data, &usage)
	if m := ch.last("modelVersion"); m != nil {
		if v := stringValue(m.value(data)); v != "" {
			p.model = v
		}
	}
	if c := ch.last("candidates"); c != nil && data[c.start] == '[' {
		arrayElements(data, c.start, func(start, _ int) {
			var cand object
			if data[start] == '{' {
				cand = objectAt(data, start)
				if f := cand.last("finishReason"); f != nil && stringValue(f.value(data)) != "" {
					p.finished = true
				}
			}
		})
	}
	var fb object
	if objectValue(data, ch.last("promptFeedback"), &fb) {
		if b := fb.last("blockReason"); b != nil && stringValue(b.value(data)) != "" {
			p.finished = true
		}
	}
}

// geminiStatuses are the google.rpc status names of the HTTP statuses the gateway answers.
var geminiStatuses = map[int]string{
	http.StatusBadRequest:            "INVALID_ARGUMENT",
	http.StatusUnauthorized:          "UNAUTHENTICATED",
	http.StatusForbidden:             "PERMISSION_DENIED",
	http.StatusNotFound:              "NOT_FOUND",
	http.StatusMethodNotAllowed:      "INVALID_ARGUMENT",
	http.StatusRequestEntityTooLarge: "INVALID_ARGUMENT",
	http.StatusTooManyRequests:       "RESOURCE_EXHAUSTED",
	http.StatusServiceUnavailable:    "UNAVAILABLE",
}

// ErrorBody is {"error":{"code":<status>,"message":"<code>: …","status":"RESOURCE_EXHAUSTED"}}.
func (gemini) ErrorBody(e Error) []byte {
	status, ok := geminiStatuses[e.Status]
	if !ok {
		status = "INTERNAL"
	}
	var b bytes.Buffer
	b.WriteString(`{"error":{"code":`)
	b.WriteString(strconv.Itoa(e.Status))
	b.WriteString(`,"message":`)
	writeJSONString(&b, e.Code+": "+e.Message)
	b.WriteString(`,"status":"`)
	b.WriteString(status)
	b.WriteString(`"}}`)
	return b.Bytes()
}

// Owns what the Gemini SDKs send (x-goog-api-key or x-goog-api-client) and paths under a beta
// or alpha version (cachedContents, files, tunedModels), which only Google's APIs use.
func (gemini) Owns(r *http.Request) bool {
	if r.Header.Get("X-Goog-Api-Key") != "" || r.Header.Get("X-Goog-Api-Client") != "" {
		return true
	}
	for seg := range strings.SplitSeq(r.URL.Path, "/") {
		if (strings.Contains(seg, "beta") || strings.Contains(seg, "alpha")) && geminiVersion.MatchString(seg) {
			return true
		}
	}
	return false
}

// RequestHeaders are @google/genai's.
func (gemini) RequestHeaders() []string {
	return []string{"authorization", "x-goog-api-key", "x-goog-api-client", "x-goog-user-project", "content-type", "accept"}
}

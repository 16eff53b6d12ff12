package meter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Endpoint is the kind of OpenAI-style API a request calls. It decides which body fields cap the
// output and whether a stream needs stream_options to report usage.
type Endpoint uint8

const (
	// Other is any path whose body this package does not read. It is the zero value, so an
	// unset Endpoint never claims to be a metered API.
	Other Endpoint = iota
	ChatCompletions
	Completions
	Responses
	Embeddings
)

var endpointNames = [...]string{"other", "chat/completions", "completions", "responses", "embeddings"}

func (e Endpoint) String() string {
	if int(e) < len(endpointNames) {
		return endpointNames[e]
	}
	return "endpoint(" + strconv.Itoa(int(e)) + ")"
}

// EndpointOf tells the endpoint from the path's last segments, whatever comes before them (/v1,
// /openai/v1, an Azure deployment path). The path must be canonical (see CheckPath) and in the
// API's own case: a path that names an endpoint in another case (/v1/CHAT/completions) is
// reported by ErrPathCase when that case changes which endpoint it names, since a provider that
// routes regardless of case would serve an endpoint the gateway did not meter.
func EndpointOf(path string) (Endpoint, error) {
	ep := endpointOf(path)
	if lower := strings.ToLower(path); lower != path && endpointOf(lower) != ep {
		// Read regardless of case, the path names another endpoint (/v1/CHAT/completions is
		// completions to a case-sensitive reader, chat completions to the other kind).
		return Other, ErrPathCase
	}
	return ep, nil
}

// ErrPathCase is a path that names a metered endpoint in another case than the API's.
var ErrPathCase error = &RequestError{Message: "The request path is not in canonical form: it names an endpoint in another case than the API's own."}

func endpointOf(path string) Endpoint {
	switch {
	case strings.HasSuffix(path, "/chat/completions"):
		return ChatCompletions
	case strings.HasSuffix(path, "/completions"):
		return Completions
	case strings.HasSuffix(path, "/responses"):
		return Responses
	case strings.HasSuffix(path, "/embeddings"):
		return Embeddings
	}
	return Other
}

// RequestInfo is what a request body says about its cost.
type RequestInfo struct {
	Endpoint Endpoint
	// Model is the body's "model" ("" when absent, e.g. Azure deployments name it in the path).
	Model string
	// Stream is the body's "stream".
	Stream bool
	// MaxOutput is the output cap the client asked for, per choice: max_completion_tokens or
	// max_tokens (chat/completions; the larger when both are set, since providers differ in
	// which one wins and the budget must hold either way); max_tokens (completions);
	// max_output_tokens (responses). 0 when none; embeddings have no output.
	MaxOutput    int64
	HasMaxOutput bool
	// MaxOutputField names the field MaxOutput came from ("" when none), for an error's param.
	MaxOutputField string
	// Choices is how many outputs the request can generate, each up to MaxOutput: "n" for chat
	// completions; the larger of "n" and "best_of", times the number of prompts, for
	// completions; 1 otherwise. OutputBound multiplies it out without overflowing.
	Choices int64
	// IndirectInput is set when the prompt can be larger than the body: it refers to stored
	// context (previous_response_id, conversation) or to content fetched by reference (files,
	// images, audio by id or URL). The body's size then bounds nothing.
	IndirectInput bool
}

// OutputBound is the most output tokens the request can produce when each choice is capped at
// perChoice (the client's MaxOutput, or the cap Rewrite set): perChoice * Choices, saturating
// at math.MaxInt64 rather than wrapping, so a huge "n" cannot turn a reservation negative.
func (r RequestInfo) OutputBound(perChoice int64) int64 {
	choices := max(r.Choices, 1)
	if perChoice <= 0 {
		return 0
	}
	if perChoice > math.MaxInt64/choices {
		return math.MaxInt64
	}
	return perChoice * choices
}

// ErrInvalidRequest is matched (errors.Is) by every error Inspect and Rewrite return.
var ErrInvalidRequest = errors.New("invalid request body")

// RequestError is a request body the gateway will not pass on. Message is a sentence a developer
// can act on; Param names the field at fault ("" for the body as a whole).
type RequestError struct {
	Param   string
	Message string
}

func (e *RequestError) Error() string { return e.Message }

// Is makes errors.Is(err, ErrInvalidRequest) hold.
func (e *RequestError) Is(target error) bool { return target == ErrInvalidRequest }

var errNotObject = &RequestError{Message: "The request body must be a JSON object."}

// inspected are the top-level fields Inspect reads. A body naming one twice is refused: parsers
// disagree on which copy wins, and the gateway must read the one the provider will use.
var inspected = [...]string{"model", "stream", "max_tokens", "max_completion_tokens", "max_output_tokens",
	"n", "best_of", "prompt", "stream_options", "previous_response_id", "conversation"}

// indirectMarkers are the keys of content parts that bring input by reference. Finding one
// anywhere in the body (even inside a string) only makes the reservation larger: the safe side.
var indirectMarkers = [][]byte{[]byte(`"image_url"`), []byte(`"input_image"`), []byte(`"file_id"`),
	[]byte(`"input_file"`), []byte(`"file_url"`), []byte(`"file_data"`), []byte(`"input_audio"`), []byte(`"image"`)}

// Inspect reads the body of a request to path. For Other endpoints it reads nothing and never
// fails; for the others the body must be a JSON object whose fields have the types the API
// documents, or the error (a *RequestError) names the field.
func Inspect(path string, body []byte) (RequestInfo, error) {
	info := RequestInfo{Endpoint: endpointOf(path), Choices: 1}
	if info.Endpoint == Other {
		return info, nil
	}
	obj, err := parseObject(body)
	if err != nil {
		return info, err
	}
	var fields [len(inspected)]*member
	for i := range obj.members {
		m := &obj.members[i]
		k, ok := inspectedIndex[m.name]
		if !ok {
			continue
		}
		if fields[k] != nil {
			return info, &RequestError{Param: m.name, Message: m.name + " appears more than once in the request body."}
		}
		fields[k] = m
	}
	field := func(name string) []byte {
		if m := fields[inspectedIndex[name]]; m != nil {
			return m.value(body)
		}
		return nil
	}

	if raw := field("model"); raw != nil && !isNull(raw) {
		if raw[0] != '"' || json.Unmarshal(raw, &info.Model) != nil {
			return info, typeError("model", "a string", raw)
		}
	}
	if raw := field("stream"); raw != nil && !isNull(raw) {
		switch string(raw) {
		case "true":
			info.Stream = true
		case "false":
		default:
			return info, typeError("stream", "true or false", raw)
		}
	}

	var caps []string
	switch info.Endpoint {
	case ChatCompletions:
		caps = []string{"max_completion_tokens", "max_tokens"}
	case Completions:
		caps = []string{"max_tokens"}
	case Responses:
		caps = []string{"max_output_tokens"}
	}
	for _, name := range caps {
		n, ok, err := positiveInt(name, field(name))
		if err != nil {
			return info, err
		}
		if ok && n > info.MaxOutput { // on a tie the first named (max_completion_tokens) is reported
			info.MaxOutput, info.HasMaxOutput, info.MaxOutputField = n, true, name
		}
	}

	for _, name := range []string{"previous_response_id", "conversation"} {
		if raw := field(name); raw != nil && !isNull(raw) {
			info.IndirectInput = true
		}
	}
	for _, m := range indirectMarkers {
		if !info.IndirectInput && bytes.Contains(body, m) {
			info.IndirectInput = true
		}
	}

	switch info.Endpoint {
	case ChatCompletions:
		if n, ok, err := positiveInt("n", field("n")); err != nil {
			return info, err
		} else if ok {
			info.Choices = n
		}
	case Completions:
		for _, name := range []string{"n", "best_of"} {
			n, ok, err := positiveInt(name, field(name))
			if err != nil {
				return info, err
			}
			if ok && n > info.Choices {
				info.Choices = n
			}
		}
		if prompts := promptCount(field("prompt")); prompts > 1 {
			if info.Choices > math.MaxInt64/prompts {
				info.Choices = math.MaxInt64 // absurd, and refused by any budget; never wrapped
			} else {
				info.Choices *= prompts
			}
		}
	}
	return info, nil
}

// inspectedIndex maps the names in inspected to their position.
var inspectedIndex = func() map[string]int {
	m := make(map[string]int, len(inspected))
	for i, name := range inspected {
		m[name] = i
	}
	return m
}()

// positiveInt reads a field that must be a whole number above 0 when present and not null.
// Floats and exponents are refused rather than rounded: the cap must be the one the provider uses.
func positiveInt(name string, raw []byte) (int64, bool, error) {
	if raw == nil || isNull(raw) {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n <= 0 {
		return 0, false, typeError(name, "a positive integer", raw)
	}
	return n, true, nil
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

func typeError(name, want string, raw []byte) error {
	const show = 40 // enough to recognise the value, not enough to echo a document back
	got := string(raw)
	if len(got) > show {
		cut := show
		for cut > 0 && !utf8.RuneStart(got[cut]) {
			cut-- // keep the message valid UTF-8
		}
		got = got[:cut] + "…"
	}
	return &RequestError{Param: name, Message: fmt.Sprintf("%s must be %s, not %s.", name, want, got)}
}

func isNull(raw []byte) bool { return string(raw) == "null" }

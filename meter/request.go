package meter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Endpoint names an API endpoint ("chat/completions", "messages", "generateContent"); Other
// ("") is none the dialects meter.
type Endpoint string

// Other is the Endpoint of a request no dialect meters.
const Other Endpoint = ""

func (e Endpoint) String() string {
	if e == Other {
		return "other"
	}
	return string(e)
}

// RequestInfo is what a request body says about its cost.
type RequestInfo struct {
	Endpoint Endpoint
	// Model is the model the request names: the body's "model", or the path's (Gemini); ""
	// when it names none (e.g. an Azure deployment path).
	Model string
	// Stream is whether the response streams.
	Stream bool
	// MaxOutput is the output cap the client asked for, per choice (0 when none).
	MaxOutput    int64
	HasMaxOutput bool
	// MaxOutputField names the field MaxOutput came from ("" when none), for an error's param.
	MaxOutputField string
	// NoOutput is set for endpoints that produce no output tokens (embeddings).
	NoOutput bool
	// Choices is how many outputs the request can generate, each up to MaxOutput (n,
	// best_of, several prompts, candidateCount). OutputBound multiplies it out without
	// overflowing.
	Choices int64
	// IndirectInput is set when the prompt can be larger than the body: it refers to stored
	// context (previous_response_id, conversation, cachedContent) or to content fetched by
	// reference (files, images, audio by id or URL), or tools fetch content into it (web
	// search). The body's size then bounds nothing.
	IndirectInput bool

	// valid marks the body Inspect checked, so Rewrite of the same bytes does not check the
	// whole body again (a large prompt takes as long to check as everything else).
	valid checkedBody
}

// checkedBody identifies a body by its bytes' address and length (comparable, unlike a slice).
type checkedBody struct {
	p *byte
	n int
}

func checked(body []byte) checkedBody {
	if len(body) == 0 {
		return checkedBody{}
	}
	return checkedBody{&body[0], len(body)}
}

// object returns the top-level object of body, checking it is valid JSON unless Inspect did.
func (r RequestInfo) object(body []byte) (object, error) {
	if r.valid.n != 0 && r.valid == checked(body) {
		return topObject(body)
	}
	return parseObject(body)
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

// RequestError is a request the gateway will not pass on. Message is a sentence a developer
// can act on; Param names the field at fault ("" for the request as a whole).
type RequestError struct {
	Param   string
	Message string
}

func (e *RequestError) Error() string { return e.Message }

// Is makes errors.Is(err, ErrInvalidRequest) hold.
func (e *RequestError) Is(target error) bool { return target == ErrInvalidRequest }

var errNotObject = &RequestError{Message: "The request body must be a JSON object."}

// fieldSet finds the top-level members a dialect reads, by name. names lists them; an alias
// (a second spelling the API accepts, such as Gemini's snake_case) maps to a name's index. A
// body naming one field twice, in either spelling, is refused: parsers disagree on which copy
// wins, and the gateway must read the one the provider will use.
type fieldSet struct {
	index map[string]int
	names []string
}

func newFieldSet(names []string, aliases map[string]string) fieldSet {
	if len(names) > maxFields {
		panic("meter: a field set of more than maxFields")
	}
	fs := fieldSet{index: make(map[string]int, len(names)+len(aliases)), names: names}
	for i, n := range names {
		fs.index[n] = i
	}
	for alias, name := range aliases {
		fs.index[alias] = fs.index[name]
	}
	return fs
}

// maxFields bounds the fields a fieldSet names.
const maxFields = 12

// pick returns obj's members for fs, by index (nil where absent).
func (fs fieldSet) pick(obj *object) (found [maxFields]*member, err error) {
	list := obj.list()
	for i := range list {
		m := &list[i]
		k, ok := fs.index[string(m.key)]
		if !ok {
			continue
		}
		if found[k] != nil {
			return found, &RequestError{Param: m.name(), Message: m.name() + " appears more than once in the request body" +
				alsoSpelled(found[k].name(), m.name()) + "."}
		}
		found[k] = m
	}
	return found, nil
}

func alsoSpelled(a, b string) string {
	if a == b {
		return ""
	}
	return " (also as " + a + ")"
}

// stringField reads a field that must be a string when present and not null.
func stringField(name string, raw []byte) (string, error) {
	if raw == nil || isNull(raw) {
		return "", nil
	}
	if raw[0] != '"' {
		return "", typeError(name, "a string", raw)
	}
	if len(raw) >= 2 && raw[len(raw)-1] == '"' && bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		// Nothing to unescape or replace: the body is valid JSON, so this is the string's text.
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", typeError(name, "a string", raw)
	}
	return s, nil
}

// boolField reads a field that must be true or false when present and not null.
func boolField(name string, raw []byte) (bool, error) {
	if raw == nil || isNull(raw) {
		return false, nil
	}
	switch string(raw) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, typeError(name, "true or false", raw)
}

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

// markerSet is a set of byte strings that each start with '"' (a JSON key or value and its
// opening quote), found in one pass over a body.
type markerSet struct {
	all    [][]byte
	byNext [256][][]byte // the markers by the byte after their quote
}

func newMarkerSet(markers ...string) *markerSet {
	ms := &markerSet{}
	for _, m := range markers {
		if len(m) < 2 || m[0] != '"' {
			panic("meter: a marker must start with a quote and hold more: " + m)
		}
		ms.all = append(ms.all, []byte(m))
		ms.byNext[m[1]] = append(ms.byNext[m[1]], []byte(m))
	}
	return ms
}

// in reports whether body holds one of the markers anywhere (even inside a string): finding
// one only makes a reservation larger, the safe side. It is bytes.Contains for each marker, in
// one pass.
func (ms *markerSet) in(body []byte) bool {
	for i := 0; ; i++ {
		q := bytes.IndexByte(body[i:], '"')
		if q < 0 || i+q+1 >= len(body) {
			return false
		}
		i += q
		for _, m := range ms.byNext[body[i+1]] {
			if bytes.HasPrefix(body[i:], m) {
				return true
			}
		}
	}
}

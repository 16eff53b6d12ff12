package meter

import (
	"net/http"
	"strings"
)

// A Dialect is one provider API as its official SDK speaks it: it recognises the API's paths,
// reads and bounds a request's body, rewrites it so the provider honours the bound and reports
// its usage, reads that usage from a response (JSON or a stream), and shapes the gateway's errors
// so the SDK raises its own error classes. Each dialect is one file of this package; Recognize
// picks the dialect of a request once, and the caller stays dialect-free after that.
//
// Dialects hold no state: one value serves every request, concurrently.
type Dialect interface {
	// Name is the API's short name, for logs: "openai", "anthropic", "gemini".
	Name() string
	// Route recognises a request to this API by its method, canonical path (r.URL.Path), query
	// and headers. ok is false when the request is not this API's. err (a *RequestError)
	// refuses a request to one of the API's endpoints in a form the gateway will not pass on:
	// its path in another case than the API's own, or a stream it cannot meter.
	Route(r *http.Request) (rt Route, ok bool, err error)
	// Inspect reads the body of a request Route found Metered; its errors are *RequestError.
	Inspect(rt Route, body []byte) (RequestInfo, error)
	// Rewrite returns body with what the gateway needs the provider to do: when setMaxOutput > 0
	// and the client set no cap, the API's output cap is set; when includeUsage and the request
	// streams, usage reporting is asked for where the API needs asking. The change is spliced
	// into the client's bytes; when nothing changes, body itself is returned. info is what
	// Inspect returned for body, unchanged since (it knows body is valid JSON).
	Rewrite(body []byte, info RequestInfo, setMaxOutput int64, includeUsage bool) ([]byte, error)
	// NewParser returns a reader of the usage a response to rt reports, for its content type.
	NewParser(rt Route, contentType string) Parser
	// ErrorBody is e in the API's own error shape, a JSON document.
	ErrorBody(e Error) []byte
	// RequestHeaders are the request headers the API's SDK sends from a browser, lower case,
	// for CORS preflights (a name ending in '*' is a prefix).
	RequestHeaders() []string
	// Owns reports whether a request that no dialect serves looks like one of this API's (its
	// SDK's headers, its path), so that the refusal comes in the shape its SDK reads.
	Owns(r *http.Request) bool
}

// Kind is what the gateway does with a recognised request.
type Kind uint8

const (
	// NotServed requests are refused: they cannot be metered, or would show one user what
	// every user of the shared provider key stored. The zero value.
	NotServed Kind = iota
	// Metered requests are inspected, bounded, reserved and settled with their usage.
	Metered
	// Free requests (listings, token counts) are passed on without a reservation.
	Free
)

// Route is what Recognize found a request to be.
type Route struct {
	Dialect Dialect
	Kind    Kind
	// Endpoint names the endpoint ("chat/completions", "messages", "generateContent").
	Endpoint Endpoint
	// Model is the model the path names (Gemini's models/<model>:…), "" when the body names it.
	Model string
	// Stream is set when the path asks for a stream (Gemini's :streamGenerateContent).
	Stream bool
}

// Error is a gateway error for a dialect to shape. Status and Code are decided by the caller,
// once, for every dialect: the dialect only writes the shape.
type Error struct {
	Status int
	// Code is the gateway's code (invalid_api_key, insufficient_quota, model_not_allowed, …).
	Code string
	// Type is the OpenAI error type (invalid_request_error, insufficient_quota, …).
	Type string
	// Param names the request field at fault, "" for none.
	Param   string
	Message string
}

// Parser reads a response body as it streams past, in pieces split at any byte, and keeps what
// it needs of the usage it reports; it never fails and never buffers more than a bounded amount.
// A Parser is for one response and one goroutine.
type Parser interface {
	// Write feeds the next piece of the body; it always consumes all of b without error.
	Write(b []byte) (int, error)
	// Usage returns the usage the body reported; ok is false when it reported none, or the
	// response was cut off before its usage was complete.
	Usage() (u Usage, ok bool)
}

// dialects are tried in order; the last is the default, which takes every request.
var dialects = [...]Dialect{Gemini, Anthropic, OpenAI}

// Dialects returns every dialect, the default (OpenAI) last.
func Dialects() []Dialect { return dialects[:] }

// Recognize picks the dialect of a request and what it is. Its path must have passed
// CheckPath. A request no dialect serves is NotServed, in the dialect that Owns it (OpenAI
// when none does).
func Recognize(r *http.Request) (Route, error) {
	for _, d := range dialects {
		rt, ok, err := d.Route(r)
		if err != nil {
			return Route{Dialect: d}, err
		}
		if ok {
			rt.Dialect = d
			return rt, nil
		}
	}
	for _, d := range dialects {
		if d.Owns(r) {
			return Route{Dialect: d}, nil
		}
	}
	return Route{Dialect: OpenAI}, nil
}

// caseError reports a path in another case than the API's own.
var caseError error = &RequestError{Message: "The request path is not in canonical form: it names an endpoint in another case than the API's own."}

// ErrPathCase is the error Route and Recognize return for a path in another case than its API's.
var ErrPathCase = caseError

// cutLastSegment splits path at its last '/': what comes before, and the last segment.
func cutLastSegment(path string) (dir, last string) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return "", path
	}
	return path[:i], path[i+1:]
}

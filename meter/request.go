// Package meter reads what an LLM request may cost and what its response did: it inspects and
// rewrites OpenAI-style request bodies, and parses usage from JSON and SSE responses as they
// stream past. It does not import Caddy.
package meter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Endpoint is the kind of OpenAI-style API a request calls.
type Endpoint uint8

const (
	Other Endpoint = iota
	ChatCompletions
	Completions
	Responses
	Embeddings
)

// EndpointOf tells the endpoint from the path's last segments, whatever prefix (/v1, /openai/v1).
func EndpointOf(path string) Endpoint {
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
	Model    string
	Stream   bool
	// MaxOutput is the output cap the client asked for (0 when none).
	MaxOutput    int64
	HasMaxOutput bool
	// capField is the field MaxOutput came from.
	capField string
}

// outputCapFields are the fields that cap output, by endpoint, in order of precedence.
var outputCapFields = map[Endpoint][]string{
	ChatCompletions: {"max_completion_tokens", "max_tokens"},
	Completions:     {"max_tokens"},
	Responses:       {"max_output_tokens"},
}

// Inspect reads a request body of an endpoint EndpointOf(path) knows.
func Inspect(path string, body []byte) (RequestInfo, error) {
	info := RequestInfo{Endpoint: EndpointOf(path)}
	if info.Endpoint == Other {
		return info, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return info, errors.New("The request body must be a JSON object.")
	}
	if raw, ok := fields["model"]; ok {
		if err := json.Unmarshal(raw, &info.Model); err != nil {
			return info, errors.New("model must be a string.")
		}
	}
	if raw, ok := fields["stream"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &info.Stream); err != nil {
			return info, errors.New("stream must be true or false.")
		}
	}
	for _, name := range outputCapFields[info.Endpoint] {
		raw, ok := fields[name]
		if !ok || string(raw) == "null" {
			continue
		}
		var n int64
		if err := json.Unmarshal(raw, &n); err != nil || n <= 0 {
			return info, fmt.Errorf("%s must be a positive whole number.", name)
		}
		info.MaxOutput, info.HasMaxOutput, info.capField = n, true, name
		break
	}
	return info, nil
}

// Rewrite sets the output cap (when setMaxOutput > 0 and the client set none) and, for streamed
// chat completions and completions when includeUsage, stream_options.include_usage. Other fields
// are kept as they were. It returns body itself when nothing changes.
func Rewrite(body []byte, info RequestInfo, setMaxOutput int64, includeUsage bool) ([]byte, error) {
	capField := ""
	if setMaxOutput > 0 && !info.HasMaxOutput {
		switch info.Endpoint {
		case ChatCompletions, Completions:
			capField = "max_tokens"
		case Responses:
			capField = "max_output_tokens"
		}
	}
	usage := includeUsage && info.Stream && (info.Endpoint == ChatCompletions || info.Endpoint == Completions)
	if capField == "" && !usage {
		return body, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, errors.New("The request body must be a JSON object.")
	}
	if capField != "" {
		fields[capField] = json.RawMessage(fmt.Sprint(setMaxOutput))
	}
	if usage {
		opts := map[string]json.RawMessage{}
		if raw, ok := fields["stream_options"]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, &opts); err != nil || opts == nil {
				return nil, errors.New("stream_options must be an object.")
			}
		}
		opts["include_usage"] = json.RawMessage("true")
		raw, err := json.Marshal(opts)
		if err != nil {
			return nil, err
		}
		fields["stream_options"] = raw
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(fields); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

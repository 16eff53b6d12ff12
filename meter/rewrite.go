package meter

import (
	"slices"
	"strconv"
)

// Rewrite returns body with what the gateway needs the provider to do:
//
//   - when setMaxOutput > 0 and the client set no cap (info.HasMaxOutput is false), the cap is set:
//     "max_tokens" for chat completions and completions, "max_output_tokens" for responses;
//   - when includeUsage and the request is a streamed chat completion or completion,
//     "stream_options":{"include_usage":true} is merged into any stream_options the client sent.
//
// The change is spliced into the original bytes: every other byte (field order, spacing, numbers
// too big for a float64) stays as the client sent it. When nothing needs changing, body itself is
// returned. info is what Inspect returned for body.
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
	wantUsage := includeUsage && info.Stream && (info.Endpoint == ChatCompletions || info.Endpoint == Completions)
	if capField == "" && !wantUsage {
		return body, nil
	}
	obj, err := parseObject(body)
	if err != nil {
		return nil, err
	}

	var edits []splice
	var added []byte // members appended at the end of the object
	if capField != "" {
		value := strconv.AppendInt(nil, setMaxOutput, 10)
		if m := obj.last(capField); m != nil {
			// Present but null (or info is stale): replace the value where it stands.
			edits = append(edits, splice{m.start, m.end, value})
		} else {
			added = appendMember(added, capField, value)
		}
	}
	if wantUsage {
		m := obj.last("stream_options")
		switch {
		case m == nil:
			added = appendMember(added, "stream_options", []byte(`{"include_usage":true}`))
		case isNull(m.value(body)):
			edits = append(edits, splice{m.start, m.end, []byte(`{"include_usage":true}`)})
		case body[m.start] == '{':
			edits = append(edits, includeUsageEdits(body, objectAt(body, m.start))...)
		default:
			return nil, typeError("stream_options", "an object", m.value(body))
		}
	}
	if added != nil {
		// New members go right after the last one, so the client's closing layout is kept.
		at := obj.close
		if n := len(obj.members); n > 0 {
			at = obj.members[n-1].end
			added = append([]byte{','}, added...)
		}
		edits = append(edits, splice{at, at, added})
	}
	if len(edits) == 0 {
		return body, nil
	}
	return applySplices(body, edits), nil
}

// includeUsageEdits makes a stream_options object say include_usage true: every copy of the
// field is set, so no parser can pick a false one; a missing field goes first.
func includeUsageEdits(body []byte, opts object) []splice {
	var edits []splice
	found := false
	for _, m := range opts.members {
		if m.name != "include_usage" {
			continue
		}
		found = true
		if string(m.value(body)) != "true" {
			edits = append(edits, splice{m.start, m.end, []byte("true")})
		}
	}
	if !found {
		field := []byte(`"include_usage":true`)
		if len(opts.members) > 0 {
			field = append(field, ',')
		}
		edits = append(edits, splice{opts.open + 1, opts.open + 1, field})
	}
	return edits
}

// splice replaces body[start:end] with text (an insertion when start == end).
type splice struct {
	start, end int
	text       []byte
}

func applySplices(body []byte, edits []splice) []byte {
	slices.SortFunc(edits, func(a, b splice) int { return a.start - b.start })
	n := len(body)
	for _, e := range edits {
		n += len(e.text) - (e.end - e.start)
	}
	out := make([]byte, 0, n)
	at := 0
	for _, e := range edits {
		out = append(out, body[at:e.start]...)
		out = append(out, e.text...)
		at = e.end
	}
	return append(out, body[at:]...)
}

func appendMember(dst []byte, name string, value []byte) []byte {
	if len(dst) > 0 {
		dst = append(dst, ',')
	}
	dst = strconv.AppendQuote(dst, name)
	dst = append(dst, ':')
	return append(dst, value...)
}

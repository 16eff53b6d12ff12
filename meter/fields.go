package meter

import (
	"bytes"
	"encoding/json"
	"math"
)

// The usage parsers read small JSON values the scanners captured (a usage object, an SSE event)
// without encoding/json's reflection: they run once or a few times per response, and the
// allocations added up.

// count is a token count read from JSON: set when the member is there and not null, bad when
// it is not a non-negative whole number.
type count struct {
	v        int64
	set, bad bool
}

// readCount reads raw (a JSON value) as a count; a float that is a whole number (12.0) is
// allowed, since some OpenAI-compatible servers write counts that way.
func readCount(raw []byte) count {
	if isNull(raw) {
		return count{}
	}
	var n int64
	digits := len(raw) > 0
	for _, c := range raw {
		if c < '0' || c > '9' || n > (math.MaxInt64-9)/10 {
			digits = false
			break
		}
		n = n*10 + int64(c-'0')
	}
	if digits {
		return count{v: n, set: true}
	}
	i, ok := tokenCount(json.Number(raw))
	return count{v: i, set: true, bad: !ok}
}

// orZero is the count, 0 when absent; ok is false when it is malformed.
func (c count) orZero() (int64, bool) { return c.v, !c.bad }

// jsonObject locates the members of doc, an object: false when doc is not one valid JSON
// object.
func jsonObject(doc []byte, obj *object) bool {
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' || !json.Valid(doc) {
		return false
	}
	*obj = objectAt(doc, i)
	return true
}

// stringValue reads raw as a JSON string ("" when it is not one).
func stringValue(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return ""
	}
	if inner := raw[1 : len(raw)-1]; !hasEscapeOrControl(inner) {
		return string(inner)
	}
	var s string
	_ = json.Unmarshal(raw, &s)
	return s
}

func hasEscapeOrControl(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c < 0x20 {
			return true
		}
	}
	return false
}

// objectValue locates the object that is the value of m in doc (false when it is not an
// object).
func objectValue(doc []byte, m *member, obj *object) bool {
	if m == nil || doc[m.start] != '{' {
		return false
	}
	*obj = objectAt(doc, m.start)
	return true
}

// arrayElements calls each with the start offset of every element of the array at doc[open].
// doc must be valid JSON.
func arrayElements(doc []byte, open int, each func(start, end int)) {
	i := skipSpace(doc, open+1)
	for i < len(doc) && doc[i] != ']' {
		end := valueEnd(doc, i)
		each(i, end)
		i = skipSpace(doc, end)
		if i < len(doc) && doc[i] == ',' {
			i = skipSpace(doc, i+1)
		}
	}
}

// optionalCountFrom reads an optional member's count: absent or null is 0.
func optionalCountFrom(doc []byte, m *member) count {
	if m == nil {
		return count{}
	}
	return readCount(m.value(doc))
}

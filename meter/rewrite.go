package meter

import (
	"slices"
	"strconv"
)

// splice replaces body[start:end] with text (an insertion when start == end).
type splice struct {
	start, end int
	text       []byte
}

// editor collects the changes a dialect's Rewrite makes to one body: splices at offsets, and
// members appended at the end of the top-level object. Every other byte (field order, spacing,
// numbers too big for a float64) stays as the client sent it.
type editor struct {
	edits []splice
	added []byte // members appended to the top-level object, comma-separated
}

// add appends the member name: value to the top-level object.
func (e *editor) add(name string, value []byte) {
	e.added = appendMember(e.added, name, value)
}

// replace puts value in place of m's.
func (e *editor) replace(m *member, value []byte) {
	e.edits = append(e.edits, splice{m.start, m.end, value})
}

// setTop sets the top-level member name to value: in place when present (null, or info is
// stale), appended otherwise.
func (e *editor) setTop(body []byte, obj *object, name string, value []byte) {
	if m := obj.last(name); m != nil {
		e.replace(m, value)
		return
	}
	e.add(name, value)
}

// apply returns body with the edits made; body itself when there are none. obj is the
// top-level object of body.
func (e *editor) apply(body []byte, obj *object) []byte {
	if e.added != nil {
		// New members go right after the last one, so the client's closing layout is kept.
		at := obj.close
		added := e.added
		if n := len(obj.list()); n > 0 {
			at = obj.list()[n-1].end
			added = append([]byte{','}, added...)
		}
		e.edits = append(e.edits, splice{at, at, added})
	}
	if len(e.edits) == 0 {
		return body
	}
	return applySplices(body, e.edits)
}

// insertFirst is the splice that makes member (`"name":value`) the first of obj.
func insertFirst(obj object, member string) splice {
	text := []byte(member)
	if len(obj.list()) > 0 {
		text = append(text, ',')
	}
	return splice{obj.open + 1, obj.open + 1, text}
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

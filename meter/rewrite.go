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
//
// Its room for the usual few small edits is inline, so a rewrite allocates only its result.
type editor struct {
	edits []splice
	added []byte // members appended to the top-level object, each led by a comma

	editRoom [4]splice
	addRoom  [96]byte
	numRoom  [20]byte
}

// edit records a splice.
func (e *editor) edit(s splice) {
	if e.edits == nil {
		e.edits = e.editRoom[:0]
	}
	e.edits = append(e.edits, s)
}

// add appends the member name: value to the top-level object.
func (e *editor) add(name string, value []byte) {
	if e.added == nil {
		e.added = e.addRoom[:0]
	}
	e.added = append(e.added, ',')
	e.added = strconv.AppendQuote(e.added, name)
	e.added = append(e.added, ':')
	e.added = append(e.added, value...)
}

// replace puts value in place of m's.
func (e *editor) replace(m *member, value []byte) {
	e.edit(splice{m.start, m.end, value})
}

// number is n as JSON, in the editor's room: one number per rewrite.
func (e *editor) number(n int64) []byte { return strconv.AppendInt(e.numRoom[:0], n, 10) }

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
		at, added := obj.close, e.added[1:] // no comma before the first member
		if n := len(obj.list()); n > 0 {
			at, added = obj.list()[n-1].end, e.added
		}
		e.edit(splice{at, at, added})
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

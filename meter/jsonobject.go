package meter

import (
	"bytes"
	"encoding/json"
)

// object is a JSON object located in the document it was parsed from, so that Rewrite can splice
// a value in without re-encoding (and so reordering, or turning numbers into floats) the rest.
type object struct {
	open, close int // offsets of '{' and '}'
	// The members: the first in small (so an object of a few takes no allocation), the rest
	// in more. list returns them in order.
	n     int
	small [8]member
	more  []member
}

// list returns the object's members, in order.
func (o *object) list() []member {
	if o.more != nil {
		return o.more
	}
	return o.small[:o.n]
}

func (o *object) add(m member) {
	if o.more == nil && o.n < len(o.small) {
		o.small[o.n] = m
		o.n++
		return
	}
	if o.more == nil {
		o.more = append(make([]member, 0, 2*len(o.small)), o.small[:o.n]...)
	}
	o.more = append(o.more, m)
	o.n++
}

// member is one name/value pair of an object: the value is doc[start:end].
type member struct {
	// key is the name, unescaped as the provider's parser will read it: a slice of the
	// document itself unless it had escapes, so finding members allocates nothing.
	key        []byte
	start, end int
}

// name is the member's name as a string (for messages).
func (m *member) name() string { return string(m.key) }

// value is the member's raw value in doc; nil for no member (a field a body does not have).
func (m *member) value(doc []byte) []byte {
	if m == nil {
		return nil
	}
	return doc[m.start:m.end]
}

// parseObject checks that body is one valid JSON object and lists its top-level members.
func parseObject(body []byte) (object, error) {
	if !json.Valid(body) {
		return object{}, errNotObject
	}
	return topObject(body)
}

// topObject lists the top-level members of body, which must be valid JSON.
func topObject(body []byte) (object, error) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return object{}, errNotObject
	}
	return objectAt(body, i), nil
}

// objectAt lists the members of the object whose '{' is at doc[open]. doc must be valid JSON:
// the scan trusts the syntax json.Valid has checked and only follows structure.
func objectAt(doc []byte, open int) object {
	obj := object{open: open}
	i := skipSpace(doc, open+1)
	for doc[i] != '}' {
		keyEnd := stringEnd(doc, i)
		key := unquote(doc[i:keyEnd])
		i = skipSpace(doc, keyEnd)   // at ':'
		start := skipSpace(doc, i+1) // at the value
		end := valueEnd(doc, start)
		obj.add(member{key: key, start: start, end: end})
		i = skipSpace(doc, end)
		if doc[i] == ',' {
			i = skipSpace(doc, i+1)
		}
	}
	obj.close = i
	return obj
}

// last returns the last member called name: the one that wins in most JSON parsers.
func (o *object) last(name string) *member {
	list := o.list()
	for i := len(list) - 1; i >= 0; i-- {
		if string(list[i].key) == name {
			return &list[i]
		}
	}
	return nil
}

func skipSpace(doc []byte, i int) int {
	for i < len(doc) {
		switch doc[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the offset just past the string whose opening quote is at doc[i].
func stringEnd(doc []byte, i int) int {
	for i++; i < len(doc); i++ {
		switch doc[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(doc)
}

// valueEnd returns the offset just past the value that starts at doc[i].
func valueEnd(doc []byte, i int) int {
	switch doc[i] {
	case '"':
		return stringEnd(doc, i)
	case '{', '[':
		depth := 0
		for i < len(doc) {
			switch doc[i] {
			case '"':
				i = stringEnd(doc, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(doc)
	}
	// A number, true, false or null runs to the next delimiter.
	for i < len(doc) {
		switch doc[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
		i++
	}
	return i
}

// unquote decodes a JSON string literal; escapes are rare in keys, so the common case is the
// literal's own bytes.
func unquote(lit []byte) []byte {
	inner := lit[1 : len(lit)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner
	}
	var s string
	_ = json.Unmarshal(lit, &s) // lit is valid: json.Valid passed
	return []byte(s)
}

package meter

import "bytes"

// maxCapture caps a captured top-level value ("usage", "model"); a longer one is dropped.
const maxCapture = 64 << 10

// maxKey is the longest top-level key worth remembering: longer than any looked for
// ("usageMetadata").
const maxKey = 16

// jsonScan follows one JSON document across writes, tracking only nesting depth and string
// state, and keeps the raw bytes of two top-level values (keys: the usage and the model, e.g.
// "usage" and "model"). Everything else (megabytes of embedding vectors, a long completion)
// passes without being kept, and keys named "usage" deeper down (inside messages or tool
// arguments) are not top-level, so they never count.
type jsonScan struct {
	keys      [2]string // the top-level keys whose values are kept
	depth     int       // containers open; the top-level object's members are at depth 1
	done      bool      // the document ended, or is not an object: ignore the rest
	inStr     bool
	esc       bool // the last byte in a string was a backslash
	expectKey bool // at depth 1, the next string is a key
	inKey     bool // reading a top-level key
	keyLong   bool // the key is longer than maxKey: it is not one we want
	afterKey  bool // a top-level key ended; its ':' is next
	key       [maxKey]byte
	keyLen    int

	target   *[]byte // where the value being captured goes when complete; nil: not capturing
	cur      []byte  // the value being captured
	overflow bool    // cur went over maxCapture

	usage, model []byte // the last complete values seen

	// Room for the usual small values, so a response is metered without allocating; a larger
	// value grows onto the heap. cur, usage and model start out pointing here.
	curBuf, usageBuf [256]byte
	modelBuf         [64]byte
}

// deepStructural marks the bytes that matter below the top level when nothing is being captured:
// only those that open a string or change depth. Commas and colons there change nothing.
var deepStructural = [256]bool{'"': true, '{': true, '}': true, '[': true, ']': true}

// write feeds the next piece of the document.
func (s *jsonScan) write(b []byte) {
	for i := 0; i < len(b) && !s.done; {
		if s.inStr {
			i = s.string(b, i)
			continue
		}
		if s.depth > 1 && s.target == nil {
			// Deep inside a value nobody wants (say, an embedding): skip to the next byte that
			// can change depth.
			for i < len(b) && !deepStructural[b[i]] {
				i++
			}
			if i == len(b) {
				return
			}
		}
		c := b[i]
		i++
		if s.target != nil && !(s.depth == 1 && (c == ',' || c == '}')) {
			s.keep(c)
		}
		switch c {
		case '"':
			s.inStr = true
			if s.depth == 1 && s.expectKey {
				s.expectKey, s.inKey, s.keyLong, s.keyLen = false, true, false, 0
			}
		case '{', '[':
			if s.depth == 0 && c != '{' {
				s.done = true // not an object: no top-level usage
				return
			}
			s.depth++
			if s.depth == 1 {
				s.expectKey = true
			}
		case '}', ']':
			if s.depth == 1 {
				s.finish()
			}
			s.depth--
			if s.depth <= 0 {
				s.done = true
			}
		case ',':
			if s.depth == 1 {
				s.finish()
				s.expectKey = true
			}
		case ':':
			if s.depth == 1 && s.afterKey {
				s.afterKey = false
				s.startValue()
			}
		case ' ', '\t', '\r', '\n':
		default:
			if s.depth == 0 {
				s.done = true // a top-level scalar or garbage
			}
		}
	}
}

// string consumes string bytes from b[i:] up to and including the closing quote, if it is there,
// and returns where it stopped. The quote and backslash are found with IndexByte, which is much
// faster than a byte loop over, say, a base64 embedding.
func (s *jsonScan) string(b []byte, i int) int {
	if s.esc {
		s.esc = false
		s.keepStr(b[i : i+1])
		return i + 1
	}
	rest := b[i:]
	q := bytes.IndexByte(rest, '"')
	limit := rest
	if q >= 0 {
		limit = rest[:q]
	}
	if bs := bytes.IndexByte(limit, '\\'); bs >= 0 {
		s.keepStr(rest[:bs+1])
		s.esc = true
		return i + bs + 1
	}
	if q < 0 {
		s.keepStr(rest)
		return len(b)
	}
	s.keepStr(rest[:q])
	if s.target != nil {
		s.keep('"')
	}
	s.inStr = false
	if s.inKey {
		s.inKey, s.afterKey = false, true
	}
	return i + q + 1
}

// keepStr keeps string bytes: in the captured value, or in the key being read.
func (s *jsonScan) keepStr(b []byte) {
	if s.target != nil {
		if len(s.cur)+len(b) > maxCapture {
			s.overflow = true
		} else {
			s.cur = append(s.cur, b...)
		}
	}
	if s.inKey && !s.keyLong {
		if s.keyLen+len(b) > maxKey {
			s.keyLong = true
		} else {
			s.keyLen += copy(s.key[s.keyLen:], b)
		}
	}
}

func (s *jsonScan) keep(c byte) {
	if len(s.cur) >= maxCapture {
		s.overflow = true
		return
	}
	s.cur = append(s.cur, c)
}

// startValue begins capturing the value of the key just read, if it is one we want. An escaped
// key ("us\u0061ge") is not recognised: providers do not write them.
func (s *jsonScan) startValue() {
	if s.keyLong {
		return
	}
	switch string(s.key[:s.keyLen]) {
	case s.keys[0]:
		s.target = &s.usage
	case s.keys[1]:
		s.target = &s.model
	default:
		return
	}
	if s.cur == nil {
		s.cur = s.curBuf[:0]
	}
	s.cur, s.overflow = s.cur[:0], false
}

// finish ends the value being captured at a top-level ',' or '}': only a complete value is kept,
// so a body cut off inside "usage" reports none.
func (s *jsonScan) finish() {
	if s.target == nil {
		return
	}
	if !s.overflow {
		if *s.target == nil {
			if s.target == &s.usage {
				s.usage = s.usageBuf[:0]
			} else {
				s.model = s.modelBuf[:0]
			}
		}
		*s.target = append((*s.target)[:0], s.cur...)
	}
	s.target = nil
}

// result returns the raw top-level usage and model values seen (nil when not seen).
func (s *jsonScan) result() (usage, model []byte) { return s.usage, s.model }

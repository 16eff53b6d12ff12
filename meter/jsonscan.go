package meter

// maxCapture caps a captured top-level value ("usage", "model").
const maxCapture = 64 << 10

// jsonScan follows a JSON document across writes, tracking only depth and string state, and
// captures the raw bytes of the top-level "usage" and "model" values. Everything else (say,
// megabytes of embedding vectors) passes without being kept.
type jsonScan struct {
	depth      int
	inStr, esc bool
	expectKey  bool // at depth 1, the next string is a key
	readingKey bool
	keyDone    bool // a key at depth 1 ended; its value follows the colon
	key        []byte
	capturing  *[]byte // where the current value goes, nil when not capturing
	buf        []byte
	overflow   bool
	usage      []byte
	model      []byte
}

func (s *jsonScan) write(b []byte) {
	for _, c := range b {
		if s.capturing != nil && !(s.depth == 1 && !s.inStr && (c == ',' || c == '}')) {
			if len(s.buf) < maxCapture {
				s.buf = append(s.buf, c)
			} else {
				s.overflow = true
			}
		}
		if s.inStr {
			switch {
			case s.esc:
				s.esc = false
			case c == '\\':
				s.esc = true
			case c == '"':
				s.inStr = false
				if s.readingKey {
					s.readingKey, s.keyDone = false, true
				}
				continue
			}
			if s.readingKey && len(s.key) < 16 {
				s.key = append(s.key, c)
			}
			continue
		}
		switch c {
		case '"':
			s.inStr = true
			if s.depth == 1 && s.expectKey {
				s.readingKey, s.expectKey, s.key = true, false, s.key[:0]
			}
		case '{', '[':
			s.depth++
			if s.depth == 1 && c == '{' {
				s.expectKey = true
			}
		case '}', ']':
			if s.depth == 1 {
				s.finish()
			}
			s.depth--
		case ',':
			if s.depth == 1 {
				s.finish()
				s.expectKey = true
			}
		case ':':
			if s.depth == 1 && s.keyDone {
				s.keyDone = false
				switch string(s.key) {
				case "usage":
					s.capturing = &s.usage
				case "model":
					s.capturing = &s.model
				}
				s.buf, s.overflow = s.buf[:0], false
			}
		}
	}
}

// finish ends the value being captured at a top-level ',' or '}'.
func (s *jsonScan) finish() {
	if s.capturing == nil {
		return
	}
	if !s.overflow {
		*s.capturing = append((*s.capturing)[:0], s.buf...)
	}
	s.capturing = nil
}

package meter

import "bytes"

// maxEventBytes caps one SSE event's data; a longer event is skipped, not buffered.
const maxEventBytes = 1 << 20

// keepEventBytes is the buffer kept between events: a rare large event does not pin 1 MiB for
// the rest of a long stream.
const keepEventBytes = 64 << 10

// lineMode is where an sseReader is within the current line.
type lineMode uint8

const (
	lineStart lineMode = iota // no byte of the line yet: a line end here is a blank line
	lineField                 // reading the field name, matching "data:"
	lineData                  // in a data line's value: bytes go to the event's data
	lineSkip                  // in any other line (comment, event:, id:, retry:): bytes dropped
)

// sseReader splits a text/event-stream into events across writes, per the SSE spec: lines end
// in \n, \r\n or \r; the values of an event's data lines are joined by \n; a blank line
// dispatches the event; an event still open when the stream ends is never dispatched. Only data
// lines are kept, and they go straight into the event buffer, so nothing else is buffered.
type sseReader struct {
	data      []byte
	mode      lineMode
	matched   int  // bytes of "data:" matched so far in lineField
	trimSpace bool // a data value's first byte is a space to drop
	hasData   bool // the event has a data line (maybe empty)
	tooLong   bool // the event went over maxEventBytes: drop it
	afterCR   bool // the last byte was \r: a \n next is part of the same line end
	started   bool // past a leading byte order mark, if any
	bom       int  // bytes of a leading byte order mark matched so far
}

var (
	dataField = []byte("data:")
	newline   = []byte{'\n'}
)

var byteOrderMark = []byte{0xEF, 0xBB, 0xBF}

// write feeds b to the reader, calling dispatch with each complete event's data. dispatch must
// not keep the slice.
func (s *sseReader) write(b []byte, dispatch func(data []byte)) {
	for len(b) > 0 {
		if !s.started {
			// The spec drops one leading BOM; its bytes may arrive in separate writes.
			if b[0] == byteOrderMark[s.bom] {
				s.bom++
				b = b[1:]
				s.started = s.bom == len(byteOrderMark)
				continue
			}
			s.started = true
			if s.bom > 0 {
				s.mode = lineSkip // the line began with a broken BOM: it is no data line
			}
		}
		if s.afterCR {
			s.afterCR = false
			if b[0] == '\n' {
				b = b[1:]
				continue
			}
		}
		switch s.mode {
		case lineStart, lineField:
			c := b[0]
			b = b[1:]
			if c == '\r' || c == '\n' {
				s.afterCR = c == '\r'
				s.endLine(dispatch)
				continue
			}
			s.mode = lineField
			switch {
			case s.matched < len(dataField) && c == dataField[s.matched]:
				s.matched++
				if s.matched == len(dataField) {
					s.startData()
					s.mode, s.trimSpace = lineData, true
				}
			default:
				s.mode = lineSkip
			}
		case lineData:
			if s.trimSpace {
				s.trimSpace = false
				if b[0] == ' ' {
					b = b[1:]
					continue
				}
			}
			i := lineEnd(b)
			if i < 0 {
				s.appendData(b)
				return
			}
			s.appendData(b[:i])
			s.afterCR = b[i] == '\r'
			b = b[i+1:]
			s.endLine(dispatch)
		case lineSkip:
			i := lineEnd(b)
			if i < 0 {
				return
			}
			s.afterCR = b[i] == '\r'
			b = b[i+1:]
			s.endLine(dispatch)
		}
	}
}

// lineEnd returns the index of the first \n or \r in b, or -1. Two IndexByte calls are much
// faster than a byte loop: streams end lines in \n, and \r is searched only before it.
func lineEnd(b []byte) int {
	n := bytes.IndexByte(b, '\n')
	limit := b
	if n >= 0 {
		limit = b[:n]
	}
	if r := bytes.IndexByte(limit, '\r'); r >= 0 {
		return r
	}
	return n
}

// endLine is called at every line end.
func (s *sseReader) endLine(dispatch func([]byte)) {
	mode, matched := s.mode, s.matched
	s.mode, s.matched, s.trimSpace = lineStart, 0, false
	switch {
	case mode == lineStart:
		// A blank line: dispatch the event, if it has data and fitted.
		if s.hasData && !s.tooLong {
			dispatch(s.data)
		}
		if cap(s.data) > keepEventBytes {
			s.data = nil
		}
		s.data, s.hasData, s.tooLong = s.data[:0], false, false
	case mode == lineField && matched == len(dataField)-1:
		// "data" with no colon: a data line with an empty value.
		s.startData()
	}
}

// startData begins a data line: its value joins the event's data after a \n.
func (s *sseReader) startData() {
	if s.hasData {
		s.appendData(newline)
	}
	s.hasData = true
}

func (s *sseReader) appendData(b []byte) {
	if s.tooLong {
		return
	}
	if len(s.data)+len(b) > maxEventBytes {
		s.tooLong, s.data = true, s.data[:0]
		return
	}
	s.data = append(s.data, b...)
}

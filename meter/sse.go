package meter

import "bytes"

// maxEventBytes caps one SSE event's data; a longer event is skipped, not buffered.
const maxEventBytes = 1 << 20

// sseState splits a text/event-stream into events across writes, per the SSE spec: lines end in
// \n, \r\n or \r; an event's data lines are joined by \n; a blank line ends the event.
type sseState struct {
	line      []byte
	data      []byte
	hasData   bool
	tooLong   bool // the current line went over maxEventBytes
	skipEvent bool // the current event went over maxEventBytes: drop it
	afterCR   bool // the last byte was \r: a following \n belongs to the same line end
}

func (s *sseState) write(b []byte, dispatch func([]byte)) {
	for len(b) > 0 {
		if s.afterCR {
			s.afterCR = false
			if b[0] == '\n' {
				b = b[1:]
				continue
			}
		}
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			s.appendLine(b)
			return
		}
		s.appendLine(b[:i])
		s.afterCR = b[i] == '\r'
		b = b[i+1:]
		s.endLine(dispatch)
	}
}

func (s *sseState) appendLine(b []byte) {
	if s.tooLong {
		return
	}
	if len(s.line)+len(b) > maxEventBytes {
		s.tooLong, s.line = true, s.line[:0]
		return
	}
	s.line = append(s.line, b...)
}

func (s *sseState) endLine(dispatch func([]byte)) {
	line := s.line
	s.line = s.line[:0]
	if s.tooLong {
		// Drop the whole event the long line belongs to.
		s.tooLong, s.skipEvent, s.hasData, s.data = false, true, false, s.data[:0]
		return
	}
	if len(line) == 0 {
		if s.hasData && !s.skipEvent {
			dispatch(s.data)
		}
		s.data, s.hasData, s.skipEvent = s.data[:0], false, false
		return
	}
	if s.skipEvent {
		return
	}
	value, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok {
		if bytes.Equal(line, []byte("data")) {
			value, ok = nil, true
		} else {
			return // comments, event:, id:, retry: carry no usage
		}
	}
	value = bytes.TrimPrefix(value, []byte(" "))
	if len(s.data)+len(value)+1 > maxEventBytes {
		s.skipEvent, s.hasData, s.data = true, false, s.data[:0]
		return
	}
	if s.hasData {
		s.data = append(s.data, '\n')
	}
	s.data = append(s.data, value...)
	s.hasData = true
}

func containsBytes(b, sub []byte) bool { return bytes.Contains(b, sub) }

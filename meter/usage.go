package meter

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Usage is what a response reported it used.
type Usage struct {
	// InputTokens is every input token, cached and cache writes included.
	InputTokens int64
	// CachedInputTokens is the part of InputTokens read from the provider's prompt cache.
	CachedInputTokens int64
	// CacheWriteTokens is the part of InputTokens written to the prompt cache (Anthropic).
	CacheWriteTokens int64
	OutputTokens     int64
	// Model is the model the provider says answered ("" when it did not say).
	Model string
}

// parserCore is what every dialect's parser shares: an SSE reader that holds at most one event
// (up to 1 MiB; a longer one is skipped, not buffered), or, for JSON, a scanner that keeps only
// the raw top-level usage and model values (up to 64 KiB each), so metering never buffers a
// stream or a large body. Garbage, truncated or unrecognised input gives no usage, never an
// error or a panic.
type parserCore struct {
	sse bool
	ev  sseReader
	js  jsonScan
}

// init picks SSE or JSON by content type, and names the top-level keys a JSON body's usage and
// model are under.
func (p *parserCore) init(contentType, usageKey, modelKey string) {
	// Only the media type matters; a cut at ';' is all of mime.ParseMediaType this needs,
	// without its allocations on every response.
	mediaType, _, _ := strings.Cut(contentType, ";")
	p.sse = strings.EqualFold(strings.TrimSpace(mediaType), "text/event-stream")
	p.js.keys = [2]string{usageKey, modelKey}
}

// tokenCount reads a count, allowing a float that is a whole number (12.0) since some
// OpenAI-compatible servers write counts that way.
func tokenCount(n json.Number) (int64, bool) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i, i >= 0
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f < 0 || f >= math.MaxInt64 || f != math.Trunc(f) {
		return 0, false
	}
	return int64(f), true
}

// optionalCount reads a count that may be absent ("" is 0).
func optionalCount(n json.Number) (int64, bool) {
	if n == "" {
		return 0, true
	}
	return tokenCount(n)
}

// addCounts adds token counts, saturating rather than wrapping.
func addCounts(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// hasObjectAt reports whether data has the key (quoted, e.g. `"usage"`) with an object for
// its value. In valid JSON the bytes "usage" with both quotes bare can only be a key or the
// string "usage", never text inside another string, where the quotes would be escaped.
func hasObjectAt(data, key []byte) bool {
	for {
		i := bytes.Index(data, key)
		if i < 0 {
			return false
		}
		data = data[i+len(key):]
		j := skipSpace(data, 0)
		if j < len(data) && data[j] == ':' {
			if k := skipSpace(data, j+1); k < len(data) && data[k] == '{' {
				return true
			}
		}
	}
}

// writeJSONString writes s as a JSON string, with what encoding/json escapes escaped (HTML
// characters too, so an error body is safe to show anywhere).
func writeJSONString(b *bytes.Buffer, s string) {
	if !needsEscape(s) {
		b.WriteByte('"')
		b.WriteString(s)
		b.WriteByte('"')
		return
	}
	enc, _ := json.Marshal(s) // a string always encodes
	b.Write(enc)
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&', c >= utf8.RuneSelf:
			return true
		}
	}
	return false
}

package verifier

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxIDBytes bounds every id the gateway takes from a token or a mint request (user, org,
// tenant, project, session): they become upstream headers, placeholders, log fields and store
// keys.
const MaxIDBytes = 256

// CheckID returns nil when s can be used as an id: 1 to MaxIDBytes bytes of valid UTF-8 whose
// characters are all printable (letters, marks, numbers, punctuation, symbols and the ASCII
// space; no control, format or line-breaking characters) and none is U+FFFD, which JSON
// decoding puts in place of broken text and so would merge distinct ids. The error says what is
// wrong, to follow the id's name in a message ("user_id is …").
func CheckID(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("must not be empty")
	case len(s) > MaxIDBytes:
		return fmt.Errorf("is %d bytes long; it may be at most %d", len(s), MaxIDBytes)
	case !utf8.ValidString(s):
		return fmt.Errorf("must be valid UTF-8")
	case strings.ContainsRune(s, utf8.RuneError):
		return fmt.Errorf("has an invalid character (U+FFFD or a lone UTF-16 surrogate)")
	}
	for i, c := range s {
		if !unicode.IsPrint(c) {
			return fmt.Errorf("has a control or invisible character (%U at byte %d); use printable characters only", c, i)
		}
	}
	return nil
}

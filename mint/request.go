package mint

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/behest/caddy-behest/verifier"
)

// MaxRequestBytes caps the mint endpoint's body (64 KiB).
const MaxRequestBytes = 64 << 10

// maxTTLSeconds keeps a ttl's time.Duration from overflowing; the endpoint's own max_ttl is far
// below it.
const maxTTLSeconds = 1 << 32

// Request is the mint endpoint's body, {"user_id":"…","tier":1,"ttl":900}, checked for shape.
// Whether the tier exists and the ttl is in range is the project's to decide.
type Request struct {
	// UserID is the end user the token is for.
	UserID string
	// Tier is the tier asked for, normalised ("1", "pro"); "" when absent, null or blank.
	Tier string
	// TTL is the lifetime asked for, whole seconds; 0 when absent or null.
	TTL time.Duration
}

// FieldError is a bad mint request. Message is a sentence a developer can act on.
type FieldError struct {
	// Field is the JSON member at fault ("user_id", "tier", "ttl"), or "" for the body as a whole.
	Field string
	// Message says what is wrong and what is expected.
	Message string
}

// Error returns Message.
func (e *FieldError) Error() string { return e.Message }

const bodyShape = `{"user_id":"user_123","tier":1,"ttl":900}`

// DecodeRequest reads at most MaxRequestBytes from r and checks the body's shape. Its errors
// are *FieldError. Unknown members are ignored, so clients may send more than we read.
func DecodeRequest(r io.Reader) (Request, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxRequestBytes+1))
	if err != nil {
		return Request{}, &FieldError{Message: "The request body could not be read."}
	}
	if len(data) > MaxRequestBytes {
		return Request{}, &FieldError{Message: "The request body is over 64 KiB; a mint request is a small JSON object like " + bodyShape + "."}
	}
	var body struct {
		UserID json.RawMessage `json:"user_id"`
		Tier   json.RawMessage `json:"tier"`
		TTL    json.RawMessage `json:"ttl"`
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return Request{}, &FieldError{Message: "The request body is empty; send a JSON object like " + bodyShape + "."}
	}
	if err := json.Unmarshal(data, &body); err != nil {
		return Request{}, &FieldError{Message: "The request body must be a JSON object like " + bodyShape + "."}
	}
	var req Request
	if req.UserID, err = decodeUserID(body.UserID); err != nil {
		return Request{}, err
	}
	if req.Tier, err = decodeTier(body.Tier); err != nil {
		return Request{}, err
	}
	if req.TTL, err = decodeTTL(body.TTL); err != nil {
		return Request{}, err
	}
	return req, nil
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

func decodeUserID(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", &FieldError{Field: "user_id", Message: `user_id is required: the end user's id in your app, e.g. "user_123".`}
	}
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD, merging distinct ids.
	if !utf8.Valid(raw) {
		return "", &FieldError{Field: "user_id", Message: "user_id must be valid UTF-8."}
	}
	var id string
	if err := json.Unmarshal(raw, &id); err != nil {
		return "", &FieldError{Field: "user_id", Message: "user_id must be a string."}
	}
	if err := verifier.CheckID(id); err != nil {
		return "", &FieldError{Field: "user_id", Message: "user_id " + err.Error() + "."}
	}
	return id, nil
}

func decodeTier(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err == nil {
		if tier, ok := verifier.NormalizeTier(v); ok {
			return tier, nil
		}
		if s, isString := v.(string); isString && strings.TrimSpace(s) == "" {
			return "", nil // a blank tier names none, like null
		}
	}
	return "", &FieldError{Field: "tier", Message: `tier must be a number, a string or null, e.g. 1 or "pro".`}
}

func decodeTTL(raw json.RawMessage) (time.Duration, error) {
	if isNull(raw) {
		return 0, nil
	}
	// ParseFloat accepts what a JSON number can be (1e3, 900.0) and refuses strings and bools.
	secs, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || secs <= 0 || secs != math.Trunc(secs) {
		return 0, &FieldError{Field: "ttl", Message: "ttl must be a positive whole number of seconds, e.g. 900."}
	}
	if secs > maxTTLSeconds {
		return 0, &FieldError{Field: "ttl", Message: "ttl is far too long; it is a number of seconds, e.g. 900."}
	}
	return time.Duration(secs) * time.Second, nil
}

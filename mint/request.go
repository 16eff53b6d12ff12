package mint

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/behest/caddy-behest/verifier"
)

// MaxRequestBytes caps the mint endpoint's body.
const MaxRequestBytes = 64 << 10

const maxUserIDBytes = 256

// Request is the mint endpoint's body.
type Request struct {
	UserID string
	// Tier is the tier asked for, normalised ("1", "pro"); "" when absent or null.
	Tier string
	// TTL is the lifetime asked for; 0 when absent.
	TTL time.Duration
}

// FieldError is a request error naming the field at fault ("" for the body as a whole).
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Message }

// DecodeRequest reads and checks a mint request body.
func DecodeRequest(r io.Reader) (Request, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxRequestBytes+1))
	if err != nil {
		return Request{}, &FieldError{Message: "The request body could not be read."}
	}
	if len(data) > MaxRequestBytes {
		return Request{}, &FieldError{Message: "The request body is over 64 KiB."}
	}
	var raw struct {
		UserID json.RawMessage `json:"user_id"`
		Tier   json.RawMessage `json:"tier"`
		TTL    json.RawMessage `json:"ttl"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return Request{}, &FieldError{Message: `The request body must be a JSON object like {"user_id":"user_123","tier":1,"ttl":900}.`}
	}
	var req Request
	if len(raw.UserID) == 0 || string(raw.UserID) == "null" {
		return Request{}, &FieldError{Field: "user_id", Message: "user_id is required."}
	}
	if err := json.Unmarshal(raw.UserID, &req.UserID); err != nil {
		return Request{}, &FieldError{Field: "user_id", Message: "user_id must be a string."}
	}
	if req.UserID == "" {
		return Request{}, &FieldError{Field: "user_id", Message: "user_id must not be empty."}
	}
	if len(req.UserID) > maxUserIDBytes || !printable(req.UserID) {
		return Request{}, &FieldError{Field: "user_id", Message: "user_id must be at most 256 bytes of printable characters."}
	}
	if len(raw.Tier) > 0 {
		var v any
		d := json.NewDecoder(bytes.NewReader(raw.Tier))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			return Request{}, &FieldError{Field: "tier", Message: "tier must be a number, a string or null."}
		}
		tier, ok := verifier.NormalizeTier(v)
		if !ok && v != nil {
			return Request{}, &FieldError{Field: "tier", Message: "tier must be a number, a string or null."}
		}
		req.Tier = tier
	}
	if len(raw.TTL) > 0 && string(raw.TTL) != "null" {
		secs, err := strconv.ParseFloat(string(raw.TTL), 64)
		if err != nil || secs <= 0 || secs != math.Trunc(secs) || secs > 1e9 {
			return Request{}, &FieldError{Field: "ttl", Message: "ttl must be a whole number of seconds."}
		}
		req.TTL = time.Duration(secs) * time.Second
	}
	return req, nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

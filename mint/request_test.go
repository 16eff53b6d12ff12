package mint

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/behest/caddy-behest/verifier"
)

// TestDecodeRequestEdges adds to decode_request_test.go the cases that depend on how the body
// is read: exact messages, invalid UTF-8, trailing data, and number spellings.
func TestDecodeRequestEdges(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		want      Request
		wantField string // "-" for success, "" for a whole-body error
		wantMsg   string // substring of the message
	}{
		{name: "null body", body: `null`, wantField: "user_id", wantMsg: "user_id is required"},
		{name: "blank body", body: " \n", wantField: "", wantMsg: "The request body is empty"},
		{name: "trailing data", body: `{"user_id":"u1"} {"user_id":"u2"}`, wantField: "", wantMsg: "must be a JSON object"},
		{name: "invalid UTF-8 user_id", body: "{\"user_id\":\"u\xff1\"}", wantField: "user_id", wantMsg: "valid UTF-8"},
		{name: "zero-width space", body: `{"user_id":"u\u200b1"}`, wantField: "user_id", wantMsg: "U+200B at byte 1"},
		{name: "user_id too long", body: `{"user_id":"` + strings.Repeat("é", 129) + `"}`, wantField: "user_id", wantMsg: "258 bytes long; it may be at most 256"},
		{name: "escaped user_id", body: `{"user_id":"org_9:user_2abc\u0021"}`, want: Request{UserID: "org_9:user_2abc!"}, wantField: "-"},
		{name: "tier padded numeric string", body: `{"user_id":"u","tier":" 2 "}`, want: Request{UserID: "u", Tier: "2"}, wantField: "-"},
		{name: "tier 1e0", body: `{"user_id":"u","tier":1e0}`, want: Request{UserID: "u", Tier: "1"}, wantField: "-"},
		{name: "tier 1.5", body: `{"user_id":"u","tier":1.5}`, want: Request{UserID: "u", Tier: "1.5"}, wantField: "-"},
		{name: "tier blank string", body: `{"user_id":"u","tier":"  "}`, want: Request{UserID: "u"}, wantField: "-"},
		{name: "tier overflowing number", body: `{"user_id":"u","tier":1e400}`, wantField: "tier", wantMsg: "tier must be a number, a string or null"},
		{name: "ttl 1e3", body: `{"user_id":"u","ttl":1e3}`, want: Request{UserID: "u", TTL: 1000 * time.Second}, wantField: "-"},
		{name: "ttl -0", body: `{"user_id":"u","ttl":-0}`, wantField: "ttl", wantMsg: "positive whole number of seconds"},
		{name: "ttl fraction", body: `{"user_id":"u","ttl":900.5}`, wantField: "ttl", wantMsg: "positive whole number of seconds, e.g. 900"},
		{name: "ttl overflowing", body: `{"user_id":"u","ttl":1e300}`, wantField: "ttl", wantMsg: "far too long"},
		{name: "ttl bool", body: `{"user_id":"u","ttl":true}`, wantField: "ttl", wantMsg: "positive whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeRequest(strings.NewReader(tt.body))
			if tt.wantField == "-" {
				if err != nil || got != tt.want {
					t.Fatalf("DecodeRequest = %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("DecodeRequest = %+v, %v; want a *FieldError", got, err)
			}
			if fe.Field != tt.wantField || !strings.Contains(fe.Message, tt.wantMsg) {
				t.Errorf("FieldError{%q, %q}, want field %q and a message containing %q", fe.Field, fe.Message, tt.wantField, tt.wantMsg)
			}
		})
	}
}

// TestNormaliseTier pins the rule shared with the verifier's tier claims.
func TestNormaliseTier(t *testing.T) {
	tests := []struct {
		in     any
		want   string
		wantOK bool
	}{
		{json.Number("1"), "1", true},
		{json.Number("1.0"), "1", true},
		{json.Number("-3"), "-3", true},
		{json.Number("2.50"), "2.5", true},
		{json.Number("1e20"), "100000000000000000000", true},
		{float64(1), "1", true},
		{"1", "1", true},
		{" 2 ", "2", true},
		{"01", "1", true},
		{"pro", "pro", true},
		{" Pro Plan ", "Pro Plan", true},
		{"Inf", "Inf", true}, // not a finite number, so a name
		{"", "", false},
		{"   ", "", false},
		{nil, "", false},
		{true, "", false},
		{[]any{1}, "", false},
		{map[string]any{}, "", false},
		{json.Number("1e400"), "", false},
	}
	for _, tt := range tests {
		got, ok := verifier.NormalizeTier(tt.in)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("NormalizeTier(%#v) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

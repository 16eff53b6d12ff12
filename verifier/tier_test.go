package verifier

import (
	"encoding/json"
	"testing"
)

func TestNormalizeTier(t *testing.T) {
	tests := []struct {
		in   any
		want string
		ok   bool
	}{
		{json.Number("1"), "1", true},
		{json.Number("1.0"), "1", true},
		{json.Number("1e0"), "1", true},
		{json.Number("2.5"), "2.5", true},
		{float64(1), "1", true},
		{float64(3.0), "3", true},
		{int64(4), "4", true},
		{5, "5", true},
		{"1", "1", true},
		{" 2 ", "2", true},
		{"2.0", "2", true},
		{"pro", "pro", true},
		{" pro ", "pro", true},
		{"NaN", "NaN", true}, // a name, not a number
		{nil, "", false},
		{"", "", false},
		{"   ", "", false},
		{true, "", false},
		{map[string]any{"plan": "pro"}, "", false},
		{[]any{"1"}, "", false},
	}
	for _, tt := range tests {
		got, ok := NormalizeTier(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("NormalizeTier(%#v) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestResolveTier(t *testing.T) {
	p := &projectRule{Project: Project{DefaultTier: "free"}, tiers: map[string]struct{}{"free": {}, "1": {}, "pro": {}}}
	tests := []struct {
		in          any
		want        string
		wantUnknown bool
	}{
		{json.Number("1"), "1", false},
		{"pro", "pro", false},
		{"free", "free", false},
		{nil, "free", false},
		{"", "free", false},
		{"gold", "free", true},
		{json.Number("9"), "free", true},
		{false, "free", true},
		{map[string]any{}, "free", true},
	}
	for _, tt := range tests {
		got, unknown := p.resolveTier(tt.in)
		if got != tt.want || unknown != tt.wantUnknown {
			t.Errorf("resolveTier(%#v) = %q, %v; want %q, %v", tt.in, got, unknown, tt.want, tt.wantUnknown)
		}
	}
}

package verifier

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// NormalizeTier turns a tier as JSON gives it into a tier name, so that 1, 1.0, "1" and " 1 "
// all name tier "1" while names such as "pro" stay as they are (trimmed). It accepts what
// encoding/json decodes: json.Number, float64, string (and int, int64). null, "", and values of
// other types (bool, object, array) are ("", false): no tier named.
func NormalizeTier(v any) (string, bool) {
	switch t := v.(type) {
	case json.Number:
		return normalizeNumber(t.String())
	case float64:
		return normalizeNumber(strconv.FormatFloat(t, 'f', -1, 64))
	case int64:
		return strconv.FormatInt(t, 10), true
	case int:
		return strconv.Itoa(t), true
	case string:
		s := strings.TrimSpace(t)
		if s == "" {
			return "", false
		}
		if n, ok := normalizeNumber(s); ok {
			return n, true
		}
		return s, true
	}
	return "", false
}

// normalizeNumber writes a decimal number the shortest way: whole numbers without a fraction.
func normalizeNumber(s string) (string, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", false
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10), true
	}
	return strconv.FormatFloat(f, 'f', -1, 64), true
}

// resolveTier picks the project's tier for a tier claim: the tier it names when the project
// has it; DefaultTier when it names none (missing, null, ""); DefaultTier and unknown=true when
// it names another, or is no tier at all (true, an object).
func (p *projectRule) resolveTier(raw any) (tier string, unknown bool) {
	name, named := NormalizeTier(raw)
	if !named {
		s, isString := raw.(string)
		blank := raw == nil || (isString && strings.TrimSpace(s) == "")
		return p.DefaultTier, !blank
	}
	if _, ok := p.tiers[name]; ok {
		return name, false
	}
	return p.DefaultTier, true
}

package verifier

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// defaultPaths are where identity fields are read when a trust maps them nowhere else.
var defaultPaths = map[string][]string{
	"uid": {"uid"}, "tier": {"tier"}, "tid": {"tid"}, "pid": {"pid"}, "sid": {"sid"},
}

func (tr *trustRule) path(field string) []string {
	if tr != nil {
		if p, ok := tr.paths[field]; ok {
			return p
		}
	}
	return defaultPaths[field]
}

// checkTimes enforces exp (required), nbf and iat with the leeway, and returns exp.
func (v *Verifier) checkTimes(claims map[string]any, now time.Time) (time.Time, error) {
	exp, ok, err := numericDate(claims, "exp")
	if err != nil {
		return time.Time{}, err
	}
	if !ok {
		return time.Time{}, fmt.Errorf("%w: exp", ErrMissingClaim)
	}
	if !now.Before(exp.Add(v.leeway)) {
		return time.Time{}, ErrExpired
	}
	for _, name := range [...]string{"nbf", "iat"} {
		t, ok, err := numericDate(claims, name)
		if err != nil {
			return time.Time{}, err
		}
		if ok && now.Add(v.leeway).Before(t) {
			return time.Time{}, fmt.Errorf("%w: %s is in the future", ErrNotYetValid, name)
		}
	}
	return exp.Add(v.leeway), nil
}

func numericDate(claims map[string]any, name string) (time.Time, bool, error) {
	raw, ok := claims[name]
	if !ok || raw == nil {
		return time.Time{}, false, nil
	}
	n, ok := raw.(json.Number)
	if !ok {
		return time.Time{}, false, fmt.Errorf("%w: %s is not a number", ErrMalformed, name)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, false, fmt.Errorf("%w: %s is not a date", ErrMalformed, name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// identity maps claims to an Identity of project p (tr is nil for minted tokens).
func (v *Verifier) identity(p *projectRule, claims map[string]any, tr *trustRule, exp time.Time) (*Identity, error) {
	uid, ok := lookupString(claims, tr.path("uid"))
	if !ok && tr != nil {
		if _, mapped := tr.paths["uid"]; !mapped {
			uid, ok = lookupString(claims, []string{"sub"})
		}
	}
	if !ok || uid == "" {
		return nil, fmt.Errorf("%w: uid", ErrMissingClaim)
	}
	id := &Identity{
		TenantID: p.TenantID, ProjectID: p.ID, UserID: uid,
		Issuer: stringClaim(claims, "iss"), TokenID: stringClaim(claims, "jti"),
		ExpiresAt: exp,
	}
	id.SessionID, _ = lookupString(claims, tr.path("sid"))
	if iat, ok, _ := numericDate(claims, "iat"); ok {
		id.IssuedAt = iat
	}
	raw, _ := lookup(claims, tr.path("tier"))
	tier, named := NormalizeTier(raw)
	_, known := p.tiers[tier]
	switch {
	case named && known:
		id.Tier = tier
	case named:
		id.Tier, id.TierUnknown = p.DefaultTier, true
	default:
		id.Tier = p.DefaultTier
	}
	// Last: it rewrites the numbers the look-ups above read as json.Number.
	id.Claims = plainClaims(claims)
	return id, nil
}

// lookup follows a dot path into nested objects.
func lookup(claims map[string]any, path []string) (any, bool) {
	var cur any = claims
	for _, name := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[name]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// lookupString reads a string (or a number, as its decimal text) at path.
func lookupString(claims map[string]any, path []string) (string, bool) {
	v, ok := lookup(claims, path)
	if !ok {
		return "", false
	}
	switch s := v.(type) {
	case string:
		return s, true
	case json.Number:
		return s.String(), true
	}
	return "", false
}

func stringClaim(claims map[string]any, name string) string {
	s, _ := claims[name].(string)
	return s
}

// plainClaims turns json.Number values into float64 or int64 so placeholders print them plainly.
func plainClaims(claims map[string]any) map[string]any {
	for k, v := range claims {
		claims[k] = plainValue(v)
	}
	return claims
}

func plainValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = plainValue(e)
		}
	case []any:
		for i, e := range x {
			x[i] = plainValue(e)
		}
	}
	return v
}

// NormalizeTier turns a tier as JSON gives it into a tier name: 1, 1.0 and " 1 " are "1"; names
// stay names. null, "" and values of other types are ("", false).
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

package verifier

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// checkTimes enforces exp (required), nbf and iat with the leeway. It returns exp and iat (zero
// when absent) as the token states them.
func (v *Verifier) checkTimes(claims map[string]any, now time.Time) (exp, iat time.Time, err error) {
	exp, ok, err := numericDate(claims, "exp")
	if err != nil {
		return exp, iat, err
	}
	if !ok {
		return exp, iat, fmt.Errorf("%w: exp", ErrMissingClaim)
	}
	if !now.Before(exp.Add(v.leeway)) {
		return exp, iat, ErrExpired
	}
	nbf, ok, err := numericDate(claims, "nbf")
	if err != nil {
		return exp, iat, err
	}
	if ok && now.Add(v.leeway).Before(nbf) {
		return exp, iat, fmt.Errorf("%w: nbf is in the future", ErrNotYetValid)
	}
	// A token issued in the future comes from a broken or forged clock.
	iat, ok, err = numericDate(claims, "iat")
	if err != nil {
		return exp, iat, err
	}
	if ok && now.Add(v.leeway).Before(iat) {
		return exp, iat, fmt.Errorf("%w: iat is in the future", ErrNotYetValid)
	}
	return exp, iat, nil
}

// numericDate reads a NumericDate claim (seconds since the epoch, fractions allowed).
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
	// 1e11 s is the year 5138: beyond it a date is a mistake, and int64 nanoseconds overflow.
	if err != nil || math.IsNaN(f) || f < 0 || f > 1e11 {
		return time.Time{}, false, fmt.Errorf("%w: %s is not a date", ErrMalformed, name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// identity maps the claims of a verified token to an Identity of project p; tr is the trust
// that verified it, nil for minted tokens.
func (v *Verifier) identity(p *projectRule, tr *trustRule, claims map[string]any, exp, iat time.Time) (*Identity, error) {
	uid, ok, err := scalarAt(claims, tr.path("uid"))
	if err != nil {
		return nil, fmt.Errorf("%w: uid: %v", ErrMalformed, err)
	}
	if !ok && !tr.mapped("uid") {
		// Tokens of identity providers name the user in sub unless a template adds uid.
		if uid, ok, err = scalarAt(claims, []string{"sub"}); err != nil {
			return nil, fmt.Errorf("%w: sub: %v", ErrMalformed, err)
		}
	}
	if !ok {
		return nil, fmt.Errorf("%w: uid", ErrMissingClaim)
	}
	sid, _, err := scalarAt(claims, tr.path("sid"))
	if err != nil {
		return nil, fmt.Errorf("%w: sid: %v", ErrMalformed, err)
	}
	// Ids become upstream headers, placeholders and store keys: one rule for every token.
	if err := CheckID(uid); err != nil {
		return nil, fmt.Errorf("%w: uid %v", ErrMalformed, err)
	}
	if sid != "" {
		if err := CheckID(sid); err != nil {
			return nil, fmt.Errorf("%w: sid %v", ErrMalformed, err)
		}
	}
	org, err := orgOf(claims, tr, uid)
	if err != nil {
		return nil, err
	}
	jti, _, err := scalarAt(claims, []string{"jti"})
	if err != nil {
		return nil, fmt.Errorf("%w: jti: %v", ErrMalformed, err)
	}
	id := &Identity{
		TenantID: p.TenantID, ProjectID: p.ID, UserID: uid, OrgID: org, SessionID: sid,
		Issuer: claims["iss"].(string), TokenID: jti, IssuedAt: iat, ExpiresAt: exp,
	}
	raw, _ := lookup(claims, tr.path("tier"))
	if t, ok := tr.mapTier(raw); ok {
		id.Tier = t
	} else {
		id.Tier, id.TierUnknown = p.resolveTier(raw)
	}
	id.Claims = plainClaims(claims) // last: the lookups above expect json.Number
	return id, nil
}

// orgOf is the user's org: the trust's org claim, else the uid's part before its first ':'.
func orgOf(claims map[string]any, tr *trustRule, uid string) (string, error) {
	if tr.mapped("org") {
		org, _, err := scalarAt(claims, tr.path("org"))
		if err != nil {
			return "", fmt.Errorf("%w: org: %v", ErrMalformed, err)
		}
		if org != "" {
			if err := CheckID(org); err != nil {
				return "", fmt.Errorf("%w: org %v", ErrMalformed, err)
			}
		}
		return org, nil
	}
	if org, _, ok := strings.Cut(uid, ":"); ok {
		return org, nil
	}
	return "", nil
}

// mapTier maps the tier claim by the trust's tier_map: the first entry whose value the claim
// is, or one of its elements is when it is a list. A number or a boolean compares as its JSON
// text (tier_map true free, for Supabase's is_anonymous).
func (tr *trustRule) mapTier(raw any) (string, bool) {
	if tr == nil || len(tr.TierMap) == 0 {
		return "", false
	}
	list, isList := raw.([]any)
	if !isList {
		list = []any{raw}
	}
	for _, m := range tr.TierMap {
		for _, e := range list {
			if s, ok := scalarText(e); ok && s == m.Value {
				return m.Tier, true
			}
		}
	}
	return "", false
}

// scalarText is a string, number or boolean claim value as text.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// lookup follows a claim path into nested objects, and into arrays by index.
func lookup(claims map[string]any, path []string) (any, bool) {
	var cur any = claims
	for _, name := range path {
		switch c := cur.(type) {
		case map[string]any:
			var ok bool
			if cur, ok = c[name]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(name)
			if err != nil || i < 0 || i >= len(c) || (len(name) > 1 && name[0] == '0') {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

var errNotScalar = errors.New("must be a string or a number")

// scalarAt reads an identity value at path: a string, or a number as its JSON text. Missing,
// null and "" are all (“”, false, nil), since templates render an unset value as null or "".
// Objects, arrays and booleans are an error.
func scalarAt(claims map[string]any, path []string) (string, bool, error) {
	raw, _ := lookup(claims, path)
	switch s := raw.(type) {
	case nil:
		return "", false, nil
	case string:
		return s, s != "", nil
	case json.Number:
		return s.String(), true, nil
	}
	return "", false, errNotScalar
}

// plainClaims turns json.Number values into int64 (whole) or float64, the types placeholders
// and loggers print plainly. It changes claims in place; they were decoded for this token only.
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

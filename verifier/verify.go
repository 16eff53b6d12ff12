package verifier

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"
)

// maxSecretCache bounds how long a token verified with a shared secret is cached (a config
// reload makes a new Verifier anyway); exp bounds it first.
const maxSecretCache = time.Hour

// maxTokenBytes bounds what is decoded before a signature is checked. Real tokens are a few
// KiB; anything this long is refused before it costs JSON decoding.
const maxTokenBytes = 32 << 10

// Verify checks token and resolves it to the identity of one project.
//
// A token whose iss is the configured Issuer is a minted token, checked with MintedKeys; any
// other is checked with the JWKS of the trusts naming its iss. ctx bounds only the wait for a
// JWKS fetch (which is shared with other requests and goes on without this one). Verified tokens
// are cached, so the Identity returned may be shared: do not modify it.
//
// Errors wrap the package's sentinel errors: ErrPermission only for tokens that are otherwise
// valid, ErrIssuerUnavailable when the issuer's keys cannot be had (also when ctx ends while
// waiting for them), the others for tokens that cannot be trusted.
func (v *Verifier) Verify(ctx context.Context, token string) (*Identity, error) {
	if len(token) > maxTokenBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxTokenBytes)
	}
	now := v.now()
	if id, ok := v.cache.get(token, now); ok {
		return id, nil
	}
	id, validUntil, err := v.verify(ctx, token, now)
	if err != nil {
		return nil, err
	}
	v.cache.set(token, id, validUntil, now)
	return id, nil
}

// header is the part of a JWS protected header the verifier reads. Keys named by jku, x5u,
// jwk or x5c are never read: keys come only from configuration.
type header struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
	B64  json.RawMessage `json:"b64"`
}

// verify checks a token the cache does not hold, returning its identity and how long that may
// be cached.
func (v *Verifier) verify(ctx context.Context, token string, now time.Time) (*Identity, time.Time, error) {
	hdr, claims, err := parseUnverified(token)
	if err != nil {
		return nil, time.Time{}, err
	}
	iss, _ := claims["iss"].(string)
	if iss == "" {
		return nil, time.Time{}, fmt.Errorf("%w: iss", ErrMissingClaim)
	}
	if v.minted != nil && iss == v.issuer {
		return v.verifyMinted(token, hdr, claims, now)
	}
	return v.verifyTrusted(ctx, token, hdr, claims, now)
}

// parseUnverified decodes the header and claims of a compact JWS. Nothing in them is trusted
// yet: they only say which key to check the signature with.
func parseUnverified(token string) (header, map[string]any, error) {
	var hdr header
	hdrPart, rest, ok := strings.Cut(token, ".")
	payloadPart, sigPart, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.IndexByte(sigPart, '.') >= 0 {
		return hdr, nil, fmt.Errorf("%w: not a compact JWS (three parts joined by dots)", ErrMalformed)
	}
	// One token, one spelling: RFC 7515's unpadded base64url only. jws would also take padding
	// and the standard alphabet, and each spelling of a token would verify (and miss the cache).
	if !canonicalBase64URL(sigPart) {
		return hdr, nil, fmt.Errorf("%w: signature: not unpadded base64url (RFC 7515)", ErrMalformed)
	}
	if err := decodeSegment(hdrPart, &hdr); err != nil {
		return hdr, nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	// Extensions (crit) and unencoded payloads (b64) change what is signed; tokens do not use
	// them, so they are refused rather than half understood.
	if hdr.Crit != nil || hdr.B64 != nil {
		return hdr, nil, fmt.Errorf("%w: crit and b64 headers are not supported", ErrMalformed)
	}
	var claims map[string]any
	if err := decodeSegment(payloadPart, &claims); err != nil || claims == nil {
		return hdr, nil, fmt.Errorf("%w: the claims are not a JSON object", ErrMalformed)
	}
	return hdr, claims, nil
}

func (v *Verifier) verifyMinted(token string, hdr header, claims map[string]any, now time.Time) (*Identity, time.Time, error) {
	if hdr.Kid == "" {
		return nil, time.Time{}, fmt.Errorf("%w: kid (token header)", ErrMissingClaim)
	}
	if hdr.Alg != "EdDSA" && hdr.Alg != "ES256" {
		return nil, time.Time{}, fmt.Errorf("%w: %s (minted tokens use EdDSA or ES256)", ErrAlgorithm, quoted(hdr.Alg))
	}
	jk, ok := v.minted.PublicKey(hdr.Kid)
	if !ok {
		return nil, time.Time{}, fmt.Errorf("%w: %s", ErrUnknownKey, quoted(hdr.Kid))
	}
	key, err := usableKey(jk)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %s cannot verify signatures: %v", ErrUnknownKey, quoted(hdr.Kid), err)
	}
	if err := checkSignature(token, key, hdr.Alg); err != nil {
		return nil, time.Time{}, err
	}
	exp, iat, err := v.checkTimes(claims, now)
	if err != nil {
		return nil, time.Time{}, err
	}
	pid, ok, err := scalarAt(claims, defaultPaths["pid"])
	switch {
	case err != nil:
		return nil, time.Time{}, fmt.Errorf("%w: pid: %v", ErrMalformed, err)
	case !ok:
		return nil, time.Time{}, fmt.Errorf("%w: pid", ErrMissingClaim)
	}
	p, ok := v.projects[pid]
	if !ok {
		return nil, time.Time{}, fmt.Errorf("%w: project %s is not served here", ErrPermission, quoted(pid))
	}
	if tid, _, _ := scalarAt(claims, defaultPaths["tid"]); tid != p.TenantID {
		return nil, time.Time{}, fmt.Errorf("%w: the token's tenant is not the project's", ErrPermission)
	}
	if !audienceHas(claims["aud"], pid) {
		return nil, time.Time{}, fmt.Errorf("%w: aud does not name project %s", ErrAudience, quoted(pid))
	}
	id, err := v.identity(p, nil, claims, exp, iat)
	if err != nil {
		return nil, time.Time{}, err
	}
	id.Minted = true
	// The keyring is fixed for the life of a Verifier (a reload makes a new one), so only exp
	// bounds the cache entry.
	return id, exp.Add(v.leeway), nil
}

func (v *Verifier) verifyTrusted(ctx context.Context, token string, hdr header, claims map[string]any, now time.Time) (*Identity, time.Time, error) {
	iss := claims["iss"].(string)
	trusts := v.trusts[iss]
	if len(trusts) == 0 {
		return nil, time.Time{}, fmt.Errorf("%w: %s", ErrUnknownIssuer, quoted(iss))
	}
	tr, denied := pickTrust(trusts, claims)
	if _, ok := tr.algs[hdr.Alg]; !ok {
		return nil, time.Time{}, fmt.Errorf("%w: %s is not in the issuer's allowlist", ErrAlgorithm, quoted(hdr.Alg))
	}
	// An HMAC issuer has one key, its secret; a JWKS issuer names its key, and nothing else.
	key, keysUntil := tr.secret, now.Add(maxSecretCache)
	if key == nil {
		if hdr.Kid == "" {
			return nil, time.Time{}, fmt.Errorf("%w: kid (token header)", ErrMissingClaim)
		}
		var err error
		if key, keysUntil, err = tr.jwks.key(ctx, hdr.Kid); err != nil {
			return nil, time.Time{}, err
		}
	}
	if err := checkSignature(token, key, hdr.Alg); err != nil {
		return nil, time.Time{}, err
	}
	exp, iat, err := v.checkTimes(claims, now)
	if err != nil {
		return nil, time.Time{}, err
	}
	if denied != nil {
		return nil, time.Time{}, denied
	}
	if tid, ok, err := scalarAt(claims, tr.path("tid")); err != nil || (ok && tid != tr.project.TenantID) {
		return nil, time.Time{}, fmt.Errorf("%w: the token's tenant is not the project's", ErrPermission)
	}
	if tr.Audience != "" && !audienceHas(claims["aud"], tr.Audience) {
		return nil, time.Time{}, fmt.Errorf("%w: aud does not name %s", ErrAudience, quoted(tr.Audience))
	}
	if azp, ok := claims["azp"]; ok && azp != nil && len(tr.AuthorizedParties) > 0 {
		if s, _ := azp.(string); !contains(tr.AuthorizedParties, s) {
			return nil, time.Time{}, fmt.Errorf("%w: authorized party (azp) %s is not allowed", ErrPermission, quoted(s))
		}
	}
	id, err := v.identity(tr.project, tr, claims, exp, iat)
	if err != nil {
		return nil, time.Time{}, err
	}
	return id, minTime(exp.Add(v.leeway), keysUntil), nil
}

// pickTrust finds, among the trusts of the token's issuer, the one of the project the token
// names (pid), or the only one when it names none. Otherwise it returns the first trust with the
// error to report: the signature is still checked with it, so that only valid tokens learn
// they are in the wrong project (403) rather than invalid (401).
func pickTrust(trusts []*trustRule, claims map[string]any) (*trustRule, error) {
	named := false
	for _, tr := range trusts {
		pid, ok, err := scalarAt(claims, tr.path("pid"))
		if err != nil || ok {
			named = true
		}
		if ok && pid == tr.project.ID {
			return tr, nil
		}
	}
	switch {
	case named:
		return trusts[0], fmt.Errorf("%w: the project the token names (pid) does not trust its issuer", ErrPermission)
	case len(trusts) > 1:
		return trusts[0], fmt.Errorf("%w: the token names no project (pid) and several trust its issuer", ErrPermission)
	}
	return trusts[0], nil
}

// checkSignature verifies the token's signature with key under alg, which must suit the key.
func checkSignature(token string, key *jwksKey, alg string) error {
	if !key.fits(alg) {
		return fmt.Errorf("%w: %s does not suit the key", ErrAlgorithm, quoted(alg))
	}
	if _, err := jws.VerifyCompactFast(key.raw, []byte(token), signatureAlgorithm(alg)); err != nil {
		return ErrSignature
	}
	return nil
}

// strictB64 decodes unpadded base64url and refuses non-zero trailing bits, so that no two
// strings decode to the same bytes.
var strictB64 = base64.RawURLEncoding.Strict()

// canonicalBase64URL reports whether seg is unpadded base64url in its only spelling: the
// alphabet A-Z a-z 0-9 - _ (no padding, no line breaks, which Go's decoder skips), and no
// trailing bits set.
func canonicalBase64URL(seg string) bool {
	_, ok := decodeBase64URL(seg)
	return ok
}

// decodeBase64URL decodes seg when it is canonical (see canonicalBase64URL).
func decodeBase64URL(seg string) ([]byte, bool) {
	for i := 0; i < len(seg); i++ {
		if !base64URLAlphabet[seg[i]] {
			return nil, false
		}
	}
	b, err := strictB64.DecodeString(seg)
	return b, err == nil
}

var base64URLAlphabet = func() (a [256]bool) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" {
		a[c] = true
	}
	return a
}()

// decodeSegment decodes one unpadded base64url JSON part, numbers as json.Number.
func decodeSegment(seg string, v any) error {
	b, ok := decodeBase64URL(seg)
	if !ok {
		return errors.New("not unpadded base64url (RFC 7515)")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return errors.New("not JSON")
	}
	if dec.More() {
		return errors.New("trailing data after the JSON")
	}
	return nil
}

func audienceHas(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// quoted quotes a value from a token for an error message, cut short: messages reach clients
// and logs, and an unverified token is the sender's to fill.
func quoted(s string) string {
	const limit = 40
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "..."
	}
	return strconv.Quote(s)
}

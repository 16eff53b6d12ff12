package mint

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// Minter signs end-user tokens. Set Issuer and Keys; the zero value cannot mint. A Minter is
// safe for concurrent use once set up.
type Minter struct {
	// Issuer is the iss claim of minted tokens.
	Issuer string
	// Keys holds the key tokens are signed with (its Current key at the time of Mint).
	Keys *Keyring
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Errors of Mint. They are the caller's mistakes, not the end user's.
var (
	ErrNoKey       = errors.New("mint: no signing key")
	ErrNoSubject   = errors.New("mint: a token needs a user and a project")
	ErrTTLTooShort = errors.New("mint: ttl must be at least one second")
)

// randomIDBytes is the entropy of session ids and token ids: 128 bits.
const randomIDBytes = 16

var b64 = base64.RawURLEncoding

// Mint signs a token asserting c, for a new session, valid from now for c.TTL (whole seconds).
//
// The token is a JWS compact serialisation with the header
// {"alg":"EdDSA"|"ES256","kid":…,"typ":"behest+jwt"} and the claims iss, sub (= uid),
// aud (= pid), uid, tid, pid, tier, sid, iat, nbf (= iat), exp (= iat + TTL) and jti.
func (m *Minter) Mint(c Claims) (Token, error) {
	if c.UserID == "" || c.ProjectID == "" {
		return Token{}, ErrNoSubject
	}
	ttl := int64(c.TTL / time.Second)
	if ttl < 1 {
		return Token{}, ErrTTLTooShort
	}
	var key *SigningKey
	if m.Keys != nil {
		key = m.Keys.Current()
	}
	if key == nil {
		return Token{}, ErrNoKey
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	iat := now().Unix()
	exp := iat + ttl

	sid, jti := newIDs()

	// The claims are written by hand: the set is fixed, and encoding/json's reflection would
	// cost several times the allocations on every mint.
	var scratch [512]byte
	p := append(scratch[:0], `{"iss":`...)
	p = appendJSONString(p, m.Issuer)
	p = append(p, `,"sub":`...)
	p = appendJSONString(p, c.UserID)
	p = append(p, `,"aud":`...)
	p = appendJSONString(p, c.ProjectID)
	p = append(p, `,"uid":`...)
	p = appendJSONString(p, c.UserID)
	p = append(p, `,"tid":`...)
	p = appendJSONString(p, c.TenantID)
	p = append(p, `,"pid":`...)
	p = appendJSONString(p, c.ProjectID)
	p = append(p, `,"tier":`...)
	p = appendJSONString(p, c.Tier)
	p = append(p, `,"sid":"`...)
	p = append(p, sid...) // base64url and "sess_": nothing to escape
	p = append(p, `","iat":`...)
	p = strconv.AppendInt(p, iat, 10)
	p = append(p, `,"nbf":`...)
	p = strconv.AppendInt(p, iat, 10)
	p = append(p, `,"exp":`...)
	p = strconv.AppendInt(p, exp, 10)
	p = append(p, `,"jti":"`...)
	p = append(p, jti...)
	p = append(p, `"}`...)

	// Built on the stack (it grows onto the heap only for unusually long claims); the one
	// allocation left is the final string.
	var tokBuf [1024]byte
	tok := append(tokBuf[:0], key.header...)
	tok = append(tok, '.')
	tok = b64.AppendEncode(tok, p)
	var sigBuf [signatureSize]byte
	sig, err := key.appendSignature(sigBuf[:0], tok)
	if err != nil {
		return Token{}, err
	}
	tok = append(tok, '.')
	tok = b64.AppendEncode(tok, sig)
	return Token{Token: string(tok), TTL: ttl, SessionID: sid, ExpiresAt: exp}, nil
}

// sessionPrefix starts every minted session id.
const sessionPrefix = "sess_"

// idLen is the length of randomIDBytes in unpadded base64: ceil(bytes*4/3).
const idLen = (randomIDBytes*4 + 2) / 3

// newIDs returns a new session id, "sess_" and 128 random bits, and a new token id, 128 random
// bits, both base64url. The two share one allocation: minting is a hot path.
func newIDs() (sid, jti string) {
	// One read for both; crypto/rand does not fail on supported platforms.
	var rnd [2 * randomIDBytes]byte
	_, _ = rand.Read(rnd[:])
	var buf [len(sessionPrefix) + 2*idLen]byte
	n := copy(buf[:], sessionPrefix)
	b64.Encode(buf[n:], rnd[:randomIDBytes])
	b64.Encode(buf[n+idLen:], rnd[randomIDBytes:])
	ids := string(buf[:])
	return ids[:n+idLen], ids[n+idLen:]
}

// appendJSONString appends s as a JSON string. Ids are almost always plain printable ASCII,
// copied as is; anything else goes through encoding/json so escaping stays exactly right.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b >= 0x7f || b == '"' || b == '\\' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

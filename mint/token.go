package mint

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"
)

// Minter signs end-user tokens. The zero value is not usable: set Issuer and Keys.
type Minter struct {
	Issuer string
	Keys   *Keyring
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

type claims struct {
	Iss  string `json:"iss"`
	Sub  string `json:"sub"`
	Aud  string `json:"aud"`
	UID  string `json:"uid"`
	TID  string `json:"tid"`
	PID  string `json:"pid"`
	Tier string `json:"tier"`
	SID  string `json:"sid"`
	Iat  int64  `json:"iat"`
	Nbf  int64  `json:"nbf"`
	Exp  int64  `json:"exp"`
	JTI  string `json:"jti"`
}

// Mint signs a token for c with a new session.
func (m *Minter) Mint(c Claims) (Token, error) {
	if c.UserID == "" || c.ProjectID == "" {
		return Token{}, errors.New("mint: user and project are required")
	}
	ttl := int64(c.TTL / time.Second)
	if ttl <= 0 {
		return Token{}, errors.New("mint: ttl must be at least one second")
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	key := m.Keys.Current()
	var rnd [32]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return Token{}, err
	}
	iat := now().Unix()
	cl := claims{
		Iss: m.Issuer, Sub: c.UserID, Aud: c.ProjectID, UID: c.UserID, TID: c.TenantID, PID: c.ProjectID,
		Tier: c.Tier, SID: "sess_" + base64.RawURLEncoding.EncodeToString(rnd[:16]),
		Iat: iat, Nbf: iat, Exp: iat + ttl, JTI: base64.RawURLEncoding.EncodeToString(rnd[16:]),
	}
	hdr, err := json.Marshal(header{Alg: key.Algorithm(), Kid: key.KeyID(), Typ: "behest+jwt"})
	if err != nil {
		return Token{}, err
	}
	payload, err := json.Marshal(cl)
	if err != nil {
		return Token{}, err
	}
	enc := base64.RawURLEncoding
	buf := make([]byte, 0, enc.EncodedLen(len(hdr))+enc.EncodedLen(len(payload))+2+enc.EncodedLen(64))
	buf = enc.AppendEncode(buf, hdr)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)
	sig, err := key.sign(buf)
	if err != nil {
		return Token{}, err
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return Token{Token: string(buf), TTL: ttl, SessionID: cl.SID, ExpiresAt: cl.Exp}, nil
}

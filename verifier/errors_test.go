package verifier

import (
	"context"
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

const strictIssuer = "https://strict.example.com"

// TestRejections is every way a token fails, next to the near misses that pass.
func TestRejections(t *testing.T) {
	clock := newClock()
	rsaKey := newRSA(t, "rsa")         // its JWK says alg RS256
	rsaNoAlg := newRSA(t, "rsa-noalg") // its JWK names no alg
	ecKey := newEC(t, "ec", elliptic.P256(), "ES256")
	edKey := newEd25519(t, "ed")
	srv := newJWKSServer(t, rsaKey.jwk(t, true), rsaNoAlg.jwk(t, false), ecKey.jwk(t, false), edKey.jwk(t, false))

	attacker := newEd25519(t, "attacker")
	attackerJWK := attacker.jwk(t, false)
	attackerSrv := newJWKSServer(t, attackerJWK) // a jku/x5u target: must never be asked
	impostor := newEd25519(t, "ed")              // the attacker's key under a legit kid

	v := newTestVerifier(t, Config{
		Projects: []Project{{
			ID: project, TenantID: tenant, DefaultTier: "1",
			Trust: []Trust{
				{Issuer: clerkIssuer, JWKSURL: srv.URL},
				{Issuer: strictIssuer, JWKSURL: srv.URL, Algorithms: []string{"RS256", "PS256"},
					Audience: "behest", AuthorizedParties: []string{"https://app.example.com"}},
			},
		}},
		Now: clock.Now,
	})
	now := clock.Now()
	base := clerkClaims(now)
	strict := with(base, map[string]any{"iss": strictIssuer, "aud": "behest"})
	good := edKey.sign(t, base, nil)
	hdr, payload, sig := splitToken(good)
	enc := base64.RawURLEncoding.EncodeToString
	// A signature that has a character the two alphabets spell differently.
	stdSig := ""
	for i := 0; stdSig == ""; i++ {
		_, _, s := splitToken(edKey.sign(t, with(base, map[string]any{"jti": i}), nil))
		if strings.ContainsAny(s, "-_") {
			stdSig = strings.NewReplacer("-", "+", "_", "/").Replace(s)
		}
	}

	tests := []struct {
		name  string
		token string
		want  error // nil: accepted
	}{
		{"valid EdDSA", good, nil},
		{"valid RS256", rsaKey.sign(t, base, nil), nil},
		{"valid ES256", ecKey.sign(t, base, nil), nil},

		{"empty", "", ErrMalformed},
		{"two parts", hdr + "." + payload, ErrMalformed},
		{"four parts", good + ".x", ErrMalformed},
		{"header not base64url", "e30=" + "." + payload + "." + sig, ErrMalformed},
		{"header not JSON", enc([]byte("{alg")) + "." + payload + "." + sig, ErrMalformed},
		{"claims not an object", hdr + "." + enc([]byte("[1]")) + "." + sig, ErrMalformed},
		{"claims null", hdr + "." + enc([]byte("null")) + "." + sig, ErrMalformed},
		{"trailing data after claims", hdr + "." + enc([]byte(`{"iss":"x"} {}`)) + "." + sig, ErrMalformed},
		{"too long", edKey.sign(t, with(base, map[string]any{"pad": strings.Repeat("x", 40<<10)}), nil), ErrMalformed},
		{"crit header", edKey.sign(t, base, map[string]any{"crit": []string{"exp"}}), ErrMalformed},

		// One spelling per token: RFC 7515's unpadded base64url only.
		{"signature padded", hdr + "." + payload + "." + sig + "==", ErrMalformed},
		{"signature in the standard alphabet", hdr + "." + payload + "." + stdSig, ErrMalformed},
		{"signature with trailing bits set", hdr + "." + payload + "." + trailingBits(t, sig), ErrMalformed},
		{"signature with a line break", hdr + "." + payload + "." + sig[:10] + "\n" + sig[10:], ErrMalformed},
		{"header padded", hdr + strings.Repeat("=", (4-len(hdr)%4)%4+4) + "." + payload + "." + sig, ErrMalformed},
		{"header with a line break", hdr[:4] + "\r\n" + hdr[4:] + "." + payload + "." + sig, ErrMalformed},
		{"claims padded", hdr + "." + payload + "=" + "." + sig, ErrMalformed},

		// Ids are plain: printable, at most 256 bytes.
		{"uid with CR LF", edKey.sign(t, with(base, map[string]any{"uid": "a\r\nX-Evil: 1"}), nil), ErrMalformed},
		{"uid with a NUL", edKey.sign(t, with(base, map[string]any{"uid": "a\x00b"}), nil), ErrMalformed},
		{"uid with a line separator", edKey.sign(t, with(base, map[string]any{"uid": "a\u2028b"}), nil), ErrMalformed},
		{"uid with U+FFFD", edKey.sign(t, with(base, map[string]any{"uid": "a\ufffdb"}), nil), ErrMalformed},
		{"uid of 257 bytes", edKey.sign(t, with(base, map[string]any{"uid": strings.Repeat("u", 257)}), nil), ErrMalformed},
		{"uid of 256 bytes", edKey.sign(t, with(base, map[string]any{"uid": strings.Repeat("u", 256)}), nil), nil},
		{"uid with accents and a space", edKey.sign(t, with(base, map[string]any{"uid": "org_9:José Ñ"}), nil), nil},
		{"sid with a tab", edKey.sign(t, with(base, map[string]any{"sid": "s\t1"}), nil), ErrMalformed},
		{"sub with LF as the uid", edKey.sign(t, with(base, map[string]any{"uid": nil, "sub": "user\n2"}), nil), ErrMalformed},

		{"no kid", edKey.sign(t, base, map[string]any{"kid": nil}), ErrMissingClaim},
		{"no iss", edKey.sign(t, with(base, map[string]any{"iss": nil}), nil), ErrMissingClaim},
		{"unknown issuer", edKey.sign(t, with(base, map[string]any{"iss": "https://evil.example.com"}), nil), ErrUnknownIssuer},

		{"alg none", edKey.sign(t, base, map[string]any{"alg": "none"}), ErrAlgorithm},
		{"alg missing", edKey.sign(t, base, map[string]any{"alg": nil}), ErrAlgorithm},
		{"HS256 keyed with the RSA public key", rsaKey.sign(t, base, map[string]any{"alg": "HS256"}), ErrAlgorithm},
		{"HS256 on a key without alg", rsaNoAlg.sign(t, base, map[string]any{"alg": "HS256"}), ErrAlgorithm},
		{"alg not in the allowlist", ecKey.sign(t, strict, nil), ErrAlgorithm},
		{"header alg is not the JWK's alg", rsaKey.sign(t, strict, map[string]any{"alg": "PS256"}), ErrAlgorithm},
		{"PS256 on an RSA key without alg", (&testKey{kid: "rsa-noalg", alg: "PS256", priv: rsaNoAlg.priv}).sign(t, strict, nil), nil},
		{"RS256 on an EC key", ecKey.sign(t, base, map[string]any{"alg": "RS256"}), ErrAlgorithm},
		{"EdDSA on an RSA key", rsaNoAlg.sign(t, base, map[string]any{"alg": "EdDSA"}), ErrAlgorithm},
		{"ES384 on a P-256 key", ecKey.sign(t, with(base, nil), map[string]any{"alg": "ES384"}), ErrAlgorithm},

		{"expired", edKey.sign(t, with(base, map[string]any{"exp": now.Add(-31 * time.Second).Unix()}), nil), ErrExpired},
		{"expired within leeway", edKey.sign(t, with(base, map[string]any{"exp": now.Add(-29 * time.Second).Unix()}), nil), nil},
		{"no exp", edKey.sign(t, with(base, map[string]any{"exp": nil}), nil), ErrMissingClaim},
		{"exp not a number", edKey.sign(t, with(base, map[string]any{"exp": "tomorrow"}), nil), ErrMalformed},
		{"nbf in the future", edKey.sign(t, with(base, map[string]any{"nbf": now.Add(31 * time.Second).Unix()}), nil), ErrNotYetValid},
		{"nbf within leeway", edKey.sign(t, with(base, map[string]any{"nbf": now.Add(29 * time.Second).Unix()}), nil), nil},
		{"iat in the future", edKey.sign(t, with(base, map[string]any{"iat": now.Add(31 * time.Second).Unix()}), nil), ErrNotYetValid},
		{"iat within leeway", edKey.sign(t, with(base, map[string]any{"iat": now.Add(29 * time.Second).Unix()}), nil), nil},

		{"claims changed after signing", hdr + "." + b64json(t, with(base, map[string]any{"uid": "admin"})) + "." + sig, ErrSignature},
		{"signature of other claims", hdr + "." + payload + "." + sigOf(edKey.sign(t, with(base, map[string]any{"jti": "2"}), nil)), ErrSignature},
		{"empty signature", hdr + "." + payload + ".", ErrSignature},

		{"tid mismatch", edKey.sign(t, with(base, map[string]any{"tid": "t_999"}), nil), ErrPermission},
		{"audience required", rsaKey.sign(t, with(strict, map[string]any{"aud": nil}), nil), ErrAudience},
		{"audience wrong", rsaKey.sign(t, with(strict, map[string]any{"aud": "other"}), nil), ErrAudience},
		{"audience in a list", rsaKey.sign(t, with(strict, map[string]any{"aud": []string{"other", "behest"}}), nil), nil},
		{"azp not authorized", rsaKey.sign(t, with(strict, map[string]any{"azp": "https://evil.example.com"}), nil), ErrPermission},
		{"azp not a string", rsaKey.sign(t, with(strict, map[string]any{"azp": 1}), nil), ErrPermission},
		{"no azp", rsaKey.sign(t, with(strict, map[string]any{"azp": nil}), nil), nil},
		{"azp unchecked without authorized parties", edKey.sign(t, with(base, map[string]any{"azp": "https://evil.example.com"}), nil), nil},

		// Keys named by the token itself are never used.
		{"attacker key in jwk header", attacker.sign(t, base, map[string]any{"jwk": attackerJWK}), ErrUnknownKey},
		{"attacker key in jwk header, legit kid", impostor.sign(t, base, map[string]any{"jwk": impostor.jwk(t, false)}), ErrSignature},
		{"jku to the attacker", attacker.sign(t, base, map[string]any{"jku": attackerSrv.URL}), ErrUnknownKey},
		{"x5u to the attacker", impostor.sign(t, base, map[string]any{"x5u": attackerSrv.URL}), ErrSignature},
		{"x5c header", impostor.sign(t, base, map[string]any{"x5c": []string{"MIIBAA=="}}), ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), tt.token)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %+v, %v; want %v", id, err, tt.want)
			}
			if len(err.Error()) > 300 {
				t.Errorf("error message is %d bytes long", len(err.Error()))
			}
		})
	}
	if n := attackerSrv.hits.Load(); n != 0 {
		t.Errorf("the attacker's key server was asked %d times", n)
	}
}

// TestLeeway: the leeway applies to exp, nbf and iat, defaults to 30s and is clamped to 60s.
func TestLeeway(t *testing.T) {
	for _, tt := range []struct {
		configured, effective time.Duration
	}{
		{0, 30 * time.Second},
		{10 * time.Second, 10 * time.Second},
		{60 * time.Second, 60 * time.Second},
		{5 * time.Minute, 60 * time.Second},
	} {
		t.Run(tt.configured.String(), func(t *testing.T) {
			clock := newClock()
			ed := newEd25519(t, "m1")
			v := newTestVerifier(t, Config{MintedKeys: keySource{"m1": ed.jwk(t, false)}, Projects: []Project{mintedProject()},
				Leeway: tt.configured, Now: clock.Now})
			now := clock.Now()
			base := mintedClaims(now)
			for _, c := range []struct {
				claim string
				at    time.Time
				want  error
			}{
				{"exp", now.Add(-tt.effective + time.Second), nil},
				{"exp", now.Add(-tt.effective - time.Second), ErrExpired},
				{"nbf", now.Add(tt.effective - time.Second), nil},
				{"nbf", now.Add(tt.effective + time.Second), ErrNotYetValid},
				{"iat", now.Add(tt.effective - time.Second), nil},
				{"iat", now.Add(tt.effective + time.Second), ErrNotYetValid},
			} {
				_, err := v.Verify(context.Background(), ed.sign(t, with(base, map[string]any{c.claim: c.at.Unix()}), nil))
				if (c.want == nil && err != nil) || !errors.Is(err, c.want) {
					t.Errorf("%s at now%+v: err = %v, want %v", c.claim, c.at.Sub(now), err, c.want)
				}
			}
		})
	}
}

func splitToken(tok string) (hdr, payload, sig string) {
	parts := strings.Split(tok, ".")
	return parts[0], parts[1], parts[2]
}

func sigOf(tok string) string { _, _, s := splitToken(tok); return s }

// trailingBits respells an unpadded base64url string whose last character carries unused bits
// with one of them set: a lenient decoder reads the same bytes.
func trailingBits(t *testing.T, s string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(s)%4 == 0 {
		t.Fatalf("%d characters leave no unused bits", len(s))
	}
	last := strings.IndexByte(alphabet, s[len(s)-1])
	respelled := s[:len(s)-1] + string(alphabet[last|1])
	if b1, err := base64.RawURLEncoding.DecodeString(s); err != nil {
		t.Fatal(err)
	} else if b2, err := base64.RawURLEncoding.DecodeString(respelled); err != nil || string(b1) != string(b2) {
		t.Fatalf("respelling changed the bytes: %v", err)
	}
	return respelled
}

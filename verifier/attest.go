package verifier

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrAttestation is an attestation token that is missing or cannot be trusted (its reason
// wrapped). ErrIssuerUnavailable is returned instead when its keys cannot be had.
var ErrAttestation = errors.New("attestation token is not valid")

// Attest is a project's device attestation: a second token, from an attestation service such
// as Firebase App Check (which covers App Attest, DeviceCheck, Play Integrity and reCAPTCHA),
// proving that a request comes from the real app.
type Attest struct {
	// Issuer is the attestation tokens' iss, compared exactly
	// ("https://firebaseappcheck.googleapis.com/<project number>").
	Issuer string
	// JWKSURL is where the service's keys are (default: discovery, as for a Trust).
	JWKSURL string
	// Audience must be the token's aud or one of its values ("projects/<project number>"). It
	// is required: an attestation service's keys sign the tokens of all its customers.
	Audience string
	// Algorithms is the allowlist (default RS256, ES256).
	Algorithms []string
}

// Attestation is what a verified attestation token says.
type Attestation struct {
	// ID is the token's jti ("" when it has none).
	ID string
	// Subject is the app the token is for (sub).
	Subject string
	// ExpiresAt is the token's exp.
	ExpiresAt time.Time
}

// attestRule is a project's Attest, compiled.
type attestRule struct {
	Attest
	algs map[string]struct{}
	jwks *jwksCache
}

var defaultAttestAlgorithms = []string{"RS256", "ES256"}

func (v *Verifier) compileAttest(a *Attest) (*attestRule, error) {
	if a.Issuer == "" {
		return nil, errors.New("an issuer is required")
	}
	if a.Audience == "" {
		return nil, errors.New("an audience is required: the attestation service signs every customer's tokens with the same keys")
	}
	ar := &attestRule{Attest: *a, algs: map[string]struct{}{}}
	algs := a.Algorithms
	if len(algs) == 0 {
		algs = defaultAttestAlgorithms
	}
	for _, alg := range algs {
		if _, ok := knownAlgorithms[alg]; !ok {
			return nil, fmt.Errorf("algorithm %q is not allowed (use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA)", alg)
		}
		ar.algs[alg] = struct{}{}
	}
	c, err := v.keyCache(a.Issuer, a.JWKSURL)
	if err != nil {
		return nil, err
	}
	ar.jwks = c
	return ar, nil
}

// VerifyAttestation checks an attestation token for project: its one spelling, its signature
// by a key of the service's JWKS (kid required), exp (required) and nbf/iat with the leeway,
// iss and aud. ctx bounds only the wait for the keys.
func (v *Verifier) VerifyAttestation(ctx context.Context, project, token string) (Attestation, error) {
	p, ok := v.projects[project]
	if !ok || p.attest == nil {
		return Attestation{}, fmt.Errorf("%w: the project takes no attestation", ErrAttestation)
	}
	a := p.attest
	if token == "" {
		return Attestation{}, fmt.Errorf("%w: none was sent", ErrAttestation)
	}
	if len(token) > maxTokenBytes {
		return Attestation{}, fmt.Errorf("%w: longer than %d bytes", ErrAttestation, maxTokenBytes)
	}
	hdr, claims, err := parseUnverified(token)
	if err != nil {
		return Attestation{}, fmt.Errorf("%w: %w", ErrAttestation, err)
	}
	if hdr.Kid == "" {
		return Attestation{}, fmt.Errorf("%w: it names no key (kid)", ErrAttestation)
	}
	if _, ok := a.algs[hdr.Alg]; !ok {
		return Attestation{}, fmt.Errorf("%w: algorithm %s is not allowed", ErrAttestation, quoted(hdr.Alg))
	}
	key, _, err := a.jwks.key(ctx, hdr.Kid)
	switch {
	case errors.Is(err, ErrIssuerUnavailable):
		return Attestation{}, err
	case err != nil:
		return Attestation{}, fmt.Errorf("%w: %w", ErrAttestation, err)
	}
	if err := checkSignature(token, key, hdr.Alg); err != nil {
		return Attestation{}, fmt.Errorf("%w: %w", ErrAttestation, err)
	}
	exp, _, err := v.checkTimes(claims, v.now())
	if err != nil {
		return Attestation{}, fmt.Errorf("%w: %w", ErrAttestation, err)
	}
	if iss, _ := claims["iss"].(string); iss != a.Issuer {
		return Attestation{}, fmt.Errorf("%w: issued by %s, not %s", ErrAttestation, quoted(iss), quoted(a.Issuer))
	}
	if !audienceHas(claims["aud"], a.Audience) {
		return Attestation{}, fmt.Errorf("%w: its audience (aud) is not %s", ErrAttestation, quoted(a.Audience))
	}
	jti, _, _ := scalarAt(claims, []string{"jti"})
	sub, _, _ := scalarAt(claims, []string{"sub"})
	return Attestation{ID: jti, Subject: sub, ExpiresAt: exp}, nil
}

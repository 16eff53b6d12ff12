package verifier

import (
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// jwksKey is one public key, ready to verify with. It is immutable once made.
type jwksKey struct {
	alg string // the JWK's alg, "" when it has none
	kty string // "RSA", "EC", "OKP"
	crv string // for EC and OKP
	raw any    // the crypto public key jwx verifies with
}

// usableKey converts a JWK for verification. Only asymmetric keys are usable: a symmetric key
// in a key set would let its publisher's readers sign tokens.
func usableKey(k jwk.Key) (*jwksKey, error) {
	switch k.KeyType() {
	case jwa.RSA(), jwa.EC(), jwa.OKP():
	default:
		return nil, fmt.Errorf("key type %s cannot verify signatures", k.KeyType())
	}
	if private, _ := jwk.IsPrivateKey(k); private {
		pub, err := k.PublicKey()
		if err != nil {
			return nil, err
		}
		k = pub
	}
	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, errors.New("empty key")
	}
	jk := &jwksKey{kty: k.KeyType().String(), raw: raw}
	if alg, ok := k.Algorithm(); ok {
		jk.alg = alg.String()
	}
	switch key := k.(type) {
	case jwk.ECDSAPublicKey:
		if crv, ok := key.Crv(); ok {
			jk.crv = crv.String()
		}
	case jwk.OKPPublicKey:
		if crv, ok := key.Crv(); ok {
			jk.crv = crv.String()
		}
	}
	return jk, nil
}

// fits reports whether alg may be used with k: it must be the JWK's own alg when it names one,
// and an alg of its key type and curve. Checking this before verifying is what stops algorithm
// confusion (a token choosing how its key is read).
func (k *jwksKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch k.kty {
	case "RSA":
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case "EC":
		return (alg == "ES256" && k.crv == "P-256") || (alg == "ES384" && k.crv == "P-384") ||
			(alg == "ES512" && k.crv == "P-521")
	case "OKP":
		return alg == "EdDSA" && k.crv == "Ed25519"
	case "oct": // only ever a trust's configured secret: usableKey refuses oct keys of a JWKS
		_, ok := hmacAlgorithms[alg]
		return ok
	}
	return false
}

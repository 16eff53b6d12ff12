package mint

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// tokenType is the typ header of minted tokens, so they cannot be mistaken for other JWTs.
const tokenType = "behest+jwt"

// SigningKey is a private key that signs minted tokens (Ed25519 or ECDSA P-256), with its
// public JWK. It is immutable and safe for concurrent use. Its String method names only the
// algorithm and kid, so printing or logging a SigningKey never shows the private key.
type SigningKey struct {
	signer crypto.Signer
	alg    string
	kid    string
	public jwk.Key
	// header is the token's protected header, base64url-encoded once: it is the same for
	// every token this key signs.
	header string
}

// GenerateKey makes a new Ed25519 signing key.
func GenerateKey() (*SigningKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating an Ed25519 key: %w", err)
	}
	return newSigningKey(priv)
}

// ParseKeyPEM reads an Ed25519 or ECDSA P-256 private key from PEM: a PKCS#8 "PRIVATE KEY"
// block, or a SEC1 "EC PRIVATE KEY" block. Other key types and curves are refused with an
// error saying what to use instead.
func ParseKeyPEM(pemBytes []byte) (*SigningKey, error) {
	block := firstKeyBlock(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM private key found (want a PRIVATE KEY or EC PRIVATE KEY block)")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		return nil, errors.New("RSA keys cannot sign minted tokens; use an Ed25519 or ECDSA P-256 key")
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("the private key is encrypted; give an unencrypted PKCS#8 Ed25519 or ECDSA P-256 key")
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key (want PRIVATE KEY or EC PRIVATE KEY)", block.Type)
	}
	if err != nil {
		// x509's errors describe the structure, never the key bytes.
		return nil, fmt.Errorf("parsing the %s block: %w", block.Type, err)
	}
	switch k := key.(type) {
	case ed25519.PrivateKey:
		return newSigningKey(k)
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA curve %s cannot sign minted tokens; use P-256 (ES256) or Ed25519", k.Curve.Params().Name)
		}
		return newSigningKey(k)
	case *rsa.PrivateKey:
		return nil, errors.New("RSA keys cannot sign minted tokens; use an Ed25519 or ECDSA P-256 key")
	default:
		return nil, fmt.Errorf("a %T cannot sign minted tokens; use an Ed25519 or ECDSA P-256 key", key)
	}
}

// firstKeyBlock skips the "EC PARAMETERS" block that `openssl ecparam -genkey` writes before
// the key, so its output can be used as is.
func firstKeyBlock(data []byte) *pem.Block {
	for {
		block, rest := pem.Decode(data)
		if block == nil || block.Type != "EC PARAMETERS" {
			return block
		}
		data = rest
	}
}

// LoadKeyFile reads a PEM private key file (see ParseKeyPEM).
func LoadKeyFile(path string) (*SigningKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return k, nil
}

func newSigningKey(priv crypto.Signer) (*SigningKey, error) {
	k := &SigningKey{signer: priv, alg: "EdDSA"}
	alg := jwa.EdDSA()
	if _, ok := priv.(*ecdsa.PrivateKey); ok {
		k.alg, alg = "ES256", jwa.ES256()
	}
	pub, err := jwk.Import(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("making the public JWK: %w", err)
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("computing the key's thumbprint: %w", err)
	}
	k.kid = base64.RawURLEncoding.EncodeToString(tp)
	if err := pub.Set(jwk.KeyIDKey, k.kid); err != nil {
		return nil, err
	}
	if err := pub.Set(jwk.AlgorithmKey, alg); err != nil {
		return nil, err
	}
	if err := pub.Set(jwk.KeyUsageKey, jwk.ForSignature); err != nil {
		return nil, err
	}
	k.public = pub
	// alg and kid are fixed strings from us (a base64url kid needs no JSON escaping).
	k.header = base64.RawURLEncoding.EncodeToString(
		[]byte(`{"alg":"` + k.alg + `","kid":"` + k.kid + `","typ":"` + tokenType + `"}`))
	return k, nil
}

// KeyID is the key's RFC 7638 JWK thumbprint (SHA-256, base64url), the kid of its tokens.
func (k *SigningKey) KeyID() string { return k.kid }

// Algorithm is the JWS alg the key signs with: "EdDSA" or "ES256".
func (k *SigningKey) Algorithm() string { return k.alg }

// PublicJWK is the public key with kid, alg and use=sig set. It is shared: do not modify it.
func (k *SigningKey) PublicJWK() jwk.Key { return k.public }

// MarshalPEM encodes the private key as a PKCS#8 "PRIVATE KEY" PEM block.
func (k *SigningKey) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.signer)
	if err != nil {
		return nil, fmt.Errorf("encoding the private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// String identifies the key without showing it.
func (k *SigningKey) String() string { return k.alg + " signing key " + k.kid }

// GoString keeps %#v from printing the private key.
func (k *SigningKey) GoString() string { return "mint.SigningKey(" + k.String() + ")" }

// signatureSize is the JWS signature length of both algorithms: Ed25519's 64 bytes, and
// ES256's r||s of 32 bytes each.
const signatureSize = 64

// appendSignature appends the JWS signature of signingInput to dst.
func (k *SigningKey) appendSignature(dst, signingInput []byte) ([]byte, error) {
	switch priv := k.signer.(type) {
	case ed25519.PrivateKey:
		return append(dst, ed25519.Sign(priv, signingInput)...), nil
	case *ecdsa.PrivateKey:
		digest := sha256.Sum256(signingInput)
		der, err := ecdsa.SignASN1(rand.Reader, priv, digest[:])
		if err != nil {
			return nil, fmt.Errorf("signing: %w", err)
		}
		return appendRawECDSA(dst, der, 32)
	}
	return nil, errors.New("unsupported signing key")
}

var errMalformedECDSA = errors.New("signing: malformed ECDSA signature")

// appendRawECDSA turns an ASN.1 ECDSA signature, SEQUENCE { INTEGER r, INTEGER s }, into the
// r||s form JWS wants, each left-padded to size bytes. It reads the DER directly rather than
// through ecdsa.Sign's big.Ints, which cost allocations on every mint.
func appendRawECDSA(dst, der []byte, size int) ([]byte, error) {
	bad := errMalformedECDSA
	// A P-256 signature is at most 72 bytes, so every length fits in one byte.
	if len(der) < 2 || der[0] != 0x30 || int(der[1]) != len(der)-2 || der[1] >= 0x80 {
		return nil, bad
	}
	rest := der[2:]
	for range 2 {
		if len(rest) < 2 || rest[0] != 0x02 || rest[1] >= 0x80 || int(rest[1]) > len(rest)-2 {
			return nil, bad
		}
		n := rest[2 : 2+int(rest[1])]
		rest = rest[2+int(rest[1]):]
		// DER adds a 0x00 byte in front of an integer whose top bit is set.
		for len(n) > 0 && n[0] == 0 {
			n = n[1:]
		}
		if len(n) > size {
			return nil, bad
		}
		for range size - len(n) {
			dst = append(dst, 0)
		}
		dst = append(dst, n...)
	}
	if len(rest) != 0 {
		return nil, bad
	}
	return dst, nil
}

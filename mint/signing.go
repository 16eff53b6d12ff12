package mint

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// SigningKey is a private key that signs minted tokens, with its public JWK.
type SigningKey struct {
	signer crypto.Signer
	alg    string
	kid    string
	public jwk.Key
}

// GenerateKey makes a new Ed25519 signing key.
func GenerateKey() (*SigningKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return newSigningKey(priv)
}

// ParseKeyPEM reads an Ed25519 or ECDSA P-256 private key from PEM (PKCS#8, or SEC1 for EC).
func ParseKeyPEM(data []byte) (*SigningKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
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
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key (want PRIVATE KEY or EC PRIVATE KEY)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing the private key: %w", err)
	}
	switch k := key.(type) {
	case ed25519.PrivateKey:
		return newSigningKey(k)
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA curve %s is not supported; use P-256 (ES256) or Ed25519", k.Curve.Params().Name)
		}
		return newSigningKey(k)
	default:
		return nil, fmt.Errorf("a %T cannot sign tokens; use Ed25519 or ECDSA P-256", key)
	}
}

// LoadKeyFile reads a PEM private key file.
func LoadKeyFile(path string) (*SigningKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseKeyPEM(data)
}

func newSigningKey(priv crypto.Signer) (*SigningKey, error) {
	k := &SigningKey{signer: priv, alg: "EdDSA"}
	alg := jwa.EdDSA()
	if _, ok := priv.(*ecdsa.PrivateKey); ok {
		k.alg, alg = "ES256", jwa.ES256()
	}
	pub, err := jwk.Import(priv.Public())
	if err != nil {
		return nil, err
	}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	k.kid = base64.RawURLEncoding.EncodeToString(tp)
	for name, v := range map[string]any{jwk.KeyIDKey: k.kid, jwk.AlgorithmKey: alg, jwk.KeyUsageKey: "sig"} {
		if err := pub.Set(name, v); err != nil {
			return nil, err
		}
	}
	k.public = pub
	return k, nil
}

// KeyID is the RFC 7638 thumbprint of the public key.
func (k *SigningKey) KeyID() string { return k.kid }

// Algorithm is the JWS alg the key signs with: EdDSA or ES256.
func (k *SigningKey) Algorithm() string { return k.alg }

// PublicJWK is the public key with kid, alg and use set.
func (k *SigningKey) PublicJWK() jwk.Key { return k.public }

// MarshalPEM encodes the private key as PKCS#8 PEM.
func (k *SigningKey) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.signer)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// sign returns the JWS signature of signingInput.
func (k *SigningKey) sign(signingInput []byte) ([]byte, error) {
	switch priv := k.signer.(type) {
	case ed25519.PrivateKey:
		return ed25519.Sign(priv, signingInput), nil
	case *ecdsa.PrivateKey:
		digest := sha256.Sum256(signingInput)
		r, s, err := ecdsa.Sign(rand.Reader, priv, digest[:])
		if err != nil {
			return nil, err
		}
		// JWS wants r||s, each left-padded to the curve size, not ASN.1.
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig, nil
	}
	return nil, errors.New("unsupported signing key")
}

// LoadOrCreateKey returns the key kept under name in s, generating and storing an Ed25519 key
// the first time. The storage lock makes instances that share storage agree on one key.
func LoadOrCreateKey(ctx context.Context, s Storage, name string) (*SigningKey, error) {
	if k, err := loadStored(ctx, s, name); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := s.Lock(ctx, name); err != nil {
		return nil, fmt.Errorf("locking %s: %w", name, err)
	}
	defer func() { _ = s.Unlock(context.WithoutCancel(ctx), name) }()
	// Another instance may have made it while we waited for the lock.
	if k, err := loadStored(ctx, s, name); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	k, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	data, err := k.MarshalPEM()
	if err != nil {
		return nil, err
	}
	if err := s.Store(ctx, name, data); err != nil {
		return nil, fmt.Errorf("storing %s: %w", name, err)
	}
	return k, nil
}

func loadStored(ctx context.Context, s Storage, name string) (*SigningKey, error) {
	data, err := s.Load(ctx, name)
	if err != nil {
		return nil, err
	}
	k, err := ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("stored key %s: %w", name, err)
	}
	return k, nil
}

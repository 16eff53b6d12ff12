package mint

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Keyring holds the current signing key and the public keys tokens may still be signed with
// (the current one and those it replaced, until their tokens have expired). It is safe for
// concurrent use; it satisfies verifier.KeySource.
type Keyring struct {
	mu      sync.RWMutex
	current *SigningKey
	public  map[string]jwk.Key
	jwks    []byte
}

// NewKeyring makes a keyring that signs with current (which must not be nil) and also
// publishes the previous keys. Previous keys may be given private or public; only their
// public part is kept. A previous key that has no public form (a symmetric key) is left
// out, so the keyring can never publish secret material; use Rotate to have that reported.
func NewKeyring(current *SigningKey, previous ...jwk.Key) *Keyring {
	var keep []jwk.Key
	for _, k := range previous {
		if pub, err := publicOf(k); err == nil {
			keep = append(keep, pub)
		}
	}
	r := &Keyring{}
	r.set(current, keep)
	return r
}

// Rotate makes current the signing key and previous the other keys published, replacing
// what the keyring held. It fails, changing nothing, when current is nil or a previous key
// has no public form.
func (r *Keyring) Rotate(current *SigningKey, previous ...jwk.Key) error {
	if current == nil {
		return errors.New("mint: rotate needs a current key")
	}
	keep := make([]jwk.Key, 0, len(previous))
	for i, k := range previous {
		pub, err := publicOf(k)
		if err != nil {
			return fmt.Errorf("previous key %d: %w", i, err)
		}
		keep = append(keep, pub)
	}
	r.set(current, keep)
	return nil
}

func (r *Keyring) set(current *SigningKey, previous []jwk.Key) {
	public := map[string]jwk.Key{current.KeyID(): current.PublicJWK()}
	keys := []jwk.Key{current.PublicJWK()}
	for _, k := range previous {
		kid, _ := k.KeyID() // publicOf made sure there is one
		if _, dup := public[kid]; !dup {
			public[kid] = k
			keys = append(keys, k)
		}
	}
	// Built once here, so serving /.well-known/jwks.json costs nothing.
	jwks, err := json.Marshal(struct {
		Keys []jwk.Key `json:"keys"`
	}{keys})
	if err != nil {
		// Our own keys are valid JWKs; a failure here is a bug in the JWK library.
		panic(fmt.Sprintf("mint: marshalling the JWKS: %v", err))
	}
	r.mu.Lock()
	r.current, r.public, r.jwks = current, public, jwks
	r.mu.Unlock()
}

// publicOf returns a fresh public copy of k (so the caller's key is neither kept nor changed),
// with a kid: its RFC 7638 thumbprint when k has none, as our own keys' kids are.
func publicOf(k jwk.Key) (jwk.Key, error) {
	if k == nil {
		return nil, errors.New("nil key")
	}
	switch k.KeyType() {
	case jwa.OKP(), jwa.EC(), jwa.RSA():
	default:
		return nil, fmt.Errorf("a %s key has no public form to publish", k.KeyType())
	}
	pub, err := k.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("taking the public key: %w", err)
	}
	if _, ok := pub.KeyID(); !ok {
		tp, err := pub.Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("computing the key's thumbprint: %w", err)
		}
		if err := pub.Set(jwk.KeyIDKey, base64.RawURLEncoding.EncodeToString(tp)); err != nil {
			return nil, err
		}
	}
	return pub, nil
}

// Current is the key new tokens are signed with.
func (r *Keyring) Current() *SigningKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current
}

// PublicKey returns the public key with kid, if tokens may be signed with it. The key is
// shared: do not modify it.
func (r *Keyring) PublicKey(kid string) (jwk.Key, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.public[kid]
	return k, ok
}

// JWKS is the JSON Web Key Set {"keys":[…]} of the public keys, current key first, as served
// at /.well-known/jwks.json. It is marshalled once per key change and shared: do not modify it.
func (r *Keyring) JWKS() []byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.jwks
}

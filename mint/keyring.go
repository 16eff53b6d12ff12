package mint

import (
	"encoding/json"
	"sync"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Keyring holds the current signing key and the public keys tokens may still be signed with.
// It is safe for concurrent use.
type Keyring struct {
	mu      sync.RWMutex
	current *SigningKey
	public  map[string]jwk.Key
	jwks    []byte
}

// NewKeyring makes a keyring that signs with current and also verifies previous keys.
func NewKeyring(current *SigningKey, previous ...jwk.Key) *Keyring {
	r := &Keyring{}
	r.Rotate(current, previous...)
	return r
}

// Rotate makes current the signing key; previous are the public keys still accepted.
func (r *Keyring) Rotate(current *SigningKey, previous ...jwk.Key) {
	public := map[string]jwk.Key{current.KeyID(): current.PublicJWK()}
	keys := []jwk.Key{current.PublicJWK()}
	for _, k := range previous {
		if kid, ok := k.KeyID(); ok {
			if _, dup := public[kid]; !dup {
				public[kid] = k
				keys = append(keys, k)
			}
		}
	}
	jwks, err := json.Marshal(map[string][]jwk.Key{"keys": keys})
	if err != nil {
		jwks = []byte(`{"keys":[]}`)
	}
	r.mu.Lock()
	r.current, r.public, r.jwks = current, public, jwks
	r.mu.Unlock()
}

// Current is the key new tokens are signed with.
func (r *Keyring) Current() *SigningKey {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current
}

// PublicKey returns the public key with kid.
func (r *Keyring) PublicKey(kid string) (jwk.Key, bool) {
	r.mu.RLock()
	k, ok := r.public[kid]
	r.mu.RUnlock()
	return k, ok
}

// JWKS is the JSON Web Key Set of the public keys.
func (r *Keyring) JWKS() []byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.jwks
}

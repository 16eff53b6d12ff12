package behest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"go.uber.org/zap"

	"github.com/behest/caddy-behest/mint"
)

const (
	rotatedKeysStorageName = "behest/signing_keys.json"
	// keyReloadInterval bounds how often a token signed by a key this instance has not seen
	// (another instance rotated) makes it re-read the keys from storage.
	keyReloadInterval = 5 * time.Second
	tokenLeeway       = 60 * time.Second
)

// storedKey is one signing key in storage; Retired is when a newer key replaced it (0: current).
type storedKey struct {
	PEM     string `json:"pem"`
	Created int64  `json:"created"`
	Retired int64  `json:"retired,omitempty"`
}

type storedKeys struct {
	Keys []storedKey `json:"keys"`
}

// keyRotation makes a new signing key every period and keeps the public keys of retired ones
// until every token they signed has expired. The keys live in Caddy's storage, so instances
// sharing storage share them; an instance that meets a kid it does not know re-reads them.
type keyRotation struct {
	storage  mint.Storage
	ring     *mint.Keyring
	period   time.Duration
	keep     time.Duration // the longest a token can live: max_ttl plus leeway
	now      func() time.Time
	logger   *zap.Logger
	mu       sync.Mutex
	reloaded time.Time
	cancel   context.CancelFunc
	done     chan struct{}
}

// PublicKey implements verifier.KeySource, re-reading storage (at most once per
// keyReloadInterval) for a kid another instance may have just made.
func (k *keyRotation) PublicKey(kid string) (jwk.Key, bool) {
	if key, ok := k.ring.PublicKey(kid); ok {
		return key, true
	}
	k.mu.Lock()
	due := k.now().Sub(k.reloaded) >= keyReloadInterval
	if due {
		k.reloaded = k.now()
	}
	k.mu.Unlock()
	if !due {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := k.load(ctx); err != nil {
		k.logger.Warn("re-reading signing keys failed", zap.Error(err))
	}
	return k.ring.PublicKey(kid)
}

// ensure rotates the key when it is due and publishes what storage holds.
func (k *keyRotation) ensure(ctx context.Context) error {
	if err := k.storage.Lock(ctx, rotatedKeysStorageName); err != nil {
		return err
	}
	defer func() { _ = k.storage.Unlock(context.WithoutCancel(ctx), rotatedKeysStorageName) }()
	set, err := k.read(ctx)
	if err != nil {
		return err
	}
	now := k.now()
	changed := false
	cur := set.current()
	if cur == nil || now.Sub(time.Unix(cur.Created, 0)) >= k.period {
		key, err := mint.GenerateKey()
		if err != nil {
			return err
		}
		pem, err := key.MarshalPEM()
		if err != nil {
			return err
		}
		if cur != nil {
			cur.Retired = now.Unix()
		}
		set.Keys = append(set.Keys, storedKey{PEM: string(pem), Created: now.Unix()})
		changed = true
		k.logger.Info("rotated the signing key", zap.String("kid", key.KeyID()))
	}
	kept := set.Keys[:0]
	for _, sk := range set.Keys {
		if sk.Retired == 0 || now.Sub(time.Unix(sk.Retired, 0)) < k.keep {
			kept = append(kept, sk)
		} else {
			changed = true
		}
	}
	set.Keys = kept
	if changed {
		data, err := json.Marshal(set)
		if err != nil {
			return err
		}
		if err := k.storage.Store(ctx, rotatedKeysStorageName, data); err != nil {
			return err
		}
	}
	return k.apply(set)
}

// load publishes what storage holds, without rotating.
func (k *keyRotation) load(ctx context.Context) error {
	set, err := k.read(ctx)
	if err != nil {
		return err
	}
	return k.apply(set)
}

func (k *keyRotation) read(ctx context.Context) (*storedKeys, error) {
	set := new(storedKeys)
	data, err := k.storage.Load(ctx, rotatedKeysStorageName)
	if errors.Is(err, fs.ErrNotExist) {
		return set, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, set); err != nil {
		return nil, fmt.Errorf("%s: %w", rotatedKeysStorageName, err)
	}
	return set, nil
}

func (s *storedKeys) current() *storedKey {
	for i := len(s.Keys) - 1; i >= 0; i-- {
		if s.Keys[i].Retired == 0 {
			return &s.Keys[i]
		}
	}
	return nil
}

func (k *keyRotation) apply(set *storedKeys) error {
	cur := set.current()
	if cur == nil {
		return errors.New("no current signing key in storage")
	}
	current, err := mint.ParseKeyPEM([]byte(cur.PEM))
	if err != nil {
		return err
	}
	var previous []jwk.Key
	for _, sk := range set.Keys {
		if sk.Retired != 0 {
			key, err := mint.ParseKeyPEM([]byte(sk.PEM))
			if err != nil {
				return err
			}
			previous = append(previous, key.PublicJWK())
		}
	}
	if k.ring == nil {
		k.ring = mint.NewKeyring(current, previous...)
		return nil
	}
	return k.ring.Rotate(current, previous...)
}

// start checks for a due rotation every tick until stop.
func (k *keyRotation) start() {
	ctx, cancel := context.WithCancel(context.Background())
	k.cancel, k.done = cancel, make(chan struct{})
	tick := time.NewTicker(max(min(k.period/10, time.Minute), time.Second))
	go func() {
		defer close(k.done)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if err := k.ensure(ctx); err != nil && ctx.Err() == nil {
					k.logger.Error("signing key rotation failed", zap.Error(err))
				}
			}
		}
	}()
}

func (k *keyRotation) stop() {
	if k.cancel != nil {
		k.cancel()
		<-k.done
	}
}

package mint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// LoadOrCreateKey returns the key stored under name in s. When there is none it generates an
// Ed25519 key and stores it, holding s.Lock(name) and looking again once it has the lock, so
// that instances sharing storage all end up with the one key that was stored first.
//
// A stored key that cannot be read is an error, never replaced: replacing it would silently
// invalidate every token signed with it.
func LoadOrCreateKey(ctx context.Context, s Storage, name string) (*SigningKey, error) {
	// Most starts find the key; they need no lock.
	if k, err := loadStoredKey(ctx, s, name); !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := s.Lock(ctx, name); err != nil {
		return nil, fmt.Errorf("locking signing key %s: %w", name, err)
	}
	// Unlock even when ctx is cancelled, or other instances wait for the lock to expire.
	defer func() { _ = s.Unlock(context.WithoutCancel(ctx), name) }()

	// Another instance may have stored one while we waited for the lock.
	if k, err := loadStoredKey(ctx, s, name); !errors.Is(err, fs.ErrNotExist) {
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
		return nil, fmt.Errorf("storing signing key %s: %w", name, err)
	}
	return k, nil
}

// loadStoredKey returns an error satisfying errors.Is(err, fs.ErrNotExist) when no key is stored.
func loadStoredKey(ctx context.Context, s Storage, name string) (*SigningKey, error) {
	data, err := s.Load(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("loading signing key %s: %w", name, err)
	}
	k, err := ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("stored signing key %s: %w", name, err)
	}
	return k, nil
}

// Package mint issues short-lived end-user tokens for a project's backend and manages the
// gateway's signing keys. It does not import Caddy.
package mint

import (
	"context"
	"time"
)

// Storage is the part of certmagic.Storage (Caddy's configured storage) that keys are kept in.
// Load returns an error satisfying errors.Is(err, fs.ErrNotExist) when the key is absent.
type Storage interface {
	Lock(ctx context.Context, name string) error
	Unlock(ctx context.Context, name string) error
	Store(ctx context.Context, key string, value []byte) error
	Load(ctx context.Context, key string) ([]byte, error)
}

// Claims are what a minted token asserts.
type Claims struct {
	TenantID  string
	ProjectID string
	UserID    string
	Tier      string
	TTL       time.Duration
}

// Token is the mint endpoint's response body.
type Token struct {
	Token     string `json:"token"`
	TTL       int64  `json:"ttl"`
	SessionID string `json:"sessionId"`
	ExpiresAt int64  `json:"expiresAt"`
}

// Package mint issues short-lived end-user tokens to a project's backend and manages the
// gateway's signing keys: generating or loading them (SigningKey, LoadOrCreateKey), publishing
// their public halves (Keyring), signing tokens (Minter), and the mint endpoint's request
// body and API keys (DecodeRequest, APIKeys). It does not import Caddy.
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
	// TenantID is the tid claim.
	TenantID string
	// ProjectID is the pid claim and the audience.
	ProjectID string
	// UserID is the uid claim and the subject.
	UserID string
	// Tier is the tier claim, already resolved to one of the project's tiers.
	Tier string
	// TTL is the token's lifetime, counted in whole seconds.
	TTL time.Duration
}

// Token is the mint endpoint's response body.
type Token struct {
	// Token is the signed JWT.
	Token string `json:"token"`
	// TTL is the token's lifetime in seconds.
	TTL int64 `json:"ttl"`
	// SessionID is the token's sid, "sess_" and 128 random bits.
	SessionID string `json:"sessionId"`
	// ExpiresAt is the token's exp, in unix seconds.
	ExpiresAt int64 `json:"expiresAt"`
}

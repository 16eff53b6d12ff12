// Package verifier checks end-user tokens: tokens minted by this gateway (its own keys) and
// tokens from trusted identity providers (keys from each issuer's JWKS, cached). It resolves a
// verified token to an Identity bound to one project. It does not import Caddy.
package verifier

import (
	"errors"
	"net/http"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"go.uber.org/zap"
)

// Errors returned by Verify, checked with errors.Is. The handler maps them to HTTP statuses.
var (
	// 401: the token cannot be trusted.
	ErrMalformed     = errors.New("token is malformed")
	ErrSignature     = errors.New("token signature does not verify")
	ErrExpired       = errors.New("token has expired")
	ErrNotYetValid   = errors.New("token is not valid yet")
	ErrMissingClaim  = errors.New("token lacks a required claim")
	ErrAlgorithm     = errors.New("token algorithm is not allowed")
	ErrUnknownKey    = errors.New("token key id is not known")
	ErrUnknownIssuer = errors.New("token issuer is not trusted")
	ErrAudience      = errors.New("token audience does not match")
	// 403: a valid token, but not for this project.
	ErrPermission = errors.New("token is not valid for this project")
	// 503: the issuer's keys cannot be had and none are cached.
	ErrIssuerUnavailable = errors.New("issuer keys are unavailable")
)

// KeySource looks up a public key of this gateway's own signing keys by kid.
type KeySource interface {
	PublicKey(kid string) (jwk.Key, bool)
}

// Config configures a Verifier. Zero values take the documented defaults.
type Config struct {
	// Issuer is the iss of tokens minted by this gateway.
	Issuer string
	// MintedKeys holds the public keys of minted tokens; nil means no minted tokens are accepted.
	MintedKeys KeySource
	// Projects are the projects whose tokens are accepted.
	Projects []Project
	// JWKSCacheTTL is how long an issuer's JWKS is trusted (default 5m).
	JWKSCacheTTL time.Duration
	// RefetchInterval is the least time between two fetches of one issuer's JWKS caused by an
	// unknown kid or a failed fetch (default 10s).
	RefetchInterval time.Duration
	// Leeway is the clock skew allowed on exp/nbf/iat (default 30s, at most 60s).
	Leeway time.Duration
	// HTTPClient fetches JWKS (default: a client with a 10s timeout).
	HTTPClient *http.Client
	// MaxJWKSBytes caps a JWKS response body (default 1 MiB).
	MaxJWKSBytes int64
	// CacheEntries bounds the cache of verified tokens (default 100000).
	CacheEntries int64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger (default zap.NewNop()).
	Logger *zap.Logger
}

// Project is what the verifier needs to know of a project.
type Project struct {
	ID       string
	TenantID string
	// Tiers are the names of the project's tiers ("1", "2", "pro").
	Tiers       []string
	DefaultTier string
	Trust       []Trust
}

// Trust is one trusted issuer of a project.
type Trust struct {
	Issuer string
	// JWKSURL defaults to Issuer + "/.well-known/jwks.json".
	JWKSURL string
	// Algorithms is the allowlist (default RS256, ES256, EdDSA).
	Algorithms []string
	// Audience, when set, must be in the token's aud.
	Audience string
	// AuthorizedParties, when set, must contain the token's azp if it has one.
	AuthorizedParties []string
	// Claims maps an identity field (uid, tier, tid, pid, sid) to a claim path with dots
	// ("public_metadata.plan"). Defaults: uid <- uid, else sub; tier <- tier; tid <- tid;
	// pid <- pid; sid <- sid.
	Claims map[string]string
}

// Identity is a verified token resolved to a project. Identities may be shared between requests
// through the cache: treat them as read-only.
type Identity struct {
	TenantID  string
	ProjectID string
	UserID    string
	Tier      string
	SessionID string
	Issuer    string
	TokenID   string
	Minted    bool
	IssuedAt  time.Time
	ExpiresAt time.Time
	// TierUnknown is set when the token named a tier the project does not have and
	// DefaultTier was used instead.
	TierUnknown bool
	// Claims are all of the token's claims, as decoded from JSON.
	Claims map[string]any
}

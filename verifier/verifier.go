// Package verifier checks end-user tokens: tokens minted by this gateway (its own keys) and
// tokens from trusted identity providers (keys from each issuer's JWKS, cached). It resolves a
// verified token to an Identity bound to one project. It does not import Caddy.
package verifier

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"go.uber.org/zap"
)

// Errors returned by Verify, checked with errors.Is. The handler maps them to HTTP statuses.
// A missing kid header is ErrMissingClaim; a crit or b64 header is ErrMalformed.
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
	// HTTPClient fetches JWKS (default: a client with FetchTimeout as its timeout).
	HTTPClient *http.Client
	// FetchTimeout bounds each JWKS fetch and each request's wait for one (default 5s): a
	// hanging issuer costs a request at most this long, and after the failure requests are
	// answered at once until the next attempt is due.
	FetchTimeout time.Duration
	// MaxJWKSBytes caps a JWKS response body (default 1 MiB).
	MaxJWKSBytes int64
	// CacheBytes bounds the memory of the cache of verified tokens, its own structures
	// included (default 64 MiB, at least MinCacheBytes). An entry is charged an estimate of the
	// heap it holds: about 2.3 KB for a minted token, about five times its length for a token
	// with many claims.
	CacheBytes int64
	// DisableCache turns the cache of verified tokens off: every Verify checks the signature.
	DisableCache bool
	// OnFetch, when set, is told of every JWKS fetch as it ends: the issuer the keys are for (the
	// first trust naming their URL) and the fetch's error (nil when it succeeded), for metrics.
	// It must not block.
	OnFetch func(issuer string, err error)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger (default zap.NewNop()).
	Logger *zap.Logger
}

// Project is what the verifier needs to know of a project.
type Project struct {
	// ID is the project's pid; required and unique.
	ID string
	// TenantID is the project's tid: minted tokens must carry it, trusted tokens may.
	TenantID string
	// Tiers are the names of the project's tiers ("1", "2", "pro").
	Tiers []string
	// DefaultTier is the tier of tokens that name none, or one the project does not have.
	DefaultTier string
	// Trust lists the identity providers whose tokens this project accepts.
	Trust []Trust
	// Attest, when set, is the project's device attestation (see VerifyAttestation).
	Attest *Attest
}

// Trust is one trusted issuer of a project.
type Trust struct {
	// Issuer is the token's iss, compared exactly.
	Issuer string
	// JWKSURL is where the issuer's keys are. Default: the jwks_uri of the issuer's OpenID
	// discovery document (<issuer>/.well-known/openid-configuration, used only when its issuer
	// is Issuer exactly), else <issuer>/.well-known/jwks.json.
	JWKSURL string
	// Secret, when set, is the issuer's shared HMAC key (e.g. Supabase's legacy JWT secret): only
	// HS256, HS384 and HS512 are accepted, and no JWKS is fetched. Without it, HMAC is never
	// accepted, and a key from a JWKS is never used as a secret.
	Secret []byte
	// Algorithms is the allowlist (default RS256, ES256, EdDSA; with Secret, HS256 HS384 HS512).
	Algorithms []string
	// Audience, when set, must be the token's aud or one of its values.
	Audience string
	// AuthorizedParties, when set, must contain the token's azp if it has one.
	AuthorizedParties []string
	// Claims maps an identity field (uid, tier, tid, pid, sid, org) to a claim path: a JSON
	// Pointer (RFC 6901) when it starts with '/' ("/https:~1~1app.example~1plan"), else names
	// joined by dots ("public_metadata.plan"); both step into arrays by index. Defaults: uid <-
	// uid, else sub; tier <- tier; tid <- tid; pid <- pid; sid <- sid; org <- the uid before
	// its first ':'.
	Claims map[string]string
	// TierMap maps the tier claim's value, or an element of a list claim, to a tier; the first
	// entry whose value the claim holds wins. A claim no entry matches is read as a tier name.
	TierMap []TierMapping
}

// TierMapping maps one claim value to a tier.
type TierMapping struct {
	Value string
	Tier  string
}

// Identity is a verified token resolved to a project. Identities may be shared between requests
// through the cache: treat them as read-only.
type Identity struct {
	TenantID  string
	ProjectID string
	UserID    string
	// OrgID is the user's org, for usage: the trust's org claim, else the uid before its
	// first ':' ("" when it has none).
	OrgID     string
	Tier      string
	SessionID string
	Issuer    string
	TokenID   string
	Minted    bool
	IssuedAt  time.Time // zero when the token has no iat
	ExpiresAt time.Time // the token's exp, without leeway
	// TierUnknown is set when the token named a tier the project does not have and
	// DefaultTier was used instead.
	TierUnknown bool
	// Claims are all of the token's claims, as decoded from JSON, except that numbers are
	// int64 when they are whole and float64 otherwise.
	Claims map[string]any
}

// Verifier verifies tokens and resolves them to identities. Make one with New. It is safe for
// concurrent use. Close stops its goroutines; a closed Verifier still answers from the keys it
// holds, but fetches nothing and caches nothing.
type Verifier struct {
	issuer   string
	minted   KeySource
	projects map[string]*projectRule
	trusts   map[string][]*trustRule // by issuer
	jwks     map[string]*jwksCache   // by JWKS URL, shared by every trust naming it

	ttl, refetch, leeway time.Duration
	fetchTimeout         time.Duration
	maxJWKS              int64
	client               *http.Client
	onFetch              func(string, error)
	now                  func() time.Time
	logger               *zap.Logger
	cache                *tokenCache

	ctx    context.Context // cancelled by Close, which ends every fetch
	cancel context.CancelFunc
	wg     sync.WaitGroup // the refresher and every fetch

	// goMu orders goroutine starts before Close: once closed is set, none starts, so
	// wg.Wait cannot race a wg.Add.
	goMu   sync.Mutex
	closed bool
}

// New checks cfg, applies its defaults, and starts fetching the trusted issuers' keys in the
// background (it does not wait for them). Call Close when done with the Verifier.
func New(cfg Config) (*Verifier, error) {
	v := &Verifier{
		issuer: cfg.Issuer, minted: cfg.MintedKeys,
		ttl: cfg.JWKSCacheTTL, refetch: cfg.RefetchInterval, leeway: cfg.Leeway, fetchTimeout: cfg.FetchTimeout,
		maxJWKS: cfg.MaxJWKSBytes, client: cfg.HTTPClient, now: cfg.Now, logger: cfg.Logger, onFetch: cfg.OnFetch,
	}
	if err := v.applyDefaults(cfg); err != nil {
		return nil, err
	}
	if err := v.compileProjects(cfg.Projects); err != nil {
		return nil, err
	}
	if !cfg.DisableCache {
		size := cfg.CacheBytes
		if size == 0 {
			size = defaultCacheBytes
		}
		c, err := newTokenCache(size)
		if err != nil {
			return nil, err
		}
		v.cache = c
	}
	v.ctx, v.cancel = context.WithCancel(context.Background())
	if len(v.jwks) > 0 {
		v.spawn(v.refresh)
	}
	return v, nil
}

// spawn runs f in a goroutine Close waits for; it reports false, and does nothing, once the
// Verifier is closed.
func (v *Verifier) spawn(f func()) bool {
	v.goMu.Lock()
	defer v.goMu.Unlock()
	if v.closed {
		return false
	}
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		f()
	}()
	return true
}

// Close cancels every JWKS fetch, stops the refresher and the token cache, and waits for all
// of them, so nothing outlives a config reload. Verify calls running meanwhile fail or finish
// from what is held; Close may be called more than once.
func (v *Verifier) Close() {
	v.goMu.Lock()
	v.closed = true
	v.goMu.Unlock()
	v.cancel()
	v.wg.Wait()
	v.cache.close()
}

// Package behest is a Caddy HTTP handler that lets apps call LLM providers with short-lived
// end-user tokens instead of provider keys. It verifies each request's token, enforces the
// project's per-tier limits and hard budgets, meters the provider's usage, and hands the request
// to the next handler (normally reverse_proxy, which adds the provider key).
package behest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/behest/caddy-behest/dashboard"
	"github.com/behest/caddy-behest/limiter"
	"github.com/behest/caddy-behest/mint"
	"github.com/behest/caddy-behest/verifier"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler authenticates end users of LLM apps and enforces their quotas.
//
// Placeholders it sets for the handlers after it and the access log:
//
//	{http.behest.tenant_id}, {http.behest.project_id}, {http.behest.user_id},
//	{http.behest.org_id}, {http.behest.tier}, {http.behest.session_id},
//	{http.behest.claims.<name>}, {http.auth.user.id} (the user id).
type Handler struct {
	// Issuer is the iss of the tokens this gateway mints (default "behest"; set it to the
	// gateway's public URL).
	Issuer string `json:"issuer,omitempty"`
	// SigningKey is "auto" (default: an Ed25519 key generated once and kept in Caddy's storage,
	// so restarts and instances sharing storage keep it) or the path of a PEM private key
	// (Ed25519 or ECDSA P-256).
	SigningKey string `json:"signing_key,omitempty"`
	// SigningKeyRotation, with signing_key auto, makes a new key this often; a retired key's
	// public key stays in the JWKS until every token it signed has expired (0: never rotate).
	SigningKeyRotation caddy.Duration `json:"signing_key_rotation,omitempty"`
	// JWKSCacheTTL is how long a trusted issuer's JWKS is cached (default 5m).
	JWKSCacheTTL caddy.Duration `json:"jwks_cache_ttl,omitempty"`
	// StoreRaw is the limit store module (default: embedded).
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=http.handlers.behest.stores inline_key=type"`
	// MintPath is the token mint endpoint (default /v1/auth/mint).
	MintPath string `json:"mint_path,omitempty"`
	// RevokePath is the revoke endpoint (default /v1/auth/revoke).
	RevokePath string `json:"revoke_path,omitempty"`
	// UsagePath is the usage report endpoint (default /v1/usage).
	UsagePath string `json:"usage_path,omitempty"`
	// MePath is the caller's own tier and limits (default /v1/me).
	MePath string `json:"me_path,omitempty"`
	// DashboardPath is where the operators' dashboard is served (default /behest/dashboard;
	// "off" serves none). The page holds no secret: it asks for a project API key and calls the
	// usage and revoke endpoints with it.
	DashboardPath string `json:"dashboard_path,omitempty"`
	// MaxRequestBody caps the body of a proxied request in bytes (default 32 MiB); the body
	// size bounds a request's prompt tokens when its worst case is reserved.
	MaxRequestBody int64 `json:"max_request_body,omitempty"`
	// TokenCacheSize bounds the memory of the cache of verified tokens, in bytes, its own
	// structures included (default 64 MiB when absent, at least 1 MiB; 0 turns the cache off,
	// and every request's token signature is checked). An entry is charged about 2.3 KB for a
	// minted token, about five times its length for a token with many claims.
	TokenCacheSize *int64 `json:"token_cache_size,omitempty"`
	// Projects are the projects this gateway serves.
	Projects []*Project `json:"projects,omitempty"`

	logger   *zap.Logger
	now      func() time.Time
	keys     *mint.Keyring
	rotation *keyRotation
	minter   *mint.Minter
	apiKeys  *mint.APIKeys
	verifier *verifier.Verifier
	store    limiter.Store
	// admission times Reserve, for the store this config uses.
	admission prometheus.Observer
	projects  map[string]*project
	cors      corsPolicy
	dashboard *dashboard.Handler // nil when off
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.behest",
		New: func() caddy.Module { return new(Handler) },
	}
}

const (
	defaultIssuer         = "behest"
	defaultDashboardPath  = "/behest/dashboard"
	defaultMaxRequestBody = 32 << 20
	signingKeyStorageName = "behest/signing_key.pem"
	jwksPath              = "/.well-known/jwks.json"
)

// Provision compiles the configuration and connects the store.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.now == nil {
		h.now = time.Now
	}
	if h.Issuer == "" {
		h.Issuer = defaultIssuer
	}
	if h.SigningKey == "" {
		h.SigningKey = "auto"
	}
	if h.MintPath == "" {
		h.MintPath = "/v1/auth/mint"
	}
	if h.RevokePath == "" {
		h.RevokePath = "/v1/auth/revoke"
	}
	if h.UsagePath == "" {
		h.UsagePath = "/v1/usage"
	}
	if h.MePath == "" {
		h.MePath = "/v1/me"
	}
	if h.DashboardPath == "" {
		h.DashboardPath = defaultDashboardPath
	}
	if h.MaxRequestBody == 0 {
		h.MaxRequestBody = defaultMaxRequestBody
	}
	if n := h.TokenCacheSize; n != nil && *n != 0 && *n < verifier.MinCacheBytes {
		return fmt.Errorf("token_cache_size %d is too small: the cache needs at least %d bytes (1MiB); 0 turns it off", *n, verifier.MinCacheBytes)
	}

	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	if err := h.compileProjects(); err != nil {
		return err
	}
	if err := h.provisionKeys(ctx); err != nil {
		return err
	}
	if err := h.provisionStore(ctx); err != nil {
		return err
	}
	if h.DashboardPath != "off" {
		d, err := dashboard.New(dashboard.Config{Path: h.DashboardPath, UsagePath: h.UsagePath, RevokePath: h.RevokePath})
		if err != nil {
			return fmt.Errorf("dashboard_path: %w", err)
		}
		h.dashboard = d
	}
	return h.provisionVerifier()
}

func (h *Handler) provisionKeys(ctx caddy.Context) error {
	var (
		key *mint.SigningKey
		err error
	)
	switch {
	case h.SigningKeyRotation < 0:
		return fmt.Errorf("signing_key_rotation %s must not be negative", time.Duration(h.SigningKeyRotation))
	case h.SigningKeyRotation > 0 && h.SigningKey != "auto":
		return fmt.Errorf("signing_key_rotation needs signing_key auto: a key from a file is rotated by replacing the file")
	case h.SigningKeyRotation > 0:
		keep := tokenLeeway
		for _, p := range h.projects {
			keep = max(keep, p.maxTTL+tokenLeeway)
		}
		h.rotation = &keyRotation{storage: ctx.Storage(), period: time.Duration(h.SigningKeyRotation),
			keep: keep, now: h.now, logger: h.logger.Named("keys")}
		if err := h.rotation.ensure(ctx); err != nil {
			return fmt.Errorf("signing_key_rotation: %w", err)
		}
		h.rotation.start()
		h.keys = h.rotation.ring
	case h.SigningKey == "auto":
		key, err = mint.LoadOrCreateKey(ctx, ctx.Storage(), signingKeyStorageName)
	default:
		key, err = mint.LoadKeyFile(h.SigningKey)
	}
	if err != nil {
		return fmt.Errorf("signing_key %q: %w", h.SigningKey, err)
	}
	if h.keys == nil {
		h.keys = mint.NewKeyring(key)
	}
	h.minter = &mint.Minter{Issuer: h.Issuer, Keys: h.keys, Now: h.now}
	h.apiKeys = new(mint.APIKeys)
	repl := caddy.NewReplacer()
	for _, p := range h.Projects {
		for _, k := range p.APIKeys {
			// Keys usually come from the environment: api_key {env.BEHEST_KEY}.
			key := repl.ReplaceKnown(k, "")
			if key == "" {
				return fmt.Errorf("project %s: api_key %s is empty (is the environment variable set?)", p.ID, k)
			}
			h.apiKeys.Add(p.ID, key)
		}
		for _, k := range p.APIKeysSHA256 {
			if err := h.apiKeys.AddSHA256(p.ID, k); err != nil {
				return fmt.Errorf("project %s: api_key_sha256: %w", p.ID, err)
			}
		}
	}
	return nil
}

func (h *Handler) provisionStore(ctx caddy.Context) error {
	if h.StoreRaw == nil {
		h.StoreRaw = json.RawMessage(`{"type":"embedded"}`)
	}
	mod, err := ctx.LoadModule(h, "StoreRaw")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	h.store = mod.(StoreProvider).Store()
	h.admission = metrics.admission.WithLabelValues(mod.(caddy.Module).CaddyModule().ID.Name())
	return nil
}

// tokenCache is the verifier's token cache setting: its size (0: the verifier's default), or off.
func (h *Handler) tokenCache() (bytes int64, off bool) {
	if h.TokenCacheSize == nil {
		return 0, false
	}
	return *h.TokenCacheSize, *h.TokenCacheSize == 0
}

// Validate checks the configuration; Provision has already compiled it.
func (h *Handler) Validate() error {
	for _, p := range []string{h.MintPath, h.RevokePath, h.UsagePath, h.MePath} {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("endpoint path %q must start with /", p)
		}
	}
	if h.JWKSCacheTTL < 0 {
		return fmt.Errorf("jwks_cache_ttl %s must not be negative", time.Duration(h.JWKSCacheTTL))
	}
	return nil
}

// Cleanup stops the verifier's goroutines and lets go of the alert notifiers (shared with the
// next config through a usage pool). The store outlives reloads in its usage pool and is
// released by its own module.
func (h *Handler) Cleanup() error {
	if h.verifier != nil {
		h.verifier.Close()
	}
	h.releaseAlerts()
	if h.rotation != nil {
		h.rotation.stop()
	}
	return nil
}

// ServeHTTP routes the gateway's own endpoints and authenticates and limits everything else.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		return h.preflight(w, r, next)
	}
	switch r.URL.Path {
	case jwksPath:
		return h.serveJWKS(w, r)
	case h.MintPath:
		return h.serveMint(w, r)
	case h.RevokePath:
		return h.serveRevoke(w, r)
	case h.UsagePath:
		return h.serveUsage(w, r)
	}
	if h.dashboard != nil && h.dashboard.Match(r.URL.Path) {
		h.dashboard.ServeHTTP(w, r)
		return nil
	}

	// The API the request speaks is told once; its SDK gets every answer in its shape.
	rt, routeErr := route(r)
	d := rt.Dialect
	id, err := h.authenticate(r)
	if err != nil {
		return h.writeErrorAs(w, r, d, nil, err)
	}
	p := h.projects[id.ProjectID]
	if id.TierUnknown {
		metrics.tierUnknown.WithLabelValues(p.id).Inc()
		h.logOnce("tier\x00"+p.id+"\x00"+id.Issuer, "tokens name an unknown tier; using the default",
			zap.String("project", p.id), zap.String("issuer", id.Issuer))
	}
	h.cors.allow(w, r, p)
	sid := sessionID(id, r)
	if !validSessionID(sid) {
		return h.writeErrorAs(w, r, d, p, badRequest("invalid_session_id", "X-Session-Id",
			"X-Session-Id must be at most 128 printable ASCII characters without spaces."))
	}
	t := p.tierOf(id.Tier)
	// One allocation for what the request needs from here on.
	ex := &exchange{access: accessFields{project: p.id, tier: t.name, session: sid}}
	setIdentity(r, id, sid, &ex.ids)
	attestation := ""
	if p.attest != nil {
		// Read for the model request, and never passed on.
		attestation = r.Header.Get(p.attest.header)
		r.Header.Del(p.attest.header)
	}
	logAccess(r, &ex.access)
	if r.URL.Path == h.MePath {
		return h.serveMe(w, r, p, id, sid)
	}
	if routeErr != nil {
		return h.writeErrorAs(w, r, d, p, routeErr)
	}
	if p.attest.applies(t) {
		if err := h.checkAttestation(r, p, attestation); err != nil {
			return h.writeErrorAs(w, r, d, p, err)
		}
	}
	return h.proxy(w, r, next, rt, p, t, id, sid, ex)
}

// StoreProvider is implemented by store guest modules.
type StoreProvider interface {
	Store() limiter.Store
}

var errNoToken = errors.New("no token")

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

package verifier

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"go.uber.org/zap"
)

const (
	defaultJWKSCacheTTL    = 5 * time.Minute
	defaultRefetchInterval = 10 * time.Second
	defaultLeeway          = 30 * time.Second
	maxLeeway              = 60 * time.Second
	defaultMaxJWKSBytes    = 1 << 20
	defaultCacheEntries    = 100_000
	defaultFetchTimeout    = 5 * time.Second
)

var defaultAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// knownAlgorithms are the asymmetric signature algorithms a trust may allow. "none" and the
// HMAC algorithms are never among them: a public key must never double as a shared secret.
var knownAlgorithms = map[string]jwa.SignatureAlgorithm{
	"RS256": jwa.RS256(), "RS384": jwa.RS384(), "RS512": jwa.RS512(),
	"PS256": jwa.PS256(), "PS384": jwa.PS384(), "PS512": jwa.PS512(),
	"ES256": jwa.ES256(), "ES384": jwa.ES384(), "ES512": jwa.ES512(),
	"EdDSA": jwa.EdDSA(),
}

// identityFields are the Identity fields a trust may map to a claim path.
var identityFields = [...]string{"uid", "tier", "tid", "pid", "sid"}

// projectRule is a Project compiled for lookups.
type projectRule struct {
	Project
	tiers map[string]struct{} // Tiers and DefaultTier
}

// trustRule is a Trust of one project, compiled.
type trustRule struct {
	Trust
	project *projectRule
	algs    map[string]struct{}
	paths   map[string][]string // identity field -> claim path, only where mapped
	jwks    *jwksCache
}

// applyDefaults checks the scalar settings of cfg and fills in the defaults.
func (v *Verifier) applyDefaults(cfg Config) error {
	for name, d := range map[string]time.Duration{
		"jwks cache ttl": cfg.JWKSCacheTTL, "refetch interval": cfg.RefetchInterval, "leeway": cfg.Leeway,
		"fetch timeout": cfg.FetchTimeout,
	} {
		if d < 0 {
			return fmt.Errorf("%s %s must not be negative", name, d)
		}
	}
	if cfg.MaxJWKSBytes < 0 || cfg.CacheEntries < 0 {
		return fmt.Errorf("max JWKS bytes (%d) and cache entries (%d) must not be negative", cfg.MaxJWKSBytes, cfg.CacheEntries)
	}
	if cfg.MintedKeys != nil && cfg.Issuer == "" {
		return fmt.Errorf("an issuer is required to accept minted tokens")
	}
	if v.ttl == 0 {
		v.ttl = defaultJWKSCacheTTL
	}
	if v.refetch == 0 {
		v.refetch = defaultRefetchInterval
	}
	if v.leeway == 0 {
		v.leeway = defaultLeeway
	}
	// More skew than a minute is a broken clock, not skew; tolerating it would stretch every
	// token's lifetime.
	v.leeway = min(v.leeway, maxLeeway)
	if v.maxJWKS == 0 {
		v.maxJWKS = defaultMaxJWKSBytes
	}
	if v.fetchTimeout == 0 {
		v.fetchTimeout = defaultFetchTimeout
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: v.fetchTimeout}
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.logger == nil {
		v.logger = zap.NewNop()
	}
	return nil
}

// compileProjects indexes the projects and their trusts; trusts naming the same JWKS URL share
// one key cache.
func (v *Verifier) compileProjects(projects []Project) error {
	v.projects = make(map[string]*projectRule, len(projects))
	v.trusts = make(map[string][]*trustRule)
	v.jwks = make(map[string]*jwksCache)
	for _, p := range projects {
		if p.ID == "" {
			return fmt.Errorf("a project has no ID")
		}
		if _, dup := v.projects[p.ID]; dup {
			return fmt.Errorf("project %s: declared twice", p.ID)
		}
		pr := &projectRule{Project: p, tiers: make(map[string]struct{}, len(p.Tiers)+1)}
		for _, t := range p.Tiers {
			pr.tiers[t] = struct{}{}
		}
		if p.DefaultTier != "" {
			pr.tiers[p.DefaultTier] = struct{}{}
		}
		v.projects[p.ID] = pr
		seen := make(map[string]bool, len(p.Trust))
		for _, t := range p.Trust {
			if seen[t.Issuer] {
				return fmt.Errorf("project %s: trust %s: declared twice", p.ID, t.Issuer)
			}
			seen[t.Issuer] = true
			tr, err := v.compileTrust(pr, t)
			if err != nil {
				return fmt.Errorf("project %s: trust %s: %v", p.ID, t.Issuer, err)
			}
			v.trusts[t.Issuer] = append(v.trusts[t.Issuer], tr)
		}
	}
	return nil
}

func (v *Verifier) compileTrust(pr *projectRule, t Trust) (*trustRule, error) {
	if t.Issuer == "" {
		return nil, fmt.Errorf("an issuer is required")
	}
	if t.Issuer == v.issuer {
		return nil, fmt.Errorf("the gateway's own issuer cannot be trusted as an identity provider")
	}
	tr := &trustRule{Trust: t, project: pr, algs: map[string]struct{}{}, paths: map[string][]string{}}
	algs := t.Algorithms
	if len(algs) == 0 {
		algs = defaultAlgorithms
	}
	for _, a := range algs {
		if _, ok := knownAlgorithms[a]; !ok {
			return nil, fmt.Errorf("algorithm %q is not allowed (use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA)", a)
		}
		tr.algs[a] = struct{}{}
	}
	for field, path := range t.Claims {
		if !isIdentityField(field) {
			return nil, fmt.Errorf("claim %q: the fields are uid, tier, tid, pid and sid", field)
		}
		parts := strings.Split(path, ".")
		for _, p := range parts {
			if p == "" {
				return nil, fmt.Errorf("claim %s %q is not a claim path (names joined by dots)", field, path)
			}
		}
		tr.paths[field] = parts
	}
	raw := t.JWKSURL
	if raw == "" {
		raw = strings.TrimSuffix(t.Issuer, "/") + "/.well-known/jwks.json"
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("jwks_url %q must be an absolute http(s) URL", raw)
	}
	c, ok := v.jwks[raw]
	if !ok {
		c = &jwksCache{url: raw, issuer: t.Issuer, v: v}
		v.jwks[raw] = c
	}
	tr.jwks = c
	return tr, nil
}

func isIdentityField(name string) bool {
	for _, f := range identityFields {
		if f == name {
			return true
		}
	}
	return false
}

// path is where the identity field is read: the trust's mapping, else the default (tr may be
// nil, for minted tokens).
func (tr *trustRule) path(field string) []string {
	if tr != nil {
		if p, ok := tr.paths[field]; ok {
			return p
		}
	}
	return defaultPaths[field]
}

// mapped reports whether the trust maps field to a path of its own.
func (tr *trustRule) mapped(field string) bool {
	if tr == nil {
		return false
	}
	_, ok := tr.paths[field]
	return ok
}

// defaultPaths are where identity fields are read when a trust maps them nowhere else.
var defaultPaths = map[string][]string{
	"uid": {"uid"}, "tier": {"tier"}, "tid": {"tid"}, "pid": {"pid"}, "sid": {"sid"},
}

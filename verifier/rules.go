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
	defaultFetchTimeout    = 5 * time.Second
)

var defaultAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// knownAlgorithms are the asymmetric signature algorithms a JWKS trust may allow. "none" and
// the HMAC algorithms are never among them: a public key must never double as a shared secret.
var knownAlgorithms = map[string]jwa.SignatureAlgorithm{
	"RS256": jwa.RS256(), "RS384": jwa.RS384(), "RS512": jwa.RS512(),
	"PS256": jwa.PS256(), "PS384": jwa.PS384(), "PS512": jwa.PS512(),
	"ES256": jwa.ES256(), "ES384": jwa.ES384(), "ES512": jwa.ES512(),
	"EdDSA": jwa.EdDSA(),
}

// hmacAlgorithms are the algorithms of a trust with a Secret, and only of such a trust, with
// the shortest secret each takes (RFC 7518 §3.2: at least the hash's size).
var hmacAlgorithms = map[string]struct {
	alg     jwa.SignatureAlgorithm
	minSize int
}{"HS256": {jwa.HS256(), 32}, "HS384": {jwa.HS384(), 48}, "HS512": {jwa.HS512(), 64}}

var defaultHMACAlgorithms = []string{"HS256", "HS384", "HS512"}

// signatureAlgorithm is the jwa algorithm named alg, of either kind.
func signatureAlgorithm(alg string) jwa.SignatureAlgorithm {
	if a, ok := knownAlgorithms[alg]; ok {
		return a
	}
	return hmacAlgorithms[alg].alg
}

// identityFields are the Identity fields a trust may map to a claim path.
var identityFields = [...]string{"uid", "tier", "tid", "pid", "sid", "org"}

// projectRule is a Project compiled for lookups.
type projectRule struct {
	Project
	tiers  map[string]struct{} // Tiers and DefaultTier
	attest *attestRule         // nil: none
}

// trustRule is a Trust of one project, compiled.
type trustRule struct {
	Trust
	project *projectRule
	algs    map[string]struct{}
	paths   map[string][]string // identity field -> claim path, only where mapped
	jwks    *jwksCache          // nil with a Secret
	secret  *jwksKey            // the Secret as a key, with one
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
	if cfg.MaxJWKSBytes < 0 {
		return fmt.Errorf("max JWKS bytes %d must not be negative", cfg.MaxJWKSBytes)
	}
	if cfg.CacheBytes < 0 {
		return fmt.Errorf("token cache bytes %d must not be negative", cfg.CacheBytes)
	}
	if !cfg.DisableCache && cfg.CacheBytes != 0 && cfg.CacheBytes < MinCacheBytes {
		return fmt.Errorf("a token cache of %d bytes is too small: it needs at least %d (its own structures take about 490 KB), or turn it off", cfg.CacheBytes, MinCacheBytes)
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
		if p.Attest != nil {
			ar, err := v.compileAttest(p.Attest)
			if err != nil {
				return fmt.Errorf("project %s: attest %s: %v", p.ID, p.Attest.Issuer, err)
			}
			pr.attest = ar
		}
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
	if err := tr.compileAlgorithms(); err != nil {
		return nil, err
	}
	for field, path := range t.Claims {
		if !isIdentityField(field) {
			return nil, fmt.Errorf("claim %q: the fields are uid, tier, tid, pid, sid and org", field)
		}
		parts, err := parseClaimPath(path)
		if err != nil {
			return nil, fmt.Errorf("claim %s %q: %v", field, path, err)
		}
		tr.paths[field] = parts
	}
	for _, m := range t.TierMap {
		if m.Value == "" || m.Tier == "" {
			return nil, fmt.Errorf("tier_map: a claim value and a tier are required")
		}
		if _, ok := pr.tiers[m.Tier]; !ok {
			return nil, fmt.Errorf("tier_map %s %s: %q is not one of the project's tiers", m.Value, m.Tier, m.Tier)
		}
	}
	if len(t.Secret) > 0 {
		if t.JWKSURL != "" {
			return nil, fmt.Errorf("secret and jwks_url exclude each other: a shared secret is the only key of an HMAC issuer")
		}
		tr.secret = &jwksKey{kty: "oct", raw: t.Secret}
		return tr, nil
	}
	c, err := v.keyCache(t.Issuer, t.JWKSURL)
	if err != nil {
		return nil, err
	}
	tr.jwks = c
	return tr, nil
}

// compileAlgorithms checks the trust's allowlist: HMAC algorithms with a Secret (long enough
// for each), asymmetric ones without.
func (tr *trustRule) compileAlgorithms() error {
	algs := tr.Algorithms
	if len(tr.Secret) > 0 {
		if len(algs) == 0 {
			// Those the secret is long enough for, HS256 at least.
			algs = []string{"HS256"}
			for _, a := range defaultHMACAlgorithms[1:] {
				if len(tr.Secret) >= hmacAlgorithms[a].minSize {
					algs = append(algs, a)
				}
			}
		}
		for _, a := range algs {
			h, ok := hmacAlgorithms[a]
			if !ok {
				return fmt.Errorf("algorithm %q with a secret: only HS256, HS384 and HS512 verify with a shared secret", a)
			}
			if len(tr.Secret) < h.minSize {
				return fmt.Errorf("the secret is %d bytes, and %s needs at least %d (RFC 7518)", len(tr.Secret), a, h.minSize)
			}
			tr.algs[a] = struct{}{}
		}
		return nil
	}
	if len(algs) == 0 {
		algs = defaultAlgorithms
	}
	for _, a := range algs {
		if _, ok := knownAlgorithms[a]; !ok {
			if _, hmac := hmacAlgorithms[a]; hmac {
				return fmt.Errorf("algorithm %q needs the issuer's secret: HMAC is never verified with a key from a JWKS", a)
			}
			return fmt.Errorf("algorithm %q is not allowed (use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA)", a)
		}
		tr.algs[a] = struct{}{}
	}
	return nil
}

// keyCache returns the key cache of an issuer's JWKS at jwksURL, or of its discovery document
// when jwksURL is "": trusts naming the same keys share one cache.
func (v *Verifier) keyCache(issuer, jwksURL string) (*jwksCache, error) {
	key, discover := jwksURL, jwksURL == ""
	if discover {
		if err := checkHTTPURL(issuer); err != nil {
			return nil, fmt.Errorf("issuer %q must be an absolute http(s) URL to discover its keys (or set jwks_url)", issuer)
		}
		key = "discover:" + issuer
	} else if err := checkHTTPURL(jwksURL); err != nil {
		return nil, fmt.Errorf("jwks_url %q must be an absolute http(s) URL", jwksURL)
	}
	if c, ok := v.jwks[key]; ok {
		return c, nil
	}
	c := &jwksCache{url: jwksURL, issuer: issuer, v: v}
	if discover {
		c.discover = true
		c.url = defaultJWKSURL(issuer)
	}
	v.jwks[key] = c
	return c, nil
}

func defaultJWKSURL(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + "/.well-known/jwks.json"
}

func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("not an absolute http(s) URL")
	}
	return nil
}

// parseClaimPath reads a claim path: a JSON Pointer (RFC 6901) when it starts with '/', where
// ~1 is '/' and ~0 is '~' in a name; else names joined by dots.
func parseClaimPath(path string) ([]string, error) {
	if path == "" {
		return nil, fmt.Errorf("not a claim path: it is empty")
	}
	if !strings.HasPrefix(path, "/") {
		parts := strings.Split(path, ".")
		for _, p := range parts {
			if p == "" {
				return nil, fmt.Errorf("not a claim path (names joined by dots, or a JSON Pointer starting with /)")
			}
		}
		return parts, nil
	}
	parts := strings.Split(path[1:], "/")
	for i, p := range parts {
		for j := 0; j < len(p); j++ {
			if p[j] == '~' && (j+1 == len(p) || (p[j+1] != '0' && p[j+1] != '1')) {
				return nil, fmt.Errorf("a JSON Pointer escapes only ~0 (~) and ~1 (/)")
			}
		}
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
	}
	return parts, nil
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

// defaultPaths are where identity fields are read when a trust maps them nowhere else (org
// has none: it defaults to a part of the uid).
var defaultPaths = map[string][]string{
	"uid": {"uid"}, "tier": {"tier"}, "tid": {"tid"}, "pid": {"pid"}, "sid": {"sid"},
}

package verifier

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"go.uber.org/zap"
)

const (
	defaultJWKSCacheTTL    = 5 * time.Minute
	defaultRefetchInterval = 10 * time.Second
	defaultLeeway          = 30 * time.Second
	maxLeeway              = 60 * time.Second
	defaultMaxJWKSBytes    = 1 << 20
	defaultCacheEntries    = 100_000
	defaultFetchTimeout    = 10 * time.Second
)

var defaultAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// algorithms this verifier knows; "none" and HMAC are never among them.
var knownAlgorithms = map[string]jwa.SignatureAlgorithm{
	"RS256": jwa.RS256(), "RS384": jwa.RS384(), "RS512": jwa.RS512(),
	"PS256": jwa.PS256(), "PS384": jwa.PS384(), "PS512": jwa.PS512(),
	"ES256": jwa.ES256(), "ES384": jwa.ES384(), "ES512": jwa.ES512(),
	"EdDSA": jwa.EdDSA(),
}

// Verifier verifies tokens. It is safe for concurrent use; Close stops its goroutines.
type Verifier struct {
	issuer   string
	minted   KeySource
	projects map[string]*projectRule
	trusts   map[string][]*trustRule // by issuer
	jwks     map[string]*jwksCache   // by JWKS URL

	ttl, refetch, leeway time.Duration
	maxJWKS              int64
	client               *http.Client
	now                  func() time.Time
	logger               *zap.Logger
	cache                *ristretto.Cache[string, *cached]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type projectRule struct {
	Project
	tiers map[string]struct{}
}

type trustRule struct {
	Trust
	project *projectRule
	algs    map[string]struct{}
	paths   map[string][]string // identity field -> claim path
	jwks    *jwksCache
}

// cached is a verified token; it is served from the cache only to the same token, until
// validUntil.
type cached struct {
	token      string
	id         *Identity
	validUntil time.Time
}

// New checks cfg, applies its defaults and starts refreshing the trusted issuers' keys.
func New(cfg Config) (*Verifier, error) {
	v := &Verifier{
		issuer: cfg.Issuer, minted: cfg.MintedKeys,
		projects: map[string]*projectRule{}, trusts: map[string][]*trustRule{}, jwks: map[string]*jwksCache{},
		ttl: cfg.JWKSCacheTTL, refetch: cfg.RefetchInterval, leeway: cfg.Leeway,
		maxJWKS: cfg.MaxJWKSBytes, client: cfg.HTTPClient, now: cfg.Now, logger: cfg.Logger,
	}
	if v.ttl <= 0 {
		v.ttl = defaultJWKSCacheTTL
	}
	if v.refetch <= 0 {
		v.refetch = defaultRefetchInterval
	}
	if v.leeway <= 0 {
		v.leeway = defaultLeeway
	}
	v.leeway = min(v.leeway, maxLeeway)
	if v.maxJWKS <= 0 {
		v.maxJWKS = defaultMaxJWKSBytes
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: defaultFetchTimeout}
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.logger == nil {
		v.logger = zap.NewNop()
	}
	for i := range cfg.Projects {
		if err := v.addProject(cfg.Projects[i]); err != nil {
			return nil, err
		}
	}
	entries := cfg.CacheEntries
	if entries <= 0 {
		entries = defaultCacheEntries
	}
	cache, err := ristretto.NewCache(&ristretto.Config[string, *cached]{
		NumCounters: entries * 10, MaxCost: entries, BufferItems: 64,
	})
	if err != nil {
		return nil, err
	}
	v.cache = cache
	v.ctx, v.cancel = context.WithCancel(context.Background())
	if len(v.jwks) > 0 {
		v.wg.Add(1)
		go v.refresh()
	}
	return v, nil
}

func (v *Verifier) addProject(p Project) error {
	if _, dup := v.projects[p.ID]; dup {
		return fmt.Errorf("project %s: declared twice", p.ID)
	}
	pr := &projectRule{Project: p, tiers: map[string]struct{}{}}
	for _, t := range p.Tiers {
		pr.tiers[t] = struct{}{}
	}
	v.projects[p.ID] = pr
	for _, t := range p.Trust {
		tr := &trustRule{Trust: t, project: pr, algs: map[string]struct{}{}, paths: map[string][]string{}}
		if t.Issuer == "" {
			return fmt.Errorf("project %s: trust: an issuer is required", p.ID)
		}
		if t.Issuer == v.issuer {
			return fmt.Errorf("project %s: trust %s: the gateway's own issuer cannot be trusted", p.ID, t.Issuer)
		}
		algs := t.Algorithms
		if len(algs) == 0 {
			algs = defaultAlgorithms
		}
		for _, a := range algs {
			if _, ok := knownAlgorithms[a]; !ok {
				return fmt.Errorf("project %s: trust %s: algorithm %q is not allowed (use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 or EdDSA)", p.ID, t.Issuer, a)
			}
			tr.algs[a] = struct{}{}
		}
		for field, path := range t.Claims {
			switch field {
			case "uid", "tier", "tid", "pid", "sid":
			default:
				return fmt.Errorf("project %s: trust %s: claim %q: the fields are uid, tier, tid, pid and sid", p.ID, t.Issuer, field)
			}
			if path == "" || strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") || strings.Contains(path, "..") {
				return fmt.Errorf("project %s: trust %s: claim %s %q is not a claim path", p.ID, t.Issuer, field, path)
			}
			tr.paths[field] = strings.Split(path, ".")
		}
		url := t.JWKSURL
		if url == "" {
			url = strings.TrimSuffix(t.Issuer, "/") + "/.well-known/jwks.json"
		}
		if !strings.HasPrefix(url, "https://") && !strings.HasPrefix(url, "http://") {
			return fmt.Errorf("project %s: trust %s: jwks_url %q must be an http(s) URL", p.ID, t.Issuer, url)
		}
		c, ok := v.jwks[url]
		if !ok {
			c = &jwksCache{url: url, v: v}
			v.jwks[url] = c
		}
		tr.jwks = c
		v.trusts[t.Issuer] = append(v.trusts[t.Issuer], tr)
	}
	return nil
}

// refresh fetches every issuer's keys at start, then again before they expire.
func (v *Verifier) refresh() {
	defer v.wg.Done()
	tick := time.NewTicker(max(min(v.ttl/10, time.Minute), time.Second))
	defer tick.Stop()
	for {
		for _, c := range v.jwks {
			c.refreshIfDue()
		}
		select {
		case <-v.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Close stops the background work and waits for it.
func (v *Verifier) Close() {
	v.cancel()
	v.wg.Wait()
	v.cache.Close()
}

// Verify checks token and resolves it to an identity of one project.
func (v *Verifier) Verify(ctx context.Context, token string) (*Identity, error) {
	now := v.now()
	if c, ok := v.cache.Get(token); ok && c.token == token && now.Before(c.validUntil) {
		return c.id, nil
	}
	id, validUntil, err := v.verify(ctx, token, now)
	if err != nil {
		return nil, err
	}
	if ttl := validUntil.Sub(now); ttl > 0 {
		v.cache.SetWithTTL(token, &cached{token: token, id: id, validUntil: validUntil}, 1, ttl)
	}
	return id, nil
}

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

func (v *Verifier) verify(ctx context.Context, token string, now time.Time) (*Identity, time.Time, error) {
	hdrPart, rest, ok := strings.Cut(token, ".")
	payloadPart, _, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || strings.Count(token, ".") != 2 {
		return nil, time.Time{}, fmt.Errorf("%w: not a compact JWS", ErrMalformed)
	}
	var hdr header
	if err := decodeSegment(hdrPart, &hdr); err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	var claims map[string]any
	if err := decodeSegment(payloadPart, &claims); err != nil || claims == nil {
		return nil, time.Time{}, fmt.Errorf("%w: claims are not a JSON object", ErrMalformed)
	}
	if hdr.Kid == "" {
		return nil, time.Time{}, fmt.Errorf("%w: kid (header)", ErrMissingClaim)
	}
	iss, _ := claims["iss"].(string)
	if iss == "" {
		return nil, time.Time{}, fmt.Errorf("%w: iss", ErrMissingClaim)
	}
	if iss == v.issuer {
		return v.verifyMinted(token, hdr, claims, now)
	}
	return v.verifyTrusted(ctx, token, hdr, claims, now)
}

func (v *Verifier) verifyMinted(token string, hdr header, claims map[string]any, now time.Time) (*Identity, time.Time, error) {
	if v.minted == nil {
		return nil, time.Time{}, ErrUnknownIssuer
	}
	if hdr.Alg != "EdDSA" && hdr.Alg != "ES256" {
		return nil, time.Time{}, fmt.Errorf("%w: %q", ErrAlgorithm, hdr.Alg)
	}
	jk, ok := v.minted.PublicKey(hdr.Kid)
	if !ok {
		return nil, time.Time{}, ErrUnknownKey
	}
	key, err := usableKey(jk)
	if err != nil || !key.fits(hdr.Alg) {
		return nil, time.Time{}, fmt.Errorf("%w: %q does not fit the key", ErrAlgorithm, hdr.Alg)
	}
	if err := checkSignature(token, key, hdr.Alg); err != nil {
		return nil, time.Time{}, err
	}
	exp, err := v.checkTimes(claims, now)
	if err != nil {
		return nil, time.Time{}, err
	}
	pid, _ := claims["pid"].(string)
	p, ok := v.projects[pid]
	if !ok {
		return nil, time.Time{}, fmt.Errorf("%w: project %q is not served here", ErrPermission, pid)
	}
	if tid, _ := claims["tid"].(string); tid != p.TenantID {
		return nil, time.Time{}, fmt.Errorf("%w: tenant does not match the project's", ErrPermission)
	}
	if !audienceHas(claims["aud"], pid) {
		return nil, time.Time{}, ErrAudience
	}
	id, err := v.identity(p, claims, nil, exp)
	if err != nil {
		return nil, time.Time{}, err
	}
	id.Minted = true
	return id, exp, nil
}

func (v *Verifier) verifyTrusted(ctx context.Context, token string, hdr header, claims map[string]any, now time.Time) (*Identity, time.Time, error) {
	trusts := v.trusts[claims["iss"].(string)]
	if len(trusts) == 0 {
		return nil, time.Time{}, ErrUnknownIssuer
	}
	tr, err := pickTrust(trusts, claims)
	if err != nil {
		return nil, time.Time{}, err
	}
	if _, ok := tr.algs[hdr.Alg]; !ok {
		return nil, time.Time{}, fmt.Errorf("%w: %q", ErrAlgorithm, hdr.Alg)
	}
	key, keysUntil, err := tr.jwks.key(ctx, hdr.Kid)
	if err != nil {
		return nil, time.Time{}, err
	}
	if !key.fits(hdr.Alg) {
		return nil, time.Time{}, fmt.Errorf("%w: %q does not fit the key", ErrAlgorithm, hdr.Alg)
	}
	if err := checkSignature(token, key, hdr.Alg); err != nil {
		return nil, time.Time{}, err
	}
	exp, err := v.checkTimes(claims, now)
	if err != nil {
		return nil, time.Time{}, err
	}
	if tid, ok := lookupString(claims, tr.path("tid")); ok && tid != tr.project.TenantID {
		return nil, time.Time{}, fmt.Errorf("%w: tenant does not match the project's", ErrPermission)
	}
	if tr.Audience != "" && !audienceHas(claims["aud"], tr.Audience) {
		return nil, time.Time{}, ErrAudience
	}
	if azp, ok := claims["azp"].(string); ok && len(tr.AuthorizedParties) > 0 && !contains(tr.AuthorizedParties, azp) {
		return nil, time.Time{}, fmt.Errorf("%w: authorized party %q is not allowed", ErrPermission, azp)
	}
	id, err := v.identity(tr.project, claims, tr, exp)
	if err != nil {
		return nil, time.Time{}, err
	}
	return id, minTime(exp, keysUntil), nil
}

// pickTrust finds the project the token names among those trusting its issuer.
func pickTrust(trusts []*trustRule, claims map[string]any) (*trustRule, error) {
	named := false
	for _, tr := range trusts {
		pid, ok := lookupString(claims, tr.path("pid"))
		if !ok {
			continue
		}
		named = true
		if pid == tr.project.ID {
			return tr, nil
		}
	}
	if named {
		return nil, fmt.Errorf("%w: the project the token names does not trust its issuer", ErrPermission)
	}
	if len(trusts) == 1 {
		return trusts[0], nil
	}
	return nil, fmt.Errorf("%w: the token names no project (pid) and several trust its issuer", ErrPermission)
}

func checkSignature(token string, key *jwksKey, alg string) error {
	if _, err := jws.VerifyCompactFast(key.raw, []byte(token), knownAlgorithms[alg]); err != nil {
		return ErrSignature
	}
	return nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

func audienceHas(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

package behest

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/behest/caddy-behest/limiter"
	"github.com/behest/caddy-behest/meter"
)

const (
	minTTL        = 30 * time.Second
	defaultTTL    = 900 * time.Second
	defaultMaxTTL = time.Hour
	// defaultOutputCap is the output cap set on requests that ask for none when a token or cost
	// limit applies and the tier has no max_output_tokens: a worst case must be bounded to be
	// reserved.
	defaultOutputCap = 4096
	// defaultInputFloor is the prompt reserved when the body does not bound it: a large model's
	// context window.
	defaultInputFloor = 128_000
	// maxPricePerMillion bounds prices so cost arithmetic cannot overflow.
	maxPricePerMillion = 1000
)

// project is a Project compiled for the request path.
type project struct {
	id, tenant   string
	maxTTL       time.Duration
	origins      map[string]struct{}
	tiers        map[string]*tier
	defaultTier  string
	prices       map[string]price
	costPerMonth limiter.Nanos
	streamUsage  bool
	metrics      projectMetrics
	alerts       *projectAlerts // nil: none
	attest       *attestPolicy  // nil: none
}

type tier struct {
	name      string
	limits    limiter.Limits
	maxOutput int64
	maxInput  int64 // prompt reserved when the body does not bound it
	// costBudget: some cost limit applies, so an unpriced model is refused.
	costBudget bool
	// bounded: some token or cost limit applies, so every request needs an output cap.
	bounded bool
	// models is the allowlist (nil: every model).
	models []modelGlob
}

// allowsModel reports whether the tier may use model.
func (t *tier) allowsModel(model string) bool {
	if t.models == nil {
		return true
	}
	for _, g := range t.models {
		if g.match(model) {
			return true
		}
	}
	return false
}

// modelGlob is a model name where * matches any run of characters, split at the stars.
type modelGlob []string

func compileGlob(pattern string) modelGlob { return strings.Split(pattern, "*") }

// match reports whether s is the glob's first part, then each middle part in order, then its
// last part: the leftmost match of each middle part leaves the most room for the rest.
func (g modelGlob) match(s string) bool {
	if len(g) == 1 {
		return s == g[0]
	}
	first, last := g[0], g[len(g)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	s = s[len(first) : len(s)-len(last)]
	for _, part := range g[1 : len(g)-1] {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return true
}

// price is a model's price in Nanos per 1M tokens (exact for prices with up to 6 decimals).
type price struct{ input, output, cachedInput, cacheWrite int64 }

// cost is what in input and out output tokens cost at p at most, rounded up: what a request
// reserves. Any input token may turn out a cache write (Anthropic's cost more than input), so
// the input is priced at the highest of its rates.
func (p price) cost(in, out int64) limiter.Nanos {
	return limiter.Nanos(perMillion(in, max(p.input, p.cachedInput, p.cacheWrite)) + perMillion(out, p.output))
}

// usageCost is what a response's usage costs at p, rounded up: cached input at the cached
// price, cache writes at the cache-write price, the rest of the input at the input price.
func (p price) usageCost(u meter.Usage) limiter.Nanos {
	cached := min(max(u.CachedInputTokens, 0), u.InputTokens)
	written := min(max(u.CacheWriteTokens, 0), u.InputTokens-cached)
	plain := u.InputTokens - cached - written
	return limiter.Nanos(perMillion(plain, p.input) + perMillion(cached, p.cachedInput) +
		perMillion(written, p.cacheWrite) + perMillion(u.OutputTokens, p.output))
}

// perMillion is ceil(tokens*nanosPerMillion/1e6) without overflow for prices up to
// maxPricePerMillion and any token count an int64 holds.
func perMillion(tokens, nanosPerMillion int64) int64 {
	q, r := tokens/1_000_000, tokens%1_000_000
	return q*nanosPerMillion + (r*nanosPerMillion+999_999)/1_000_000
}

func (h *Handler) compileProjects() error {
	h.projects = make(map[string]*project, len(h.Projects))
	for i, p := range h.Projects {
		if p == nil || p.ID == "" {
			return fmt.Errorf("project %d: id is required", i)
		}
		if _, dup := h.projects[p.ID]; dup {
			return fmt.Errorf("project %s: declared twice", p.ID)
		}
		if p.Tenant == "" {
			return fmt.Errorf("project %s: tenant is required", p.ID)
		}
		cp, err := compileProject(p)
		if err != nil {
			return fmt.Errorf("project %s: %w", p.ID, err)
		}
		for _, t := range p.Trust {
			if t.Issuer == h.Issuer {
				return fmt.Errorf("project %s: trust %s: the gateway's own issuer cannot be a trusted issuer", p.ID, t.Issuer)
			}
		}
		h.projects[p.ID] = cp
		if err := h.provisionAlerts(p, cp); err != nil {
			return err
		}
	}
	h.cors = newCORSPolicy(h.projects)
	return nil
}

func compileProject(p *Project) (*project, error) {
	cp := &project{
		id:           p.ID,
		tenant:       p.Tenant,
		maxTTL:       time.Duration(p.MaxTTL),
		origins:      make(map[string]struct{}),
		tiers:        make(map[string]*tier),
		prices:       make(map[string]price),
		defaultTier:  p.DefaultTier,
		streamUsage:  p.StreamUsage == nil || *p.StreamUsage,
		costPerMonth: 0,
		metrics:      newProjectMetrics(p.ID),
	}
	if cp.maxTTL == 0 {
		cp.maxTTL = defaultMaxTTL
	}
	if cp.maxTTL < minTTL {
		return nil, fmt.Errorf("max_ttl %s is shorter than the shortest ttl, %s", cp.maxTTL, minTTL)
	}
	for _, o := range p.CORSOrigins {
		if o == "*" || !strings.Contains(o, "://") || strings.HasSuffix(o, "/") {
			return nil, fmt.Errorf("cors_origins %q: an origin is scheme://host[:port], with no path and no wildcard", o)
		}
		cp.origins[o] = struct{}{}
	}
	if p.CostPerMonth < 0 || math.IsNaN(p.CostPerMonth) {
		return nil, fmt.Errorf("cost_per_month %v must be a positive amount of USD", p.CostPerMonth)
	}
	cp.costPerMonth = limiter.USD(p.CostPerMonth)
	for model, pr := range p.Prices {
		if model == "" {
			return nil, fmt.Errorf("price: a model name is required")
		}
		in, err := pricePerMillion(pr.Input)
		if err != nil {
			return nil, fmt.Errorf("price %s: input %w", model, err)
		}
		out, err := pricePerMillion(pr.Output)
		if err != nil {
			return nil, fmt.Errorf("price %s: output %w", model, err)
		}
		compiled := price{input: in, output: out, cachedInput: in, cacheWrite: in}
		for _, f := range [...]struct {
			name string
			usd  *float64
			dst  *int64
		}{{"cached_input", pr.CachedInput, &compiled.cachedInput}, {"cache_write", pr.CacheWrite, &compiled.cacheWrite}} {
			if f.usd == nil {
				continue
			}
			if *f.dst, err = pricePerMillion(*f.usd); err != nil {
				return nil, fmt.Errorf("price %s: %s %w", model, f.name, err)
			}
		}
		cp.prices[model] = compiled
	}
	for i, t := range p.Tiers {
		if t == nil || t.Name == "" {
			return nil, fmt.Errorf("tier %d: a name is required", i)
		}
		if _, dup := cp.tiers[t.Name]; dup {
			return nil, fmt.Errorf("tier %s: declared twice", t.Name)
		}
		ct, err := compileTier(t)
		if err != nil {
			return nil, fmt.Errorf("tier %s: %w", t.Name, err)
		}
		ct.costBudget = ct.costBudget || cp.costPerMonth > 0
		ct.bounded = ct.bounded || cp.costPerMonth > 0
		cp.tiers[t.Name] = ct
	}
	if len(p.Tiers) == 0 {
		// A project without tiers has one tier with no per-user limits; its budget still holds.
		name := p.DefaultTier
		if name == "" {
			name = "default"
		}
		cp.tiers[name] = &tier{name: name, costBudget: cp.costPerMonth > 0, bounded: cp.costPerMonth > 0, maxInput: defaultInputFloor}
	}
	if cp.defaultTier == "" {
		if len(p.Tiers) > 0 {
			cp.defaultTier = p.Tiers[0].Name
		} else {
			cp.defaultTier = "default"
		}
	}
	if _, ok := cp.tiers[cp.defaultTier]; !ok {
		return nil, fmt.Errorf("default_tier %q is not one of the project's tiers", cp.defaultTier)
	}
	ap, err := compileAttest(p.Attest, cp.tiers)
	if err != nil {
		return nil, err
	}
	cp.attest = ap
	return cp, nil
}

func compileTier(t *Tier) (*tier, error) {
	for name, v := range map[string]int64{
		"requests_per_minute": t.RequestsPerMinute, "tokens_per_minute": t.TokensPerMinute,
		"tokens_per_day": t.TokensPerDay, "concurrent_requests": t.ConcurrentRequests,
		"max_output_tokens": t.MaxOutputTokens, "max_input_tokens": t.MaxInputTokens,
	} {
		if v < 0 {
			return nil, fmt.Errorf("%s %d must not be negative", name, v)
		}
	}
	for name, v := range map[string]float64{"cost_per_day": t.CostPerDay, "cost_per_month": t.CostPerMonth} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%s %v must be a positive amount of USD", name, v)
		}
	}
	ct := &tier{
		name: t.Name,
		limits: limiter.Limits{
			RequestsPerMinute:  t.RequestsPerMinute,
			TokensPerMinute:    t.TokensPerMinute,
			TokensPerDay:       t.TokensPerDay,
			CostPerDay:         limiter.USD(t.CostPerDay),
			CostPerMonth:       limiter.USD(t.CostPerMonth),
			ConcurrentRequests: t.ConcurrentRequests,
		},
		maxOutput: t.MaxOutputTokens,
		maxInput:  t.MaxInputTokens,
	}
	for _, m := range t.Models {
		if m == "" {
			return nil, fmt.Errorf("models: an empty model name")
		}
		ct.models = append(ct.models, compileGlob(m))
	}
	if ct.maxInput == 0 {
		ct.maxInput = defaultInputFloor
	}
	ct.costBudget = ct.limits.CostPerDay > 0 || ct.limits.CostPerMonth > 0
	ct.bounded = ct.costBudget || ct.limits.TokensPerMinute > 0 || ct.limits.TokensPerDay > 0
	return ct, nil
}

// pricePerMillion converts USD per 1M tokens to Nanos per 1M tokens; a price with more than six
// decimals is rounded up.
func pricePerMillion(usd float64) (int64, error) {
	if usd < 0 || math.IsNaN(usd) || usd > maxPricePerMillion {
		return 0, fmt.Errorf("%v must be between 0 and %d USD per 1M tokens", usd, maxPricePerMillion)
	}
	return int64(math.Ceil(usd*1e9 - 1e-6)), nil
}

// undated returns model without its snapshot date (gpt-4o-mini-2024-07-18, gpt-4-0613,
// claude-haiku-4-5-20251001), and whether it had one.
func undated(model string) (string, bool) {
	for _, layout := range [...]string{"-dddd-dd-dd", "-dddddddd", "-dddd"} {
		if len(model) > len(layout) && matchesLayout(model[len(model)-len(layout):], layout) {
			return model[:len(model)-len(layout)], true
		}
	}
	return model, false
}

// matchesLayout reports whether s has a digit where layout has 'd' and layout's byte elsewhere.
func matchesLayout(s, layout string) bool {
	for i := 0; i < len(layout); i++ {
		if layout[i] == 'd' {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		} else if s[i] != layout[i] {
			return false
		}
	}
	return true
}

// priceOf finds model's price: its own (see modelPrice), else the "*" default.
func (p *project) priceOf(model string) (price, bool) {
	if pr, ok := p.modelPrice(model); ok {
		return pr, true
	}
	pr, ok := p.prices["*"]
	return pr, ok
}

// modelPrice finds model's own price: exact, then without a snapshot date.
func (p *project) modelPrice(model string) (price, bool) {
	if pr, ok := p.prices[model]; ok {
		return pr, true
	}
	if base, ok := undated(model); ok {
		if pr, ok := p.prices[base]; ok {
			return pr, true
		}
	}
	return price{}, false
}

// tierOf returns the tier named name, or the default tier.
func (p *project) tierOf(name string) *tier {
	if t, ok := p.tiers[name]; ok {
		return t
	}
	return p.tiers[p.defaultTier]
}

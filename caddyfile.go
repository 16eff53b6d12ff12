package behest

import (
	"math"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("behest", parseCaddyfile)
	// After encode, so the handler sees responses before they are compressed; before the
	// routing and responding directives, so it runs ahead of reverse_proxy.
	httpcaddyfile.RegisterDirectiveOrder("behest", httpcaddyfile.After, "encode")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	behest {
//		issuer <url>
//		signing_key auto|<pem path>
//		signing_key_rotation <duration>
//		jwks_cache_ttl <duration>
//		store embedded [<path>] | redis <url> [{ … }]
//		mint_path|revoke_path|usage_path|me_path <path>
//		dashboard_path <path>|off
//		max_request_body <size>
//		token_cache_size <size>|off
//		project <id> { … }
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "issuer", "signing_key", "mint_path", "revoke_path", "usage_path", "me_path", "dashboard_path":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			*map[string]*string{"issuer": &h.Issuer, "signing_key": &h.SigningKey, "mint_path": &h.MintPath,
				"revoke_path": &h.RevokePath, "usage_path": &h.UsagePath, "me_path": &h.MePath,
				"dashboard_path": &h.DashboardPath}[opt] = v
		case "jwks_cache_ttl", "signing_key_rotation":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("%s %q: a positive duration like 5m is expected", opt, v)
			}
			if opt == "jwks_cache_ttl" {
				h.JWKSCacheTTL = caddy.Duration(dur)
			} else {
				h.SigningKeyRotation = caddy.Duration(dur)
			}
		case "max_request_body":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			n, err := humanize.ParseBytes(v)
			if err != nil || n == 0 {
				return d.Errf("max_request_body %q: a size like 32MiB is expected", v)
			}
			h.MaxRequestBody = int64(n)
		case "token_cache_size":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			n, err := humanize.ParseBytes(v)
			if v == "off" {
				n, err = 0, nil
			}
			if err != nil || n > math.MaxInt64 {
				return d.Errf("token_cache_size %q: a size like 64MiB is expected, or off", v)
			}
			size := int64(n)
			h.TokenCacheSize = &size
		case "store":
			if !d.NextArg() {
				return d.ArgErr()
			}
			name := d.Val()
			unm, err := caddyfile.UnmarshalModule(d, "http.handlers.behest.stores."+name)
			if err != nil {
				return err
			}
			h.StoreRaw = caddyconfig.JSONModuleObject(unm, "type", name, nil)
		case "project":
			p, err := parseProject(d)
			if err != nil {
				return err
			}
			h.Projects = append(h.Projects, p)
		default:
			return d.Errf("unrecognized behest option %q", opt)
		}
	}
	return nil
}

func parseProject(d *caddyfile.Dispenser) (*Project, error) {
	p := new(Project)
	if !d.NextArg() {
		return nil, d.Errf("project: an id is required, like: project p_456 { … }")
	}
	p.ID = d.Val()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "tenant", "default_tier":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			if opt == "tenant" {
				p.Tenant = v
			} else {
				p.DefaultTier = v
			}
		case "api_key", "api_key_sha256", "cors_origins":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			dst := map[string]*[]string{"api_key": &p.APIKeys, "api_key_sha256": &p.APIKeysSHA256, "cors_origins": &p.CORSOrigins}[opt]
			*dst = append(*dst, args...)
		case "max_ttl":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return nil, d.Errf("max_ttl %q: a positive duration like 1h is expected", v)
			}
			p.MaxTTL = caddy.Duration(dur)
		case "stream_usage":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			on, err := parseSwitch(v)
			if err != nil {
				return nil, d.Errf("stream_usage %q: on or off is expected", v)
			}
			p.StreamUsage = &on
		case "cost_per_month":
			v, err := usdArg(d, opt)
			if err != nil {
				return nil, err
			}
			p.CostPerMonth = v
		case "price":
			args := d.RemainingArgs()
			if len(args) < 3 || len(args) > 5 {
				return nil, d.Errf("price: expected <model> <input> <output> [<cached input> [<cache write>]] in USD per 1M tokens, got %d values", len(args))
			}
			usd := make([]float64, len(args)-1)
			for i, a := range args[1:] {
				v, err := strconv.ParseFloat(a, 64)
				if err != nil || v < 0 {
					return nil, d.Errf("price %s: %q: USD amounts per 1M tokens like 0.15 0.60 are expected", args[0], a)
				}
				usd[i] = v
			}
			if p.Prices == nil {
				p.Prices = make(map[string]Price)
			}
			pr := Price{Input: usd[0], Output: usd[1]}
			if len(usd) > 2 {
				pr.CachedInput = &usd[2]
			}
			if len(usd) > 3 {
				pr.CacheWrite = &usd[3]
			}
			p.Prices[args[0]] = pr
		case "trust":
			t, err := parseTrust(d)
			if err != nil {
				return nil, err
			}
			p.Trust = append(p.Trust, t)
		case "attest":
			a, err := parseAttest(d)
			if err != nil {
				return nil, err
			}
			p.Attest = a
		case "alerts":
			a, err := parseAlerts(d)
			if err != nil {
				return nil, err
			}
			p.Alerts = a
		case "tier":
			t, err := parseTier(d)
			if err != nil {
				return nil, err
			}
			p.Tiers = append(p.Tiers, t)
		default:
			return nil, d.Errf("project %s: unrecognized option %q", p.ID, opt)
		}
	}
	return p, nil
}

func parseTrust(d *caddyfile.Dispenser) (*Trust, error) {
	t := new(Trust)
	if !d.NextArg() {
		return nil, d.Errf("trust: an issuer is required, like: trust https://clerk.example.com { … }")
	}
	t.Issuer = d.Val()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "jwks_url", "audience", "secret":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			*map[string]*string{"jwks_url": &t.JWKSURL, "audience": &t.Audience, "secret": &t.Secret}[opt] = v
		case "tier_map":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return nil, d.Errf("tier_map: expected <claim value> <tier>, like: tier_map pro 2")
			}
			t.TierMap = append(t.TierMap, TierMap{Value: args[0], Tier: args[1]})
		case "algorithms", "authorized_parties":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			if opt == "algorithms" {
				t.Algorithms = append(t.Algorithms, args...)
			} else {
				t.AuthorizedParties = append(t.AuthorizedParties, args...)
			}
		case "claim":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return nil, d.Errf("claim: expected <field> <claim path>, like: claim tier public_metadata.plan")
			}
			if t.Claims == nil {
				t.Claims = make(map[string]string)
			}
			t.Claims[args[0]] = args[1]
		default:
			return nil, d.Errf("trust %s: unrecognized option %q", t.Issuer, opt)
		}
	}
	return t, nil
}

// parseAttest reads:
//
//	attest <issuer> {
//		header <name>
//		jwks_url <url>
//		audience <aud>
//		algorithms <alg>...
//		single_use
//		tiers <tier>...
//	}
func parseAttest(d *caddyfile.Dispenser) (*Attest, error) {
	a := new(Attest)
	if !d.NextArg() {
		return nil, d.Errf("attest: an issuer is required, like: attest https://firebaseappcheck.googleapis.com/123456789 { … }")
	}
	a.Issuer = d.Val()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "header", "jwks_url", "audience":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			*map[string]*string{"header": &a.Header, "jwks_url": &a.JWKSURL, "audience": &a.Audience}[opt] = v
		case "algorithms", "tiers":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			if opt == "tiers" {
				a.Tiers = append(a.Tiers, args...)
			} else {
				a.Algorithms = append(a.Algorithms, args...)
			}
		case "single_use":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			a.SingleUse = true
		default:
			return nil, d.Errf("attest %s: unrecognized option %q", a.Issuer, opt)
		}
	}
	return a, nil
}

// parseAlerts reads:
//
//	alerts {
//		webhook <url>
//		secret <secret>
//		project_budget <percent>...
//		user_cost_per_day <percent>...
//	}
func parseAlerts(d *caddyfile.Dispenser) (*Alerts, error) {
	a := new(Alerts)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "webhook", "secret":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			if opt == "webhook" {
				a.Webhook = v
			} else {
				a.Secret = v
			}
		case "project_budget", "user_cost_per_day":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.Errf("%s: expected one or more thresholds, like: %s 80%% 100%%", opt, opt)
			}
			for _, arg := range args {
				pct, ok := strings.CutSuffix(arg, "%")
				f, err := strconv.ParseFloat(pct, 64)
				if !ok || err != nil || f <= 0 || f > 100 {
					return nil, d.Errf("%s %q: a percentage of the limit, like 80%%, is expected", opt, arg)
				}
				if opt == "project_budget" {
					a.ProjectBudget = append(a.ProjectBudget, f/100)
				} else {
					a.UserCostPerDay = append(a.UserCostPerDay, f/100)
				}
			}
		default:
			return nil, d.Errf("alerts: unrecognized option %q", opt)
		}
	}
	return a, nil
}

func parseTier(d *caddyfile.Dispenser) (*Tier, error) {
	t := new(Tier)
	if !d.NextArg() {
		return nil, d.Errf("tier: a name is required, like: tier 1 { … }")
	}
	t.Name = d.Val()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		ints := map[string]*int64{
			"requests_per_minute": &t.RequestsPerMinute, "tokens_per_minute": &t.TokensPerMinute,
			"tokens_per_day": &t.TokensPerDay, "concurrent_requests": &t.ConcurrentRequests,
			"max_output_tokens": &t.MaxOutputTokens, "max_input_tokens": &t.MaxInputTokens,
		}
		if dst, ok := ints[opt]; ok {
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return nil, d.Errf("tier %s: %s %q: a positive whole number is expected", t.Name, opt, v)
			}
			*dst = n
			continue
		}
		switch opt {
		case "models":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.Errf("tier %s: models: expected one or more model names or globs, like: models gpt-4o-mini claude-haiku-*", t.Name)
			}
			t.Models = append(t.Models, args...)
		case "cost_per_day", "cost_per_month":
			v, err := usdArg(d, opt)
			if err != nil {
				return nil, err
			}
			if opt == "cost_per_day" {
				t.CostPerDay = v
			} else {
				t.CostPerMonth = v
			}
		default:
			return nil, d.Errf("tier %s: unrecognized option %q", t.Name, opt)
		}
	}
	return t, nil
}

func oneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}

func usdArg(d *caddyfile.Dispenser, opt string) (float64, error) {
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(strings.TrimPrefix(v, "$"), 64)
	if err != nil || f <= 0 {
		return 0, d.Errf("%s %q: a positive amount of USD like 5.00 is expected", opt, v)
	}
	return f, nil
}

func parseSwitch(v string) (bool, error) {
	switch v {
	case "on", "true":
		return true, nil
	case "off", "false":
		return false, nil
	}
	return false, strconv.ErrSyntax
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)

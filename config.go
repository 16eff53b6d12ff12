package behest

import (
	"encoding/json"

	"github.com/caddyserver/caddy/v2"
)

// Project is one app or customer org: its API keys, trusted issuers, tiers, prices, budget and
// CORS origins.
type Project struct {
	// ID is the project id (the pid claim), e.g. "p_456".
	ID string `json:"id"`
	// Tenant is the account the project belongs to (the tid claim).
	Tenant string `json:"tenant"`
	// APIKeys are the project's API keys, for the mint, revoke and usage endpoints.
	APIKeys []string `json:"api_keys,omitempty"`
	// APIKeysSHA256 are API keys given as the hex sha256 of the key.
	APIKeysSHA256 []string `json:"api_keys_sha256,omitempty"`
	// MaxTTL is the longest ttl a mint may ask for (default 1h; the shortest is 30s).
	MaxTTL caddy.Duration `json:"max_ttl,omitempty"`
	// CORSOrigins are the browser origins allowed to call the gateway with this project's tokens.
	CORSOrigins []string `json:"cors_origins,omitempty"`
	// DefaultTier is the tier of tokens that name none or an unknown one (default: the first tier).
	DefaultTier string `json:"default_tier,omitempty"`
	// Trust lists the identity providers whose tokens this project accepts.
	Trust []*Trust `json:"trust,omitempty"`
	// Attest, when set, requires a device attestation token of the tiers it lists.
	Attest *Attest `json:"attest,omitempty"`
	// Tiers are the project's tiers with their per-user limits, in the order declared.
	Tiers []*Tier `json:"tiers,omitempty"`
	// Prices are USD per 1M tokens by model; the model "*" prices every model not listed.
	Prices map[string]Price `json:"prices,omitempty"`
	// CostPerMonth is the project's hard budget per UTC calendar month, in USD (0: none).
	CostPerMonth float64 `json:"cost_per_month,omitempty"`
	// Alerts announce budget thresholds to a webhook.
	Alerts *Alerts `json:"alerts,omitempty"`
	// StreamUsage, when false, stops the gateway from setting stream_options.include_usage on
	// streamed chat completions (for providers that reject it); such streams are then charged
	// their reservation. Default true.
	StreamUsage *bool `json:"stream_usage,omitempty"`
}

// Alerts POST a signed event to a webhook when spend first reaches a threshold of a budget, once
// per threshold and period across restarts and instances sharing a store.
type Alerts struct {
	// Webhook is the URL events are POSTed to.
	Webhook string `json:"webhook"`
	// Secret keys the events' HMAC-SHA256 signature (Behest-Signature); placeholders such as
	// {env.BEHEST_WEBHOOK_SECRET} are resolved.
	Secret string `json:"secret"`
	// ProjectBudget are fractions of the project's cost_per_month (0.8 is 80%).
	ProjectBudget []float64 `json:"project_budget,omitempty"`
	// UserCostPerDay are fractions of each user's tier's cost_per_day.
	UserCostPerDay []float64 `json:"user_cost_per_day,omitempty"`
}

// Trust is an identity provider a project accepts tokens from.
type Trust struct {
	// Issuer is the iss claim of its tokens, e.g. "https://clerk.example.com".
	Issuer string `json:"issuer"`
	// JWKSURL is where its public keys are (default: the jwks_uri of the issuer's OpenID
	// discovery document when that names the issuer exactly, else
	// <issuer>/.well-known/jwks.json).
	JWKSURL string `json:"jwks_url,omitempty"`
	// Secret is the shared HMAC secret of an issuer that signs with one (HS256/384/512, e.g.
	// Supabase's legacy JWT secret); placeholders such as {env.JWT_SECRET} are resolved. With
	// it only HMAC is accepted and no JWKS is fetched; without it HMAC is never accepted.
	Secret string `json:"secret,omitempty"`
	// Algorithms is the allowlist of signature algorithms (default RS256, ES256, EdDSA; with a
	// secret, the HMAC algorithms it is long enough for).
	Algorithms []string `json:"algorithms,omitempty"`
	// Audience, when set, must be the token's aud or one of its values.
	Audience string `json:"audience,omitempty"`
	// AuthorizedParties, when set, must contain the token's azp when it has one.
	AuthorizedParties []string `json:"authorized_parties,omitempty"`
	// Claims maps an identity field (uid, tier, tid, pid, sid, org) to a claim path: a JSON
	// Pointer when it starts with / ("/https:~1~1app.example~1plan"), else names joined by dots
	// ("public_metadata.plan").
	Claims map[string]string `json:"claims,omitempty"`
	// TierMap maps a value of the tier claim, or an element of a list claim, to a tier; the
	// first entry whose value the claim holds wins.
	TierMap []TierMap `json:"tier_map,omitempty"`
}

// TierMap is one claim value and the tier it means.
type TierMap struct {
	Value string `json:"value"`
	Tier  string `json:"tier"`
}

// Attest requires, of the tiers listed, a device attestation token (such as Firebase App
// Check's, which covers App Attest, DeviceCheck, Play Integrity and reCAPTCHA) with each
// request that goes to the provider.
type Attest struct {
	// Issuer is the attestation tokens' iss, e.g.
	// "https://firebaseappcheck.googleapis.com/123456789".
	Issuer string `json:"issuer"`
	// Header carries the token (default X-Firebase-AppCheck); it is removed before the
	// request goes on.
	Header string `json:"header,omitempty"`
	// JWKSURL is where the service's keys are (default: discovery, as for trust).
	JWKSURL string `json:"jwks_url,omitempty"`
	// Audience must be the token's aud or one of its values (e.g. "projects/123456789").
	Audience string `json:"audience"`
	// Algorithms is the allowlist (default RS256, ES256).
	Algorithms []string `json:"algorithms,omitempty"`
	// SingleUse accepts each attestation token (by its jti) once, remembered in the store
	// until the token expires, so instances sharing Redis share it.
	SingleUse bool `json:"single_use,omitempty"`
	// Tiers that must attest (default: every tier).
	Tiers []string `json:"tiers,omitempty"`
}

// Tier is a set of per-end-user limits. Zero means no limit.
type Tier struct {
	// Name is how tokens name the tier: "1", "2", "pro".
	Name string `json:"name"`
	// RequestsPerMinute over a rolling minute.
	RequestsPerMinute int64 `json:"requests_per_minute,omitempty"`
	// TokensPerMinute (input + output) over a rolling minute.
	TokensPerMinute int64 `json:"tokens_per_minute,omitempty"`
	// TokensPerDay per UTC calendar day.
	TokensPerDay int64 `json:"tokens_per_day,omitempty"`
	// CostPerDay in USD per UTC calendar day.
	CostPerDay float64 `json:"cost_per_day,omitempty"`
	// CostPerMonth in USD per UTC calendar month.
	CostPerMonth float64 `json:"cost_per_month,omitempty"`
	// ConcurrentRequests in flight at once.
	ConcurrentRequests int64 `json:"concurrent_requests,omitempty"`
	// MaxOutputTokens is the most output a request may ask for; requests that ask for none get it.
	MaxOutputTokens int64 `json:"max_output_tokens,omitempty"`
	// MaxInputTokens is the prompt reserved for a request whose prompt its body does not bound
	// (previous_response_id, conversation, files or images by reference); default 128000.
	MaxInputTokens int64 `json:"max_input_tokens,omitempty"`
	// Models, when set, are the only models the tier may use: names, or globs where * matches
	// any run of characters ("claude-haiku-*"). A request for another model is refused (403
	// model_not_allowed) before anything is reserved.
	Models []string `json:"models,omitempty"`
}

// Price is what a model costs, in USD per 1M tokens.
type Price struct {
	Input  float64 `json:"input"`
	Output float64 `json:"output"`
	// CachedInput is the price of input read from the provider's prompt cache (default: Input).
	CachedInput *float64 `json:"cached_input,omitempty"`
	// CacheWrite is the price of input written to the prompt cache, as Anthropic charges it
	// (default: Input).
	CacheWrite *float64 `json:"cache_write,omitempty"`
}

// storeConfig is the JSON of the store guest module.
type storeConfig = json.RawMessage

package main

import "fmt"

// site is where the soak's Caddy listens and what it is in front of.
type site struct {
	admin, storage, upstream string
	port                     int
}

// apiKey is the soak project's API key.
const apiKey = "soak-key"

// Tiers: 1 is tight enough that a user now and then calls beyond its per-minute or concurrency
// limit, 2 is roomy, 3 (the heavy users') also has tokens for only a few minutes a day (a stream
// the client leaves is charged its reservation, over a thousand tokens). The two variants the
// reloads alternate between differ a little.
const (
	tierTight = 1
	tierRoomy = 2
	tierHeavy = 3
)

// caddyfile is the soak's config; variant 0 and 1 differ in a limit and a price, so each
// reload provisions a new handler that takes over the store.
func (s site) caddyfile(variant int) string {
	rpm, price := 20, "0.15 0.60 0.075"
	if variant%2 == 1 {
		rpm, price = 24, "0.16 0.64 0.08"
	}
	return fmt.Sprintf(`{
	admin %s
	auto_https off
	persist_config off
	storage file_system %s
}
http://127.0.0.1:%d {
	behest {
		project p_soak {
			tenant t_soak
			api_key %s
			max_ttl 1h
			default_tier 1
			tier 1 {
				requests_per_minute %[5]d
				tokens_per_minute 20000
				tokens_per_day 200000
				concurrent_requests 2
				max_output_tokens 1024
			}
			tier 2 {
				requests_per_minute 600
				tokens_per_minute 1000000
				concurrent_requests 8
			}
			tier 3 {
				requests_per_minute %[5]d
				tokens_per_day 5000
				concurrent_requests 2
				max_output_tokens 1024
			}
			price gpt-4o-mini %[6]s
			price claude-haiku-4-5 1.00 5.00 0.10 1.25
			price gemini-2.5-flash 0.30 2.50 0.03
			price * 2.50 10.00
			cost_per_month 1000000
		}
	}
	reverse_proxy %[7]s {
		header_up Authorization "Bearer provider-key"
		header_up x-api-key provider-key
		header_up x-goog-api-key provider-key
	}
}
`, s.admin, s.storage, s.port, apiKey, rpm, price, s.upstream)
}

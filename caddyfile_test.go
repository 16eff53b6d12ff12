package behest_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// TestCaddyfileAdapt checks every testdata/*.caddyfiletest: a Caddyfile, a line of dashes, and
// the JSON it must adapt to.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no adapt tests found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			caddyfile, want, ok := strings.Cut(string(data), "\n----------\n")
			if !ok {
				t.Fatalf("%s: no ---------- line between the Caddyfile and the JSON", f)
			}
			if !caddytest.CompareAdapt(t, f, caddyfile, "caddyfile", strings.TrimSpace(want)) {
				t.Errorf("%s: adapted JSON differs", f)
			}
		})
	}
}

// TestCaddyfileErrors checks that bad values fail to adapt, naming the option, the value, the
// file and line.
func TestCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unknown option", `bogus 1`, `unrecognized behest option "bogus"`},
		{"ttl not a duration", `jwks_cache_ttl soon`, `jwks_cache_ttl "soon"`},
		{"negative ttl", `jwks_cache_ttl -5m`, `jwks_cache_ttl "-5m"`},
		{"rotation", `signing_key_rotation often`, `signing_key_rotation "often"`},
		{"issuer without value", `issuer`, `wrong argument count`},
		{"max_request_body", `max_request_body lots`, `max_request_body "lots"`},
		{"token_cache_size not a size", `token_cache_size lots`, `token_cache_size "lots": a size like 64MiB is expected, or off`},
		{"token_cache_size negative", `token_cache_size -64MiB`, `token_cache_size "-64MiB"`},
		{"token_cache_size a rate", `token_cache_size 64MB/s`, `token_cache_size "64MB/s"`},
		{"token_cache_size too large", `token_cache_size 10EiB`, `token_cache_size "10EiB"`},
		{"token_cache_size without value", `token_cache_size`, `wrong argument count`},
		{"token_cache_size two values", `token_cache_size 64MiB 1000`, `wrong argument count`},
		{"unknown store", `store memcached`, `http.handlers.behest.stores.memcached`},
		{"project without id", `project {
			tenant t
		}`, `project: an id is required`},
		{"project option", `project p { color blue }`, `project p: unrecognized option "color"`},
		{"max_ttl", `project p { max_ttl forever }`, `max_ttl "forever"`},
		{"cost", `project p { cost_per_month lots }`, `cost_per_month "lots"`},
		{"cost negative", `project p { cost_per_month -1 }`, `cost_per_month "-1"`},
		{"price args", `project p { price gpt-4o 0.15 }`, `price: expected <model>`},
		{"price args, too many", `project p { price gpt-4o 1 2 3 4 5 }`, `price: expected <model>`},
		{"cached price value", `project p { price gpt-4o 1 2 half }`, `price gpt-4o: "half"`},
		{"models without names", `project p { tier 1 { models } }`, `tier 1: models: expected one or more`},
		{"price value", `project p { price gpt-4o cheap 0.6 }`, `price gpt-4o: "cheap"`},
		{"stream_usage", `project p { stream_usage maybe }`, `stream_usage "maybe"`},
		{"tier int", `project p { tier 1 { requests_per_minute many } }`, `tier 1: requests_per_minute "many"`},
		{"tier zero", `project p { tier 1 { tokens_per_day 0 } }`, `tier 1: tokens_per_day "0"`},
		{"tier option", `project p { tier 1 { speed 3 } }`, `tier 1: unrecognized option "speed"`},
		{"tier cost", `project p { tier 1 { cost_per_day free } }`, `cost_per_day "free"`},
		{"trust option", `project p { trust https://i { color x } }`, `trust https://i: unrecognized option "color"`},
		{"claim args", `project p { trust https://i { claim uid } }`, `claim: expected <field> <claim path>`},
		{"trust without issuer", `project p { trust }`, `trust: an issuer is required`},
		{"tier_map args", `project p { trust https://i { tier_map pro } }`, `tier_map: expected <claim value> <tier>`},
		{"attest without issuer", `project p { attest }`, `attest: an issuer is required`},
		{"attest option", `project p { attest https://a { color x } }`, `attest https://a: unrecognized option "color"`},
		{"attest single_use arg", `project p { attest https://a { single_use yes } }`, `wrong argument count`},
		{"alerts percent", `project p { alerts { project_budget 80 } }`, `project_budget "80"`},
		{"alerts over 100", `project p { alerts { user_cost_per_day 150% } }`, `user_cost_per_day "150%"`},
		{"alerts option", `project p { alerts { email ops@x } }`, `alerts: unrecognized option "email"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "http://localhost:8080 {\n\tbehest {\n\t\t" + blocks(tc.body) + "\n\t}\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), map[string]any{"filename": "Caddyfile"})
			if err == nil {
				t.Fatalf("adapted without error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "Caddyfile:") {
				t.Fatalf("error %q, want it to contain %q and the file:line", err, tc.want)
			}
		})
	}
}

// TestLoadErrors checks that values that parse but mean nothing usable fail when the config is
// loaded (in Provision/Validate, so JSON configs get the same errors), with a sentence naming them.
func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"no tenant", `project p { api_key k }`, `project p: tenant is required`},
		{"default tier unknown", `project p { tenant t
			default_tier 9
			tier 1 { requests_per_minute 1 } }`, `default_tier "9" is not one of the project's tiers`},
		{"duplicate project", `project p { tenant t }
		project p { tenant t }`, `project p: declared twice`},
		{"duplicate tier", `project p { tenant t
			tier 1 { requests_per_minute 1 }
			tier 1 { requests_per_minute 2 } }`, `tier 1: declared twice`},
		{"max_ttl too short", `project p { tenant t
			max_ttl 10s }`, `max_ttl 10s is shorter`},
		{"cors wildcard", `project p { tenant t
			cors_origins * }`, `cors_origins "*"`},
		{"api key sha256", `project p { tenant t
			api_key_sha256 abc }`, `api_key_sha256`},
		{"signing key file", `signing_key /nonexistent/key.pem
		project p { tenant t }`, `signing_key "/nonexistent/key.pem"`},
		{"own issuer trusted", `issuer https://gw.example
		project p { tenant t
			trust https://gw.example }`, `the gateway's own issuer cannot be a trusted issuer`},
		{"bad algorithm", `project p { tenant t
			trust https://idp.example {
				algorithms HS256
			} }`, `HS256`},
		{"price too high", `project p { tenant t
			price m 5000 1 }`, `price m: input 5000`},
		{"rotation of a file key", `signing_key /etc/key.pem
		signing_key_rotation 24h
		project p { tenant t }`, `signing_key_rotation needs signing_key auto`},
		{"bad path", `mint_path mint
		project p { tenant t }`, `endpoint path "mint" must start with /`},
		{"trust secret empty", `project p { tenant t
			trust https://i { secret {env.BEHEST_UNSET_SECRET_FOR_TEST} } }`, `secret {env.BEHEST_UNSET_SECRET_FOR_TEST} is empty`},
		{"trust secret short", `project p { tenant t
			trust https://i { secret short } }`, `at least 32`},
		{"attest without audience", `project p { tenant t
			attest https://a { jwks_url https://a/jwks } }`, `audience is required`},
		{"attest unknown tier", `project p { tenant t
			tier 1 { requests_per_minute 1 }
			attest https://a { audience x
			tiers 9 } }`, `attest: tier "9"`},
		{"tier_map unknown tier", `project p { tenant t
			tier 1 { requests_per_minute 1 }
			trust https://i { tier_map pro 9 } }`, `tier_map pro 9`},
		{"token_cache_size too small", `token_cache_size 512KB
		project p { tenant t }`, `token_cache_size 512000 is too small: the cache needs at least 1048576 bytes (1MiB); 0 turns it off`},
		{"dashboard path", `dashboard_path dash
		project p { tenant t }`, `dashboard_path`},
		{"alerts webhook", `project p { tenant t
			cost_per_month 10
			alerts { webhook ftp://x
			secret s
			project_budget 50% } }`, `alerts: webhook "ftp://x"`},
		{"alerts secret", `project p { tenant t
			cost_per_month 10
			alerts { webhook https://x
			secret {env.BEHEST_UNSET_SECRET_FOR_TEST}
			project_budget 50% } }`, `alerts: secret is empty`},
		{"alerts without a budget", `project p { tenant t
			alerts { webhook https://x
			secret s
			project_budget 50% } }`, `project_budget needs the project's cost_per_month`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "{\n\tadmin off\n\tauto_https off\n}\nhttp://localhost:8080 {\n\tbehest {\n\t\t" + blocks(tc.body) + "\n\t}\n}\n"
			adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), map[string]any{"filename": "Caddyfile"})
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			var c caddy.Config
			if err := json.Unmarshal(adapted, &c); err != nil {
				t.Fatal(err)
			}
			err = caddy.Validate(&c)
			if err == nil {
				t.Fatal("the config loaded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// blocks spreads one-line blocks ("tier 1 { requests_per_minute 1 }") over lines, as the
// Caddyfile wants them, so the tables above stay short.
func blocks(s string) string {
	return strings.NewReplacer("{ ", "{\n", " }", "\n}").Replace(s)
}

// TestExampleConfigLoads keeps the quick start's config valid.
func TestExampleConfigLoads(t *testing.T) {
	data, err := os.ReadFile("testdata/example.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	adapted, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(data, map[string]any{"filename": "example.Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warnings {
		t.Errorf("warning: %s", w.Message)
	}
	var c caddy.Config
	if err := json.Unmarshal(adapted, &c); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&c); err != nil {
		t.Fatal(err)
	}
}

package verifier

import (
	"strings"
	"testing"
	"time"
)

func TestNewRejectsBadConfig(t *testing.T) {
	trust := func(tr Trust) []Project {
		if tr.Issuer == "" {
			tr.Issuer = clerkIssuer
		}
		return []Project{{ID: project, Trust: []Trust{tr}}}
	}
	tests := []struct {
		name string
		cfg  Config
		want string // in the error
	}{
		{"project without ID", Config{Projects: []Project{{}}}, "no ID"},
		{"project twice", Config{Projects: []Project{{ID: "p"}, {ID: "p"}}}, "project p: declared twice"},
		{"trust twice", Config{Projects: []Project{{ID: "p", Trust: []Trust{{Issuer: clerkIssuer}, {Issuer: clerkIssuer}}}}}, "declared twice"},
		{"trust without issuer", Config{Projects: []Project{{ID: "p", Trust: []Trust{{}}}}}, "an issuer is required"},
		{"trusting the own issuer", Config{Issuer: clerkIssuer, Projects: trust(Trust{})}, "own issuer"},
		{"HS256 allowed", Config{Projects: trust(Trust{Algorithms: []string{"RS256", "HS256"}})}, `algorithm "HS256"`},
		{"none allowed", Config{Projects: trust(Trust{Algorithms: []string{"none"}})}, `algorithm "none"`},
		{"unknown claim field", Config{Projects: trust(Trust{Claims: map[string]string{"email": "email"}})}, `claim "email"`},
		{"empty claim path", Config{Projects: trust(Trust{Claims: map[string]string{"uid": ""}})}, "not a claim path"},
		{"claim path with an empty name", Config{Projects: trust(Trust{Claims: map[string]string{"tier": "a..b"}})}, "not a claim path"},
		{"relative JWKS URL", Config{Projects: trust(Trust{JWKSURL: "/jwks.json"})}, "absolute http(s) URL"},
		{"JWKS URL of another scheme", Config{Projects: trust(Trust{JWKSURL: "file:///etc/jwks.json"})}, "absolute http(s) URL"},
		{"issuer that is no URL, no JWKS URL", Config{Projects: trust(Trust{Issuer: "clerk"})}, "absolute http(s) URL"},
		{"negative TTL", Config{JWKSCacheTTL: -time.Second}, "must not be negative"},
		{"negative leeway", Config{Leeway: -time.Second}, "must not be negative"},
		{"negative cache", Config{CacheBytes: -1}, "must not be negative"},
		{"cache below its own structures", Config{CacheBytes: 100_000}, "token cache of 100000 bytes is too small"},
		{"minted keys without issuer", Config{MintedKeys: keySource{}}, "issuer is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := New(tt.cfg)
			if err == nil {
				v.Close()
				t.Fatalf("New accepted the config")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	v := newTestVerifier(t, Config{Projects: []Project{{ID: project,
		Trust: []Trust{{Issuer: "https://clerk.example.com/"}}}}})
	if v.ttl != 5*time.Minute || v.refetch != 10*time.Second || v.leeway != 30*time.Second ||
		v.maxJWKS != 1<<20 || v.client.Timeout != 5*time.Second || v.fetchTimeout != 5*time.Second || v.now == nil || v.logger == nil {
		t.Errorf("defaults: ttl %v refetch %v leeway %v max %d timeout %v", v.ttl, v.refetch, v.leeway, v.maxJWKS, v.client.Timeout)
	}
	// Without jwks_url the keys are discovered, with the default path when there is no document.
	if c, ok := v.jwks["discover:https://clerk.example.com/"]; !ok || !c.discover || c.url != "https://clerk.example.com/.well-known/jwks.json" {
		t.Errorf("default JWKS URL: have %v", v.jwks)
	}
	tr := v.trusts["https://clerk.example.com/"][0]
	for _, a := range []string{"RS256", "ES256", "EdDSA"} {
		if _, ok := tr.algs[a]; !ok {
			t.Errorf("default algorithms lack %s", a)
		}
	}
	if len(tr.algs) != 3 {
		t.Errorf("default algorithms: %v", tr.algs)
	}
}

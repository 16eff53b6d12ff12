package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// trustedFixture is a verifier trusting one issuer (served by a JWKS test server) for project.
type trustedFixture struct {
	clock *fakeClock
	key   *testKey
	srv   *jwksServer
	v     *Verifier
}

// newTrusted makes a fixture; edit changes the config before New (nil: none).
func newTrusted(t *testing.T, edit func(*Config)) *trustedFixture {
	t.Helper()
	f := &trustedFixture{clock: newClock(), key: newRSA(t, "clerk-1")}
	f.srv = newJWKSServer(t, f.key.jwk(t, true))
	cfg := Config{
		Projects: []Project{{
			ID: project, TenantID: tenant, Tiers: []string{"1", "2", "pro"}, DefaultTier: "1",
			Trust: []Trust{{Issuer: clerkIssuer, JWKSURL: f.srv.URL}},
		}},
		Now: f.clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	f.v = newTestVerifier(t, cfg)
	return f
}

func (f *trustedFixture) verify(t *testing.T, claims map[string]any) (*Identity, error) {
	t.Helper()
	return f.v.Verify(context.Background(), f.key.sign(t, claims, nil))
}

// TestTrustedClerkTemplate verifies the contract's Clerk template, with each way of writing a
// tier (a number stays a number, an unset shortcode is null).
func TestTrustedClerkTemplate(t *testing.T) {
	f := newTrusted(t, nil)
	tests := []struct {
		name        string
		tier        any // nil: no tier claim
		wantTier    string
		wantUnknown bool
	}{
		{"number", 1, "1", false},
		{"float", json.Number("2.0"), "2", false},
		{"numeric string", "1", "1", false},
		{"padded numeric string", " 2 ", "2", false},
		{"name", "pro", "pro", false},
		{"null", null, "1", false},
		{"missing", nil, "1", false},
		{"empty", "", "1", false},
		{"unknown name", "gold", "1", true},
		{"unknown number", 7, "1", true},
		{"not a tier", true, "1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims := clerkClaims(f.clock.Now())
			claims["tier"] = tt.tier
			if tt.tier == nil {
				delete(claims, "tier")
			}
			id, err := f.verify(t, claims)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.Tier != tt.wantTier || id.TierUnknown != tt.wantUnknown {
				t.Errorf("tier = %q unknown=%v, want %q unknown=%v", id.Tier, id.TierUnknown, tt.wantTier, tt.wantUnknown)
			}
			if id.UserID != "org_9:user_2abc" || id.TenantID != tenant || id.ProjectID != project ||
				id.Issuer != clerkIssuer || id.TokenID != "jti_1" || id.Minted || id.SessionID != "" {
				t.Errorf("identity = %+v", id)
			}
			if !id.ExpiresAt.Equal(f.clock.Now().Add(time.Minute)) || !id.IssuedAt.Equal(f.clock.Now()) {
				t.Errorf("times: iat %v exp %v", id.IssuedAt, id.ExpiresAt)
			}
			if id.Claims["email"] != "a@example.com" || id.Claims["azp"] != "https://app.example.com" {
				t.Errorf("claims = %v", id.Claims)
			}
			if _, ok := id.Claims["iat"].(int64); !ok {
				t.Errorf("iat claim is %T, want int64", id.Claims["iat"])
			}
		})
	}
}

func TestClaimMapping(t *testing.T) {
	f := newTrusted(t, func(c *Config) {
		c.Projects[0].Trust[0].Claims = map[string]string{
			"uid": "sub", "tier": "public_metadata.plan", "pid": "org.project", "tid": "org.tenant", "sid": "sid",
		}
	})
	base := with(clerkClaims(f.clock.Now()), map[string]any{
		"uid": nil, "pid": nil, "tid": nil, "tier": "2",
		"org":             map[string]any{"project": project, "tenant": tenant},
		"public_metadata": map[string]any{"plan": "pro"},
		"sid":             "sess_clerk",
	})
	tests := []struct {
		name     string
		claims   map[string]any
		wantUser string
		wantTier string
		wantErr  error
	}{
		{"mapped paths", base, "user_2abc", "pro", nil},
		{"nested tier missing", with(base, map[string]any{"public_metadata": map[string]any{}}), "user_2abc", "1", nil},
		{"nested tier numeric", with(base, map[string]any{"public_metadata": map[string]any{"plan": 2}}), "user_2abc", "2", nil},
		{"parent not an object", with(base, map[string]any{"public_metadata": "pro"}), "user_2abc", "1", nil},
		{"numeric uid", with(base, map[string]any{"sub": 12345}), "12345", "pro", nil},
		{"mapped uid missing: no fallback", with(base, map[string]any{"sub": nil, "uid": "u"}), "", "", ErrMissingClaim},
		{"object uid", with(base, map[string]any{"sub": map[string]any{"id": "u"}}), "", "", ErrMalformed},
		{"mapped tid mismatch", with(base, map[string]any{"org": map[string]any{"project": project, "tenant": "t_9"}}), "", "", ErrPermission},
		{"mapped pid names another project", with(base, map[string]any{"org": map[string]any{"project": "p_9"}}), "", "", ErrPermission},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := f.verify(t, tt.claims)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Verify = %+v, %v; want %v", id, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if id.UserID != tt.wantUser || id.Tier != tt.wantTier || id.SessionID != "sess_clerk" {
				t.Errorf("identity = %+v", id)
			}
		})
	}
}

// TestDefaultUIDFallsBackToSub: without a mapping, uid is read from uid, else sub.
func TestDefaultUIDFallsBackToSub(t *testing.T) {
	f := newTrusted(t, nil)
	tests := []struct {
		name    string
		changes map[string]any
		want    string
		wantErr error
	}{
		{"uid", nil, "org_9:user_2abc", nil},
		{"sub", map[string]any{"uid": nil}, "user_2abc", nil},
		{"null uid", map[string]any{"uid": null}, "user_2abc", nil},
		{"numeric uid", map[string]any{"uid": 42}, "42", nil},
		{"neither", map[string]any{"uid": nil, "sub": nil}, "", ErrMissingClaim},
		{"array uid", map[string]any{"uid": []string{"a"}}, "", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := f.verify(t, with(clerkClaims(f.clock.Now()), tt.changes))
			if tt.wantErr != nil || err != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Verify = %+v, %v; want %v", id, err, tt.wantErr)
				}
				return
			}
			if id.UserID != tt.want {
				t.Errorf("uid = %q, want %q", id.UserID, tt.want)
			}
		})
	}
}

// TestProjectSelection: pid picks among the projects trusting the issuer; without pid, only a
// sole trusting project is assumed.
func TestProjectSelection(t *testing.T) {
	twoProjects := func(c *Config) {
		p2 := c.Projects[0]
		p2.ID, p2.TenantID = "p_two", "t_two"
		c.Projects = append(c.Projects, p2, Project{ID: "p_untrusting", TenantID: tenant, DefaultTier: "1"})
	}
	f := newTrusted(t, twoProjects)
	base := clerkClaims(f.clock.Now())
	tests := []struct {
		name        string
		changes     map[string]any
		wantProject string
		wantErr     error
	}{
		{"pid selects", nil, project, nil},
		{"pid selects the other", map[string]any{"pid": "p_two", "tid": "t_two"}, "p_two", nil},
		{"no tid is fine", map[string]any{"pid": "p_two", "tid": nil}, "p_two", nil},
		{"tid of the other project", map[string]any{"pid": "p_two"}, "", ErrPermission},
		{"project not trusting the issuer", map[string]any{"pid": "p_untrusting"}, "", ErrPermission},
		{"unknown project", map[string]any{"pid": "p_nope"}, "", ErrPermission},
		{"no pid, two projects trust", map[string]any{"pid": nil}, "", ErrPermission},
		{"object pid", map[string]any{"pid": map[string]any{}}, "", ErrPermission},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := f.verify(t, with(base, tt.changes))
			if tt.wantErr != nil || err != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Verify = %+v, %v; want %v", id, err, tt.wantErr)
				}
				return
			}
			if id.ProjectID != tt.wantProject {
				t.Errorf("project = %q, want %q", id.ProjectID, tt.wantProject)
			}
		})
	}

	// With one trusting project, a token without pid belongs to it.
	single := newTrusted(t, nil)
	id, err := single.verify(t, with(clerkClaims(single.clock.Now()), map[string]any{"pid": nil}))
	if err != nil || id.ProjectID != project {
		t.Fatalf("sole project: %+v, %v", id, err)
	}
}

// TestPermissionOnlyForValidTokens: a forged token naming the wrong project is a 401, not a 403.
func TestPermissionOnlyForValidTokens(t *testing.T) {
	f := newTrusted(t, nil)
	forged := f.key.sign(t, with(clerkClaims(f.clock.Now()), map[string]any{"pid": "p_nope"}), nil)
	forged = forged[:len(forged)-4] + "AAAA"
	if _, err := f.v.Verify(context.Background(), forged); !errors.Is(err, ErrSignature) {
		t.Fatalf("err = %v, want ErrSignature", err)
	}
}

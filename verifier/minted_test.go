package verifier

import (
	"context"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

func mintedProject() Project {
	return Project{ID: project, TenantID: tenant, Tiers: []string{"1", "2"}, DefaultTier: "1"}
}

// mintedClaims are the claims the mint package writes, at now.
func mintedClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": testIssuer, "sub": "org_9:user_2abc", "aud": project, "uid": "org_9:user_2abc",
		"tid": tenant, "pid": project, "tier": "2", "sid": "sess_abc",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(15 * time.Minute).Unix(), "jti": "jti_9",
	}
}

// TestMintedEdDSA signs with jwx (as a real minter would) and checks every identity field.
func TestMintedEdDSA(t *testing.T) {
	clock := newClock()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	privJWK, err := jwk.Import(priv)
	must(t, err)
	must(t, privJWK.Set(jwk.KeyIDKey, "m1"))
	pubJWK, err := jwk.PublicKeyOf(privJWK)
	must(t, err)

	tok := jwt.New()
	for k, v := range mintedClaims(clock.Now()) {
		switch k {
		case "iat", "nbf", "exp":
			v = time.Unix(v.(int64), 0)
		}
		must(t, tok.Set(k, v))
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.EdDSA(), privJWK))
	must(t, err)

	v := newTestVerifier(t, Config{MintedKeys: keySource{"m1": pubJWK}, Projects: []Project{mintedProject()}, Now: clock.Now})
	id, err := v.Verify(context.Background(), string(signed))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := Identity{
		TenantID: tenant, ProjectID: project, UserID: "org_9:user_2abc", OrgID: "org_9", Tier: "2", SessionID: "sess_abc",
		Issuer: testIssuer, TokenID: "jti_9", Minted: true,
		IssuedAt: clock.Now(), ExpiresAt: clock.Now().Add(15 * time.Minute),
	}
	got := *id
	got.Claims = nil
	if got.IssuedAt.Equal(want.IssuedAt) && got.ExpiresAt.Equal(want.ExpiresAt) {
		got.IssuedAt, got.ExpiresAt = want.IssuedAt, want.ExpiresAt
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("identity\n got %+v\nwant %+v", got, want)
	}
	if id.Claims["exp"] != clock.Now().Add(15*time.Minute).Unix() || id.Claims["sid"] != "sess_abc" {
		t.Errorf("claims = %v", id.Claims)
	}
}

func TestMintedES256(t *testing.T) {
	clock := newClock()
	k := newEC(t, "m-ec", elliptic.P256(), "ES256")
	v := newTestVerifier(t, Config{MintedKeys: keySource{"m-ec": k.jwk(t, false)}, Projects: []Project{mintedProject()}, Now: clock.Now})
	id, err := v.Verify(context.Background(), k.sign(t, mintedClaims(clock.Now()), map[string]any{"typ": "behest+jwt"}))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !id.Minted || id.UserID != "org_9:user_2abc" || id.Tier != "2" {
		t.Errorf("identity = %+v", id)
	}
}

func TestMintedRejected(t *testing.T) {
	clock := newClock()
	ed := newEd25519(t, "m1")
	ec := newEC(t, "m-ec", elliptic.P256(), "ES256")
	rsaKey := newRSA(t, "m-rsa")
	other := newEd25519(t, "m1") // same kid, another key
	keys := keySource{"m1": ed.jwk(t, false), "m-ec": ec.jwk(t, false), "m-rsa": rsaKey.jwk(t, false)}
	second := Project{ID: "p_other", TenantID: "t_other", DefaultTier: "1"}
	v := newTestVerifier(t, Config{MintedKeys: keys, Projects: []Project{mintedProject(), second}, Now: clock.Now})
	base := mintedClaims(clock.Now())

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"wrong tid", ed.sign(t, with(base, map[string]any{"tid": "t_999"}), nil), ErrPermission},
		{"tid of another project", ed.sign(t, with(base, map[string]any{"tid": "t_other"}), nil), ErrPermission},
		{"no tid", ed.sign(t, with(base, map[string]any{"tid": nil}), nil), ErrPermission},
		{"unknown pid", ed.sign(t, with(base, map[string]any{"pid": "p_999", "aud": "p_999"}), nil), ErrPermission},
		{"no pid", ed.sign(t, with(base, map[string]any{"pid": nil}), nil), ErrMissingClaim},
		{"aud of another project", ed.sign(t, with(base, map[string]any{"aud": "p_other"}), nil), ErrAudience},
		{"no aud", ed.sign(t, with(base, map[string]any{"aud": nil}), nil), ErrAudience},
		{"RS256 is not a minted alg", rsaKey.sign(t, base, nil), ErrAlgorithm},
		{"ES256 header on an Ed25519 key", ed.sign(t, base, map[string]any{"alg": "ES256"}), ErrAlgorithm},
		{"unknown kid", ed.sign(t, base, map[string]any{"kid": "m9"}), ErrUnknownKey},
		{"another key under the kid", other.sign(t, base, nil), ErrSignature},
		{"expired", ed.sign(t, with(base, map[string]any{"exp": clock.Now().Add(-time.Hour).Unix()}), nil), ErrExpired},
		{"no uid", ed.sign(t, with(base, map[string]any{"uid": nil, "sub": nil}), nil), ErrMissingClaim},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %+v, %v; want %v", id, err, tt.want)
			}
		})
	}
}

// TestMintedDisabled: without MintedKeys, the gateway's own iss is just an unknown issuer.
func TestMintedDisabled(t *testing.T) {
	clock := newClock()
	ed := newEd25519(t, "m1")
	v := newTestVerifier(t, Config{Projects: []Project{mintedProject()}, Now: clock.Now})
	if _, err := v.Verify(context.Background(), ed.sign(t, mintedClaims(clock.Now()), nil)); !errors.Is(err, ErrUnknownIssuer) {
		t.Fatalf("err = %v, want ErrUnknownIssuer", err)
	}
}

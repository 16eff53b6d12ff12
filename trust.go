package behest

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/behest/caddy-behest/verifier"
)

// provisionVerifier compiles the projects' trusted issuers and attestation into the verifier.
func (h *Handler) provisionVerifier() error {
	repl := caddy.NewReplacer()
	projects := make([]verifier.Project, 0, len(h.Projects))
	for _, p := range h.Projects {
		vp := verifier.Project{ID: p.ID, TenantID: p.Tenant, DefaultTier: h.projects[p.ID].defaultTier}
		for _, t := range p.Tiers {
			vp.Tiers = append(vp.Tiers, t.Name)
		}
		for _, t := range p.Trust {
			vt := verifier.Trust{
				Issuer:            t.Issuer,
				JWKSURL:           t.JWKSURL,
				Algorithms:        t.Algorithms,
				Audience:          t.Audience,
				AuthorizedParties: t.AuthorizedParties,
				Claims:            t.Claims,
			}
			if t.Secret != "" {
				// Secrets usually come from the environment: secret {env.JWT_SECRET}.
				secret := repl.ReplaceKnown(t.Secret, "")
				if secret == "" {
					return fmt.Errorf("project %s: trust %s: secret %s is empty (is the environment variable set?)", p.ID, t.Issuer, t.Secret)
				}
				vt.Secret = []byte(secret)
			}
			for _, m := range t.TierMap {
				vt.TierMap = append(vt.TierMap, verifier.TierMapping{Value: m.Value, Tier: m.Tier})
			}
			vp.Trust = append(vp.Trust, vt)
		}
		if a := p.Attest; a != nil {
			vp.Attest = &verifier.Attest{Issuer: a.Issuer, JWKSURL: a.JWKSURL, Audience: a.Audience, Algorithms: a.Algorithms}
		}
		projects = append(projects, vp)
	}
	var minted verifier.KeySource = h.keys
	if h.rotation != nil {
		minted = h.rotation
	}
	cacheBytes, cacheOff := h.tokenCache()
	v, err := verifier.New(verifier.Config{
		Issuer:       h.Issuer,
		MintedKeys:   minted,
		Projects:     projects,
		JWKSCacheTTL: time.Duration(h.JWKSCacheTTL),
		CacheBytes:   cacheBytes,
		DisableCache: cacheOff,
		Now:          h.now,
		Logger:       h.logger.Named("verifier"),
		OnFetch: func(issuer string, err error) {
			outcome := "ok"
			if err != nil {
				outcome = "error"
			}
			metrics.jwksFetches.WithLabelValues(issuer, outcome).Inc()
		},
	})
	if err != nil {
		return err
	}
	h.verifier = v
	return nil
}

// attestPolicy is a project's attest block compiled for the request path.
type attestPolicy struct {
	header    string // canonical
	singleUse bool
	tiers     map[string]bool // nil: every tier
}

const defaultAttestHeader = "X-Firebase-AppCheck"

// compileAttest checks a project's attest block (the verifier checks the rest).
func compileAttest(a *Attest, tiers map[string]*tier) (*attestPolicy, error) {
	if a == nil {
		return nil, nil
	}
	ap := &attestPolicy{header: http.CanonicalHeaderKey(a.Header), singleUse: a.SingleUse}
	if a.Header == "" {
		ap.header = defaultAttestHeader
	}
	if slices.Contains(tokenHeaders[:], ap.header) || ap.header == "X-Session-Id" {
		return nil, fmt.Errorf("attest: header %s is taken: pick another", ap.header)
	}
	for _, t := range a.Tiers {
		if _, ok := tiers[t]; !ok {
			return nil, fmt.Errorf("attest: tier %q is not one of the project's tiers", t)
		}
		if ap.tiers == nil {
			ap.tiers = map[string]bool{}
		}
		ap.tiers[t] = true
	}
	return ap, nil
}

// checkAttestation verifies the request's attestation token, and claims a single-use one in the
// store (remembered until it expires, across instances sharing the store).
func (h *Handler) checkAttestation(r *http.Request, p *project, token string) error {
	a, err := h.verifier.VerifyAttestation(r.Context(), p.id, token)
	if err != nil {
		return err
	}
	if !p.attest.singleUse {
		return nil
	}
	if a.ID == "" {
		return fmt.Errorf("%w: a single-use attestation token needs a jti", verifier.ErrAttestation)
	}
	first, err := h.store.Claim(r.Context(), p.id, "attest:"+a.ID, a.ExpiresAt.Add(time.Minute))
	if err != nil {
		return storeFailed("claim", err)
	}
	if !first {
		return errAttestationReplayed
	}
	return nil
}

var errAttestationReplayed = &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error", code: "attestation_replayed",
	message: "This attestation token was used before, and this project accepts each once: get a fresh one (a limited-use token) for each request."}

// applies reports whether requests of tier t must attest.
func (ap *attestPolicy) applies(t *tier) bool {
	return ap != nil && (ap.tiers == nil || ap.tiers[t.name])
}

package behest

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/behest/caddy-behest/limiter"
	"github.com/behest/caddy-behest/mint"
	"github.com/behest/caddy-behest/verifier"
)

func methodNotAllowed(w http.ResponseWriter, allow string) *apiError {
	w.Header().Set("Allow", allow)
	return &apiError{status: http.StatusMethodNotAllowed, typ: "invalid_request_error", code: "method_not_allowed",
		message: "This endpoint only accepts " + allow + "."}
}

// serveJWKS publishes the public keys of minted tokens.
func (h *Handler) serveJWKS(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return h.writeError(w, r, nil, methodNotAllowed(w, "GET"))
	}
	body := h.keys.JWKS()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
	return nil
}

// projectOfAPIKey authenticates a backend call by its project API key.
func (h *Handler) projectOfAPIKey(r *http.Request) (*project, error) {
	key := bearerToken(r)
	if key == "" {
		return nil, unauthorized("No API key provided: send the project API key as 'Authorization: Bearer <key>'.")
	}
	id, ok := h.apiKeys.Lookup(key)
	if !ok {
		return nil, unauthorized("Incorrect API key provided.")
	}
	return h.projects[id], nil
}

// serveMint issues an end-user token to a project's backend.
func (h *Handler) serveMint(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return h.writeError(w, r, nil, methodNotAllowed(w, "POST"))
	}
	p, err := h.projectOfAPIKey(r)
	if err != nil {
		return h.writeError(w, r, nil, err)
	}
	req, err := mint.DecodeRequest(r.Body)
	if err != nil {
		var fe *mint.FieldError
		if errors.As(err, &fe) {
			return h.writeError(w, r, p, badRequest("invalid_request", fe.Field, fe.Message))
		}
		return h.writeError(w, r, p, badRequest("invalid_request", "", "The request body could not be read."))
	}
	tierName := req.Tier
	if tierName == "" {
		tierName = p.defaultTier
	} else if _, ok := p.tiers[tierName]; !ok {
		return h.writeError(w, r, p, badRequest("invalid_request", "tier",
			"tier "+strconv.Quote(req.Tier)+" is not one of the project's tiers."))
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = min(defaultTTL, p.maxTTL)
	}
	if ttl < minTTL || ttl > p.maxTTL {
		return h.writeError(w, r, p, badRequest("invalid_request", "ttl",
			"ttl must be between "+strconv.Itoa(int(minTTL.Seconds()))+" and "+strconv.Itoa(int(p.maxTTL.Seconds()))+" seconds."))
	}
	tok, err := h.minter.Mint(mint.Claims{TenantID: p.tenant, ProjectID: p.id, UserID: req.UserID, Tier: tierName, TTL: ttl})
	if err != nil {
		return h.writeError(w, r, p, err)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, tok)
	return nil
}

type revokeRequest struct {
	SessionID string `json:"session_id"`
	UserID    string `json:"user_id"`
}

// serveRevoke refuses from now on every token of a session or of a user issued until now.
func (h *Handler) serveRevoke(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return h.writeError(w, r, nil, methodNotAllowed(w, "POST"))
	}
	p, err := h.projectOfAPIKey(r)
	if err != nil {
		return h.writeError(w, r, nil, err)
	}
	var req revokeRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, mint.MaxRequestBytes))
	if err := dec.Decode(&req); err != nil {
		return h.writeError(w, r, p, badRequest("invalid_request", "", "The body must be a JSON object with session_id or user_id."))
	}
	kind, id := limiter.RevokeSession, req.SessionID
	switch {
	case req.SessionID != "" && req.UserID != "":
		return h.writeError(w, r, p, badRequest("invalid_request", "session_id", "Give session_id or user_id, not both."))
	case req.UserID != "":
		kind, id = limiter.RevokeUser, req.UserID
	case req.SessionID == "":
		return h.writeError(w, r, p, badRequest("invalid_request", "session_id", "session_id or user_id is required."))
	}
	now := h.now()
	if err := h.store.Revoke(r.Context(), p.id, kind, id, now); err != nil {
		return h.writeError(w, r, p, storeFailed("revoke", err))
	}
	// Tokens carry iat in whole seconds, so one minted later in this second would look revoked:
	// answer once the second is over, and every token minted after the answer is valid.
	if wait := now.Truncate(time.Second).Add(time.Second).Sub(h.now()); wait > 0 {
		select {
		case <-time.After(wait):
		case <-r.Context().Done():
		}
	}
	h.logger.Info("revoked", zap.String("project", p.id), zap.String("kind", kind), zap.String("id", id))
	writeJSON(w, http.StatusOK, map[string]any{"object": "revocation", "revoked": true, kind + "_id": id, "revoked_at": now.Unix()})
	return nil
}

// serveMe tells the caller its identity, tier and what is left of each limit.
func (h *Handler) serveMe(w http.ResponseWriter, r *http.Request, p *project, id *verifier.Identity, sid string) error {
	if r.Method != http.MethodGet {
		return h.writeError(w, r, p, methodNotAllowed(w, "GET"))
	}
	if err := h.checkRevoked(r, id, sid); err != nil {
		return h.writeError(w, r, p, err)
	}
	t := p.tierOf(id.Tier)
	rem, err := h.store.Remaining(r.Context(), h.now(), h.limitRequest(p, t, id, sid, "", 0, 0))
	if err != nil {
		return h.writeError(w, r, p, storeFailed("remaining", err))
	}
	limits := map[string]any{}
	addInt := func(name string, limit, left int64) {
		if limit > 0 {
			limits[name] = map[string]int64{"limit": limit, "remaining": max(left, 0)}
		}
	}
	addUSD := func(name string, limit, left limiter.Nanos) {
		if limit > 0 {
			limits[name] = map[string]float64{"limit": limit.Dollars(), "remaining": max(left, 0).Dollars()}
		}
	}
	addInt("requests_per_minute", t.limits.RequestsPerMinute, rem.RequestsPerMinute)
	addInt("tokens_per_minute", t.limits.TokensPerMinute, rem.TokensPerMinute)
	addInt("tokens_per_day", t.limits.TokensPerDay, rem.TokensPerDay)
	addUSD("cost_per_day", t.limits.CostPerDay, rem.CostPerDay)
	addUSD("cost_per_month", t.limits.CostPerMonth, rem.CostPerMonth)
	addInt("concurrent_requests", t.limits.ConcurrentRequests, rem.ConcurrentRequests)
	addUSD("project_cost_per_month", p.costPerMonth, rem.ProjectCostPerMonth)
	if t.maxOutput > 0 {
		limits["max_output_tokens"] = t.maxOutput
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "me", "tenant_id": id.TenantID, "project_id": id.ProjectID, "user_id": id.UserID,
		"tier": t.name, "session_id": sid, "expires_at": id.ExpiresAt.Unix(), "limits": limits,
	})
	return nil
}

// checkRevoked refuses a token whose session or user was revoked after it was issued.
func (h *Handler) checkRevoked(r *http.Request, id *verifier.Identity, sid string) error {
	for _, k := range [...]struct{ kind, id string }{{limiter.RevokeUser, id.UserID}, {limiter.RevokeSession, sid}} {
		if k.id == "" {
			continue
		}
		at, err := h.store.RevokedBefore(r.Context(), id.ProjectID, k.kind, k.id)
		if err != nil {
			return storeFailed("remaining", err)
		}
		if !at.IsZero() && !id.IssuedAt.After(at) {
			return errRevoked
		}
	}
	return nil
}

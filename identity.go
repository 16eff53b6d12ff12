package behest

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/behest/caddy-behest/verifier"
)

// authenticate verifies the request's bearer token.
func (h *Handler) authenticate(r *http.Request) (*verifier.Identity, error) {
	token := bearerToken(r)
	if token == "" {
		return nil, errNoToken
	}
	return h.verifier.Verify(r.Context(), token)
}

// bearerToken returns the token of an "Authorization: Bearer <token>" header, or "".
func bearerToken(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return ""
	}
	return strings.TrimSpace(auth[len(prefix):])
}

const maxSessionIDLen = 128

// sessionID is the session a request counts towards: the token's own sid when it has one (it is
// bound to the token, so a client can neither move its spend elsewhere nor step around a
// revoked session); otherwise the client's X-Session-Id. "" when neither names one.
func sessionID(id *verifier.Identity, r *http.Request) string {
	if id.SessionID != "" {
		return id.SessionID
	}
	return r.Header.Get("X-Session-Id")
}

// validSessionID keeps session ids short and printable, since they become upstream headers,
// usage keys and log fields.
func validSessionID(s string) bool {
	if len(s) > maxSessionIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// setIdentity removes the client's credentials and identity headers and sets the verified ones,
// as upstream headers and placeholders.
func setIdentity(r *http.Request, id *verifier.Identity, sid string) {
	hdr := r.Header
	hdr.Del("Authorization")
	hdr.Del("X-Session-Id")
	// These pick the provider account that is billed and whose stored data is reachable: the
	// operator sets them (header_up), never an end user.
	hdr.Del("Openai-Organization")
	hdr.Del("Openai-Project")
	for name := range hdr {
		// Header names are canonical ("X-Behest-User-Id"), so the spoofed ones share this prefix.
		if len(name) >= len("X-Behest-") && strings.EqualFold(name[:len("X-Behest-")], "X-Behest-") {
			delete(hdr, name)
		}
	}
	hdr.Set("X-Behest-Tenant-Id", id.TenantID)
	hdr.Set("X-Behest-Project-Id", id.ProjectID)
	hdr.Set("X-Behest-User-Id", id.UserID)
	hdr.Set("X-Behest-Tier", id.Tier)
	if sid != "" {
		hdr.Set("X-Behest-Session-Id", sid)
	}

	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	repl.Set("http.behest.tenant_id", id.TenantID)
	repl.Set("http.behest.project_id", id.ProjectID)
	repl.Set("http.behest.user_id", id.UserID)
	repl.Set("http.behest.tier", id.Tier)
	repl.Set("http.behest.session_id", sid)
	repl.Set("http.auth.user.id", id.UserID)
	claims := id.Claims
	repl.Map(func(key string) (any, bool) {
		name, ok := strings.CutPrefix(key, "http.behest.claims.")
		if !ok {
			return nil, false
		}
		v, ok := claims[name]
		if !ok {
			return nil, false
		}
		switch v.(type) {
		case map[string]any, []any:
			b, err := json.Marshal(v)
			return string(b), err == nil
		}
		return v, true
	})
}

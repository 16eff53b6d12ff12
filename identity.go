package behest

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/behest/caddy-behest/verifier"
)

// authenticate verifies the request's token.
func (h *Handler) authenticate(r *http.Request) (*verifier.Identity, error) {
	token, err := requestToken(r)
	if err != nil {
		return nil, err
	}
	return h.verifier.Verify(r.Context(), token)
}

// tokenHeaders are where the official SDKs send a key: Authorization: Bearer (OpenAI, and
// Anthropic's and Gemini's for authToken), x-api-key (Anthropic), x-goog-api-key (Gemini).
// Every one of them is removed before a request goes on.
var tokenHeaders = [...]string{"Authorization", "X-Api-Key", "X-Goog-Api-Key"}

var (
	errTwoTokens = badRequest("invalid_request", "",
		"The request carries more than one token (two Authorization headers, or Authorization, x-api-key and x-goog-api-key that differ); send one.")
	errTokenInQuery = unauthorized("Send the token in a header (Authorization: Bearer, x-api-key or x-goog-api-key), never in the URL (?key=): URLs are logged.")
)

// requestToken returns the request's one token. Each token header may appear once, and those
// present must agree: otherwise the gateway and the provider could each read another one.
func requestToken(r *http.Request) (string, error) {
	if r.URL.RawQuery != "" && r.URL.Query().Has("key") {
		return "", errTokenInQuery
	}
	token := ""
	for _, name := range tokenHeaders {
		values := r.Header[name]
		if len(values) == 0 {
			continue
		}
		if len(values) > 1 {
			return "", errTwoTokens
		}
		v := strings.TrimSpace(values[0])
		if name == "Authorization" {
			v = bearer(v)
		}
		switch {
		case v == "":
			return "", errNoToken
		case token != "" && v != token:
			return "", errTwoTokens
		}
		token = v
	}
	if token == "" {
		return "", errNoToken
	}
	return token, nil
}

// bearerToken returns the token of the request's one "Authorization: Bearer <token>" header, or
// "" (also when there are several).
func bearerToken(r *http.Request) string {
	if values := r.Header["Authorization"]; len(values) == 1 {
		return bearer(values[0])
	}
	return ""
}

// bearer returns the token of an Authorization value "Bearer <token>", or "".
func bearer(auth string) string {
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
	for _, name := range tokenHeaders {
		delete(hdr, name)
	}
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
	if id.OrgID != "" {
		hdr.Set("X-Behest-Org-Id", id.OrgID)
	}
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
	repl.Set("http.behest.org_id", id.OrgID)
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

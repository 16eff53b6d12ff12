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
// The header values are in vals, which must outlive the request's headers.
func setIdentity(r *http.Request, id *verifier.Identity, sid string, vals *identityValues) {
	hdr := r.Header
	for _, name := range tokenHeaders {
		delete(hdr, name)
	}
	delete(hdr, "X-Session-Id") // the names here are canonical already
	// These pick the provider account that is billed and whose stored data is reachable: the
	// operator sets them (header_up), never an end user.
	delete(hdr, "Openai-Organization")
	delete(hdr, "Openai-Project")
	for name := range hdr {
		// Header names are canonical ("X-Behest-User-Id"), so the spoofed ones share this prefix.
		if len(name) >= len("X-Behest-") && strings.EqualFold(name[:len("X-Behest-")], "X-Behest-") {
			delete(hdr, name)
		}
	}
	// Each header's slice points into vals: no allocation of their own.
	*vals = identityValues{id.TenantID, id.ProjectID, id.UserID, id.Tier, id.OrgID, sid}
	hdr["X-Behest-Tenant-Id"] = vals[0:1:1]
	hdr["X-Behest-Project-Id"] = vals[1:2:2]
	hdr["X-Behest-User-Id"] = vals[2:3:3]
	hdr["X-Behest-Tier"] = vals[3:4:4]
	if id.OrgID != "" {
		hdr["X-Behest-Org-Id"] = vals[4:5:5]
	}
	if sid != "" {
		hdr["X-Behest-Session-Id"] = vals[5:6:6]
	}

	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(identityPlaceholders{id, sid}.replace)
	}
}

// identityValues are the values of a request's identity headers.
type identityValues [6]string

// identityPlaceholders answers the {http.behest.*} placeholders (and {http.auth.user.id}) of a
// request from its verified identity, when asked: most requests ask for none.
type identityPlaceholders struct {
	id  *verifier.Identity
	sid string
}

func (ip identityPlaceholders) replace(key string) (any, bool) {
	if key == "http.auth.user.id" {
		return ip.id.UserID, true
	}
	name, ok := strings.CutPrefix(key, "http.behest.")
	if !ok {
		return nil, false
	}
	switch name {
	case "tenant_id":
		return ip.id.TenantID, true
	case "project_id":
		return ip.id.ProjectID, true
	case "user_id":
		return ip.id.UserID, true
	case "org_id":
		return ip.id.OrgID, true
	case "tier":
		return ip.id.Tier, true
	case "session_id":
		return ip.sid, true
	}
	claim, ok := strings.CutPrefix(name, "claims.")
	if !ok {
		return nil, false
	}
	v, ok := ip.id.Claims[claim]
	if !ok {
		return nil, false
	}
	switch v.(type) {
	case map[string]any, []any:
		b, err := json.Marshal(v)
		return string(b), err == nil
	}
	return v, true
}

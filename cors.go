package behest

import (
	"net/http"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/behest/caddy-behest/meter"
)

// corsPolicy answers browsers for the projects' cors_origins, so each official SDK works from a
// web page (dangerouslyAllowBrowser) with a gateway token.
type corsPolicy struct {
	// anyProject holds every project's origins: before a token is verified (preflights, 401s)
	// the project is not known yet.
	anyProject map[string]struct{}
	// headers are the request headers a page may send: every dialect's SDK's, and ours;
	// prefixes are those given as "x-stainless-*".
	headers  map[string]struct{}
	prefixes []string
}

// gatewayRequestHeaders are the request headers of the gateway's own: the session a client
// names.
var gatewayRequestHeaders = []string{"x-session-id"}

func newCORSPolicy(projects map[string]*project) corsPolicy {
	c := corsPolicy{anyProject: make(map[string]struct{}), headers: make(map[string]struct{})}
	for _, p := range projects {
		for o := range p.origins {
			c.anyProject[o] = struct{}{}
		}
	}
	names := slices.Clone(gatewayRequestHeaders)
	for _, d := range meter.Dialects() {
		names = append(names, d.RequestHeaders()...)
	}
	for _, p := range projects {
		if p.attest != nil {
			names = append(names, strings.ToLower(p.attest.header))
		}
	}
	for _, n := range names {
		if prefix, ok := strings.CutSuffix(n, "*"); ok {
			if !slices.Contains(c.prefixes, prefix) {
				c.prefixes = append(c.prefixes, prefix)
			}
			continue
		}
		c.headers[n] = struct{}{}
	}
	return c
}

const (
	corsAllowMethods = "GET, POST, OPTIONS"
	// corsExposeHeaders lets the SDKs read the rate-limit and retry headers from a page.
	corsExposeHeaders = "x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, " +
		"x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens, " +
		"retry-after, retry-after-ms, x-should-retry, x-request-id"
	corsMaxAge = "600"
)

func (c corsPolicy) allowedRequestHeader(name string) bool {
	name = strings.ToLower(strings.TrimSpace(name))
	if _, ok := c.headers[name]; ok {
		return true
	}
	for _, p := range c.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// origin returns the request's Origin when p (or, when p is nil, any project) allows it.
func (c corsPolicy) origin(r *http.Request, p *project) string {
	o := r.Header.Get("Origin")
	if o == "" {
		return ""
	}
	set := c.anyProject
	if p != nil {
		set = p.origins
	}
	if _, ok := set[o]; ok {
		return o
	}
	return ""
}

// allow sets the CORS response headers for an actual (non-preflight) request.
func (c corsPolicy) allow(w http.ResponseWriter, r *http.Request, p *project) {
	setCORSHeaders(w.Header(), c.origin(r, p))
}

func setCORSHeaders(h http.Header, origin string) {
	if origin == "" {
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
	h.Add("Vary", "Origin")
}

// preflight answers an OPTIONS preflight. An origin no project allows gets no CORS headers, which
// the browser takes as a refusal; the provider never sees preflights.
func (h *Handler) preflight(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	hdr := w.Header()
	hdr.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	origin := h.cors.origin(r, nil)
	if origin == "" {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	var allowed []string
	for _, line := range r.Header.Values("Access-Control-Request-Headers") {
		for _, name := range strings.Split(line, ",") {
			if name = strings.TrimSpace(name); name != "" && h.cors.allowedRequestHeader(name) {
				allowed = append(allowed, strings.ToLower(name))
			}
		}
	}
	hdr.Set("Access-Control-Allow-Origin", origin)
	hdr.Set("Access-Control-Allow-Methods", corsAllowMethods)
	if len(allowed) > 0 {
		hdr.Set("Access-Control-Allow-Headers", strings.Join(allowed, ", "))
	}
	hdr.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Package dashboard serves Behest's operator dashboard: one HTML page and the scripts, styles and
// icon it loads, all embedded in the binary and served from one path. The page talks to the
// gateway's usage and revoke endpoints with the project API key the operator pastes in.
//
// It is a plain net/http handler and does not import Caddy; the behest module mounts it at
// dashboard_path. Use it only behind the gateway that serves the usage and revoke endpoints the
// Config names: the page holds no data of its own.
//
// Elements tests can rely on (data-testid): api-key, sign-in, sign-out, error (the one place
// errors are shown, moved next to what failed), month-spend (the amount as text, the exact
// figure in data-usd), budget (empty without one), budget-percent, spend-chart, export-csv,
// export-group, month-prev, month-next, refresh, top-users, top-orgs, top-sessions and
// top-models (tables whose body rows carry data-key), revoke (a row's button), revoke-dialog,
// confirm-revoke, cancel-revoke, revoke-result, user-id, show-user, user-usage, user-models,
// user-sessions, revoke-user, revoke-id, revoke-open, notice.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// pageFile is the page's template; every other file under static/ is served as an asset.
const pageFile = "index.html"

// ContentSecurityPolicy is sent with every response: scripts, styles, images and fetches from
// this origin only, no inline script or style, no framing, no form posts.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// contentTypes are the types of the files the dashboard embeds; New refuses any other extension
// so a file is never served with a guessed type.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// Config is what the page needs to know of the gateway.
type Config struct {
	// Path is where the dashboard is served, e.g. "/behest/dashboard" (no trailing slash). The
	// page is Path itself and its assets are under Path+"/".
	Path string
	// UsagePath is the gateway's usage endpoint, e.g. "/v1/usage".
	UsagePath string
	// RevokePath is the gateway's revoke endpoint, e.g. "/v1/auth/revoke".
	RevokePath string
}

// Handler serves the dashboard page at its Path and the page's assets under Path+"/". It is
// immutable after New and safe for concurrent use.
type Handler struct {
	path   string
	page   []byte
	assets map[string]asset // by name relative to path+"/", e.g. "app.js"
}

type asset struct {
	body        []byte
	contentType string
	etag        string
}

// New renders the page for cfg and indexes the embedded assets. It fails when a path in cfg is
// not a clean absolute path.
func New(cfg Config) (*Handler, error) {
	if cfg.Path == "" || cfg.Path[0] != '/' || cfg.Path == "/" || path.Clean(cfg.Path) != cfg.Path {
		return nil, fmt.Errorf("dashboard path %q must be a clean absolute path without a trailing slash, like /behest/dashboard", cfg.Path)
	}
	for _, p := range []struct{ name, value string }{{"usage path", cfg.UsagePath}, {"revoke path", cfg.RevokePath}} {
		if p.value == "" || p.value[0] != '/' {
			return nil, fmt.Errorf("dashboard: %s %q must be an absolute path, like /v1/usage", p.name, p.value)
		}
	}
	h := &Handler{path: cfg.Path, assets: map[string]asset{}}
	var modules []string
	err := fs.WalkDir(static, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := strings.TrimPrefix(name, "static/")
		if rel == pageFile {
			return nil
		}
		ct, ok := contentTypes[path.Ext(rel)]
		if !ok {
			return fmt.Errorf("dashboard asset %s: no content type for its extension", rel)
		}
		body, err := static.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		h.assets[rel] = asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		if path.Ext(rel) == ".js" && rel != "app.js" {
			modules = append(modules, rel)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(modules)
	tmpl, err := template.ParseFS(static, "static/"+pageFile)
	if err != nil {
		return nil, fmt.Errorf("dashboard page: %v", err)
	}
	var page bytes.Buffer
	err = tmpl.Execute(&page, struct {
		Config
		Modules []string
	}{cfg, modules})
	if err != nil {
		return nil, fmt.Errorf("dashboard page: %v", err)
	}
	h.page = page.Bytes()
	return h, nil
}

// Match reports whether a request path belongs to the dashboard: its Path or anything under
// Path+"/". The Handler answers every path it matches, with 404 for those it has nothing at.
func (h *Handler) Match(urlPath string) bool {
	return urlPath == h.path || strings.HasPrefix(urlPath, h.path+"/")
}

// ServeHTTP answers GET and HEAD of the page and its assets. Every response, errors included,
// carries the Content-Security-Policy.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")

	if !h.Match(r.URL.Path) {
		writeError(w, http.StatusNotFound, "not_found", "There is nothing at this path.")
		return
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, h.path), "/")
	a, isAsset := h.assets[rel]
	if r.URL.Path != h.path && r.URL.Path != h.path+"/" && !isAsset {
		writeError(w, http.StatusNotFound, "not_found", "The dashboard has no file at this path.")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "The dashboard only answers GET and HEAD.")
		return
	}
	switch {
	case r.URL.Path == h.path+"/":
		// A trailing slash is a typo, not another page: send it to the one URL the page has.
		http.Redirect(w, r, h.path, http.StatusPermanentRedirect)
	case r.URL.Path == h.path:
		// The page is tiny and names the API paths, so it is never stored.
		hdr.Set("Content-Type", contentTypes[".html"])
		hdr.Set("Cache-Control", "no-store")
		hdr.Set("Content-Length", strconv.Itoa(len(h.page)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(h.page)
		}
	default:
		// Assets are cached but revalidated on every load (ETag, 304): the modules import each
		// other, so after an upgrade a browser must never mix old and new ones.
		hdr.Set("Content-Type", a.contentType)
		hdr.Set("Cache-Control", "no-cache")
		hdr.Set("ETag", a.etag)
		http.ServeContent(w, r, rel, time.Time{}, bytes.NewReader(a.body))
	}
}

// writeError answers in the gateway's OpenAI-shaped error format, so a client sees one error
// shape whatever path it got wrong.
func writeError(w http.ResponseWriter, status int, code, message string) {
	body := fmt.Sprintf(`{"error":{"message":%q,"type":"invalid_request_error","param":null,"code":%q}}`+"\n", message, code)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

package dashboard

import (
	"encoding/xml"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

var testConfig = Config{Path: "/behest/dashboard", UsagePath: "/v1/usage", RevokePath: "/v1/auth/revoke"}

func newHandler(t *testing.T, cfg Config) *Handler {
	t.Helper()
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return h
}

func serve(h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestNewRefusesBadPaths(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"empty path", Config{UsagePath: "/u", RevokePath: "/r"}, "dashboard path"},
		{"relative path", Config{Path: "dash", UsagePath: "/u", RevokePath: "/r"}, "dashboard path"},
		{"root", Config{Path: "/", UsagePath: "/u", RevokePath: "/r"}, "dashboard path"},
		{"trailing slash", Config{Path: "/dash/", UsagePath: "/u", RevokePath: "/r"}, "dashboard path"},
		{"unclean", Config{Path: "/a/../dash", UsagePath: "/u", RevokePath: "/r"}, "dashboard path"},
		{"no usage path", Config{Path: "/dash", RevokePath: "/r"}, "usage path"},
		{"relative revoke path", Config{Path: "/dash", UsagePath: "/u", RevokePath: "r"}, "revoke path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(%+v) = %v, want an error naming the %s", tc.cfg, err, tc.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	h := newHandler(t, testConfig)
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/behest/dashboard", true},
		{"/behest/dashboard/", true},
		{"/behest/dashboard/app.js", true},
		{"/behest/dashboard/nope", true},
		{"/behest/dashboardx", false},
		{"/behest", false},
		{"/v1/usage", false},
		{"/", false},
	} {
		if got := h.Match(tc.path); got != tc.want {
			t.Errorf("Match(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

func TestServe(t *testing.T) {
	h := newHandler(t, testConfig)
	for _, tc := range []struct {
		method, path string
		status       int
		contentType  string
		cache        string
		body         string // a substring of the body
		allow        string
	}{
		{"GET", "/behest/dashboard", 200, "text/html; charset=utf-8", "no-store", `<meta name="behest-usage-path" content="/v1/usage">`, ""},
		{"GET", "/behest/dashboard/app.js", 200, "text/javascript; charset=utf-8", "no-cache", "import", ""},
		{"GET", "/behest/dashboard/api.js", 200, "text/javascript; charset=utf-8", "no-cache", "export class Api", ""},
		{"GET", "/behest/dashboard/chart.js", 200, "text/javascript; charset=utf-8", "no-cache", "StackedBars", ""},
		{"GET", "/behest/dashboard/style.css", 200, "text/css; charset=utf-8", "no-cache", ":root", ""},
		{"GET", "/behest/dashboard/favicon.svg", 200, "image/svg+xml", "no-cache", "<svg", ""},
		{"GET", "/behest/dashboard/", 308, "", "", "", ""},
		{"GET", "/behest/dashboard/index.html", 404, "application/json", "", `"code":"not_found"`, ""},
		{"GET", "/behest/dashboard/missing.js", 404, "application/json", "", `"code":"not_found"`, ""},
		{"GET", "/behest/dashboard/static/app.js", 404, "application/json", "", `"code":"not_found"`, ""},
		{"GET", "/elsewhere", 404, "application/json", "", `"code":"not_found"`, ""},
		{"POST", "/behest/dashboard", 405, "application/json", "", `"code":"method_not_allowed"`, "GET, HEAD"},
		{"DELETE", "/behest/dashboard/app.js", 405, "application/json", "", `"code":"method_not_allowed"`, "GET, HEAD"},
		{"POST", "/behest/dashboard/missing.js", 404, "application/json", "", `"code":"not_found"`, ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			rec := serve(h, tc.method, tc.path, nil)
			res := rec.Result()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			for k, want := range map[string]string{
				"Content-Security-Policy": ContentSecurityPolicy,
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
				"Content-Type":            tc.contentType,
				"Cache-Control":           tc.cache,
				"Allow":                   tc.allow,
			} {
				if want == "" && (k == "Content-Type" || k == "Cache-Control") {
					continue
				}
				if got := res.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if tc.status == 308 {
				if loc := res.Header.Get("Location"); loc != "/behest/dashboard" {
					t.Errorf("Location %q, want /behest/dashboard", loc)
				}
			}
			if body := rec.Body.String(); !strings.Contains(body, tc.body) {
				t.Errorf("body does not contain %q:\n%.300s", tc.body, body)
			}
		})
	}
}

func TestCSPForbidsInlineAndOtherOrigins(t *testing.T) {
	directives := map[string]string{}
	for _, d := range strings.Split(ContentSecurityPolicy, ";") {
		f := strings.Fields(d)
		directives[f[0]] = strings.Join(f[1:], " ")
	}
	for name, want := range map[string]string{
		"default-src": "'none'", "script-src": "'self'", "style-src": "'self'", "img-src": "'self' data:",
		"connect-src": "'self'", "font-src": "'self'", "base-uri": "'none'", "form-action": "'none'",
		"frame-ancestors": "'none'",
	} {
		if directives[name] != want {
			t.Errorf("%s is %q, want %q", name, directives[name], want)
		}
	}
}

func TestHead(t *testing.T) {
	h := newHandler(t, testConfig)
	for _, p := range []string{"/behest/dashboard", "/behest/dashboard/app.js", "/behest/dashboard/style.css"} {
		get := serve(h, "GET", p, nil)
		head := serve(h, "HEAD", p, nil)
		if head.Code != 200 || head.Body.Len() != 0 {
			t.Errorf("HEAD %s: status %d, %d body bytes; want 200 and none", p, head.Code, head.Body.Len())
		}
		if got, want := head.Header().Get("Content-Length"), get.Header().Get("Content-Length"); got != want || got == "" {
			t.Errorf("HEAD %s: Content-Length %q, GET's is %q", p, got, want)
		}
		if got, want := head.Header().Get("Content-Type"), get.Header().Get("Content-Type"); got != want {
			t.Errorf("HEAD %s: Content-Type %q, GET's is %q", p, got, want)
		}
	}
}

func TestAssetRevalidation(t *testing.T) {
	h := newHandler(t, testConfig)
	first := serve(h, "GET", "/behest/dashboard/app.js", nil)
	etag := first.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on an asset")
	}
	again := serve(h, "GET", "/behest/dashboard/app.js", map[string]string{"If-None-Match": etag})
	if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
		t.Errorf("revalidation: status %d with %d bytes, want 304 and none", again.Code, again.Body.Len())
	}
	if again.Header().Get("Content-Security-Policy") == "" {
		t.Error("304 without the Content-Security-Policy")
	}
	other := serve(h, "GET", "/behest/dashboard/api.js", nil)
	if other.Header().Get("ETag") == etag {
		t.Error("two different assets share an ETag")
	}
}

// element is a start tag of the page, its attributes by lowercase name.
type element struct {
	name  string
	attrs map[string]string
	text  string // character data directly inside, for <script> and <style>
}

// parseHTML reads markup leniently (HTML void elements, entities) and returns every element.
func parseHTML(t *testing.T, name string, markup []byte) []element {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(string(markup)))
	d.Strict = false
	d.AutoClose = xml.HTMLAutoClose
	d.Entity = xml.HTMLEntity
	var out []element
	var open []int
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			el := element{name: strings.ToLower(tok.Name.Local), attrs: map[string]string{}}
			for _, a := range tok.Attr {
				n := strings.ToLower(a.Name.Local)
				if a.Name.Space != "" && a.Name.Space != "xmlns" {
					n = strings.ToLower(a.Name.Space) + ":" + n
				}
				el.attrs[n] = a.Value
			}
			out = append(out, el)
			open = append(open, len(out)-1)
		case xml.EndElement:
			if len(open) > 0 {
				open = open[:len(open)-1]
			}
		case xml.CharData:
			if len(open) > 0 {
				out[open[len(open)-1]].text += string(tok)
			}
		}
	}
	return out
}

// markupFiles are the rendered page and every embedded SVG.
func markupFiles(t *testing.T, h *Handler) map[string][]byte {
	files := map[string][]byte{"page": h.page}
	for name, a := range h.assets {
		if path.Ext(name) == ".svg" {
			files[name] = a.body
		}
	}
	return files
}

func TestMarkupHasNoInlineCode(t *testing.T) {
	h := newHandler(t, testConfig)
	for name, body := range markupFiles(t, h) {
		for _, el := range parseHTML(t, name, body) {
			if el.name == "script" && (el.attrs["src"] == "" || strings.TrimSpace(el.text) != "") {
				t.Errorf("%s: inline <script> (src %q, %d bytes of code)", name, el.attrs["src"], len(el.text))
			}
			if el.name == "style" {
				t.Errorf("%s: inline <style> element", name)
			}
			for attr, v := range el.attrs {
				if attr == "style" {
					t.Errorf("%s: <%s style=%q>", name, el.name, v)
				}
				if strings.HasPrefix(attr, "on") {
					t.Errorf("%s: <%s %s=%q>", name, el.name, attr, v)
				}
				if (attr == "src" || attr == "href" || attr == "action") && (strings.Contains(v, "//") || strings.HasPrefix(strings.ToLower(v), "javascript:")) {
					t.Errorf("%s: <%s %s=%q> leaves this origin", name, el.name, attr, v)
				}
			}
		}
	}
}

func TestPageLoadsOnlyItsOwnAssets(t *testing.T) {
	h := newHandler(t, testConfig)
	refs := 0
	for _, el := range parseHTML(t, "page", h.page) {
		for _, attr := range []string{"src", "href"} {
			v, ok := el.attrs[attr]
			if !ok || el.name == "a" {
				continue
			}
			refs++
			if !strings.HasPrefix(v, testConfig.Path+"/") {
				t.Errorf("<%s %s=%q> is not under the dashboard path", el.name, attr, v)
				continue
			}
			if rec := serve(h, "GET", v, nil); rec.Code != 200 {
				t.Errorf("<%s %s=%q>: status %d", el.name, attr, v, rec.Code)
			}
		}
	}
	if refs < 3 {
		t.Errorf("the page references %d assets, want the script, the style sheet and the icon", refs)
	}
}

var importRE = regexp.MustCompile(`(?m)^\s*import\s[^'"]*['"]([^'"]+)['"]`)

func TestModulesImportEmbeddedFiles(t *testing.T) {
	h := newHandler(t, testConfig)
	for name, a := range h.assets {
		if path.Ext(name) != ".js" {
			continue
		}
		for _, m := range importRE.FindAllStringSubmatch(string(a.body), -1) {
			spec := m[1]
			if !strings.HasPrefix(spec, "./") {
				t.Errorf("%s imports %q: only relative imports of embedded modules are allowed", name, spec)
				continue
			}
			if _, ok := h.assets[path.Join(path.Dir(name), spec)]; !ok {
				t.Errorf("%s imports %q, which is not embedded", name, spec)
			}
		}
	}
}

// TestScriptsAvoidUnsafeAPIs guards the rules the CSP cannot enforce: untrusted ids go in as
// text, and the API key is never stored beyond the tab.
func TestScriptsAvoidUnsafeAPIs(t *testing.T) {
	forbidden := []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
		"localStorage", "document.cookie", "setAttribute('style'", `setAttribute("style"`, "cssText", "http://", "https://", "window.confirm"}
	err := fs.WalkDir(static, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(name) != ".js" {
			return err
		}
		body, err := static.ReadFile(name)
		if err != nil {
			return err
		}
		// The SVG namespace is a name, not a URL anything is loaded from.
		src := strings.ReplaceAll(string(body), "'http://www.w3.org/2000/svg'", "")
		for _, f := range forbidden {
			if strings.Contains(src, f) {
				t.Errorf("%s uses %s", name, f)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPageHasTestIDs(t *testing.T) {
	h := newHandler(t, testConfig)
	ids := map[string]element{}
	for _, el := range parseHTML(t, "page", h.page) {
		if id, ok := el.attrs["data-testid"]; ok {
			if _, dup := ids[id]; dup {
				t.Errorf("data-testid %q appears twice", id)
			}
			ids[id] = el
		}
	}
	for _, tc := range []struct{ id, tag, typ string }{
		// Named by the contract.
		{"api-key", "input", "password"},
		{"sign-in", "button", ""},
		{"month-spend", "", ""},
		{"budget", "", ""},
		{"spend-chart", "", ""},
		{"top-users", "table", ""},
		{"export-csv", "button", ""},
		// Named by the dashboard for its own tests.
		{"error", "", ""},
		{"sign-out", "button", ""},
		{"confirm-revoke", "button", ""},
		{"cancel-revoke", "button", ""},
		{"revoke-dialog", "dialog", ""},
		{"revoke-result", "", ""},
		{"top-orgs", "table", ""},
		{"top-sessions", "table", ""},
		{"top-models", "table", ""},
		{"user-id", "input", ""},
		{"show-user", "button", ""},
		{"user-usage", "", ""},
		{"revoke-user", "button", ""},
		{"user-models", "table", ""},
		{"user-sessions", "table", ""},
		{"revoke-id", "input", ""},
		{"revoke-open", "button", ""},
		{"budget-percent", "", ""},
		{"export-group", "select", ""},
		{"month-prev", "button", ""},
		{"month-next", "button", ""},
		{"refresh", "button", ""},
		{"notice", "", ""},
	} {
		el, ok := ids[tc.id]
		switch {
		case !ok:
			t.Errorf("no element with data-testid %q", tc.id)
		case tc.tag != "" && el.name != tc.tag:
			t.Errorf("data-testid %q is a <%s>, want <%s>", tc.id, el.name, tc.tag)
		case tc.typ != "" && el.attrs["type"] != tc.typ:
			t.Errorf("data-testid %q has type %q, want %q", tc.id, el.attrs["type"], tc.typ)
		}
	}
}

func TestMetaTagsHoldConfiguredPaths(t *testing.T) {
	cfg := Config{Path: "/ops/dash", UsagePath: `/api/usage"><script>alert(1)</script>`, RevokePath: "/api/revoke?a=1&b=2"}
	h := newHandler(t, cfg)
	page := string(h.page)
	if strings.Contains(page, "<script>alert") {
		t.Fatal("a configured path reached the page unescaped")
	}
	metas := map[string]string{}
	for _, el := range parseHTML(t, "page", h.page) {
		if el.name == "meta" && el.attrs["name"] != "" {
			metas[el.attrs["name"]] = el.attrs["content"]
		}
	}
	for name, want := range map[string]string{
		"behest-dashboard-path": cfg.Path,
		"behest-usage-path":     cfg.UsagePath,
		"behest-revoke-path":    cfg.RevokePath,
	} {
		if got := metas[name]; got != want {
			t.Errorf("meta %s = %q, want %q", name, got, want)
		}
	}
	if rec := serve(h, "GET", "/ops/dash/app.js", nil); rec.Code != 200 {
		t.Errorf("asset under the configured path: status %d", rec.Code)
	}
	if !strings.Contains(page, `src="/ops/dash/app.js"`) {
		t.Error("the page does not load app.js from under the configured path")
	}
}

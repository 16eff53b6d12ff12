package behest_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	_ "github.com/behest/caddy-behest"
)

// One Caddy runs in this test process (caddytest's way); every test loads its own config into it.
var gatewayPort int

func TestMain(m *testing.M) {
	// Caddy's storage and data directory (signing key, limits database) go to a fresh place.
	dir, err := os.MkdirTemp("", "behest-e2e-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_DATA_HOME", dir)
	os.Setenv("XDG_CONFIG_HOME", dir)
	caddytest.Default.AdminPort = freePort()
	caddytest.Default.LoadRequestTimeout = 30 * time.Second
	gatewayPort = freePort()
	code := m.Run()
	os.RemoveAll(dir)
	if caddyBuildDir != "" {
		os.RemoveAll(caddyBuildDir) // ~100 MB a run
	}
	os.Exit(code)
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func gatewayURL(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", gatewayPort, path) }

// provider is a fake OpenAI-compatible provider that records what it received.
type provider struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
	bodies   [][]byte
}

func newProvider(t testing.TB) *provider {
	p := &provider{}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.Close)
	return p
}

func (p *provider) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.requests = append(p.requests, r)
	p.bodies = append(p.bodies, body)
	p.mu.Unlock()
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	_ = json.Unmarshal(body, &req)
	switch req.Model {
	case "fail-500":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"error":{"message":"provider exploded","type":"server_error","param":null,"code":null}}`)
		return
	case "drop-stream":
		// One chunk, then the connection dies: no usage record ever arrives.
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, `data: {"id":"c1","object":"chat.completion.chunk","model":"drop-stream","choices":[{"index":0,"delta":{"content":"Hel"}}]}`+"\n\n")
		w.(http.Flusher).Flush()
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
		return
	}
	if req.Stream {
		slow := req.Model == "slow-stream"
		w.Header().Set("Content-Type", "text/event-stream")
		for _, chunk := range []string{
			`{"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":"Hel"}}],"usage":null}`,
			`{"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":"lo"}}],"usage":null}`,
			`{"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12}}`,
		} {
			fmt.Fprintf(w, "data: %s\n\n", chunk)
			w.(http.Flusher).Flush()
			if slow {
				time.Sleep(400 * time.Millisecond)
			}
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// A real provider reports its own account's limits; the gateway must not pass them on.
	w.Header().Set("X-Ratelimit-Limit-Requests", "10000")
	fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"Hello."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`, req.Model)
}

func (p *provider) last(t *testing.T) (*http.Request, []byte) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.requests) == 0 {
		t.Fatal("the provider received no request")
	}
	return p.requests[len(p.requests)-1], p.bodies[len(p.bodies)-1]
}

func (p *provider) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.requests)
}

// issuer is a trusted identity provider (like Clerk) serving its JWKS.
type issuer struct {
	*httptest.Server
	key         *rsa.PrivateKey
	kid         string
	fetches     atomic.Int64 // of the JWKS
	discoveries atomic.Int64 // of the discovery document
	down        atomic.Bool
	mu          sync.Mutex
	serving     []jwk.Key // public keys served
}

func newIssuer(t *testing.T) *issuer {
	raw, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.Import(raw)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: raw, kid: "clerk-key-1"}
	_ = key.Set(jwk.KeyIDKey, is.kid)
	_ = key.Set(jwk.AlgorithmKey, jwa.RS256())
	pub, err := key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	is.serving = []jwk.Key{pub}
	is.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/openid-configuration" {
			// Like Clerk: a discovery document naming the JWKS.
			is.discoveries.Add(1)
			if is.down.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": is.URL, "jwks_uri": is.URL + "/.well-known/jwks.json"})
			return
		}
		is.fetches.Add(1)
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		set := jwk.NewSet()
		is.mu.Lock()
		for _, k := range is.serving {
			_ = set.AddKey(k)
		}
		is.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(is.Close)
	return is
}

// removeKeys makes the issuer serve an empty JWKS.
func (is *issuer) removeKeys() {
	is.mu.Lock()
	is.serving = nil
	is.mu.Unlock()
}

// token signs claims (Clerk template defaults filled in) with the issuer's key and kid.
func (is *issuer) token(t *testing.T, kid string, claims map[string]any) string {
	t.Helper()
	now := time.Now()
	tok := jwt.New()
	base := map[string]any{
		"iss": is.URL, "sub": "user_2abc", "azp": "http://localhost:3000",
		"iat": now.Unix(), "nbf": now.Unix() - 5, "exp": now.Add(time.Minute).Unix(), "jti": "jti-" + kid,
		"tid": "t_123", "pid": "p_456", "uid": "user_2abc", "tier": 2, "email": "a@example.com",
	}
	for k, v := range claims {
		if v == nil {
			delete(base, k)
			continue
		}
		base[k] = v
	}
	for k, v := range base {
		if err := tok.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, kid)
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.RS256(), is.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// gateway loads a config into the test process's Caddy.
func gateway(t *testing.T, caddyfile string) *caddytest.Tester {
	t.Helper()
	tester := caddytest.NewTester(t)
	tester.InitServer(caddyfile, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return tester
}

// config is the e2e Caddyfile: one project, trusting iss, in front of the provider at upstream.
func config(upstream, issuerURL, extraBehest, extraProject string) string {
	trust := ""
	if issuerURL != "" {
		trust = fmt.Sprintf(`trust %s {
				algorithms RS256
				authorized_parties http://localhost:3000
				claim uid uid
			}`, issuerURL)
	}
	return fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	auto_https off
	skip_install_trust
}
http://127.0.0.1:%d {
	behest {
		issuer http://127.0.0.1:%d
		%s
		project p_456 {
			tenant t_123
			api_key test-project-key
			cors_origins http://localhost:3000
			default_tier 1
			%s
			%s
			tier 1 {
				requests_per_minute 100
			}
			tier 2 {
				requests_per_minute 200
			}
		}
		project p_other {
			tenant t_999
			api_key other-project-key
		}
	}
	reverse_proxy %s {
		header_up Authorization "Bearer provider-secret"
	}
}`, caddytest.Default.AdminPort, gatewayPort, gatewayPort, gatewayPort, extraBehest, trust, extraProject, strings.TrimPrefix(upstream, "http://"))
}

type minted struct {
	Token     string `json:"token"`
	TTL       int    `json:"ttl"`
	SessionID string `json:"sessionId"`
	ExpiresAt int64  `json:"expiresAt"`
}

func mintToken(t *testing.T, client *http.Client, key, body string) minted {
	t.Helper()
	resp := do(t, client, "POST", "/v1/auth/mint", key, body, nil)
	b := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mint: status %d: %s", resp.StatusCode, b)
	}
	var m minted
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("mint: %v: %s", err, b)
	}
	return m
}

func do(t *testing.T, client *http.Client, method, path, bearer, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, gatewayURL(path), bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readBody(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantError checks an OpenAI-shaped error response.
func wantError(t *testing.T, resp *http.Response, status int, code string) []byte {
	t.Helper()
	b := readBody(t, resp)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, b)
	}
	var e struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    string  `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, b)
	}
	if e.Error.Code != code || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("error body %s, want code %q with a message and type", b, code)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	return b
}

const chatBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}`

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

package behest_test

// What operators see: metrics on Caddy's admin endpoint, the access log, the dashboard's API.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// scrape reads the admin endpoint's metrics as "name{labels}" -> value.
func scrape(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", caddytest.Default.AdminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "caddy_behest_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsAfterTraffic: the contract's metrics are on Caddy's registry after real traffic,
// with labels from the config only.
func TestMetricsAfterTraffic(t *testing.T) {
	prov := newProvider(t)
	is := newIssuer(t)
	tester := gateway(t, config(prov.URL, is.URL, "", `tier tiny {
				cost_per_day 0.000001
				max_output_tokens 100
			}
			price gpt-4o-mini 0.15 0.60
			cost_per_month 100`))
	c := tester.Client
	before := scrape(t)
	m := mintToken(t, c, "test-project-key", `{"user_id":"user_metrics","tier":2}`)
	for range 3 {
		readBody(t, do(t, c, "POST", "/v1/chat/completions", m.Token, chatBody, nil))
	}
	tiny := mintToken(t, c, "test-project-key", `{"user_id":"user_metrics_tiny","tier":"tiny"}`)
	wantError(t, do(t, c, "POST", "/v1/chat/completions", tiny.Token, chatBody, nil), 429, "insufficient_quota")
	// A request with a made-up path segment must not make a label of its own.
	readBody(t, do(t, c, "POST", "/v1/chat/completions-user_metrics_secret", m.Token, chatBody, nil))
	readBody(t, do(t, c, "POST", "/v1/chat/completions", is.token(t, is.kid, nil), chatBody, nil))

	var after map[string]float64
	eventually(t, func() error {
		after = scrape(t)
		if d := after[`caddy_behest_requests_total{code="ok",project="p_456"}`] - before[`caddy_behest_requests_total{code="ok",project="p_456"}`]; d != 4 {
			return fmt.Errorf("requests ok +%v, want +4", d)
		}
		return nil
	})
	delta := func(name string) float64 { return after[name] - before[name] }
	for name, want := range map[string]float64{
		`caddy_behest_requests_total{code="insufficient_quota",project="p_456"}`: 1,
		`caddy_behest_requests_total{code="permission_denied",project="p_456"}`:  1,
		`caddy_behest_tokens_total{direction="input",project="p_456"}`:           4 * 12,
		`caddy_behest_tokens_total{direction="output",project="p_456"}`:          4 * 3,
		`caddy_behest_admission_duration_seconds_count{store="embedded"}`:        5,
	} {
		if got := delta(name); got != want {
			t.Errorf("%s grew by %v, want %v", name, got, want)
		}
	}
	wantCost := 4 * (12*0.15 + 3*0.60) / 1e6
	if got := delta(`caddy_behest_cost_usd_total{project="p_456"}`); got < wantCost*0.999 || got > wantCost*1.001 {
		t.Errorf("cost grew by %v, want %v", got, wantCost)
	}
	if got := after[`caddy_behest_in_flight{project="p_456"}`]; got != 0 {
		t.Errorf("in flight %v after every request ended", got)
	}
	if got := after[`caddy_behest_project_spend_usd{project="p_456"}`]; got < wantCost*0.999 {
		t.Errorf("project spend %v, want at least %v", got, wantCost)
	}
	if got := after[fmt.Sprintf(`caddy_behest_jwks_fetches_total{issuer=%q,outcome="ok"}`, is.URL)]; got < 1 {
		t.Errorf("no successful JWKS fetch of %s counted: %v", is.URL, after)
	}
	for name := range after {
		if strings.Contains(name, "user_metrics") || strings.Contains(name, "completions") {
			t.Errorf("a label from a request: %s", name)
		}
	}
}

// accessLogConfig is a Caddy process's config with a JSON access log to path, filtering the
// token headers Caddy does not redact by itself, as the README says to.
func accessLogConfig(port int, upstream, path string) string {
	return fmt.Sprintf(`{
	admin off
	auto_https off
}
http://127.0.0.1:%d {
	log {
		output file %s
		format filter {
			wrap json
			request>headers>X-Api-Key replace REDACTED
			request>headers>X-Goog-Api-Key replace REDACTED
		}
	}
	behest {
		issuer https://gateway.example
		project p_456 {
			tenant t_123
			api_key test-project-key
			tier 1 {
				requests_per_minute 50
			}
			price * 1.00 2.00
		}
	}
	reverse_proxy %s {
		header_up Authorization "Bearer provider-secret"
	}
}`, port, path, upstream)
}

// TestAccessLogFieldsAndNoSecrets: a real Caddy's JSON access log carries user_id and the
// behest object for each request behest handled, and neither it nor the process log holds a
// token, whichever header the token came in.
func TestAccessLogFieldsAndNoSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a Caddy process")
	}
	prov := newProvider(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	port := freePort()
	gw := startCaddy(t, accessLogConfig(port, prov.Listener.Addr().String(), logPath), dir, port)
	_, body := gw.do(t, "POST", "/v1/auth/mint", "test-project-key", `{"user_id":"org_9:user_log"}`)
	var m minted
	if err := json.Unmarshal(body, &m); err != nil || m.Token == "" {
		t.Fatalf("mint: %s", body)
	}
	for _, header := range []string{"Authorization", "X-Api-Key", "X-Goog-Api-Key"} {
		req, _ := http.NewRequest("POST", gw.base+"/v1/chat/completions", strings.NewReader(chatBody))
		v := m.Token
		if header == "Authorization" {
			v = "Bearer " + v
		}
		req.Header.Set(header, v)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if b := readBody(t, resp); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", header, resp.StatusCode, b)
		}
	}
	gw.stop(15) // SIGTERM: the logs are flushed

	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e struct {
			UserID string `json:"user_id"`
			Status int    `json:"status"`
			Req    struct {
				URI string `json:"uri"`
			} `json:"request"`
			Behest *struct {
				Project      string  `json:"project_id"`
				Tier         string  `json:"tier"`
				Session      string  `json:"session_id"`
				Model        string  `json:"model"`
				InputTokens  int64   `json:"input_tokens"`
				OutputTokens int64   `json:"output_tokens"`
				CostUSD      float64 `json:"cost_usd"`
			} `json:"behest"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("not JSON: %v: %s", err, line)
		}
		if e.Req.URI != "/v1/chat/completions" {
			continue
		}
		lines++
		if e.UserID != "org_9:user_log" || e.Behest == nil || e.Behest.Project != "p_456" || e.Behest.Tier != "1" ||
			e.Behest.Session != m.SessionID || e.Behest.Model != "gpt-4o-mini" || e.Behest.InputTokens != 12 ||
			e.Behest.OutputTokens != 3 || e.Behest.CostUSD != (12*1.0+3*2.0)/1e6 {
			t.Errorf("access log entry: %s", line)
		}
	}
	if lines != 3 {
		t.Fatalf("%d access-log entries of chat completions, want 3:\n%s", lines, data)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "caddy-*.log"))
	for _, f := range append(logs, logPath) {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), m.Token) || regexp.MustCompile(`eyJ[\w-]{10,}\.eyJ`).Match(b) {
			t.Errorf("%s holds a token", filepath.Base(f))
		}
		if strings.Contains(string(b), "provider-secret") || strings.Contains(string(b), "test-project-key") {
			t.Errorf("%s holds a key", filepath.Base(f))
		}
	}
}

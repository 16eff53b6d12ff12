package behest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// caddyBinary builds Caddy with this plugin once per test run, for tests that need a real Caddy
// process (a restart is a new process over the same data directory). TestMain removes it.
var caddyBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "behest-caddy-")
	if err != nil {
		return "", err
	}
	caddyBuildDir = dir
	bin := filepath.Join(dir, "caddy")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/caddy").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building caddy: %v: %s", err, out)
	}
	return bin, nil
})

// caddyBuildDir holds the binary caddyBinary built ("" when none was).
var caddyBuildDir string

// caddyProcess is a Caddy run as its own process.
type caddyProcess struct {
	cmd  *exec.Cmd
	base string
}

func startCaddy(t *testing.T, caddyfile, dataDir string, port int) *caddyProcess {
	t.Helper()
	bin, err := caddyBinary()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dataDir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", cfg, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dataDir, "XDG_CONFIG_HOME="+dataDir, "HOME="+dataDir)
	logf, err := os.Create(filepath.Join(dataDir, fmt.Sprintf("caddy-%d.log", time.Now().UnixNano())))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &caddyProcess{cmd: cmd, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	t.Cleanup(func() { p.stop(syscall.SIGKILL) })
	for i := 0; i < 300; i++ {
		resp, err := http.Get(p.base + "/.well-known/jwks.json")
		if err == nil {
			resp.Body.Close()
			return p
		}
		time.Sleep(100 * time.Millisecond)
	}
	logs, _ := os.ReadFile(logf.Name())
	t.Fatalf("caddy did not start: %s", logs)
	return nil
}

// stop ends the process with sig (SIGTERM: a graceful stop; SIGKILL: a crash).
func (p *caddyProcess) stop(sig syscall.Signal) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	_ = p.cmd.Wait()
}

func (p *caddyProcess) do(t *testing.T, method, path, bearer, body string) (int, []byte) {
	t.Helper()
	status, b, err := p.try(method, path, bearer, body)
	if err != nil {
		t.Fatal(err)
	}
	return status, b
}

// try is do for goroutines other than the test's: it returns the error instead of failing.
func (p *caddyProcess) try(method, path, bearer, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, p.base+path, stringsReader(body))
	if err != nil {
		return 0, nil, err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// mint mints a token on p with a project API key.
func (p *caddyProcess) mint(t *testing.T, key, body string) minted {
	t.Helper()
	status, b := p.do(t, "POST", "/v1/auth/mint", key, body)
	var m minted
	if err := json.Unmarshal(b, &m); status != http.StatusOK || err != nil {
		t.Fatalf("mint %s: %d %s", body, status, b)
	}
	return m
}

func TestRestartKeepsSpendAndUsage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a Caddy process")
	}
	prov := newProvider(t)
	dataDir := t.TempDir()
	port := freePort()
	caddyfile := fmt.Sprintf(`{
	admin off
	auto_https off
	storage file_system %s
}
http://127.0.0.1:%d {
	behest {
		issuer http://127.0.0.1:%d
		project p_456 {
			tenant t_123
			api_key test-project-key
			tier 1 {
				cost_per_month 1.00
				max_output_tokens 100
			}
			price gpt-4o-mini 0.15 0.60
		}
	}
	reverse_proxy %s
}`, filepath.Join(dataDir, "storage"), port, port, prov.Listener.Addr())

	gw := startCaddy(t, caddyfile, dataDir, port)
	status, body := gw.do(t, "POST", "/v1/auth/mint", "test-project-key", `{"user_id":"org_1:restart_user"}`)
	if status != 200 {
		t.Fatalf("mint: %d %s", status, body)
	}
	var m minted
	_ = json.Unmarshal(body, &m)
	for i := 0; i < 2; i++ {
		if status, body := gw.do(t, "POST", "/v1/chat/completions", m.Token, chatBody); status != 200 {
			t.Fatalf("chat: %d %s", status, body)
		}
	}
	remaining := func(gw *caddyProcess) string {
		status, body := gw.do(t, "GET", "/v1/me", m.Token, "")
		if status != 200 {
			t.Fatalf("me: %d %s", status, body)
		}
		var me struct {
			Limits map[string]json.RawMessage `json:"limits"`
		}
		_ = json.Unmarshal(body, &me)
		return string(me.Limits["cost_per_month"])
	}
	usageOf := func(gw *caddyProcess) string {
		status, body := gw.do(t, "GET", "/v1/usage?group_by=org", "test-project-key", "")
		if status != 200 {
			t.Fatalf("usage: %d %s", status, body)
		}
		var u usageResponse
		_ = json.Unmarshal(body, &u)
		return fmt.Sprintf("%+v", u.Data)
	}
	time.Sleep(100 * time.Millisecond) // the last settle follows its response
	before, usageBefore := remaining(gw), usageOf(gw)
	if before == `{"limit":1,"remaining":1}` || usageBefore == "[]" {
		t.Fatalf("nothing was spent: %s %s", before, usageBefore)
	}

	// A crash loses at most the last second: wait past a flush (with room for a busy machine),
	// then kill.
	time.Sleep(2500 * time.Millisecond)
	gw.stop(syscall.SIGKILL)
	gw = startCaddy(t, caddyfile, dataDir, port)
	if after := remaining(gw); after != before {
		t.Fatalf("month budget left after a crash and restart: %s, before: %s", after, before)
	}
	if after := usageOf(gw); after != usageBefore {
		t.Fatalf("usage after a crash and restart: %s, before: %s", after, usageBefore)
	}

	// A graceful stop loses nothing, even what was not flushed yet.
	if status, body := gw.do(t, "POST", "/v1/chat/completions", m.Token, chatBody); status != 200 {
		t.Fatalf("chat: %d %s", status, body)
	}
	time.Sleep(100 * time.Millisecond)
	before, usageBefore = remaining(gw), usageOf(gw)
	gw.stop(syscall.SIGTERM)
	gw = startCaddy(t, caddyfile, dataDir, port)
	if after := remaining(gw); after != before {
		t.Fatalf("month budget left after a restart: %s, before: %s", after, before)
	}
	if after := usageOf(gw); after != usageBefore || !contains(after, "Requests:3") {
		t.Fatalf("usage after a restart: %s, before: %s", after, usageBefore)
	}
}

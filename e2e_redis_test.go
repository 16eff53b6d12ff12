package behest_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// redisServer runs a real redis-server on a free port. Without one on PATH the test fails in CI
// and is skipped elsewhere.
type redisServer struct {
	port int
	dir  string
	cmd  *exec.Cmd
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not on PATH; .ci/run installs it (apt-get install redis-server)")
		}
		t.Skip("redis-server is not on PATH: install it (apt-get install redis-server) to run the multi-instance tests")
	}
	r := &redisServer{port: freePort(), dir: t.TempDir()}
	r.start(t)
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) start(t *testing.T) {
	t.Helper()
	r.cmd = exec.Command("redis-server", "--port", fmt.Sprint(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir)
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("redis-server did not start")
}

func (r *redisServer) stop() {
	if r.cmd != nil && r.cmd.ProcessState == nil {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		_ = r.cmd.Wait()
	}
}

// pause stops redis-server (SIGSTOP): it answers nothing until resume, and then runs the calls
// its sockets received meanwhile.
func (r *redisServer) pause(t *testing.T) {
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

func (r *redisServer) resume(t *testing.T) {
	if err := r.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// redisGateway is a Caddyfile for one of several instances sharing storage and Redis.
func redisGateway(storage, redisURL, upstream string, port int, policy string) string {
	return fmt.Sprintf(`{
	admin off
	auto_https off
	storage file_system %s
}
http://127.0.0.1:%d {
	behest {
		issuer https://gateway.example
		store redis %s {
			on_store_error %s
			read_timeout 300ms
			dial_timeout 300ms
		}
		project p_456 {
			tenant t_123
			api_key test-project-key
			tier 1 {
				requests_per_minute 50
			}
			tier budget {
				cost_per_month 0.01
				max_output_tokens 100
			}
			price * 10.00 20.00
		}
	}
	reverse_proxy %s
}`, storage, port, redisURL, policy, upstream)
}

func TestTwoInstancesShareLimitsThroughRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Caddy processes and redis-server")
	}
	rs := startRedis(t)
	prov := newProvider(t)
	storage := filepath.Join(t.TempDir(), "storage")
	var gws [2]*caddyProcess
	for i := range gws {
		dir := t.TempDir()
		port := freePort()
		gws[i] = startCaddy(t, redisGateway(storage, rs.url(), prov.Listener.Addr().String(), port, "closed"), dir, port)
	}

	// A token minted on one instance verifies on the other: they share the signing key.
	status, body := gws[0].do(t, "POST", "/v1/auth/mint", "test-project-key", `{"user_id":"shared_user","tier":1}`)
	if status != 200 {
		t.Fatalf("mint: %d %s", status, body)
	}
	var m minted
	_ = json.Unmarshal(body, &m)
	if status, body := gws[1].do(t, "POST", "/v1/chat/completions", m.Token, chatBody); status != 200 {
		t.Fatalf("a token minted on instance 0, used on instance 1: %d %s", status, body)
	}

	// 120 concurrent requests split over both instances: exactly 50 (49 more) get through.
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := 0; i < 120; i++ {
		wg.Add(1)
		go func(gw *caddyProcess) {
			defer wg.Done()
			status, _ := gw.do(t, "POST", "/v1/chat/completions", m.Token, chatBody)
			mu.Lock()
			codes[status]++
			mu.Unlock()
		}(gws[i%2])
	}
	wg.Wait()
	if codes[200] != 49 || codes[429] != 71 {
		t.Fatalf("across two instances at 50 requests per minute: %v, want 49 more 200s and 71 429s", codes)
	}

	// A budget is never overspent across both: each request's worst case is about $0.0025 of
	// the $0.01 month, so at most 4 fit, however they race.
	status, body = gws[0].do(t, "POST", "/v1/auth/mint", "test-project-key", `{"user_id":"budget_user","tier":"budget"}`)
	_ = json.Unmarshal(body, &m)
	codes = map[int]int{}
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(gw *caddyProcess) {
			defer wg.Done()
			status, _ := gw.do(t, "POST", "/v1/chat/completions", m.Token, chat("gpt-4o-mini", ""))
			mu.Lock()
			codes[status]++
			mu.Unlock()
		}(gws[i%2])
	}
	wg.Wait()
	time.Sleep(200 * time.Millisecond)
	var u usageResponse
	_, body = gws[1].do(t, "GET", "/v1/usage?user_id=budget_user", "test-project-key", "")
	_ = json.Unmarshal(body, &u)
	if len(u.Data) != 1 || u.Data[0].CostUSD > 0.01 || int(u.Data[0].Requests) != codes[200] || codes[200] == 0 {
		t.Fatalf("budget $0.01 across two instances: %v, usage %s", codes, body)
	}

	// A revocation on one instance is honoured by the other on the next request.
	status, body = gws[0].do(t, "POST", "/v1/auth/mint", "test-project-key", `{"user_id":"revoked_user","tier":1}`)
	_ = json.Unmarshal(body, &m)
	if status, _ := gws[1].do(t, "POST", "/v1/chat/completions", m.Token, chatBody); status != 200 {
		t.Fatalf("before the revocation: %d", status)
	}
	if status, body := gws[0].do(t, "POST", "/v1/auth/revoke", "test-project-key", `{"session_id":"`+m.SessionID+`"}`); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	if status, body := gws[1].do(t, "POST", "/v1/chat/completions", m.Token, chatBody); status != 401 {
		t.Fatalf("after a revocation on the other instance: %d %s", status, body)
	}
}

func TestRedisOutagePolicies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Caddy processes and redis-server")
	}
	rs := startRedis(t)
	prov := newProvider(t)
	storage := filepath.Join(t.TempDir(), "storage")
	portClosed, portOpen := freePort(), freePort()
	closed := startCaddy(t, redisGateway(storage, rs.url(), prov.Listener.Addr().String(), portClosed, "closed"), t.TempDir(), portClosed)
	open := startCaddy(t, redisGateway(storage, rs.url(), prov.Listener.Addr().String(), portOpen, "open"), t.TempDir(), portOpen)

	_, body := closed.do(t, "POST", "/v1/auth/mint", "test-project-key", `{"user_id":"outage_user","tier":1}`)
	var m minted
	_ = json.Unmarshal(body, &m)
	for _, gw := range []*caddyProcess{closed, open} {
		if status, body := gw.do(t, "POST", "/v1/chat/completions", m.Token, chatBody); status != 200 {
			t.Fatalf("with Redis up: %d %s", status, body)
		}
	}

	rs.stop()
	status, body := closed.do(t, "POST", "/v1/chat/completions", m.Token, chatBody)
	if status != 503 || !strings.Contains(string(body), "store_unavailable") {
		t.Fatalf("closed policy with Redis down: %d %s", status, body)
	}
	if status, body := open.do(t, "POST", "/v1/chat/completions", m.Token, chatBody); status != 200 {
		t.Fatalf("open policy with Redis down: %d %s", status, body)
	}

	rs.start(t) // same port, empty: the gateways reconnect by themselves
	var last string
	for i := 0; i < 50; i++ {
		status, body := closed.do(t, "POST", "/v1/chat/completions", m.Token, chatBody)
		if status == 200 {
			return
		}
		last = fmt.Sprintf("%d %s", status, body)
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("closed policy after Redis came back: %s", last)
}

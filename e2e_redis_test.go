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

	"github.com/redis/go-redis/v9"
)

// redisServer runs a real Redis program (redis-server, or redis-sentinel with its config file)
// on a free port, its output in its directory's redis.log. Without the program on PATH the test
// fails in CI and is skipped elsewhere.
type redisServer struct {
	bin  string
	head []string // arguments before the common ones: redis-sentinel's config file
	args []string // after them
	port int
	dir  string
	cmd  *exec.Cmd
}

// redisPackages names the Debian package of each Redis program the tests run.
var redisPackages = map[string]string{"redis-server": "redis-server", "redis-sentinel": "redis-sentinel", "redis-cli": "redis-tools"}

// redisProgram returns the path of a Redis program, or skips the test when it is not installed
// (fails it in CI, so CI cannot pass without running it).
func redisProgram(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not on PATH; .ci/run installs it (apt-get install %s)", name, redisPackages[name])
		}
		t.Skipf("%s is not on PATH: install it (apt-get install %s) to run the multi-instance tests", name, redisPackages[name])
	}
	return path
}

// startRedis starts a redis-server with extra options (e.g. "--replicaof", "127.0.0.1", "6380").
func startRedis(t *testing.T, extra ...string) *redisServer {
	t.Helper()
	r := &redisServer{bin: redisProgram(t, "redis-server"), args: extra, port: freePort(), dir: t.TempDir()}
	r.start(t)
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) start(t *testing.T) {
	t.Helper()
	args := append(append([]string(nil), r.head...), "--port", fmt.Sprint(r.port), "--bind", "127.0.0.1", "--dir", r.dir)
	if filepath.Base(r.bin) == "redis-server" {
		args = append(args, "--save", "", "--appendonly", "no")
	}
	r.cmd = exec.Command(r.bin, append(args, r.args...)...)
	logf, err := os.OpenFile(filepath.Join(r.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", r.addr()); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not start: %s", r.bin, r.log())
}

// stop kills the program (SIGKILL: nothing is saved, connections drop at once).
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

func (r *redisServer) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

// log is what the program wrote so far, for failure messages.
func (r *redisServer) log() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
	return string(b)
}

// client is a go-redis client to the server, closed at cleanup, to inspect it.
func (r *redisServer) client(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.addr()})
	t.Cleanup(func() { c.Close() })
	return c
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// redisGateway is a Caddyfile for one of several instances sharing storage and Redis. where is
// the URL of one Redis, or a store line saying where several are ("sentinel <master> <addr>",
// "cluster <addr...>"); policy is on_store_error ("" leaves the default); projects are project
// blocks (redisProject), "" for p_456 alone with the key test-project-key.
func redisGateway(storage, where, upstream string, port int, policy, projects string) string {
	url, line := where, ""
	if strings.HasPrefix(where, "sentinel ") || strings.HasPrefix(where, "cluster ") {
		url, line = "", where
	}
	if policy != "" {
		line += "\n\t\t\ton_store_error " + policy
	}
	if projects == "" {
		projects = redisProject("p_456", "test-project-key", "")
	}
	return fmt.Sprintf(`{
	admin off
	auto_https off
	storage file_system %s
}
http://127.0.0.1:%d {
	behest {
		issuer https://gateway.example
		store redis %s {
			%s
			read_timeout 300ms
			dial_timeout 300ms
		}
%s	}
	reverse_proxy %s
}`, storage, port, url, line, projects, upstream)
}

// The output-only model's price charges output alone, so a request that caps its output costs
// its worst case exactly, and a budget of k of them admits exactly k: outputOnlyBody costs
// outputOnlyCost (3 tokens at $20 per 1M), and tier exact's budget is exactBudgetRequests of it.
const (
	outputOnlyCost      = 3 * 20.0 / 1e6
	outputOnlyBody      = `{"model":"output-only","messages":[{"role":"user","content":"Hi"}],"max_tokens":3}`
	exactBudgetRequests = 10
)

// redisProject is a project block of redisGateway, with extra lines (a project budget).
func redisProject(id, key, extra string) string {
	return fmt.Sprintf(`		project %s {
			tenant t_123
			api_key %s
			%s
			tier 1 {
				requests_per_minute 50
			}
			tier budget {
				cost_per_month 0.01
				max_output_tokens 100
			}
			tier exact {
				cost_per_month %.6f
				max_output_tokens 3
			}
			tier slots {
				concurrent_requests 2
			}
			tier load {
				requests_per_minute 1000000
				concurrent_requests 1000
			}
			price * 10.00 20.00
			price output-only 0 20.00
			price slow-stream 0 20.00
		}
`, id, key, extra, exactBudgetRequests*outputOnlyCost)
}

// startGateways starts n Caddy processes, each with the config caddyfile(port) gives.
func startGateways(t *testing.T, n int, caddyfile func(port int) string) []*caddyProcess {
	t.Helper()
	gws := make([]*caddyProcess, n)
	for i := range gws {
		port := freePort()
		gws[i] = startCaddy(t, caddyfile(port), t.TempDir(), port)
	}
	return gws
}

func TestTwoInstancesShareLimitsThroughRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Caddy processes and redis-server")
	}
	rs := startRedis(t)
	prov := newProvider(t)
	storage := filepath.Join(t.TempDir(), "storage")
	gws := startGateways(t, 2, func(port int) string {
		return redisGateway(storage, rs.url(), prov.Listener.Addr().String(), port, "closed", "")
	})

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
	closed := startCaddy(t, redisGateway(storage, rs.url(), prov.Listener.Addr().String(), portClosed, "closed", ""), t.TempDir(), portClosed)
	open := startCaddy(t, redisGateway(storage, rs.url(), prov.Listener.Addr().String(), portOpen, "open", ""), t.TempDir(), portOpen)

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

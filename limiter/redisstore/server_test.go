package redisstore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/behest/caddy-behest/limiter"
)

// redisServer is a redis-server of the test's own, on a free port, killed at cleanup. No mock:
// the scripts must run in the real thing.
type redisServer struct {
	tb    testing.TB
	bin   string
	dir   string
	port  int
	extra []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

// startRedis starts a server, or skips the test when redis-server is not installed (fails it
// when CI is set, so CI cannot pass without running these tests).
func startRedis(tb testing.TB, extra ...string) *redisServer {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal("redis-server is not on PATH, and CI is set: install Redis (apt-get install redis-server) to run the Redis store tests")
		}
		tb.Skip("redis-server is not on PATH: skipping the Redis store tests (install Redis to run them)")
	}
	s := &redisServer{tb: tb, bin: bin, dir: tb.TempDir(), extra: extra}
	for attempt := 1; ; attempt++ {
		s.port = freePort(tb)
		err := s.Start()
		if err == nil {
			break
		}
		if attempt == 5 { // the port was taken between freePort and the server's bind
			tb.Fatalf("starting redis-server: %v", err)
		}
	}
	tb.Cleanup(s.Stop)
	return s
}

func freePort(tb testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *redisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }
func (s *redisServer) URL() string  { return "redis://" + s.Addr() }

// Start runs the server on its port (again, after Stop) and waits until it answers PING.
func (s *redisServer) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	args := append([]string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", s.dir}, s.extra...)
	cmd := exec.Command(s.bin, args...)
	out := new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ping(s.Addr()) == nil {
			break
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server did not answer within 10s: %s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.cmd, s.out, s.done = cmd, out, done
	return nil
}

// Stop kills the server; its data is gone (no persistence).
func (s *redisServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Pause stops the server's process (SIGSTOP): it answers nothing, but calls it received stay
// in its sockets and run on Resume.
func (s *redisServer) Pause() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.tb.Fatal(err)
	}
}

// Resume lets a paused server go on (SIGCONT).
func (s *redisServer) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.tb.Fatal(err)
	}
}

// ping sends a PING over a raw connection, to tell when the server is up without a client.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return errors.New(strings.TrimSpace(line))
	}
	return nil
}

// Client is a plain client to the server, closed at cleanup, for inspecting keys.
func (s *redisServer) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	s.tb.Cleanup(func() { c.Close() })
	return c
}

var prefixes atomic.Int64

// newStore opens a store on srv with a key prefix of its own; close is whether cleanup closes
// it (storetest.Run closes its stores itself).
func newStore(tb testing.TB, srv *redisServer, opts Options, close bool) *Store {
	tb.Helper()
	if opts.URL == "" && len(opts.Addrs) == 0 {
		opts.URL = srv.URL()
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "test" + strconv.FormatInt(prefixes.Add(1), 10) + ":"
	}
	if opts.Logger == nil {
		if t, ok := tb.(*testing.T); ok {
			opts.Logger = zaptest.NewLogger(t)
		}
	}
	s, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	if close {
		tb.Cleanup(func() { s.Close() })
	}
	return s
}

// commandCounter is a go-redis hook that counts round trips: a command or a pipeline each.
type commandCounter struct {
	trips atomic.Int64
	mu    sync.Mutex
	names map[string]int
}

func countCommands(c redis.UniversalClient) *commandCounter {
	h := &commandCounter{names: map[string]int{}}
	c.AddHook(h)
	return h
}

func (h *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.trips.Add(1)
		h.mu.Lock()
		h.names[cmd.Name()]++
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (h *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.trips.Add(1)
		return next(ctx, cmds)
	}
}

// reset returns the round trips and commands counted so far and starts again.
func (h *commandCounter) reset() (int64, map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	names := h.names
	h.names = map[string]int{}
	return h.trips.Swap(0), names
}

// testRequest is a request with every limit on and roomy.
func testRequest(project, user string) limiter.Request {
	return limiter.Request{
		Project: project, User: user, Session: "sess-" + user, Tier: "free", Model: "gpt-4o-mini",
		Limits: limiter.Limits{RequestsPerMinute: 1e9, TokensPerMinute: 1e12, TokensPerDay: 1e12,
			CostPerDay: 1e15, CostPerMonth: 1e15, ConcurrentRequests: 1e6},
		ProjectCostPerMonth: 1e15, Tokens: 1000, Cost: 1000, IssuedAt: time.Unix(1, 0),
	}
}

package redisstore

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/behest/caddy-behest/limiter"
	"github.com/behest/caddy-behest/limiter/storetest"
)

// startCluster1 starts a one-node Redis Cluster that owns every slot.
func startCluster1(t *testing.T, extra ...string) *redisServer {
	t.Helper()
	srv := startRedis(t, append([]string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"}, extra...)...)
	ctx := context.Background()
	c := srv.Client()
	if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	if !eventually(10*time.Second, func() bool {
		return strings.Contains(c.ClusterInfo(ctx).Val(), "cluster_state:ok")
	}) {
		t.Fatalf("cluster not ok: %s", c.ClusterInfo(ctx).Val())
	}
	return srv
}

// TestUnreachableRedisQueuesNoRelease: a Reserve that could not connect never reached Redis,
// so nothing is queued to undo it. (During a failover or an outage every refused request would
// otherwise queue a release: a flood that crowds out the settlements that matter and runs once
// Redis is back.)
func TestUnreachableRedisQueuesNoRelease(t *testing.T) {
	gone := startRedis(t)
	gone.Stop() // nothing listens on its port
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"single", Options{URL: gone.URL()}},
		{"sentinel", Options{Addrs: []string{gone.Addr()}, MasterName: "mymaster"}},
		{"cluster", Options{Addrs: []string{gone.Addr()}, Cluster: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t, gone, c.opts, true)
			for i := range 50 {
				_, _, err := s.Reserve(context.Background(), storetest.Base, testRequest("p", strconv.Itoa(i%5)))
				if !errors.Is(err, limiter.ErrUnavailable) {
					t.Fatalf("Reserve with Redis unreachable: %v, want ErrUnavailable", err)
				}
			}
			if n := s.retries.len(); n != 0 {
				t.Errorf("%d releases queued for reservations that never reached Redis, want 0", n)
			}
		})
	}
}

// TestReserveWaitsOneReadTimeout: with Redis not answering, a Reserve gives up after one read
// timeout, as read_timeout promises, not after a retry of it (go-redis retries a timed-out
// call, and Cluster again on another node).
func TestReserveWaitsOneReadTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	single := startRedis(t)
	cluster := startCluster1(t)
	for _, c := range []struct {
		name string
		srv  *redisServer
		opts Options
	}{
		{"single", single, Options{ReadTimeout: timeout}},
		{"cluster", cluster, Options{Addrs: []string{cluster.Addr()}, Cluster: true, ReadTimeout: timeout}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t, c.srv, c.opts, true)
			ctx := context.Background()
			if _, _, err := s.Reserve(ctx, storetest.Base, testRequest("p", "warm")); err != nil {
				t.Fatal(err)
			}
			c.srv.Pause()
			defer c.srv.Resume()
			start := time.Now()
			_, _, err := s.Reserve(ctx, storetest.Base, testRequest("p", "u"))
			waited := time.Since(start)
			if !errors.Is(err, limiter.ErrUnavailable) {
				t.Fatalf("Reserve with Redis paused: %v, want ErrUnavailable", err)
			}
			if waited >= timeout*3/2 {
				t.Errorf("Reserve with Redis paused waited %v, want one read timeout (%v)", waited, timeout)
			}
			// The call waits in Redis's socket and may run on Resume: its release is queued.
			if n := s.retries.len(); n != 1 {
				t.Errorf("%d releases queued for a call that timed out, want 1", n)
			}
		})
	}
}

// replyCutter is a TCP proxy in front of a Redis that can lose an answer: the next reply from
// Redis is dropped and its client connection closed, as if Redis died right after running the
// call; with refuse, it then takes no connection until listen.
type replyCutter struct {
	t    *testing.T
	addr string

	mu     sync.Mutex
	target string
	ln     net.Listener
	cut    bool // drop the next reply
	refuse bool // and close the listener when it does
}

// newReplyCutter listens; setTarget before the first connection.
func newReplyCutter(t *testing.T) *replyCutter {
	p := &replyCutter{t: t}
	p.listen()
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.ln != nil {
			p.ln.Close()
		}
	})
	return p
}

// listen accepts connections (again) on the proxy's address.
func (p *replyCutter) listen() {
	addr := p.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
}

func (p *replyCutter) setTarget(addr string) {
	p.mu.Lock()
	p.target = addr
	p.mu.Unlock()
}

// cutNextReply drops the next reply Redis sends to any client.
func (p *replyCutter) cutNextReply(refuse bool) {
	p.mu.Lock()
	p.cut, p.refuse = true, refuse
	p.mu.Unlock()
}

func (p *replyCutter) serve(client net.Conn) {
	defer client.Close()
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	server, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer server.Close()
	go func() { _, _ = io.Copy(server, client); server.Close() }()
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		cut, refuse := p.cut, p.refuse
		if cut {
			p.cut = false
			if refuse {
				p.ln.Close()
				p.ln = nil
			}
		}
		p.mu.Unlock()
		if cut {
			return // the reply is lost with the connection
		}
		if _, err := client.Write(buf[:n]); err != nil {
			return
		}
	}
}

// TestLostAnswer: the reserve script runs but its answer is lost with the connection. When
// Redis is reachable again at once, the store asks again under the same id and is answered as
// admitted, holding one slot; when it is not, the reservation is released by id once it is,
// though the call's last attempt failed to connect (in Cluster, go-redis tries the node again,
// then another).
func TestLostAnswer(t *testing.T) {
	for _, cluster := range []bool{false, true} {
		t.Run(map[bool]string{false: "single", true: "cluster"}[cluster], func(t *testing.T) {
			proxy := newReplyCutter(t)
			_, port, _ := net.SplitHostPort(proxy.addr)
			var srv *redisServer
			opts := Options{URL: "redis://" + proxy.addr}
			if cluster {
				// The node tells clients to connect to the proxy.
				srv = startCluster1(t, "--cluster-announce-port", port)
				opts = Options{Addrs: []string{proxy.addr}, Cluster: true}
			} else {
				srv = startRedis(t)
			}
			proxy.setTarget(srv.Addr())
			testLostAnswer(t, proxy, newStore(t, srv, opts, true), srv)
		})
	}
}

func testLostAnswer(t *testing.T, proxy *replyCutter, s *Store, srv *redisServer) {
	// direct sees what Redis holds, not through the proxy.
	direct := newStore(t, srv, Options{KeyPrefix: s.prefix, URL: srv.URL()}, true)
	ctx := context.Background()
	now := storetest.Base
	req := testRequest("p_lost", "u")
	req.Limits.ConcurrentRequests = 1
	warm, _, err := s.Reserve(ctx, now, req) // loads the script: the calls below are one EVALSHA
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Settle(ctx, now, warm, limiter.Usage{}); err != nil {
		t.Fatal(err)
	}
	inFlight := func() int64 {
		rem, err := direct.Remaining(ctx, now, req)
		if err != nil {
			t.Fatal(err)
		}
		return 1 - rem.ConcurrentRequests
	}

	t.Run("asked again", func(t *testing.T) {
		proxy.cutNextReply(false)
		res, dec, err := s.Reserve(ctx, now, req)
		if err != nil || !dec.Allowed {
			t.Fatalf("Reserve after a lost answer: %+v, %v; want admitted on asking again", dec, err)
		}
		if n := inFlight(); n != 1 {
			t.Fatalf("%d requests in flight, want 1", n)
		}
		if _, err := s.Settle(ctx, now, res, limiter.Usage{}); err != nil {
			t.Fatal(err)
		}
		if n := s.retries.len(); n != 0 || inFlight() != 0 {
			t.Fatalf("after the settle: %d queued, %d in flight; want none", n, inFlight())
		}
	})

	t.Run("released", func(t *testing.T) {
		proxy.cutNextReply(true)
		if _, _, err := s.Reserve(ctx, now, req); !errors.Is(err, limiter.ErrUnavailable) {
			t.Fatalf("Reserve after a lost answer with Redis unreachable: %v, want ErrUnavailable", err)
		}
		if n := inFlight(); n != 1 {
			t.Fatalf("%d requests in flight in Redis, want the one whose answer was lost", n)
		}
		if n := s.retries.len(); n != 1 {
			t.Fatalf("%d releases queued, want 1", n)
		}
		proxy.listen()
		if !eventually(10*time.Second, func() bool { return inFlight() == 0 && s.retries.len() == 0 }) {
			t.Fatalf("%d in flight, %d queued 10 s after Redis was reachable again; want none", inFlight(), s.retries.len())
		}
	})
}

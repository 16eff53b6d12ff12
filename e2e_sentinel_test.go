package behest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// sentinelSet is a master, its replica and one Sentinel watching them (quorum 1), each a real
// process. Sentinel's timeouts are short so that a failover takes a few seconds.
type sentinelSet struct {
	master, replica, sentinel *redisServer
}

const sentinelMaster = "mymaster"

func startSentinelSet(t *testing.T) *sentinelSet {
	t.Helper()
	bin := redisProgram(t, "redis-sentinel")
	// A replica's first sync waits for more replicas for 5 s by default (diskless sync): not here.
	master := startRedis(t, "--repl-diskless-sync-delay", "0")
	replica := startRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.port))
	ctx := context.Background()
	rc := replica.client(t)
	within(t, 10*time.Second, "the replica syncing with its master", func() error {
		if info := rc.Info(ctx, "replication").Val(); !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replica: %s", info)
		}
		return nil
	})
	s := &redisServer{bin: bin, port: freePort(), dir: t.TempDir()}
	// Sentinel rewrites its file: one of its own. It is told of the replica, which it would
	// otherwise find only at its next look at the master, up to 10 s later.
	conf := filepath.Join(s.dir, "sentinel.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`sentinel monitor %[1]s 127.0.0.1 %[2]d 1
sentinel down-after-milliseconds %[1]s 1000
sentinel failover-timeout %[1]s 5000
sentinel known-replica %[1]s 127.0.0.1 %[3]d
`, sentinelMaster, master.port, replica.port)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	s.head = []string{conf}
	s.start(t)
	t.Cleanup(s.stop)
	// A failover needs a replica the Sentinel knows and has heard from.
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.addr()})
	defer sc.Close()
	within(t, 15*time.Second, "the Sentinel discovering the replica", func() error {
		replicas, err := sc.Replicas(ctx, sentinelMaster).Result()
		if err != nil || len(replicas) != 1 || replicas[0]["flags"] != "slave" || replicas[0]["master-link-status"] != "ok" {
			return fmt.Errorf("replicas: %v %v", replicas, err)
		}
		return nil
	})
	return &sentinelSet{master: master, replica: replica, sentinel: s}
}

// waitReplicated waits until the replica has every write the master has taken so far.
func (s *sentinelSet) waitReplicated(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	offset := func(c *redis.Client, field string) int64 {
		for _, line := range strings.Split(c.Info(ctx, "replication").Val(), "\r\n") {
			if v, ok := strings.CutPrefix(line, field); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		return -1
	}
	mc, rc := s.master.client(t), s.replica.client(t)
	want := offset(mc, "master_repl_offset:")
	within(t, 5*time.Second, "the replica catching up", func() error {
		if got := offset(rc, "slave_repl_offset:"); want < 0 || got < want {
			return fmt.Errorf("replica at offset %d, master at %d", got, want)
		}
		return nil
	})
}

// failoverProbe sends a request every 10 ms through one gateway until stopped, and keeps what
// the requests sent from a moment on (the kill) got.
type failoverProbe struct {
	name  string
	gw    *caddyProcess
	token string

	mu       sync.Mutex
	from     time.Time      // zero until the kill
	okBefore int            // 200s before from
	firstOK  time.Time      // the end of the first 200 of a request sent after from
	outcomes map[string]int // of the requests sent after from
	slowest  time.Duration  // of the requests sent after from
}

func (p *failoverProbe) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(10 * time.Millisecond):
		}
		start := time.Now()
		o := outcome(p.gw.try("POST", "/v1/chat/completions", p.token, chatBody))
		end := time.Now()
		p.mu.Lock()
		switch {
		case p.from.IsZero() || start.Before(p.from):
			if o == "200" {
				p.okBefore++
			}
		default:
			p.outcomes[o]++
			p.slowest = max(p.slowest, end.Sub(start))
			if o == "200" && p.firstOK.IsZero() {
				p.firstOK = end
			}
		}
		p.mu.Unlock()
	}
}

func (p *failoverProbe) state() (okBefore int, firstOK time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.okBefore, p.firstOK
}

// TestSentinelFailover kills the master under traffic: both gateways follow the replica Sentinel
// promotes, without a restart, within 10 s; meanwhile the default policy (on_store_error closed)
// refuses with 503 store_unavailable, quickly; afterwards limits are exact, what was replicated
// before the kill is still counted, and nothing stays held.
func TestSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Caddy processes, redis-server and redis-sentinel")
	}
	t.Parallel()
	set := startSentinelSet(t)
	prov := newProvider(t)
	storage := filepath.Join(t.TempDir(), "storage")
	gws := startGateways(t, 2, func(port int) string {
		return redisGateway(storage, "sentinel "+sentinelMaster+" "+set.sentinel.addr(), prov.Listener.Addr().String(), port, "", "")
	})
	const key = "test-project-key"
	before := gws[0].mint(t, key, `{"user_id":"user_before","tier":1}`)
	after := gws[1].mint(t, key, `{"user_id":"user_after","tier":1}`)
	exact := gws[0].mint(t, key, `{"user_id":"user_exact","tier":"exact"}`)
	load := gws[1].mint(t, key, `{"user_id":"user_load","tier":"load"}`)
	fresh := gws[0].mint(t, key, `{"user_id":"user_fresh","tier":"load"}`) // first seen in the failover

	// Spent before the kill, and replicated: the promoted replica must still count it.
	const spent = 10
	wantOutcomes(t, "before the kill", burst(gws, spent, before.Token, chatBody), map[string]int{"200": spent})
	within(t, 5*time.Second, "the settlements reaching the master", func() error {
		var u usageResponse
		_, body, err := gws[0].try("GET", "/v1/usage?user_id=user_before", key, "")
		if json.Unmarshal(body, &u); err != nil || len(u.Data) != 1 || u.Data[0].Requests != spent {
			return fmt.Errorf("usage: %s %v", body, err)
		}
		return nil
	})
	set.waitReplicated(t)

	ctx := context.Background()
	sc := redis.NewSentinelClient(&redis.Options{Addr: set.sentinel.addr()})
	defer sc.Close()
	sub := sc.Subscribe(ctx, "+switch-master")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	switched := sub.Channel()

	probes := make([]*failoverProbe, len(gws))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, gw := range gws {
		probes[i] = &failoverProbe{name: fmt.Sprintf("gateway %d", i), gw: gw, token: load.Token, outcomes: map[string]int{}}
		wg.Go(func() { probes[i].run(stop) })
	}
	stopProbes := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopProbes()
	within(t, 5*time.Second, "traffic through both gateways", func() error {
		for i, p := range probes {
			if ok, _ := p.state(); ok < 5 {
				return fmt.Errorf("gateway %d: %d requests admitted", i, ok)
			}
		}
		return nil
	})

	killed := time.Now()
	for _, p := range probes {
		p.mu.Lock()
		p.from = killed
		p.mu.Unlock()
	}
	set.master.stop() // SIGKILL
	probes = append(probes, &failoverProbe{name: "gateway 1, a user new in the failover", gw: gws[1], token: fresh.Token,
		outcomes: map[string]int{}, from: killed})
	wg.Go(func() { probes[2].run(stop) })
	var promoted time.Time
	select {
	case msg := <-switched:
		promoted = time.Now()
		if want := fmt.Sprintf("%s 127.0.0.1 %d 127.0.0.1 %d", sentinelMaster, set.master.port, set.replica.port); msg.Payload != want {
			t.Fatalf("+switch-master %q, want %q", msg.Payload, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("Sentinel promoted no replica within 20 s of the kill: %s", set.sentinel.log())
	}
	within(t, killed.Add(10*time.Second).Sub(time.Now()), "both gateways admitting again after the kill", func() error {
		for _, p := range probes {
			if _, ok := p.state(); ok.IsZero() {
				return fmt.Errorf("%s: nothing admitted since the kill", p.name)
			}
		}
		return nil
	})
	stopProbes()
	var lines []string
	for _, p := range probes {
		lines = append(lines, fmt.Sprintf("%s admits again %v after the kill (%v after the promotion); meanwhile %v, slowest answer %v",
			p.name, p.firstOK.Sub(killed).Round(time.Millisecond), p.firstOK.Sub(promoted).Round(time.Millisecond), p.outcomes, p.slowest.Round(time.Millisecond)))
	}
	t.Logf("Sentinel failover: the replica was promoted %v after the master was killed; %s",
		promoted.Sub(killed).Round(time.Millisecond), strings.Join(lines, "; "))

	// The default policy while there is no master: refused at once, nothing else.
	for _, p := range probes {
		for o := range p.outcomes {
			if o != "200" && o != "503 store_unavailable" {
				t.Errorf("%s during the failover: %v, want only 200 and 503 store_unavailable", p.name, p.outcomes)
			}
		}
		if p.outcomes["503 store_unavailable"] == 0 {
			t.Errorf("%s: no 503 store_unavailable between the kill and the promotion: %v", p.name, p.outcomes)
		}
		// Nothing to wait for (connections are refused): no request waits even one timeout.
		if p.slowest > 2*time.Second {
			t.Errorf("%s: a request waited %v during the failover", p.name, p.slowest)
		}
	}

	// Limits are exact on the new master, across both gateways.
	wantOutcomes(t, "a user who spent 10 of 50 requests a minute before the kill", burst(gws, 60, before.Token, chatBody),
		map[string]int{"200": 50 - spent, "429 rate_limit_exceeded": 20})
	wantOutcomes(t, "a new user at 50 requests a minute", burst(gws, 70, after.Token, chatBody),
		map[string]int{"200": 50, "429 rate_limit_exceeded": 20})
	wantOutcomes(t, "a budget of 10 requests", burst(gws, 25, exact.Token, outputOnlyBody),
		map[string]int{"200": exactBudgetRequests, "429 insufficient_quota": 25 - exactBudgetRequests})
	// The requests cut off by the kill hold no concurrency slot: their settlements and releases
	// reached the new master.
	for _, tok := range []string{load.Token, fresh.Token} {
		for i, gw := range gws {
			within(t, 12*time.Second, fmt.Sprintf("gateway %d: every concurrency slot free", i), func() error {
				if left, err := meLimit(gw, tok, "concurrent_requests"); err != nil || left != 1000 {
					return fmt.Errorf("%v of 1000 concurrent requests left (%v)", left, err)
				}
				return nil
			})
		}
	}
	// Every key on the new master expires, whatever the failover left behind.
	newMaster := set.replica.client(t)
	keys, err := newMaster.Keys(ctx, "*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys on the new master: %v, %v", keys, err)
	}
	for _, k := range keys {
		if ttl := newMaster.TTL(ctx, k).Val(); ttl <= 0 {
			t.Errorf("key %q on the new master: TTL %v, want one", k, ttl)
		}
	}
	if role := newMaster.Do(ctx, "ROLE").Val(); !strings.HasPrefix(fmt.Sprint(role), "[master") {
		t.Errorf("the replica's role after the failover: %v", role)
	}
}

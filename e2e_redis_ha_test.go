package behest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Redis high availability with real processes, each shared by two Caddy processes: a
// three-master Cluster here, a master with its replica and a Sentinel in e2e_sentinel_test.go.

// within polls cond every 20ms for up to d, failing the test with what and cond's last error.
func within(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// outcome names an answer by its status and error code: "200", "429 insufficient_quota", ...
func outcome(status int, body []byte, err error) string {
	if err != nil {
		return "transport error: " + err.Error()
	}
	if status == 200 {
		return "200"
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return fmt.Sprintf("%d %s", status, e.Error.Code)
}

// burst sends n requests at once, spread over gws in turn, and counts their outcomes.
func burst(gws []*caddyProcess, n int, token, body string) map[string]int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]int{}
	for i := range n {
		wg.Go(func() {
			o := outcome(gws[i%len(gws)].try("POST", "/v1/chat/completions", token, body))
			mu.Lock()
			got[o]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return got
}

// wantOutcomes fails the test unless got is want.
func wantOutcomes(t *testing.T, what string, got, want map[string]int) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
}

// meLimit is what /v1/me says is left of one of the caller's limits.
func meLimit(gw *caddyProcess, token, limit string) (float64, error) {
	status, body, err := gw.try("GET", "/v1/me", token, "")
	if err != nil || status != 200 {
		return 0, fmt.Errorf("me: %d %s %v", status, body, err)
	}
	var me struct {
		Limits map[string]struct {
			Remaining float64 `json:"remaining"`
		} `json:"limits"`
	}
	if err := json.Unmarshal(body, &me); err != nil {
		return 0, err
	}
	return me.Limits[limit].Remaining, nil
}

// openStream sends a streamed request through gw and returns once its answer has begun.
func openStream(t *testing.T, gw *caddyProcess, token, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("POST", gw.base+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("a stream: %d %s", resp.StatusCode, readBody(t, resp))
	}
	return resp
}

// startCluster starts a Redis Cluster of n masters (no replicas) made by redis-cli, as an
// operator would, and waits until every node says the cluster is ok.
func startCluster(t *testing.T, n int) []*redisServer {
	t.Helper()
	cli := redisProgram(t, "redis-cli")
	nodes := make([]*redisServer, n)
	args := []string{"--cluster", "create"}
	for i := range nodes {
		nodes[i] = startRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
		args = append(args, nodes[i].addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli %s: %v: %s", strings.Join(args, " "), err, out)
	}
	ctx := context.Background()
	for _, node := range nodes {
		c := node.client(t)
		within(t, 15*time.Second, "cluster_state:ok on "+node.addr(), func() error {
			if info := c.ClusterInfo(ctx).Val(); !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("%s", info)
			}
			return nil
		})
	}
	return nodes
}

// TestClusterSharesLimitsAndBudgets: two gateways on a three-master Redis Cluster, with three
// projects whose keys (the project is the hash tag) are on three different masters. Rates,
// concurrency, user budgets and project budgets are exact across both gateways, and usage adds
// up to what was admitted, to the nanodollar.
func TestClusterSharesLimitsAndBudgets(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Caddy processes and a Redis Cluster")
	}
	t.Parallel()
	nodes := startCluster(t, 3)
	prov := newProvider(t)
	storage := filepath.Join(t.TempDir(), "storage")
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.addr()
	}
	// Every request costs its worst case (input is free, output capped), so the project budget
	// can be what the steps below admit: 50 at 50 a minute, 3 slow streams of 2 output tokens,
	// one user's budget of 10, then 20 more.
	const (
		slowBody      = `{"model":"slow-stream","messages":[{"role":"user","content":"Hi"}],"stream":true,"max_tokens":2}`
		slowCost      = 2 * 20.0 / 1e6
		raced         = 20
		projectBudget = (50+exactBudgetRequests+raced)*outputOnlyCost + 3*slowCost
	)
	// Slots 14862, 2669 and 6732: one on each master of redis-cli's even split.
	projects := []string{"p_a", "p_b", "p_c"}
	var blocks string
	for _, p := range projects {
		blocks += redisProject(p, "key-"+p, fmt.Sprintf("cost_per_month %.6f", projectBudget))
	}
	gws := startGateways(t, 2, func(port int) string {
		return redisGateway(storage, "cluster "+strings.Join(addrs, " "), prov.Listener.Addr().String(), port, "", blocks)
	})

	ctx := context.Background()
	c := nodes[0].client(t)
	shards := c.ClusterShards(ctx).Val()
	owners := map[string]bool{}
	for _, p := range projects {
		slot := c.ClusterKeySlot(ctx, "behest:{"+p+"}:project").Val()
		for _, s := range shards {
			for _, r := range s.Slots {
				if slot >= r.Start && slot <= r.End {
					owners[s.Nodes[0].ID] = true
				}
			}
		}
	}
	if len(owners) != len(nodes) {
		t.Fatalf("the projects' slots are on %d masters, want %d", len(owners), len(nodes))
	}

	t.Run("projects", func(t *testing.T) {
		for _, p := range projects {
			t.Run(p, func(t *testing.T) {
				t.Parallel()
				key := "key-" + p
				mint := func(user, tier string) string {
					return gws[0].mint(t, key, fmt.Sprintf(`{"user_id":%q,"tier":%q}`, user, tier)).Token
				}
				wantOutcomes(t, "50 requests a minute", burst(gws, 70, mint("user_rpm", "1"), outputOnlyBody),
					map[string]int{"200": 50, "429 rate_limit_exceeded": 20})
				// Two slow streams (1.2 s each), one through each gateway, hold both slots: four
				// more sent meanwhile are refused, and once they end a slot is free again.
				slots := mint("user_slots", "slots")
				var held []*http.Response
				for _, gw := range gws {
					held = append(held, openStream(t, gw, slots, slowBody))
				}
				wantOutcomes(t, "2 concurrent requests", burst(gws, 4, slots, slowBody), map[string]int{"429 rate_limit_exceeded": 4})
				for _, resp := range held {
					readBody(t, resp)
				}
				within(t, 5*time.Second, "both slots free after the streams", func() error {
					if left, err := meLimit(gws[1], slots, "concurrent_requests"); err != nil || left != 2 {
						return fmt.Errorf("%v of 2 concurrent requests left (%v)", left, err)
					}
					return nil
				})
				wantOutcomes(t, "a stream after the others", burst(gws, 1, slots, slowBody), map[string]int{"200": 1})
				wantOutcomes(t, "a user budget of 10 requests", burst(gws, 15, mint("user_solo", "exact"), outputOnlyBody),
					map[string]int{"200": exactBudgetRequests, "429 insufficient_quota": 15 - exactBudgetRequests})
				// Four users with room for 10 each race for the project budget's last 20.
				var mu sync.Mutex
				got := map[string]int{}
				var wg sync.WaitGroup
				for _, user := range []string{"user_b1", "user_b2", "user_b3", "user_b4"} {
					tok := mint(user, "exact")
					wg.Go(func() {
						o := burst(gws, exactBudgetRequests, tok, outputOnlyBody)
						mu.Lock()
						for k, v := range o {
							got[k] += v
						}
						mu.Unlock()
					})
				}
				wg.Wait()
				wantOutcomes(t, "the project budget's last 20 requests, raced for by four users", got,
					map[string]int{"200": raced, "429 insufficient_quota": 4*exactBudgetRequests - raced})

				within(t, 5*time.Second, "usage", func() error {
					var u usageResponse
					_, body, err := gws[1].try("GET", "/v1/usage?group_by=tier", key, "")
					if err != nil {
						return err
					}
					if err := json.Unmarshal(body, &u); err != nil {
						return fmt.Errorf("%v: %s", err, body)
					}
					rows := map[string]string{}
					for _, r := range u.Data {
						rows[r.Key] = fmt.Sprintf("%d requests $%.9f", r.Requests, r.CostUSD)
					}
					want := map[string]string{
						"1":     fmt.Sprintf("%d requests $%.9f", 50, 50*outputOnlyCost),
						"slots": fmt.Sprintf("%d requests $%.9f", 3, 3*slowCost),
						"exact": fmt.Sprintf("%d requests $%.9f", exactBudgetRequests+raced, (exactBudgetRequests+raced)*outputOnlyCost),
					}
					if fmt.Sprint(rows) != fmt.Sprint(want) {
						return fmt.Errorf("usage by tier %v, want %v", rows, want)
					}
					return nil
				})
			})
		}
	})

	// Every master holds keys: the projects really are spread.
	if t.Failed() {
		return
	}
	var sizes []string
	for _, n := range nodes {
		size := n.client(t).DBSize(ctx).Val()
		if size == 0 {
			t.Errorf("master %s holds no key", n.addr())
		}
		sizes = append(sizes, strconv.FormatInt(size, 10))
	}
	t.Logf("keys per master: %s", strings.Join(sizes, ", "))
}

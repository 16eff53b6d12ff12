package behest_test

// Budget alerts against a real local HTTP receiver.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/behest/caddy-behest/alerts"
)

const webhookSecret = "whsec_e2e"

// hookReceiver is a webhook receiver that checks each delivery's signature and records it.
type hookReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	events   []alerts.Event
	badSigs  int
	failIDs  map[string]int // answer 500 this many more times to these ids
	hang     chan struct{}  // when set, deliveries wait until it is closed
	attempts atomic.Int64
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{failIDs: map[string]int{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.attempts.Add(1)
		body, _ := io.ReadAll(r.Body)
		if h.hang != nil {
			select {
			case <-h.hang:
			case <-r.Context().Done():
				return
			}
		}
		var ev alerts.Event
		err := json.Unmarshal(body, &ev)
		h.mu.Lock()
		defer h.mu.Unlock()
		if err != nil || alerts.Verify([]byte(webhookSecret), r.Header.Get("Behest-Signature"), body, time.Now(), 5*time.Minute) != nil {
			h.badSigs++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.events = append(h.events, ev)
		if h.failIDs[ev.ID] > 0 {
			h.failIDs[ev.ID]--
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.Close)
	return h
}

// delivered are the distinct events received (an event failed and retried counts once), as
// "scope threshold period", sorted; attempts counts every delivery of each id.
func (h *hookReceiver) delivered() (names []string, attempts map[string]int, bad int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	attempts = map[string]int{}
	seen := map[string]bool{}
	for _, ev := range h.events {
		attempts[ev.ID]++
		if !seen[ev.ID] {
			seen[ev.ID] = true
			user := ""
			if ev.UserID != nil {
				user = " " + *ev.UserID
			}
			names = append(names, fmt.Sprintf("%s%s %s %v %s", ev.Scope, user, ev.Limit, ev.Threshold, ev.Period))
		}
	}
	sort.Strings(names)
	return names, attempts, h.badSigs
}

// alertProject: every request settles at $0.00015 (the fake provider's 12 + 3 tokens at $10
// per 1M); its worst case is ~$0.0008, so the $0.003 budget admits about 15 and refuses the rest
// before spend reaches 100%.
func alertProject(webhook string, extraTier string) string {
	user := ""
	if strings.Contains(extraTier, "cost_per_day") {
		user = "user_cost_per_day 100%"
	}
	return fmt.Sprintf(`alerts {
				webhook %s
				secret %s
				project_budget 50%% 70%% 100%%
				%s
			}
			tier alerted {
				max_output_tokens 10
				%s
			}
			price * 10.00 10.00
			cost_per_month 0.003`, webhook, webhookSecret, user, extraTier)
}

// alertConfig is the e2e gateway with a project of its own (the embedded store outlives each
// test's config in this process, and so do its claims and spend), its API key the project id.
func alertConfig(upstream, project, webhook, extraTier string) string {
	return strings.NewReplacer("project p_other {", "project "+project+" {\n\t\t\ttenant t_999\n\t\t\tapi_key "+project+"\n\t\t\t"+
		strings.ReplaceAll(alertProject(webhook, extraTier), "\n", "\n\t")+"\n\t\t}\n\t\tproject p_other {").
		Replace(config(upstream, "", "", ""))
}

func waitEvents(t *testing.T, h *hookReceiver, want []string) map[string]int {
	t.Helper()
	var names []string
	var attempts map[string]int
	var bad int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		names, attempts, bad = h.delivered()
		if fmt.Sprint(names) == fmt.Sprint(want) || time.Now().After(deadline) {
			break
		}
	}
	if bad != 0 {
		t.Errorf("%d deliveries with a bad signature", bad)
	}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("events %q, want %q", names, want)
	}
	return attempts
}

// TestBudgetAlerts: each threshold is announced exactly once, the 100% one when the budget
// first refuses a request; a delivery the receiver fails is retried with the same id; every
// delivery is signed.
func TestBudgetAlerts(t *testing.T) {
	prov := newProvider(t)
	hook := newHookReceiver(t)
	tester := gateway(t, alertConfig(prov.URL, "p_alerts", hook.URL, ""))
	c := tester.Client
	m := mintToken(t, c, "p_alerts", `{"user_id":"user_alerts","tier":"alerted"}`)
	month := time.Now().UTC().Format("2006-01")
	// The 50% event's id, as the receiver will see it: it fails that one twice.
	fifty := alerts.Crossing{Scope: "project", ProjectID: "p_alerts", Limit: "cost_per_month", Threshold: 0.5, Period: month}
	hook.mu.Lock()
	hook.failIDs[fifty.ID()] = 2
	hook.mu.Unlock()

	codes := map[int]int{}
	for range 25 {
		resp := do(t, c, "POST", "/v1/chat/completions", m.Token, chatBody, nil)
		readBody(t, resp)
		codes[resp.StatusCode]++
	}
	if codes[200] == 0 || codes[429] == 0 {
		t.Fatalf("statuses %v: want the budget to admit some and refuse the rest", codes)
	}
	waitEvents(t, hook, []string{
		"project cost_per_month 0.5 " + month, "project cost_per_month 0.7 " + month, "project cost_per_month 1 " + month,
	})
	// Retried after 1 s, then 2 s more.
	var attempts map[string]int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, attempts, _ = hook.delivered(); attempts[fifty.ID()] >= 3 {
			break
		}
	}
	if attempts[fifty.ID()] != 3 {
		t.Errorf("the 50%% event was delivered %d times, want 3 (two failures, then 200)", attempts[fifty.ID()])
	}
	// More refusals announce nothing more.
	for range 5 {
		readBody(t, do(t, c, "POST", "/v1/chat/completions", m.Token, chatBody, nil))
	}
	time.Sleep(200 * time.Millisecond)
	waitEvents(t, hook, []string{
		"project cost_per_month 0.5 " + month, "project cost_per_month 0.7 " + month, "project cost_per_month 1 " + month,
	})
	hook.mu.Lock()
	defer hook.mu.Unlock()
	for _, ev := range hook.events {
		if ev.Threshold == 1 && (ev.SpentUSD <= 0 || ev.SpentUSD > 0.003 || ev.LimitUSD != 0.003) {
			t.Errorf("100%% event spent %v of %v: want what was spent when the budget refused", ev.SpentUSD, ev.LimitUSD)
		}
		if ev.Threshold == 0.5 && (ev.SpentUSD < 0.0015 || ev.TenantID != "t_999" || ev.ProjectID != "p_alerts" || ev.UserID != nil || ev.Type != "budget.threshold") {
			t.Errorf("50%% event %+v", ev)
		}
	}
}

// TestUserDailyAlert: a user's tier's cost_per_day, announced once at 100% when it first
// refuses the user.
func TestUserDailyAlert(t *testing.T) {
	prov := newProvider(t)
	hook := newHookReceiver(t)
	tester := gateway(t, strings.Replace(alertConfig(prov.URL, "p_daily", hook.URL, "cost_per_day 0.001"),
		"cost_per_month 0.003", "cost_per_month 100", 1))
	c := tester.Client
	m := mintToken(t, c, "p_daily", `{"user_id":"org_9:user_daily","tier":"alerted"}`)
	for range 10 {
		readBody(t, do(t, c, "POST", "/v1/chat/completions", m.Token, chatBody, nil))
	}
	day := time.Now().UTC().Format(time.DateOnly)
	waitEvents(t, hook, []string{"user org_9:user_daily cost_per_day 1 " + day})
}

// TestAlertReceiverHangingSlowsNoRequest: with the webhook hanging, requests are answered as
// ever; the delivery waits, off the request path.
func TestAlertReceiverHangingSlowsNoRequest(t *testing.T) {
	prov := newProvider(t)
	hook := newHookReceiver(t)
	hook.hang = make(chan struct{})
	defer close(hook.hang)
	tester := gateway(t, alertConfig(prov.URL, "p_hang", hook.URL, ""))
	client := &http.Client{Timeout: 3 * time.Second} // a request held by the webhook fails here
	m := mintToken(t, client, "p_hang", `{"user_id":"user_hang","tier":"alerted"}`)
	_ = tester
	for i := range 25 {
		resp := do(t, client, "POST", "/v1/chat/completions", m.Token, chatBody, nil)
		if b := readBody(t, resp); resp.StatusCode != 200 && resp.StatusCode != 429 {
			t.Fatalf("request %d with the webhook hanging: %d %s", i, resp.StatusCode, b)
		}
	}
	// The first delivery is under way, and hangs.
	for deadline := time.Now().Add(5 * time.Second); hook.attempts.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no delivery was attempted: the test proves nothing")
		}
	}
	// Requests go on as ever while it hangs.
	for i := range 5 {
		resp := do(t, client, "GET", "/v1/me", m.Token, "", nil)
		if b := readBody(t, resp); resp.StatusCode != 200 {
			t.Fatalf("request %d after the delivery hung: %d %s", i, resp.StatusCode, b)
		}
	}
}

// alertProcessConfig is a Caddy process of a restart or two-instance test.
func alertProcessConfig(port int, store, upstream, webhook string) string {
	return fmt.Sprintf(`{
	admin off
	auto_https off
}
http://127.0.0.1:%d {
	behest {
		issuer https://gateway.example
		%s
		project p_456 {
			tenant t_123
			api_key test-project-key
			%s
		}
	}
	reverse_proxy %s
}`, port, store, alertProject(webhook, ""), upstream)
}

// TestAlertsOnceAcrossRestart: a threshold announced before a restart is not announced again
// by the new process over the same data (embedded store).
func TestAlertsOnceAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Caddy processes")
	}
	prov := newProvider(t)
	hook := newHookReceiver(t)
	dir := t.TempDir()
	port := freePort()
	cfg := alertProcessConfig(port, "", prov.Listener.Addr().String(), hook.URL)
	month := time.Now().UTC().Format("2006-01")

	gw := startCaddy(t, cfg, dir, port)
	_, body := gw.do(t, "POST", "/v1/auth/mint", "test-project-key", `{"user_id":"user_restart","tier":"alerted"}`)
	var m minted
	_ = json.Unmarshal(body, &m)
	for range 11 { // past 50% ($0.0015), short of 70%
		gw.do(t, "POST", "/v1/chat/completions", m.Token, chatBody)
	}
	waitEvents(t, hook, []string{"project cost_per_month 0.5 " + month})
	gw.stop(15) // SIGTERM: a graceful stop flushes the claims

	gw = startCaddy(t, cfg, dir, port)
	for range 3 { // still past 50%, now past 70%
		gw.do(t, "POST", "/v1/chat/completions", m.Token, chatBody)
	}
	waitEvents(t, hook, []string{"project cost_per_month 0.5 " + month, "project cost_per_month 0.7 " + month})
	time.Sleep(300 * time.Millisecond)
	if _, attempts, _ := hook.delivered(); len(attempts) != 2 || attempts[(&alerts.Crossing{Scope: "project", ProjectID: "p_456",
		Limit: "cost_per_month", Threshold: 0.5, Period: month}).ID()] != 1 {
		t.Fatalf("deliveries by id %v after a restart, want each threshold once", attempts)
	}
}

// TestAlertsOnceAcrossInstances: two instances sharing Redis, with traffic split between them,
// announce each threshold once between them.
func TestAlertsOnceAcrossInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Caddy processes and redis-server")
	}
	rs := startRedis(t)
	prov := newProvider(t)
	hook := newHookReceiver(t)
	storage := filepath.Join(t.TempDir(), "storage")
	var gws [2]*caddyProcess
	for i := range gws {
		port := freePort()
		store := fmt.Sprintf("store redis %s\n\t\tsigning_key auto", rs.url())
		cfg := strings.Replace(alertProcessConfig(port, store, prov.Listener.Addr().String(), hook.URL),
			"auto_https off", "auto_https off\n\tstorage file_system "+storage, 1)
		gws[i] = startCaddy(t, cfg, t.TempDir(), port)
	}
	_, body := gws[0].do(t, "POST", "/v1/auth/mint", "test-project-key", `{"user_id":"user_shared_alerts","tier":"alerted"}`)
	var m minted
	_ = json.Unmarshal(body, &m)
	// Alternating, both instances see every threshold crossed (a crossing seen by one is claimed
	// before the other sees it too, at its next settle).
	for i := range 25 {
		gws[i%2].do(t, "POST", "/v1/chat/completions", m.Token, chatBody)
	}
	month := time.Now().UTC().Format("2006-01")
	waitEvents(t, hook, []string{
		"project cost_per_month 0.5 " + month, "project cost_per_month 0.7 " + month, "project cost_per_month 1 " + month,
	})
	time.Sleep(300 * time.Millisecond)
	if _, attempts, _ := hook.delivered(); len(attempts) != 3 {
		t.Fatalf("deliveries %v from two instances, want each threshold once", attempts)
	}
	for id, n := range func() map[string]int { _, a, _ := hook.delivered(); return a }() {
		if n != 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
}

package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var secret = []byte("whsec_test")

// memClaims is a Claimer in memory, like a store's.
type memClaims struct {
	mu   sync.Mutex
	keys map[string]bool
	err  error
}

func (m *memClaims) Claim(_ context.Context, project, key string, _ time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return false, m.err
	}
	if m.keys == nil {
		m.keys = map[string]bool{}
	}
	k := project + "\x00" + key
	if m.keys[k] {
		return false, nil
	}
	m.keys[k] = true
	return true, nil
}

// receiver records the deliveries it gets; fail makes it answer 500 to the first n.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	events []Event
	sigs   []string
	bodies [][]byte
	fail   atomic.Int64
	hang   chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if rc.hang != nil {
			select {
			case <-rc.hang:
			case <-r.Context().Done():
				return
			}
		}
		var ev Event
		_ = json.Unmarshal(body, &ev)
		rc.mu.Lock()
		rc.events, rc.sigs, rc.bodies = append(rc.events, ev), append(rc.sigs, r.Header.Get(SignatureHeader)), append(rc.bodies, body)
		rc.mu.Unlock()
		if rc.fail.Add(-1) >= 0 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) got() ([]Event, []string, [][]byte) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Event(nil), rc.events...), append([]string(nil), rc.sigs...), append([][]byte(nil), rc.bodies...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func newNotifier(t *testing.T, url string) *Notifier {
	n := New(Config{Webhook: url, Secret: secret, Backoff: func(int) time.Duration { return 20 * time.Millisecond }})
	t.Cleanup(n.Close)
	return n
}

func crossing(threshold float64) Crossing {
	return Crossing{Scope: "project", TenantID: "t_123", ProjectID: "p_456", Limit: "cost_per_month",
		Threshold: threshold, SpentUSD: 400.12, LimitUSD: 500, Period: "2026-12", Until: time.Now().Add(time.Hour)}
}

func TestCrossed(t *testing.T) {
	th := []float64{0.5, 0.8, 1}
	for _, tc := range []struct {
		spent, limit int64
		want         []float64
	}{{0, 100, nil}, {49, 100, nil}, {50, 100, []float64{0.5}}, {99, 100, []float64{0.5, 0.8}}, {100, 100, th}, {500, 0, nil}} {
		if got := Crossed(th, tc.spent, tc.limit); len(got) != len(tc.want) {
			t.Errorf("Crossed(%d of %d) = %v, want %v", tc.spent, tc.limit, got, tc.want)
		}
	}
}

// TestAnnouncedOnceSigned: one crossing, notified many times, is claimed and delivered once,
// in the contract's shape, with a signature the receiver can verify.
func TestAnnouncedOnceSigned(t *testing.T) {
	rc := newReceiver(t)
	n := newNotifier(t, rc.URL)
	claims := &memClaims{}
	for range 10 {
		n.Notify(claims, crossing(0.8))
	}
	user := crossing(1)
	user.Scope, user.UserID, user.Limit, user.Period = "user", "org_9:u", "cost_per_day", "2026-12-01"
	n.Notify(claims, user)
	waitFor(t, "two deliveries", func() bool { ev, _, _ := rc.got(); return len(ev) == 2 })
	time.Sleep(50 * time.Millisecond)
	events, sigs, bodies := rc.got()
	if len(events) != 2 {
		t.Fatalf("%d deliveries, want 2", len(events))
	}
	p, u := events[0], events[1]
	c := crossing(0.8)
	if p.ID != c.ID() || p.Type != EventType || p.Scope != "project" || p.UserID != nil || p.Threshold != 0.8 ||
		p.SpentUSD != 400.12 || p.LimitUSD != 500 || p.Period != "2026-12" || p.TenantID != "t_123" || p.At == 0 {
		t.Errorf("project event %+v", p)
	}
	if u.UserID == nil || *u.UserID != "org_9:u" || u.Limit != "cost_per_day" || u.ID == p.ID {
		t.Errorf("user event %+v", u)
	}
	for i, sig := range sigs {
		if err := Verify(secret, sig, bodies[i], time.Now(), 5*time.Minute); err != nil {
			t.Errorf("signature %q: %v", sig, err)
		}
	}
	// The raw body carries user_id: null for the project's event.
	var raw map[string]any
	_ = json.Unmarshal(bodies[0], &raw)
	if v, ok := raw["user_id"]; !ok || v != nil {
		t.Errorf("project event user_id = %v, %v; want null", v, ok)
	}

	// Another process (a second instance, or this one after a restart) sharing the claims
	// announces nothing more.
	other := newNotifier(t, rc.URL)
	other.Notify(claims, crossing(0.8))
	time.Sleep(100 * time.Millisecond)
	if ev, _, _ := rc.got(); len(ev) != 2 {
		t.Errorf("%d deliveries after another notifier saw the same crossing, want 2", len(ev))
	}
}

// TestRetriedWithTheSameID: failed deliveries are retried, with backoff, the same id and body,
// each signed afresh.
func TestRetriedWithTheSameID(t *testing.T) {
	rc := newReceiver(t)
	rc.fail.Store(2)
	n := newNotifier(t, rc.URL)
	n.Notify(&memClaims{}, crossing(0.5))
	waitFor(t, "three attempts", func() bool { ev, _, _ := rc.got(); return len(ev) == 3 })
	time.Sleep(100 * time.Millisecond)
	events, sigs, bodies := rc.got()
	if len(events) != 3 {
		t.Fatalf("%d attempts, want 3 (two failures, then 204)", len(events))
	}
	for i := range events {
		if events[i].ID != events[0].ID || string(bodies[i]) != string(bodies[0]) {
			t.Errorf("attempt %d: id %s body %s, want the first's", i, events[i].ID, bodies[i])
		}
		if err := Verify(secret, sigs[i], bodies[i], time.Now(), time.Minute); err != nil {
			t.Errorf("attempt %d: %v", i, err)
		}
	}
}

// TestHangingReceiverBlocksNobody: Notify returns at once while the receiver hangs, a full queue
// drops rather than waits, and Close ends the hung delivery.
func TestHangingReceiverBlocksNobody(t *testing.T) {
	rc := newReceiver(t)
	rc.hang = make(chan struct{})
	defer close(rc.hang)
	n := New(Config{Webhook: rc.URL, Secret: secret, QueueSize: 2})
	start := time.Now()
	queued := 0
	for i := range 100 {
		c := crossing(float64(i) / 100)
		if n.Notify(&memClaims{}, c) {
			queued++
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("100 Notify calls took %v with the receiver hanging", d)
	}
	if queued > 3 { // the one being delivered, and the queue's two
		t.Errorf("%d crossings queued with a queue of 2", queued)
	}
	start = time.Now()
	n.Close()
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("Close took %v with a hung delivery", d)
	}
}

// TestClaimErrorTriesAgain: when the store cannot claim, the crossing is not lost: the next
// Notify of it queues it again.
func TestClaimErrorTriesAgain(t *testing.T) {
	rc := newReceiver(t)
	n := newNotifier(t, rc.URL)
	claims := &memClaims{err: errors.New("store unavailable")}
	n.Notify(claims, crossing(1))
	time.Sleep(50 * time.Millisecond)
	claims.mu.Lock()
	claims.err = nil
	claims.mu.Unlock()
	waitFor(t, "the crossing to be queued again", func() bool {
		n.Notify(claims, crossing(1))
		ev, _, _ := rc.got()
		return len(ev) == 1
	})
}

func TestVerify(t *testing.T) {
	body := []byte(`{"id":"evt_1"}`)
	now := time.Unix(1764201234, 0)
	sig := Sign(secret, now, body)
	for _, tc := range []struct {
		name, sig string
		body      []byte
		secret    []byte
		at        time.Time
		ok        bool
	}{
		{"valid", sig, body, secret, now, true},
		{"tampered body", sig, []byte(`{"id":"evt_2"}`), secret, now, false},
		{"wrong secret", sig, body, []byte("other"), now, false},
		{"too old", sig, body, secret, now.Add(10 * time.Minute), false},
		{"malformed", "v1=abc", body, secret, now, false},
		{"spaces after commas", "t=1764201234, v1=" + sig[len("t=1764201234,v1="):], body, secret, now, true},
	} {
		if err := Verify(tc.secret, tc.sig, tc.body, tc.at, 5*time.Minute); (err == nil) != tc.ok {
			t.Errorf("%s: Verify = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// TestSignVector pins the signature of a known body: the Node snippet of the README (and the
// TypeScript client's verifyWebhookSignature test) checks the same vector.
func TestSignVector(t *testing.T) {
	body := []byte(`{"id":"evt_1","type":"budget.threshold"}`)
	want := "t=1764201234,v1=1438d4a5efc902cfe9e14c9c75bd36fef935b469ade920a45b9d8a0878b631b8"
	if got := Sign([]byte("whsec_test"), time.Unix(1764201234, 0), body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

// ExampleVerify is how a receiver in Go checks a delivery (the README shows it).
func ExampleVerify() {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable", http.StatusBadRequest)
			return
		}
		if err := Verify([]byte("whsec_test"), r.Header.Get(SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev Event
		_ = json.Unmarshal(body, &ev)
		// Deliveries are at least once: drop an ev.ID already handled.
		w.WriteHeader(http.StatusNoContent)
	})
	_ = handler
	// Output:
}

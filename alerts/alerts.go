// Package alerts announces budget thresholds to a webhook: each threshold a spend reaches is
// claimed once in the limit store (so it is announced once across restarts and across the
// instances sharing a store), then POSTed, signed with HMAC-SHA256, and retried with backoff
// under the same id until the receiver answers 2xx. Nothing in it runs on the request path:
// Notify only queues. It does not import Caddy.
package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// EventType is the type of every event: a budget threshold reached.
const EventType = "budget.threshold"

// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">".
const SignatureHeader = "Behest-Signature"

// Event is what the webhook receives, as JSON.
type Event struct {
	ID        string  `json:"id"`
	Type      string  `json:"type"`
	Scope     string  `json:"scope"` // "project" or "user"
	TenantID  string  `json:"tenant_id"`
	ProjectID string  `json:"project_id"`
	UserID    *string `json:"user_id"`
	Limit     string  `json:"limit"` // "cost_per_month" or "cost_per_day"
	Threshold float64 `json:"threshold"`
	SpentUSD  float64 `json:"spent_usd"`
	LimitUSD  float64 `json:"limit_usd"`
	Period    string  `json:"period"` // "2026-12" or "2026-12-01"
	At        int64   `json:"at"`     // unix seconds
}

// Crossing is a threshold a spend has reached, to be announced once.
type Crossing struct {
	Scope     string // "project" or "user"
	TenantID  string
	ProjectID string
	UserID    string // "" for the project
	Limit     string // "cost_per_month" or "cost_per_day"
	Threshold float64
	SpentUSD  float64
	LimitUSD  float64
	Period    string
	// Until is how long the claim is kept: past the end of the period, when no spend can
	// reach the threshold of that period any more.
	Until time.Time
	// Spent, when set, is asked for SpentUSD before the event is made (for a crossing seen
	// as a refusal, whose spend the request path does not know); its error leaves SpentUSD.
	Spent func(ctx context.Context) (float64, error)
}

// key identifies the crossing's announcement: scope, user, limit, threshold and period.
func (c *Crossing) key() string {
	return "alert:" + c.Scope + "\x00" + c.UserID + "\x00" + c.Limit + "\x00" +
		strconv.FormatFloat(c.Threshold, 'f', -1, 64) + "\x00" + c.Period
}

// ID is the event's id: the same for an announcement whichever instance makes it, and on every
// delivery attempt, so a receiver can drop repeats.
func (c *Crossing) ID() string {
	sum := sha256.Sum256([]byte(c.ProjectID + "\x00" + c.key()))
	return "evt_" + hex.EncodeToString(sum[:12])
}

// Claimer decides the first announcement of a key (limiter.Store implements it).
type Claimer interface {
	Claim(ctx context.Context, project, key string, until time.Time) (bool, error)
}

// Crossed returns the thresholds (fractions of limit) that spent has reached, in order.
func Crossed(thresholds []float64, spent, limit int64) []float64 {
	if limit <= 0 {
		return nil
	}
	var out []float64
	for _, t := range thresholds {
		if float64(spent) >= t*float64(limit) {
			out = append(out, t)
		}
	}
	return out
}

// Config configures a Notifier. Zero values take the defaults.
type Config struct {
	// Webhook is the URL events are POSTed to.
	Webhook string
	// Secret keys the signature.
	Secret []byte
	// Client makes the POSTs (default: a client with a 10s timeout).
	Client *http.Client
	// Backoff is the wait before retry n (1, 2, …) of a delivery (default 1s doubled each time,
	// at most 10 minutes).
	Backoff func(n int) time.Duration
	// MaxAttempts is how many times a delivery is tried before it is given up, logged (default
	// 30: about four hours with the default backoff).
	MaxAttempts int
	// QueueSize bounds the crossings waiting to be claimed (default 1024); past it, Notify drops
	// and a later request that reaches the threshold queues it again.
	QueueSize int
	// Now is the clock of the events' times (default time.Now).
	Now    func() time.Time
	Logger *zap.Logger
}

// Notifier claims and delivers announcements in one goroutine of its own, started by New and
// stopped by Close. Safe for concurrent use.
type Notifier struct {
	cfg   Config
	queue chan queued
	stop  chan struct{}
	done  chan struct{}

	mu sync.Mutex
	// seen are the keys of this process's crossings already queued or claimed, so a user over a
	// threshold does not claim it again with every request. Bounded: cleared when full.
	seen map[string]struct{}
}

type queued struct {
	claims Claimer
	c      Crossing
}

// maxSeen bounds Notifier.seen.
const maxSeen = 100_000

// New starts a Notifier.
func New(cfg Config) *Notifier {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Backoff == nil {
		cfg.Backoff = func(n int) time.Duration { return min(time.Second<<min(n-1, 20), 10*time.Minute) }
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 30
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	n := &Notifier{cfg: cfg, queue: make(chan queued, cfg.QueueSize), stop: make(chan struct{}),
		done: make(chan struct{}), seen: map[string]struct{}{}}
	go n.run()
	return n
}

// Notify queues c, to be announced unless it has been before (here, or by any process sharing
// claims). It never blocks; it reports false when c was not queued (seen already, or the queue
// is full).
func (n *Notifier) Notify(claims Claimer, c Crossing) bool {
	k := c.ProjectID + "\x00" + c.key()
	n.mu.Lock()
	if _, ok := n.seen[k]; ok {
		n.mu.Unlock()
		return false
	}
	if len(n.seen) >= maxSeen {
		clear(n.seen) // claims still stop repeats; this only saves their round trips
	}
	n.seen[k] = struct{}{}
	n.mu.Unlock()
	select {
	case n.queue <- queued{claims, c}:
		return true
	default:
		n.forget(k)
		n.cfg.Logger.Warn("alert queue full: a threshold crossing waits for the next request that reaches it",
			zap.String("project", c.ProjectID))
		return false
	}
}

func (n *Notifier) forget(k string) {
	n.mu.Lock()
	delete(n.seen, k)
	n.mu.Unlock()
}

// Close stops the Notifier, giving a delivery under way a few seconds to finish. Deliveries
// still waiting to be retried are dropped (and logged): an event undelivered when the process
// stops is not sent again by the next one.
func (n *Notifier) Close() {
	select {
	case <-n.stop:
	default:
		close(n.stop)
	}
	<-n.done
}

// pending is an event waiting to be delivered.
type pending struct {
	event   Event
	body    []byte
	attempt int
	due     time.Time
}

// run claims queued crossings and delivers their events, retrying failed ones with backoff.
func (n *Notifier) run() {
	defer close(n.done)
	var retries []*pending
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := time.Hour
		now := time.Now()
		for _, p := range retries {
			next = min(next, p.due.Sub(now))
		}
		timer.Reset(max(next, 0))
		select {
		case <-n.stop:
			if len(retries) > 0 {
				n.cfg.Logger.Error("alerts not delivered before stopping", zap.Int("count", len(retries)))
			}
			return
		case q := <-n.queue:
			if p := n.claim(q); p != nil {
				if !n.deliver(p) {
					retries = append(retries, p)
				}
			}
		case <-timer.C:
			now := time.Now()
			kept := retries[:0]
			for _, p := range retries {
				if now.Before(p.due) || !n.deliver(p) {
					if p.attempt < n.cfg.MaxAttempts {
						kept = append(kept, p)
						continue
					}
					n.cfg.Logger.Error("alert given up after its last delivery attempt",
						zap.String("id", p.event.ID), zap.Int("attempts", p.attempt))
				}
			}
			retries = kept
		}
	}
}

// claim claims q's crossing and makes its event when this is the first announcement.
func (n *Notifier) claim(q queued) *pending {
	c := q.c
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	first, err := q.claims.Claim(ctx, c.ProjectID, c.key(), c.Until)
	if err != nil {
		// The store cannot answer: forget the crossing here, so the next request that reaches
		// the threshold tries again.
		n.forget(c.ProjectID + "\x00" + c.key())
		n.cfg.Logger.Warn("claiming an alert failed; it is tried again at the next request over the threshold",
			zap.String("project", c.ProjectID), zap.Error(err))
		return nil
	}
	if !first {
		return nil
	}
	if c.Spent != nil {
		if spent, err := c.Spent(ctx); err == nil {
			c.SpentUSD = spent
		}
	}
	ev := Event{ID: c.ID(), Type: EventType, Scope: c.Scope, TenantID: c.TenantID, ProjectID: c.ProjectID,
		Limit: c.Limit, Threshold: c.Threshold, SpentUSD: c.SpentUSD, LimitUSD: c.LimitUSD, Period: c.Period,
		At: n.cfg.Now().Unix()}
	if c.UserID != "" {
		user := c.UserID
		ev.UserID = &user
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return nil
	}
	return &pending{event: ev, body: body}
}

// deliver POSTs p once; on failure it schedules the next attempt and reports false.
func (n *Notifier) deliver(p *pending) bool {
	p.attempt++
	err := n.post(p.body)
	if err == nil {
		if p.attempt > 1 {
			n.cfg.Logger.Info("alert delivered after retries", zap.String("id", p.event.ID), zap.Int("attempts", p.attempt))
		}
		return true
	}
	p.due = time.Now().Add(n.cfg.Backoff(p.attempt))
	n.cfg.Logger.Warn("delivering an alert failed; retrying", zap.String("id", p.event.ID),
		zap.Int("attempt", p.attempt), zap.Error(err))
	return false
}

func (n *Notifier) post(body []byte) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // Close ends a delivery that hangs, after a grace
		select {
		case <-n.stop:
			select {
			case <-time.After(3 * time.Second):
				cancel()
			case <-ctx.Done():
			}
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.cfg.Webhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "behest-alerts/1")
	req.Header.Set(SignatureHeader, Sign(n.cfg.Secret, n.cfg.Now(), body))
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the webhook answered %d", resp.StatusCode)
	}
	return nil
}

// Sign is the Behest-Signature value of body sent at t: "t=<unix seconds>,v1=<hex HMAC-SHA256
// of "<t>.<body>" keyed by secret>".
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a Behest-Signature header against body, refusing signatures older than
// tolerance (0: any age) at now: what a receiver in Go does.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts, v1 string
	for _, part := range bytes.Split([]byte(header), []byte(",")) {
		k, v, _ := bytes.Cut(bytes.TrimSpace(part), []byte("="))
		switch string(k) {
		case "t":
			ts = string(v)
		case "v1":
			v1 = string(v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || v1 == "" {
		return fmt.Errorf("alerts: a malformed signature header")
	}
	if tolerance > 0 && now.Sub(time.Unix(sec, 0)).Abs() > tolerance {
		return fmt.Errorf("alerts: the signature is older than %s", tolerance)
	}
	want := Sign(secret, time.Unix(sec, 0), body)
	if !hmac.Equal([]byte(want[len("t="+ts+",v1="):]), []byte(v1)) {
		return fmt.Errorf("alerts: the signature does not match")
	}
	return nil
}

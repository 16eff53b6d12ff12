package limiter

import (
	"context"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var testBase = time.Date(2026, 1, 31, 23, 58, 0, 0, time.UTC)

// openForFlush opens a file store whose flusher never ticks, so the test flushes by hand.
func openForFlush(t *testing.T, opts EmbeddedOptions) (*Embedded, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "l.db")
	opts.FlushInterval = time.Hour
	e, err := OpenEmbedded(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, path
}

// crash stops e as a killed process would: no final flush.
func (e *Embedded) crash() {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		close(e.stop)
		<-e.done
		e.db.Close()
	})
}

func (e *Embedded) userCount() int {
	n := 0
	for i := range e.shards {
		e.shards[i].mu.Lock()
		n += len(e.shards[i].users)
		e.shards[i].mu.Unlock()
	}
	return n
}

func mustFlush(t *testing.T, e *Embedded) {
	t.Helper()
	if err := e.flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

func TestEvictIdleReloads(t *testing.T) {
	e, _ := openForFlush(t, EmbeddedOptions{})
	ctx := context.Background()
	req := Request{Project: "p", User: "u", Limits: Limits{RequestsPerMinute: 3, TokensPerDay: 1000, ConcurrentRequests: 5}, Tokens: 100}
	res, _, _ := e.Reserve(ctx, testBase, req)
	inFlight, _, _ := e.Reserve(ctx, testBase, req)
	_, _ = e.Settle(ctx, testBase, res, Usage{InputTokens: 10, OutputTokens: 20})

	// Another user a day later moves the store's clock: u is idle, but has a request in flight.
	later := testBase.Add(25 * time.Hour)
	other := Request{Project: "p", User: "v"}
	_, _, _ = e.Reserve(ctx, later, other)
	for range 3 {
		mustFlush(t, e)
	}
	if n := e.userCount(); n != 2 {
		t.Fatalf("a user with a request in flight was dropped: %d users", n)
	}
	_, _ = e.Settle(ctx, testBase, inFlight, Usage{InputTokens: 40})
	for range 2 { // the first writes it, the second drops it
		mustFlush(t, e)
	}
	if n := e.userCount(); n != 1 {
		t.Fatalf("an idle, flushed user was kept: %d users", n)
	}
	// Its day's counters come back from the file. (Its window emptied while it was away: the
	// user's time moved to when it did, so a caller whose now lags cannot see it as before.)
	rem, _ := e.Remaining(ctx, testBase, req)
	if rem.RequestsPerMinute != 3 || rem.TokensPerDay != 1000-30-40 || rem.ConcurrentRequests != 5 {
		t.Errorf("after it was dropped, Remaining = %+v", rem)
	}
	if n := e.userCount(); n != 1 {
		t.Errorf("Remaining kept the user it read: %d users", n)
	}
	req.Tokens = 1000 - 70
	if _, dec, _ := e.Reserve(ctx, testBase.Add(time.Hour), req); !dec.Allowed {
		t.Errorf("after it was dropped, Reserve = %+v", dec)
	}
	if _, dec, _ := e.Reserve(ctx, testBase.Add(time.Hour), req); dec.Refused != LimitTokensPerDay {
		t.Errorf("the reloaded day did not hold: %+v", dec)
	}
}

func TestIdleWindowReleased(t *testing.T) {
	e, _ := openForFlush(t, EmbeddedOptions{})
	ctx := context.Background()
	res, _, _ := e.Reserve(ctx, testBase, Request{Project: "p", User: "u", Tokens: 5})
	_, _ = e.Settle(ctx, testBase, res, Usage{InputTokens: 3})
	_, _, _ = e.Reserve(ctx, testBase.Add(2*time.Minute), Request{Project: "p", User: "v"})
	mustFlush(t, e) // sets the clock
	mustFlush(t, e)
	sh := &e.shards[shardIndex("p", "u")]
	sh.mu.Lock()
	u := sh.user(userKey{"p", "u"})
	win, act := u.win(), u.act
	sh.mu.Unlock()
	if win != nil {
		t.Error("the window of a user idle for two minutes was kept")
	}
	if act != nil {
		t.Errorf("a user idle for two minutes, and written, kept its activity: %+v", act)
	}
}

func TestLeaseFreesSlot(t *testing.T) {
	e, _ := openForFlush(t, EmbeddedOptions{ConcurrencyLease: time.Minute})
	ctx := context.Background()
	testBase := testBase.Add(-time.Hour) // all in one day
	req := Request{Project: "p", User: "u", Limits: Limits{ConcurrentRequests: 1, CostPerDay: 100}, Cost: 50}
	leaked, _, _ := e.Reserve(ctx, testBase, req)
	if _, dec, _ := e.Reserve(ctx, testBase.Add(30*time.Second), req); dec.Refused != LimitConcurrentRequests {
		t.Fatalf("second request: %+v", dec)
	}
	_, _, _ = e.Reserve(ctx, testBase.Add(2*time.Minute), Request{Project: "p", User: "clock"})
	mustFlush(t, e)
	mustFlush(t, e)
	res, dec, _ := e.Reserve(ctx, testBase.Add(2*time.Minute), req)
	if !dec.Allowed {
		t.Fatalf("the slot of a reservation past its lease is still held: %+v", dec)
	}
	// The leaked reservation can still be settled: its cost comes back, no slot is freed twice.
	_, _ = e.Settle(ctx, testBase.Add(3*time.Minute), leaked, Usage{Cost: 10})
	rem, _ := e.Remaining(ctx, testBase.Add(3*time.Minute), req)
	if rem.ConcurrentRequests != 0 || rem.CostPerDay != 100-10-50 {
		t.Errorf("after settling the leaked reservation: %+v", rem)
	}
	_, _ = e.Settle(ctx, testBase.Add(3*time.Minute), res, Usage{})
	if rem, _ := e.Remaining(ctx, testBase.Add(3*time.Minute), req); rem.ConcurrentRequests != 1 {
		t.Errorf("after settling both: %+v", rem)
	}
}

func TestFlushFailureKeepsEverything(t *testing.T) {
	e, path := openForFlush(t, EmbeddedOptions{})
	ctx := context.Background()
	req := Request{Project: "p", User: "u", Tier: "free", ProjectCostPerMonth: 1000, Cost: 10}
	res, _, _ := e.Reserve(ctx, testBase, req)
	_, _ = e.Settle(ctx, testBase, res, Usage{InputTokens: 1, OutputTokens: 2, Cost: 3})

	// The file goes away under the store: the flush fails and keeps everything for the next.
	e.db.Close()
	if err := e.flush(); err == nil {
		t.Fatal("flush to a closed file succeeded")
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.db = db
	mustFlush(t, e)
	e.crash()
	e2, err := OpenEmbedded(path, EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	rows, err := e2.Usage(ctx, UsageQuery{Project: "p", GroupBy: []string{"tier"}, From: testBase, To: testBase})
	want := []UsageRow{{Group: []string{"free"}, Requests: 1, InputTokens: 1, OutputTokens: 2, Cost: 3}}
	if err != nil || !reflect.DeepEqual(rows, want) {
		t.Errorf("Usage = %+v, %v; want %+v", rows, err, want)
	}
	if rem, _ := e2.Remaining(ctx, testBase, req); rem.ProjectCostPerMonth != 997 {
		t.Errorf("project budget left = %d, want 997", rem.ProjectCostPerMonth)
	}
}

// TestUsageDuringFlush: usage read while flushes move it from memory to the file is never
// counted twice or missed.
func TestUsageDuringFlush(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	e, err := OpenEmbedded(path, EmbeddedOptions{FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	req := Request{Project: "p", User: "u", Tier: "free"}
	var flushes atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { // flushes back to back, besides the flusher's
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				_ = e.flush()
				flushes.Add(1)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	// At least 300 requests and, however the machine schedules the flusher, at least 10 flushes
	// among them.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 300 || flushes.Load() < 10; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("only %d flushes ran in 20 s", flushes.Load())
		}
		res, _, _ := e.Reserve(ctx, testBase, req)
		_, _ = e.Settle(ctx, testBase, res, Usage{InputTokens: 1})
		rows, err := e.Usage(ctx, UsageQuery{Project: "p", GroupBy: []string{"tier"}, From: testBase, To: testBase})
		if err != nil || len(rows) != 1 || rows[0].Requests != int64(i+1) || rows[0].InputTokens != int64(i+1) {
			t.Fatalf("after %d requests: Usage = %+v, %v", i+1, rows, err)
		}
		if i%50 == 0 {
			runtime.Gosched()
		}
	}
}

func TestUsageRetention(t *testing.T) {
	e, _ := openForFlush(t, EmbeddedOptions{UsageRetention: 48 * time.Hour})
	ctx := context.Background()
	for d := range 5 {
		now := testBase.Add(time.Duration(d) * 24 * time.Hour)
		res, _, _ := e.Reserve(ctx, now, Request{Project: "p", User: "u"})
		_, _ = e.Settle(ctx, now, res, Usage{InputTokens: 1})
		mustFlush(t, e)
	}
	mustFlush(t, e) // the clock is now day 4: days 0 and 1 are past 48 h
	rows, err := e.Usage(ctx, UsageQuery{Project: "p", GroupBy: []string{"day"}})
	var days []string
	for _, r := range rows {
		days = append(days, r.Group[0])
	}
	if want := []string{"2026-02-02", "2026-02-03", "2026-02-04"}; err != nil || !reflect.DeepEqual(days, want) {
		t.Errorf("days kept = %v, %v; want %v", days, err, want)
	}
}

func TestCodec(t *testing.T) {
	odd := "a\x00b\xff:"
	k := usageKey{project: odd, day: -3, user: odd, session: "", tier: odd, model: odd + odd}
	if got, err := parseUsageKey(odd, appendUsageKey(nil, &k)); err != nil || got != k {
		t.Errorf("usage key round trip: %+v, %v; want %+v", got, err, k)
	}
	if d1, d2 := appendDay(nil, -1), appendDay(nil, 0); string(d1) >= string(d2) {
		t.Error("days do not sort")
	}
	uk := userKey{odd, odd}
	if got, err := parseUserKey(appendUserKey(nil, uk)); err != nil || got != uk {
		t.Errorf("user key round trip: %+v, %v", got, err)
	}
	rk := revKey{odd, RevokeUser, odd}
	if got, err := parseRevocationKey(appendRevocationKey(nil, rk)); err != nil || got != rk {
		t.Errorf("revocation key round trip: %+v, %v", got, err)
	}

	u := &userState{latest: at(30 * time.Second), day: 20484, dayTokens: 7, dayCost: 8, month: 24312, monthCost: 9,
		act: &userActivity{win: new(minuteWindow)}}
	u.win().add(at(-40*time.Second), 1, 10) // gone by latest: not written
	u.win().add(at(0), 2, 20)
	u.win().add(at(30*time.Second), 1, 5)
	got, err := parseUser(appendUser(nil, u))
	if err != nil {
		t.Fatal(err)
	}
	if s := got.win().sums(u.latest); s.reqs != 3 || s.tokens != 25 {
		r, tk := s.reqs, s.tokens
		t.Errorf("window after a round trip: %d requests, %d tokens; want 3, 25", r, tk)
	}
	got.act, u.act = nil, nil
	if !reflect.DeepEqual(got, u) {
		t.Errorf("user round trip: %+v, want %+v", got, u)
	}
	a := usageAgg{1, 2, 3, 4, 5}
	if got, err := parseUsage(appendUsage(nil, a)); err != nil || got != a {
		t.Errorf("usage round trip: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, {}, {9}, {valueFormat}, {valueFormat, 1}} {
		if _, err := parseUser(bad); err == nil {
			t.Errorf("parseUser(%q) succeeded", bad)
		}
		if _, err := parseUsage(bad); err == nil {
			t.Errorf("parseUsage(%q) succeeded", bad)
		}
	}
	for _, bad := range []string{"", "\x05ab", "short"} {
		if _, err := parseUsageKey("p", []byte(bad)); err == nil {
			t.Errorf("parseUsageKey(%q) succeeded", bad)
		}
	}
}

// TestCrash: a process killed without Close loses what changed after the last flush, and only
// that. Reservations in flight at the last flush stay charged in full (as a request cut off
// is); revocations are never lost (Revoke writes them at once).
func TestCrash(t *testing.T) {
	e, path := openForFlush(t, EmbeddedOptions{})
	ctx := context.Background()
	req := Request{Project: "p", User: "u", Session: "s", Tier: "free", Model: "m",
		Limits:              Limits{RequestsPerMinute: 10, TokensPerDay: 1000, CostPerMonth: 1000},
		ProjectCostPerMonth: 10000, Tokens: 100, Cost: 100}
	res, _, _ := e.Reserve(ctx, testBase, req)
	_, _ = e.Settle(ctx, testBase, res, Usage{InputTokens: 10, OutputTokens: 20, Cost: 30})
	_, _, _ = e.Reserve(ctx, testBase, req) // in flight
	mustFlush(t, e)

	res, _, _ = e.Reserve(ctx, testBase.Add(time.Second), req) // lost
	_, _ = e.Settle(ctx, testBase.Add(time.Second), res, Usage{InputTokens: 1, Cost: 1})
	revokedAt := time.Now()
	if err := e.Revoke(ctx, "p", RevokeSession, "s", revokedAt); err != nil {
		t.Fatal(err)
	}
	e.crash()

	e2, err := OpenEmbedded(path, EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	want := Remaining{RequestsPerMinute: 8, TokensPerMinute: -1, TokensPerDay: 1000 - 30 - 100, CostPerDay: -1,
		CostPerMonth: 1000 - 30 - 100, ConcurrentRequests: -1, ProjectCostPerMonth: 10000 - 30 - 100}
	if got, _ := e2.Remaining(ctx, testBase.Add(2*time.Second), req); got != want {
		t.Errorf("after the crash, Remaining = %+v\n                          want %+v", got, want)
	}
	rows, _ := e2.Usage(ctx, UsageQuery{Project: "p"})
	if wantRows := []UsageRow{{Group: []string{"u"}, Requests: 1, InputTokens: 10, OutputTokens: 20, Cost: 30}}; !reflect.DeepEqual(rows, wantRows) {
		t.Errorf("after the crash, Usage = %+v, want %+v", rows, wantRows)
	}
	if got, _ := e2.RevokedBefore(ctx, "p", RevokeSession, "s"); !got.Equal(revokedAt) {
		t.Errorf("after the crash, RevokedBefore = %v, want %v", got, revokedAt)
	}
}

// TestFlusherWrites: the flusher writes changes within FlushInterval, without Close.
func TestFlusherWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	e, err := OpenEmbedded(path, EmbeddedOptions{FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := Request{Project: "p", User: "u", ProjectCostPerMonth: 1000, Cost: 10}
	res, _, _ := e.Reserve(ctx, testBase, req)
	_, _ = e.Settle(ctx, testBase, res, Usage{InputTokens: 5, Cost: 7})
	sh := &e.shards[shardIndex("p", "u")]
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		sh.mu.Lock()
		u := sh.user(userKey{"p", "u"})
		pending := u.act != nil && (u.act.dirty || len(u.act.usage) > 0)
		sh.mu.Unlock()
		if !pending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing was flushed in 5s with a 20ms FlushInterval")
		}
	}
	e.flushMu.Lock() // the flush that took it has committed once flushMu is free
	e.flushMu.Unlock()
	e.crash()
	e2, err := OpenEmbedded(path, EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if rem, _ := e2.Remaining(ctx, testBase, req); rem.ProjectCostPerMonth != 993 {
		t.Errorf("after the crash, the project has %d left, want 993", rem.ProjectCostPerMonth)
	}
	if rows, _ := e2.Usage(ctx, UsageQuery{Project: "p"}); len(rows) != 1 || rows[0].InputTokens != 5 {
		t.Errorf("after the crash, Usage = %+v", rows)
	}
}

// TestEvictionRace: users dropped from memory and read back while requests race the flusher
// keep every unit they spent.
func TestEvictionRace(t *testing.T) {
	e, err := OpenEmbedded(filepath.Join(t.TempDir(), "l.db"), EmbeddedOptions{FlushInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	req := func(i int) Request {
		return Request{Project: "p", User: "u" + strconv.Itoa(i), Limits: Limits{TokensPerDay: 100}, Tokens: 60}
	}
	const users = 50
	for i := range users {
		if _, dec, _ := e.Reserve(ctx, testBase.Add(-time.Hour), req(i)); !dec.Allowed {
			t.Fatal(dec)
		}
	}
	// A day later by someone else's clock, every user is idle: flushes drop them over and over.
	_, _, _ = e.Reserve(ctx, testBase.Add(25*time.Hour), Request{Project: "p", User: "clock"})
	var wg sync.WaitGroup
	var admitted atomic.Int64
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 2000 {
				i := (g*users/4 + n) % users
				if _, dec, _ := e.Reserve(ctx, testBase.Add(-time.Hour), req(i)); dec.Allowed {
					admitted.Add(1)
				}
				if n%100 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	if n := admitted.Load(); n != 0 {
		t.Errorf("%d requests over a day's tokens were admitted while users were dropped and read back", n)
	}
	mustFlush(t, e)
	if n := e.userCount(); n != 1 {
		t.Errorf("%d users in memory after a flush, want 1: idle users are not dropped", n)
	}
}

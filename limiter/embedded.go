package limiter

import (
	"context"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// EmbeddedOptions configure OpenEmbedded.
type EmbeddedOptions struct {
	// Logger (default zap.NewNop()).
	Logger *zap.Logger
	// FlushInterval is the most the file lags behind memory (default 1s).
	FlushInterval time.Duration
	// RevocationTTL is how long a revocation is kept (default 30 days).
	RevocationTTL time.Duration
	// OpenTimeout bounds waiting for another process's lock on the file (default 5s).
	OpenTimeout time.Duration
}

// Embedded is the default Store: authoritative counters in memory, made durable in a bbolt file
// written behind at most FlushInterval late. One process only: the file is locked while open.
// The zero value is not usable; call OpenEmbedded.
type Embedded struct {
	opts EmbeddedOptions
	db   *bolt.DB // nil: memory only

	flushMu flushLock

	// mu guards everything below. One lock keeps every check-and-reserve exact; the work under
	// it is a few map look-ups and additions.
	mu       sync.Mutex
	users    map[userKey]*userState
	projects map[string]*projectState
	inflight map[uint64]struct{}
	nextID   uint64
	usage    map[usageKey]*usageAgg // not yet flushed
	revoked  map[revKey]time.Time
	dirty    dirtySet

	stop chan struct{}
	done chan struct{}
}

type userKey struct{ project, user string }

type revKey struct{ project, kind, id string }

// userState is one end user's counters within a project.
type userState struct {
	Requests   window
	Tokens     window
	Day        int64 // days since the epoch, UTC
	DayTokens  int64
	DayCost    Nanos
	Month      int64 // year*12 + month-1
	MonthCost  Nanos
	concurrent int64
	lastSeen   time.Time
}

type projectState struct {
	Month     int64
	MonthCost Nanos
}

func dayOf(t time.Time) int64 { return t.Unix() / 86400 }

func monthOf(t time.Time) int64 {
	u := t.UTC()
	return int64(u.Year())*12 + int64(u.Month()) - 1
}

// roll starts new periods when t is past the stored ones. Only forwards: a request stamped just
// before midnight that takes the lock just after must not wipe the new day's spend (it is
// charged to the new period, which errs on the safe side).
func (u *userState) roll(t time.Time) {
	if d := dayOf(t); d > u.Day {
		u.Day, u.DayTokens, u.DayCost = d, 0, 0
	}
	if m := monthOf(t); m > u.Month {
		u.Month, u.MonthCost = m, 0
	}
}

func (p *projectState) roll(t time.Time) {
	if m := monthOf(t); m > p.Month {
		p.Month, p.MonthCost = m, 0
	}
}

// OpenEmbedded opens (or creates) the store file at path; "" keeps everything in memory only.
func OpenEmbedded(path string, opts EmbeddedOptions) (*Embedded, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Second
	}
	if opts.RevocationTTL <= 0 {
		opts.RevocationTTL = 30 * 24 * time.Hour
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = 5 * time.Second
	}
	e := &Embedded{
		opts: opts, users: map[userKey]*userState{}, projects: map[string]*projectState{},
		inflight: map[uint64]struct{}{}, usage: map[usageKey]*usageAgg{}, revoked: map[revKey]time.Time{},
		dirty: newDirtySet(), stop: make(chan struct{}), done: make(chan struct{}),
	}
	if path == "" {
		close(e.done)
		return e, nil
	}
	if err := e.openFile(path); err != nil {
		return nil, err
	}
	go e.flusher()
	return e, nil
}

// Close writes what is pending and closes the file.
func (e *Embedded) Close() error {
	if e.db == nil {
		return nil
	}
	select {
	case <-e.stop:
		return nil
	default:
	}
	close(e.stop)
	<-e.done
	err := e.flush()
	if cerr := e.db.Close(); err == nil {
		err = cerr
	}
	return err
}

func (e *Embedded) flusher() {
	defer close(e.done)
	t := time.NewTicker(e.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			if err := e.flush(); err != nil {
				e.opts.Logger.Error("writing limits to disk failed", zap.Error(err))
			}
		}
	}
}

// user returns the state of k, loading it from the file when it is not in memory.
func (e *Embedded) user(k userKey) *userState {
	u, ok := e.users[k]
	if !ok {
		u = e.loadUser(k)
		e.users[k] = u
	}
	return u
}

func (e *Embedded) project(id string) *projectState {
	p, ok := e.projects[id]
	if !ok {
		p = &projectState{}
		e.projects[id] = p
	}
	return p
}

// Reserve implements Store.
func (e *Embedded) Reserve(_ context.Context, now time.Time, req Request) (Reservation, Decision, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var dec Decision
	if e.isRevoked(req) {
		dec.Revoked = true
		return Reservation{}, dec, nil
	}
	u := e.user(userKey{req.Project, req.User})
	u.lastSeen = now
	u.roll(now)
	p := e.project(req.Project)
	p.roll(now)
	sec := now.Unix()
	l := req.Limits

	dec.Refused, dec.RetryAfter = check(u, p, req, now)
	if dec.Refused == LimitNone {
		dec.Allowed = true
		u.concurrent++
		u.Requests.add(sec, 1)
		u.Tokens.add(sec, req.Tokens)
		u.DayTokens += req.Tokens
		u.DayCost += req.Cost
		u.MonthCost += req.Cost
		p.MonthCost += req.Cost
		e.dirty.user(userKey{req.Project, req.User})
		e.dirty.projects[req.Project] = struct{}{}
	}
	if l.RequestsPerMinute > 0 {
		dec.RequestsLimit = l.RequestsPerMinute
		dec.RequestsRemaining = max(l.RequestsPerMinute-u.Requests.sum(sec), 0)
		dec.RequestsReset = u.Requests.reset(sec)
	}
	if l.TokensPerMinute > 0 {
		dec.TokensLimit = l.TokensPerMinute
		dec.TokensRemaining = max(l.TokensPerMinute-u.Tokens.sum(sec), 0)
		dec.TokensReset = u.Tokens.reset(sec)
	}
	if !dec.Allowed {
		return Reservation{}, dec, nil
	}
	e.nextID++
	e.inflight[e.nextID] = struct{}{}
	return Reservation{Request: req, At: now, ID: e.nextID}, dec, nil
}

// check finds the first limit that has no room for req, in the order: concurrency, requests and
// tokens per minute, tokens per day, cost per day, cost per month, project cost per month.
func check(u *userState, p *projectState, req Request, now time.Time) (Limit, time.Duration) {
	l, sec := req.Limits, now.Unix()
	switch {
	case l.ConcurrentRequests > 0 && u.concurrent+1 > l.ConcurrentRequests:
		return LimitConcurrentRequests, time.Second
	case l.RequestsPerMinute > 0 && u.Requests.sum(sec)+1 > l.RequestsPerMinute:
		return LimitRequestsPerMinute, u.Requests.waitFor(sec, 1, l.RequestsPerMinute)
	case l.TokensPerMinute > 0 && u.Tokens.sum(sec)+req.Tokens > l.TokensPerMinute:
		return LimitTokensPerMinute, u.Tokens.waitFor(sec, req.Tokens, l.TokensPerMinute)
	case l.TokensPerDay > 0 && u.DayTokens+req.Tokens > l.TokensPerDay:
		return LimitTokensPerDay, untilNextDay(now)
	case l.CostPerDay > 0 && u.DayCost+req.Cost > l.CostPerDay:
		return LimitCostPerDay, untilNextDay(now)
	case l.CostPerMonth > 0 && u.MonthCost+req.Cost > l.CostPerMonth:
		return LimitCostPerMonth, untilNextMonth(now)
	case req.ProjectCostPerMonth > 0 && p.MonthCost+req.Cost > req.ProjectCostPerMonth:
		return LimitProjectCostPerMonth, untilNextMonth(now)
	}
	return LimitNone, 0
}

func untilNextDay(now time.Time) time.Duration {
	u := now.UTC()
	return time.Date(u.Year(), u.Month(), u.Day()+1, 0, 0, 0, 0, time.UTC).Sub(u)
}

func untilNextMonth(now time.Time) time.Duration {
	u := now.UTC()
	return time.Date(u.Year(), u.Month()+1, 1, 0, 0, 0, 0, time.UTC).Sub(u)
}

// Settle implements Store.
func (e *Embedded) Settle(_ context.Context, now time.Time, res Reservation, used Usage) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.inflight[res.ID]; !ok {
		return nil // settled already, or never reserved here
	}
	delete(e.inflight, res.ID)
	req := res.Request
	k := userKey{req.Project, req.User}
	u := e.user(k)
	u.concurrent = max(u.concurrent-1, 0)
	u.lastSeen = now
	dTokens := used.InputTokens + used.OutputTokens - req.Tokens
	dCost := used.Cost - req.Cost
	u.Tokens.adjust(res.At.Unix(), dTokens)
	if u.Day == dayOf(res.At) {
		u.DayTokens = max(u.DayTokens+dTokens, 0)
		u.DayCost = max(u.DayCost+dCost, 0)
	}
	if u.Month == monthOf(res.At) {
		u.MonthCost = max(u.MonthCost+dCost, 0)
	}
	if p := e.project(req.Project); p.Month == monthOf(res.At) {
		p.MonthCost = max(p.MonthCost+dCost, 0)
	}
	e.dirty.user(k)
	e.dirty.projects[req.Project] = struct{}{}
	e.addUsage(res, used)
	return nil
}

// Remaining implements Store.
func (e *Embedded) Remaining(_ context.Context, now time.Time, req Request) (Remaining, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.user(userKey{req.Project, req.User})
	u.roll(now)
	p := e.project(req.Project)
	p.roll(now)
	l, sec := req.Limits, now.Unix()
	left := func(limit, used int64) int64 {
		if limit <= 0 {
			return -1
		}
		return max(limit-used, 0)
	}
	return Remaining{
		RequestsPerMinute:   left(l.RequestsPerMinute, u.Requests.sum(sec)),
		TokensPerMinute:     left(l.TokensPerMinute, u.Tokens.sum(sec)),
		TokensPerDay:        left(l.TokensPerDay, u.DayTokens),
		CostPerDay:          Nanos(left(int64(l.CostPerDay), int64(u.DayCost))),
		CostPerMonth:        Nanos(left(int64(l.CostPerMonth), int64(u.MonthCost))),
		ConcurrentRequests:  left(l.ConcurrentRequests, u.concurrent),
		ProjectCostPerMonth: Nanos(left(int64(req.ProjectCostPerMonth), int64(p.MonthCost))),
	}, nil
}

var _ Store = (*Embedded)(nil)

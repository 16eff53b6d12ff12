package limiter

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// ErrClosed is returned by the calls of a store after Close. It wraps ErrUnavailable.
var ErrClosed = fmt.Errorf("%w: the store is closed", ErrUnavailable)

// EmbeddedOptions configure OpenEmbedded. The zero value gives the defaults.
type EmbeddedOptions struct {
	// Logger (default zap.NewNop()).
	Logger *zap.Logger
	// FlushInterval is how often changes are written to the file, so the most a crash can lose
	// (default 1s).
	FlushInterval time.Duration
	// RevocationTTL is how long a revocation is kept (default 30 days, far past any token's
	// life).
	RevocationTTL time.Duration
	// OpenTimeout bounds the wait for another process's lock on the file (default 5s).
	OpenTimeout time.Duration
	// ConcurrencyLease is the longest a reservation holds its concurrency slot when it is never
	// settled (a bug in the caller): after it the slot is free again, though the reservation
	// stays charged and can still be settled for a day (default 1h).
	ConcurrencyLease time.Duration
	// UsageRetention is how long usage aggregates are kept (default 400 days).
	UsageRetention time.Duration
}

// idleAfter is how long after its last request a user's counters may leave memory (they are
// read back from the file when the user returns).
const idleAfter = 24 * time.Hour

// Embedded is the default Store: its counters live in memory, where they are authoritative,
// and are written behind to a bbolt file at most FlushInterval late, so a restart keeps them
// and a crash loses at most the last interval. One process only: the file is locked while
// open. To share limits between several gateway instances, use a Redis store instead.
//
// Safe for concurrent use. The zero value is not usable: call OpenEmbedded.
//
// Time comes from the callers' now, never from the clock, except where the store has been
// told no time yet: at open, revocations older than RevocationTTL by the wall clock are
// dropped. Housekeeping (dropping idle users, expired revocations, old usage, freeing the
// slots of leases that ran out) goes by the newest now Reserve has been given.
type Embedded struct {
	opts EmbeddedOptions
	db   *bolt.DB // nil: memory only

	shards [shardCount]shard

	// projects is replaced, never changed (a new project is rare), so finding one on every
	// request takes no lock. Few, and never dropped: one per configured project.
	projects   atomic.Pointer[map[string]*projectState]
	projectsMu sync.Mutex // serialises adding projects
	// revokeMu serialises changes to the projects' revocations.
	revokeMu sync.Mutex

	// claims are the keys Claim recorded.
	claims claimSet

	// clock is the newest time (unix ns) a Reserve was made at, for housekeeping. The flusher
	// keeps it from the users' times, so the hot path does not touch it.
	clock atomic.Int64

	// flushMu serialises flushes, and lets Usage read memory and file at one point between
	// two flushes.
	flushMu   sync.Mutex
	batch     flushBatch // reused by every flush; flushMu is held
	flushLog  flushLogState
	prunedDay int64 // the last day usage past its retention was deleted

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	stop      chan struct{}
	done      chan struct{}
}

// OpenEmbedded opens (or creates) the store's file at path and reads back what it holds.
// path "" keeps everything in memory only, for tests and benchmarks: nothing survives Close,
// no flusher runs and idle users are never dropped.
//
// A file another process has open makes OpenEmbedded fail after OpenTimeout, with an error
// saying so, rather than wait forever.
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
	if opts.ConcurrencyLease <= 0 {
		opts.ConcurrencyLease = time.Hour
	}
	if opts.UsageRetention <= 0 {
		opts.UsageRetention = 400 * 24 * time.Hour
	}
	e := &Embedded{
		opts: opts,
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	e.projects.Store(&map[string]*projectState{})
	// Reservation IDs start past those of any earlier store in this process, so a reservation
	// made before a reload can never be taken for one made after it.
	seq := uint64(time.Now().Unix()) << 20
	for i := range e.shards {
		e.shards[i].users = map[string]*userState{}
		e.shards[i].seq = seq
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

// Close writes what is pending, stops the flusher and closes the file. Calls after Close
// return ErrClosed; Close itself can be called again.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		if e.db == nil {
			return
		}
		close(e.stop)
		<-e.done
		e.closeErr = e.flush()
		if err := e.db.Close(); e.closeErr == nil {
			e.closeErr = err
		}
	})
	return e.closeErr
}

// flusher writes changes every FlushInterval until Close.
func (e *Embedded) flusher() {
	defer close(e.done)
	t := time.NewTicker(e.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.flushLog.report(e.opts.Logger, e.flush())
		}
	}
}

// flushLogState keeps a failing disk from logging every second.
type flushLogState struct {
	failing bool
	last    time.Time
}

func (s *flushLogState) report(log *zap.Logger, err error) {
	switch {
	case err == nil && s.failing:
		s.failing = false
		log.Info("writing limits to disk works again")
	case err != nil && (!s.failing || time.Since(s.last) > time.Minute):
		s.failing, s.last = true, time.Now()
		log.Error("writing limits to disk failed; counters are kept in memory and written when it works again",
			zap.Error(err))
	}
}

// project returns the state of a project, creating it.
func (e *Embedded) project(id string) *projectState {
	if p := (*e.projects.Load())[id]; p != nil {
		return p
	}
	e.projectsMu.Lock()
	defer e.projectsMu.Unlock()
	old := *e.projects.Load()
	if p := old[id]; p != nil {
		return p
	}
	p := new(projectState)
	m := make(map[string]*projectState, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[strings.Clone(id)] = p
	e.projects.Store(&m)
	return p
}

// lookupProject returns the state of a project, or nil.
func (e *Embedded) lookupProject(id string) *projectState { return (*e.projects.Load())[id] }

// user returns the state of k in sh when it is in memory, or nil. sh.mu is held.
func (sh *shard) user(k userKey) *userState {
	var buf [128]byte
	return sh.users[string(appendMapKey(buf[:0], k))]
}

// userLocked returns the state of k, reading it from the file (or starting it) when it is not
// in memory. sh.mu is held, and released while the file is read.
func (e *Embedded) userLocked(sh *shard, k userKey) *userState {
	var buf [128]byte
	key := appendMapKey(buf[:0], k)
	if u := sh.users[string(key)]; u != nil {
		return u
	}
	var loaded *userState
	if e.db == nil {
		loaded = new(userState)
	}
	for e.db != nil {
		// An absent user is on file as the last flush left it: a user is dropped from memory
		// only once flushed, and only flushes write users. Unless, while the file was read,
		// another request read it too, changed it, and it was flushed and dropped again: then
		// what was read is stale, and is read again.
		dropped := sh.dropped
		sh.mu.Unlock()
		loaded = e.loadUser(k)
		sh.mu.Lock()
		if u := sh.users[string(key)]; u != nil { // another request read it meanwhile
			return u
		}
		if sh.dropped == dropped {
			break
		}
	}
	// A key of its own: the caller's strings may be in (maybe large) buffers it outlives.
	sh.users[string(key)] = loaded
	return loaded
}

// observe moves the housekeeping clock forward to ns.
func (e *Embedded) observe(ns int64) {
	for {
		cur := e.clock.Load()
		if ns <= cur || e.clock.CompareAndSwap(cur, ns) {
			return
		}
	}
}

var _ Store = (*Embedded)(nil)

package limiter

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// userKey names one end user of one project: counters are per user, not per tier.
type userKey struct{ project, user string }

// userState is one end user's counters. It is guarded by its shard's lock.
type userState struct {
	// latest is the newest time (unix ns) a Reserve of this user was made at. A user's time
	// never goes back: a call made earlier than latest (its now was taken before another
	// call's, but it got the lock after) is counted at latest. That is always the safe side: it
	// stays in the window longer and is charged to the later day and month.
	latest int64
	// win is nil while the user has nothing in the last minute (see Embedded.sweep).
	win *minuteWindow

	day       int64 // dayOfNanos(latest) once rolled
	dayTokens int64
	dayCost   Nanos
	month     int64 // monthOfDay(day)
	monthCost Nanos

	// concurrent counts the holds that still have their concurrency slot.
	concurrent int64
	// holds are the reservations not yet settled, by ID: Settle frees exactly what Reserve
	// took, once, whatever the caller passes.
	holds map[uint64]hold
	// usage is what settled since the last flush. Kept with the user (not in a map of the
	// store's) so settling hashes no key: a user has one or a few entries at a time.
	usage []usageEntry
	// dirty: changed since the last flush.
	dirty bool
}

// usageEntry is a user's usage of one day, org, session, tier and model not yet flushed.
type usageEntry struct {
	day                       int64
	org, session, tier, model string
	agg                       usageAgg
}

// addUsage adds a to the user's usage of day, org, session, tier and model.
func (u *userState) addUsage(day int64, org, session, tier, model string, a usageAgg) {
	for i := range u.usage {
		en := &u.usage[i]
		if en.day == day && en.org == org && en.session == session && en.tier == tier && en.model == model {
			en.agg.add(a)
			return
		}
	}
	u.usage = append(u.usage, usageEntry{day, org, session, tier, model, a})
}

// hold is what one reservation took, so Settle can give it back exactly.
type hold struct {
	at           int64 // unix ns (the user's clamped time)
	sec          int64 // the window second its request and tokens are counted in
	tokens       int64
	cost         Nanos
	day, month   int64 // the user's periods it was charged to
	projectMonth int64 // the project's month it was charged to
	slot         bool  // still holds a concurrency slot (false once its lease ran out)
}

// advance moves the user's clock to ns (unless it is already later) and starts new periods
// when that crosses into them. It returns the user's time.
func (u *userState) advance(ns int64) int64 {
	if ns < u.latest {
		ns = u.latest
	}
	u.latest = ns
	if d := dayOfNanos(ns); d > u.day {
		u.day, u.dayTokens, u.dayCost = d, 0, 0
		if m := monthOfDay(d); m > u.month {
			u.month, u.monthCost = m, 0
		}
	}
	return ns
}

// sums reads the user's window at ns.
func (u *userState) sums(ns int64) windowSums {
	if u.win == nil {
		return windowSums{}
	}
	return u.win.sums(ns)
}

// projectState is one project's budget spend, for the month it holds, and its revocations.
type projectState struct {
	mu        sync.Mutex
	month     int64
	monthCost Nanos
	dirty     bool

	// revoked is replaced, never changed, so checking a token on every request takes no
	// lock. nil: nothing revoked.
	revoked atomic.Pointer[revocationSet]
}

// roll starts month when it is later than the project's, and returns the project's month:
// like a user's, a project's month never goes back. p.mu is held.
func (p *projectState) roll(month int64) int64 {
	if month > p.month {
		p.month, p.monthCost = month, 0
	}
	return p.month
}

// spentIn is what the project spent in month, or in its own month when that is later (see
// roll), without starting a new one. p.mu is held.
func (p *projectState) spentIn(month int64) Nanos {
	if month > p.month {
		return 0
	}
	return p.monthCost
}

// shardCount spreads users over this many locks. A user's lock is its shard's: requests of
// different users rarely wait on each other, and one lock per shard (not per user) keeps
// creating and evicting users simple.
const shardCount = 64

// shard holds the users that hash to it.
type shard struct {
	mu    sync.Mutex
	users map[userKey]*userState
	seq   uint64 // reservation IDs: seq<<shardBits | shard index
	// dropped counts the users dropped from memory, so a read of the file that raced a drop
	// can tell (see Embedded.userLocked).
	dropped uint64
	_       [64]byte // keep neighbouring shards' locks off one cache line
}

const shardBits = 6 // log2(shardCount)

var shardSeed = maphash.MakeSeed()

func shardIndex(project, user string) int {
	var h maphash.Hash
	h.SetSeed(shardSeed)
	h.WriteString(project)
	h.WriteByte(0)
	h.WriteString(user)
	return int(h.Sum64() & (shardCount - 1))
}

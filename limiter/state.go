package limiter

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
)

// userKey names one end user of one project: counters are per user, not per tier.
type userKey struct{ project, user string }

// The shards' maps key a user by one string, project + "\x00" + user (neither holds a NUL):
// half the room of a userKey in every slot, and one allocation for both.
const keySep = "\x00"

// appendMapKey appends k's map key to b: index a map with string(appendMapKey(buf[:0], k))
// and the lookup allocates nothing.
func appendMapKey(b []byte, k userKey) []byte {
	b = append(b, k.project...)
	b = append(b, keySep...)
	return append(b, k.user...)
}

// splitMapKey is appendMapKey's inverse; the strings share the key's bytes.
func splitMapKey(key string) userKey {
	project, user, _ := strings.Cut(key, keySep)
	return userKey{project, user}
}

// userState is one end user's counters. It is guarded by its shard's lock.
//
// Every user seen in the last day is kept, so its size is the store's: 48 bytes here, and
// what is only needed while the user is active (in the last minute, or with something in
// flight or unwritten) in act, freed when the user goes idle.
type userState struct {
	// latest is the newest time (unix ns) a Reserve of this user was made at. A user's time
	// never goes back: a call made earlier than latest (its now was taken before another
	// call's, but it got the lock after) is counted at latest. That is always the safe side: it
	// stays in the window longer and is charged to the later day and month.
	latest int64

	dayTokens int64
	dayCost   Nanos
	monthCost Nanos
	day       int32 // dayOfNanos(latest) once rolled
	month     int32 // monthOfDay(day)

	// act is nil while the user is idle: nothing in the window or in flight, nothing unwritten.
	act *userActivity
}

// userActivity is a user's state while active.
type userActivity struct {
	// win is nil while the user has nothing in the last minute (see Embedded.sweep).
	win *minuteWindow
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

// active returns the user's activity, starting it.
func (u *userState) active() *userActivity {
	if u.act == nil {
		u.act = new(userActivity)
	}
	return u.act
}

// win is the user's window, or nil.
func (u *userState) win() *minuteWindow {
	if u.act == nil {
		return nil
	}
	return u.act.win
}

// concurrent is how many of the user's requests hold a concurrency slot.
func (u *userState) concurrent() int64 {
	if u.act == nil {
		return 0
	}
	return u.act.concurrent
}

// goIdle frees the user's activity when nothing in it is needed any more.
func (u *userState) goIdle() {
	if a := u.act; a != nil && a.win == nil && len(a.holds) == 0 && len(a.usage) == 0 && !a.dirty {
		u.act = nil
	}
}

// usageEntry is a user's usage of one day, org, session, tier and model not yet flushed.
type usageEntry struct {
	day                       int64
	org, session, tier, model string
	agg                       usageAgg
}

// addUsage adds a to the user's usage of day, org, session, tier and model.
func (a *userActivity) addUsage(day int64, org, session, tier, model string, agg usageAgg) {
	for i := range a.usage {
		en := &a.usage[i]
		if en.day == day && en.org == org && en.session == session && en.tier == tier && en.model == model {
			en.agg.add(agg)
			return
		}
	}
	a.usage = append(a.usage, usageEntry{day, org, session, tier, model, agg})
}

// hold is what one reservation took, so Settle can give it back exactly.
type hold struct {
	at           int64 // unix ns (the user's clamped time)
	sec          int64 // the window second its request and tokens are counted in
	tokens       int64
	cost         Nanos
	day, month   int32 // the user's periods it was charged to
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
	if d := dayOfNanos(ns); d > int64(u.day) {
		u.day, u.dayTokens, u.dayCost = int32(d), 0, 0
		if m := monthOfDay(d); m > int64(u.month) {
			u.month, u.monthCost = int32(m), 0
		}
	}
	return ns
}

// sums reads the user's window at ns.
func (u *userState) sums(ns int64) windowSums {
	if w := u.win(); w != nil {
		return w.sums(ns)
	}
	return windowSums{}
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
	users map[string]*userState // by appendMapKey
	seq   uint64                // reservation IDs: seq<<shardBits | shard index
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

package limiter

import (
	"fmt"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"
)

// flushBatch is what one flush writes, copied from memory under the locks and written after
// they are released.
type flushBatch struct {
	buf      []byte // the users' keys and values, and the file keys made while writing
	users    []struct{ key, value [2]int }
	userKeys []userKey // to mark dirty again if the write fails
	projects []projectSnapshot
	usage    []usageDelta
	expired  []revKey
}

type projectSnapshot struct {
	id    string
	month int64
	cost  Nanos
}

type usageDelta struct {
	k usageKey
	a usageAgg
}

func (b *flushBatch) reset() {
	clear(b.userKeys) // drop references to strings, so the batch does not keep them alive
	clear(b.projects)
	clear(b.usage)
	clear(b.expired)
	b.buf, b.users, b.userKeys, b.projects, b.usage, b.expired = b.buf[:0], b.users[:0], b.userKeys[:0],
		b.projects[:0], b.usage[:0], b.expired[:0]
}

// maxKeptBatch is the most room a batch keeps between flushes: a burst of users (a flush of a
// million) must not keep its batch's size for good.
const maxKeptBatch = 1 << 20

// trim empties b after a flush, letting go of what it referenced, and of its room when that
// is over maxKeptBatch.
func (b *flushBatch) trim() {
	b.reset()
	size := cap(b.buf) + cap(b.users)*int(unsafe.Sizeof(b.users[0])) + cap(b.userKeys)*int(unsafe.Sizeof(userKey{})) +
		cap(b.projects)*int(unsafe.Sizeof(projectSnapshot{})) + cap(b.usage)*int(unsafe.Sizeof(usageDelta{})) +
		cap(b.expired)*int(unsafe.Sizeof(revKey{}))
	if size > maxKeptBatch {
		*b = flushBatch{}
	}
}

func (b *flushBatch) empty() bool {
	return len(b.users)+len(b.projects)+len(b.usage)+len(b.expired) == 0
}

// bytes returns b.buf[r[0]:r[1]].
func (b *flushBatch) bytes(r [2]int) []byte { return b.buf[r[0]:r[1]:r[1]] }

// flush writes what changed since the last flush in one transaction. Each shard is locked only
// to copy what it changed; no lock of the counters is held while the file is written.
func (e *Embedded) flush() error {
	if e.db == nil {
		return nil
	}
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	b := &e.batch
	b.reset()
	defer b.trim()
	clock := e.clock.Load()
	newest := clock
	for i := range e.shards {
		newest = max(newest, e.sweep(&e.shards[i], clock, b))
	}
	e.observe(newest)
	for id, p := range *e.projects.Load() {
		p.mu.Lock()
		if p.dirty {
			b.projects = append(b.projects, projectSnapshot{id, p.month, p.monthCost})
			p.dirty = false
		}
		p.mu.Unlock()
	}
	b.expired = e.expireRevocations(clock, b.expired)
	claims, claimedUntil, expiredClaims := e.claims.claimsToWrite(clock)
	pruneBefore := int64(0)
	if clock != 0 {
		if d := dayOfNanos(clock - int64(e.opts.UsageRetention)); d > e.prunedDay {
			pruneBefore = d
		}
	}
	if b.empty() && pruneBefore == 0 && len(claims)+len(expiredClaims) == 0 {
		return nil
	}
	err := e.db.Update(func(tx *bolt.Tx) error {
		if err := writeClaims(tx, claims, claimedUntil, expiredClaims); err != nil {
			return err
		}
		return e.write(tx, b, pruneBefore)
	})
	if err != nil {
		e.restore(b)
		e.claims.unwritten(claims) // expired claims stay in the file; the next open drops them
		return err
	}
	if pruneBefore != 0 {
		e.prunedDay = pruneBefore
	}
	return nil
}

// sweep copies what changed in sh into b, and keeps memory bounded: it frees the windows of
// users idle for a minute, the slots of reservations past their lease, and drops users idle
// for a day with nothing in flight (they are on file). clock is the housekeeping clock; sweep
// returns the newest time of the shard's users.
func (e *Embedded) sweep(sh *shard, clock int64, b *flushBatch) int64 {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	newest := int64(0)
	for key, u := range sh.users {
		newest = max(newest, u.latest)
		if u.act != nil && e.sweepActive(key, u, clock, b) {
			continue // written now: dropped, if idle, by a later flush, once this is on file
		}
		// Idle now (and so clean: on file), dropped once idle for a day.
		if u.act == nil && clock != 0 && u.latest < clock-int64(idleAfter) {
			delete(sh.users, key)
			sh.dropped++
		}
	}
	return newest
}

// sweepActive copies what changed in an active user into b, frees its window after a minute
// idle and the slots of reservations past their lease, and lets the user go idle when nothing
// is left. It reports whether it wrote the user.
func (e *Embedded) sweepActive(key string, u *userState, clock int64, b *flushBatch) (wrote bool) {
	a := u.act
	lease := clock - int64(e.opts.ConcurrencyLease)
	forget := lease - int64(idleAfter)
	k := splitMapKey(key)
	for _, en := range a.usage {
		b.usage = append(b.usage, usageDelta{usageKey{project: k.project, day: en.day, user: k.user,
			org: en.org, session: en.session, tier: en.tier, model: en.model}, en.agg})
	}
	clear(a.usage) // keep the entries' room, drop their strings
	a.usage = a.usage[:0]
	if clock != 0 { // else no time is known yet
		for id, h := range a.holds {
			switch {
			case h.at < forget: // never settled: it stays charged in full
				delete(a.holds, id)
				if h.slot {
					a.concurrent--
				}
			case h.slot && h.at < lease:
				h.slot = false
				a.holds[id] = h
				a.concurrent--
			}
		}
		if a.win != nil && u.latest < clock-int64(time.Minute) {
			if until := a.win.emptyAt(); until <= clock {
				// The user's time moves to when its window emptied, so that no later call
				// can look at the window as it was before (which a caller's now lagging
				// the store's by a minute would).
				u.latest = max(u.latest, until)
				putWindow(a.win)
				a.win = nil
			}
		}
	}
	if a.dirty {
		k0 := len(b.buf)
		b.buf = appendUserKey(b.buf, k)
		k1 := len(b.buf)
		b.buf = appendUser(b.buf, u)
		b.users = append(b.users, struct{ key, value [2]int }{[2]int{k0, k1}, [2]int{k1, len(b.buf)}})
		b.userKeys = append(b.userKeys, k)
		a.dirty, wrote = false, true
	}
	if len(a.holds) == 0 {
		a.holds = nil // a map keeps its room when emptied
	}
	if a.win == nil && len(a.usage) == 0 && cap(a.usage) > 0 {
		a.usage = nil
	}
	u.goIdle()
	return wrote
}

// write puts b into the file.
func (e *Embedded) write(tx *bolt.Tx, b *flushBatch, pruneBefore int64) error {
	users := tx.Bucket(bucketUsers)
	for _, r := range b.users {
		if err := users.Put(b.bytes(r.key), b.bytes(r.value)); err != nil {
			return err
		}
	}
	projects := tx.Bucket(bucketProjects)
	for _, p := range b.projects {
		if err := projects.Put([]byte(p.id), appendProject(nil, p.month, p.cost)); err != nil {
			return err
		}
	}
	usage := tx.Bucket(bucketUsage)
	var pb *bolt.Bucket
	var pbName string
	for i := range b.usage {
		d := &b.usage[i]
		if pb == nil || pbName != d.k.project {
			var err error
			if pb, err = usage.CreateBucketIfNotExists([]byte(d.k.project)); err != nil {
				return err
			}
			pbName = d.k.project
		}
		// bbolt keeps the key and value until commit: each gets bytes of its own in b.buf.
		k0 := len(b.buf)
		b.buf = appendUsageKey(b.buf, &d.k)
		key := b.buf[k0:len(b.buf):len(b.buf)]
		total := d.a
		if v := pb.Get(key); v != nil {
			old, err := parseUsage(v)
			if err != nil {
				return fmt.Errorf("usage of project %q: %w", d.k.project, err)
			}
			total.add(old)
		}
		v0 := len(b.buf)
		b.buf = appendUsage(b.buf, total)
		if err := pb.Put(key, b.buf[v0:len(b.buf):len(b.buf)]); err != nil {
			return err
		}
	}
	revs := tx.Bucket(bucketRevocations)
	for _, k := range b.expired {
		// Revoked again since it expired: Revoke wrote the new time.
		_, again := e.project(k.project).revokedAt(k.kind, k.id)
		if !again {
			if err := revs.Delete(appendRevocationKey(nil, k)); err != nil {
				return err
			}
		}
	}
	if pruneBefore != 0 {
		return pruneUsage(usage, pruneBefore)
	}
	return nil
}

// pruneUsage deletes every project's usage of the days before day.
func pruneUsage(usage *bolt.Bucket, day int64) error {
	return usage.ForEachBucket(func(name []byte) error {
		pb := usage.Bucket(name)
		var old [][]byte
		c := pb.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if d, ok := parseDay(k); !ok || d >= day {
				break
			}
			old = append(old, k)
		}
		for _, k := range old { // deleting while walking a cursor can skip keys
			if err := pb.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// restore puts back what a failed flush took, for the next flush to write.
func (e *Embedded) restore(b *flushBatch) {
	for _, k := range b.userKeys {
		sh := &e.shards[shardIndex(k.project, k.user)]
		sh.mu.Lock()
		if u := sh.user(k); u != nil { // always: only flushes drop users, and flushMu is held
			u.active().dirty = true
		}
		sh.mu.Unlock()
	}
	for _, d := range b.usage {
		sh := &e.shards[shardIndex(d.k.project, d.k.user)]
		sh.mu.Lock()
		if u := sh.user(userKey{d.k.project, d.k.user}); u != nil { // as above
			a := u.active()
			a.addUsage(d.k.day, d.k.org, d.k.session, d.k.tier, d.k.model, d.a)
			a.dirty = true
		}
		sh.mu.Unlock()
	}
	for _, s := range b.projects {
		p := e.project(s.id)
		p.mu.Lock()
		p.dirty = true
		p.mu.Unlock()
	}
	// Expired revocations stay in the file; the next open drops them.
}

package limiter

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// The file's buckets. users: appendUserKey -> appendUser. projects: project ID ->
// appendProject. usage: one bucket per project ID, appendUsageKey -> appendUsage.
// revocations: appendRevocationKey -> unix ns (8 bytes, big-endian). meta: "format" -> "2".
var (
	bucketMeta        = []byte("meta")
	bucketUsers       = []byte("users")
	bucketProjects    = []byte("projects")
	bucketUsage       = []byte("usage")
	bucketRevocations = []byte("revocations")

	metaFormat = []byte("format")
	fileFormat = []byte("2")
)

// openFile opens the bbolt file, checks its format and loads the projects and revocations.
// Users are read when first needed, usage only by Usage: memory does not grow with history.
func (e *Embedded) openFile(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: e.opts.OpenTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return fmt.Errorf("limiter: %s is locked by another process, still after %v (the embedded store serves one gateway process; "+
			"several need the redis store)", path, e.opts.OpenTimeout)
	}
	if err != nil {
		return fmt.Errorf("limiter: opening %s: %w", path, err)
	}
	if err := db.Update(e.load); err != nil {
		db.Close()
		return fmt.Errorf("limiter: reading %s: %w", path, err)
	}
	e.db = db
	return nil
}

// load prepares a new file, or reads an existing one back.
func (e *Embedded) load(tx *bolt.Tx) error {
	if meta := tx.Bucket(bucketMeta); meta != nil {
		if f := meta.Get(metaFormat); string(f) != string(fileFormat) {
			return fmt.Errorf("the file is in format %q, this version reads format %s", f, fileFormat)
		}
	} else if tx.Bucket(bucketUsers) != nil {
		return errors.New("the file was written by an older version (format 1); move it away to start afresh")
	}
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err == nil {
		err = meta.Put(metaFormat, fileFormat)
	}
	for _, name := range [][]byte{bucketUsers, bucketProjects, bucketUsage, bucketRevocations} {
		if err == nil {
			_, err = tx.CreateBucketIfNotExists(name)
		}
	}
	if err != nil {
		return err
	}
	err = tx.Bucket(bucketProjects).ForEach(func(k, v []byte) error {
		p, err := parseProject(v)
		if err != nil {
			return fmt.Errorf("project %q: %w", k, err)
		}
		e.projects[string(k)] = p
		return nil
	})
	if err != nil {
		return err
	}
	// No call has told the store the time yet: expire revocations by the wall clock.
	cutoff := time.Now().Add(-e.opts.RevocationTTL).UnixNano()
	var expired [][]byte
	revs := tx.Bucket(bucketRevocations)
	err = revs.ForEach(func(k, v []byte) error {
		rk, err := parseRevocationKey(k)
		if err != nil || len(v) != 8 {
			return fmt.Errorf("revocation %q: %w", k, errCorrupt)
		}
		if at := int64(binary.BigEndian.Uint64(v)); at >= cutoff {
			e.revs.m[rk] = at
		} else {
			expired = append(expired, k)
		}
		return nil
	})
	for _, k := range expired {
		if err == nil {
			err = revs.Delete(k)
		}
	}
	return err
}

// loadUser reads k's counters from the file, or starts them when it has none.
func (e *Embedded) loadUser(k userKey) *userState {
	if e.db == nil {
		return new(userState)
	}
	var u *userState
	err := e.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketUsers).Get(appendUserKey(nil, k))
		if v == nil {
			return nil
		}
		var err error
		u, err = parseUser(v)
		return err
	})
	if err != nil {
		// Nothing better to do than start afresh; say so, as it forgets the user's spend.
		e.opts.Logger.Error("reading a user's counters failed; starting them afresh",
			zap.String("project", k.project), zap.String("user", k.user), zap.Error(err))
	}
	if u == nil {
		u = new(userState)
	}
	return u
}

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
	clock := e.clock.Load()
	newest := clock
	for i := range e.shards {
		newest = max(newest, e.sweep(&e.shards[i], clock, b))
	}
	e.observe(newest)
	e.projectsMu.RLock()
	for id, p := range e.projects {
		p.mu.Lock()
		if p.dirty {
			b.projects = append(b.projects, projectSnapshot{id, p.month, p.monthCost})
			p.dirty = false
		}
		p.mu.Unlock()
	}
	e.projectsMu.RUnlock()
	b.expired = e.expireRevocations(clock, b.expired)
	pruneBefore := int64(0)
	if clock != 0 {
		if d := dayOfNanos(clock - int64(e.opts.UsageRetention)); d > e.prunedDay {
			pruneBefore = d
		}
	}
	if b.empty() && pruneBefore == 0 {
		return nil
	}
	err := e.db.Update(func(tx *bolt.Tx) error { return e.write(tx, b, pruneBefore) })
	if err != nil {
		e.restore(b)
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
	lease := clock - int64(e.opts.ConcurrencyLease)
	forget := lease - int64(idleAfter)
	for k, u := range sh.users {
		newest = max(newest, u.latest)
		if clock != 0 { // else no time is known yet
			for id, h := range u.holds {
				switch {
				case h.at < forget: // never settled: it stays charged in full
					delete(u.holds, id)
					if h.slot {
						u.concurrent--
					}
				case h.slot && h.at < lease:
					h.slot = false
					u.holds[id] = h
					u.concurrent--
				}
			}
			if u.win != nil && u.latest < clock-int64(time.Minute) {
				if until := u.win.emptyAt(); until <= clock {
					// The user's time moves to when its window emptied, so that no later call
					// can look at the window as it was before (which a caller's now lagging
					// the store's by a minute would).
					u.latest = max(u.latest, until)
					putWindow(u.win)
					u.win = nil
				}
			}
		}
		switch {
		case u.dirty:
			k0 := len(b.buf)
			b.buf = appendUserKey(b.buf, k)
			k1 := len(b.buf)
			b.buf = appendUser(b.buf, u)
			b.users = append(b.users, struct{ key, value [2]int }{[2]int{k0, k1}, [2]int{k1, len(b.buf)}})
			b.userKeys = append(b.userKeys, k)
			u.dirty = false // and dropped, if idle, by a later flush: once this is on file
		case clock != 0 && len(u.holds) == 0 && u.latest < clock-int64(idleAfter):
			// Clean means on file: a user is written before it can be dropped.
			delete(sh.users, k)
			if u.win != nil {
				putWindow(u.win)
			}
		}
	}
	for k, a := range sh.usage {
		b.usage = append(b.usage, usageDelta{k, a})
	}
	clear(sh.usage)
	return newest
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
		e.revs.mu.RLock()
		_, again := e.revs.m[k] // revoked again since it expired: Revoke wrote the new time
		e.revs.mu.RUnlock()
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
		if u := sh.users[k]; u != nil { // always: only flushes drop users, and flushMu is held
			u.dirty = true
		}
		sh.mu.Unlock()
	}
	for _, d := range b.usage {
		sh := &e.shards[shardIndex(d.k.project, d.k.user)]
		sh.mu.Lock()
		sh.addUsage(d.k, d.a)
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

// beginRead starts a read transaction of the file (nil when memory only).
func (e *Embedded) beginRead() (*bolt.Tx, error) {
	if e.db == nil {
		return nil, nil
	}
	tx, err := e.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("%w: reading usage: %v", ErrUnavailable, err)
	}
	return tx, nil
}

// scanUsage passes the usage on file that f keeps to add.
func scanUsage(ctx context.Context, tx *bolt.Tx, f *usageFilter, add func(string, usageAgg)) error {
	pb := tx.Bucket(bucketUsage).Bucket([]byte(f.project))
	if pb == nil {
		return nil
	}
	c := pb.Cursor()
	k, v := c.First()
	if f.from > minDay {
		k, v = c.Seek(appendDay(nil, f.from))
	}
	for n := 0; k != nil; k, v = c.Next() {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		uk, err := parseUsageKey(f.project, k)
		if err != nil {
			return fmt.Errorf("usage of project %q: %w", f.project, err)
		}
		if uk.day > f.to {
			break
		}
		if !f.keeps(&uk) {
			continue
		}
		a, err := parseUsage(v)
		if err != nil {
			return fmt.Errorf("usage of project %q: %w", f.project, err)
		}
		add(f.group(&uk), a)
	}
	return nil
}

// putRevocation writes one revocation.
func putRevocation(tx *bolt.Tx, k revKey, at int64) error {
	return tx.Bucket(bucketRevocations).Put(appendRevocationKey(nil, k), binary.BigEndian.AppendUint64(nil, uint64(at)))
}

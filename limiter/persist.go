package limiter

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketUsers       = []byte("users")
	bucketProjects    = []byte("projects")
	bucketUsage       = []byte("usage")
	bucketRevocations = []byte("revocations")
)

// dirtySet names what changed since the last flush.
type dirtySet struct {
	users    map[userKey]struct{}
	projects map[string]struct{}
}

func newDirtySet() dirtySet {
	return dirtySet{users: map[userKey]struct{}{}, projects: map[string]struct{}{}}
}

func (d dirtySet) user(k userKey) { d.users[k] = struct{}{} }

// flushLock serialises flushes with usage reads; see Usage.
type flushLock = sync.Mutex

func (e *Embedded) openFile(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: e.opts.OpenTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return fmt.Errorf("%s is locked by another process (one Caddy per embedded store; use the redis store to share limits)", path)
	}
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketUsers, bucketProjects, bucketUsage, bucketRevocations} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = db.View(e.load)
	}
	if err != nil {
		db.Close()
		return err
	}
	e.db = db
	return nil
}

// load reads the project budgets and revocations; users are read when first needed.
func (e *Embedded) load(tx *bolt.Tx) error {
	err := tx.Bucket(bucketProjects).ForEach(func(k, v []byte) error {
		p := new(projectState)
		if err := json.Unmarshal(v, p); err != nil {
			return err
		}
		e.projects[string(k)] = p
		return nil
	})
	if err != nil {
		return err
	}
	cutoff := time.Now().Add(-e.opts.RevocationTTL)
	return tx.Bucket(bucketRevocations).ForEach(func(k, v []byte) error {
		parts := strings.SplitN(string(k), "\x00", 3)
		if len(parts) != 3 || len(v) != 8 {
			return nil
		}
		at := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
		if at.After(cutoff) {
			e.revoked[revKey{parts[0], parts[1], parts[2]}] = at
		}
		return nil
	})
}

// loadUser reads a user's counters from the file (a fresh state when there are none). e.mu is
// held; bbolt reads are from its memory map.
func (e *Embedded) loadUser(k userKey) *userState {
	u := new(userState)
	if e.db == nil {
		return u
	}
	_ = e.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketUsers).Get(userDBKey(k)); v != nil {
			if err := json.Unmarshal(v, u); err != nil {
				*u = userState{}
			}
		}
		return nil
	})
	return u
}

func userDBKey(k userKey) []byte { return []byte(k.project + "\x00" + k.user) }

func usageDBKey(k usageKey) []byte {
	day := time.Unix(k.day*86400, 0).UTC().Format(time.DateOnly)
	return []byte(strings.Join([]string{k.project, day, k.user, k.session, k.tier, k.model}, "\x00"))
}

func parseUsageDBKey(b []byte) (usageKey, bool) {
	parts := strings.Split(string(b), "\x00")
	if len(parts) != 6 {
		return usageKey{}, false
	}
	d, err := time.Parse(time.DateOnly, parts[1])
	if err != nil {
		return usageKey{}, false
	}
	return usageKey{project: parts[0], day: dayOf(d), user: parts[2], session: parts[3], tier: parts[4], model: parts[5]}, true
}

// flush writes what changed in one transaction. Counters are copied under e.mu and written
// after it is released, so requests never wait on the disk.
func (e *Embedded) flush() error {
	if e.db == nil {
		return nil
	}
	e.flushMu.Lock()
	defer e.flushMu.Unlock()

	e.mu.Lock()
	e.evictIdle()
	// Copy under the lock, encode after it: requests never wait on encoding or the disk.
	userCopies := make(map[userKey]userState, len(e.dirty.users))
	for k := range e.dirty.users {
		if u, ok := e.users[k]; ok {
			userCopies[k] = *u
		}
	}
	projectCopies := make(map[string]projectState, len(e.dirty.projects))
	for id := range e.dirty.projects {
		projectCopies[id] = *e.projects[id]
	}
	usage := e.usage
	e.usage = map[usageKey]*usageAgg{}
	e.dirty = newDirtySet()
	e.mu.Unlock()

	users := make(map[string][]byte, len(userCopies))
	for k, u := range userCopies {
		b, _ := json.Marshal(&u)
		users[string(userDBKey(k))] = b
	}
	projects := make(map[string][]byte, len(projectCopies))
	for id, p := range projectCopies {
		b, _ := json.Marshal(&p)
		projects[id] = b
	}

	if len(users)+len(projects)+len(usage) == 0 {
		return nil
	}
	err := e.db.Update(func(tx *bolt.Tx) error {
		for k, v := range users {
			if err := tx.Bucket(bucketUsers).Put([]byte(k), v); err != nil {
				return err
			}
		}
		for k, v := range projects {
			if err := tx.Bucket(bucketProjects).Put([]byte(k), v); err != nil {
				return err
			}
		}
		b := tx.Bucket(bucketUsage)
		for k, delta := range usage {
			key := usageDBKey(k)
			var total usageAgg
			if v := b.Get(key); v != nil {
				_ = json.Unmarshal(v, &total)
			}
			total.add(*delta)
			v, _ := json.Marshal(total)
			if err := b.Put(key, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Put the usage back so the next flush tries again; counters are re-marked dirty.
		e.mu.Lock()
		for k, d := range usage {
			if a, ok := e.usage[k]; ok {
				a.add(*d)
			} else {
				e.usage[k] = d
			}
		}
		for k := range e.users {
			e.dirty.users[k] = struct{}{}
		}
		for k := range e.projects {
			e.dirty.projects[k] = struct{}{}
		}
		e.mu.Unlock()
	}
	return err
}

// evictIdle drops users idle for over a day with nothing in flight whose counters an earlier
// flush already wrote; they are read back when they return. e.mu is held.
func (e *Embedded) evictIdle() {
	cutoff := time.Now().Add(-25 * time.Hour)
	for k, u := range e.users {
		if u.concurrent == 0 && u.lastSeen.Before(cutoff) {
			if _, dirty := e.dirty.users[k]; !dirty {
				delete(e.users, k)
			}
		}
	}
}

// scanUsage passes every stored usage row of project to f.
func (e *Embedded) scanUsage(project string, f func(usageKey, usageAgg)) error {
	if e.db == nil {
		return nil
	}
	prefix := []byte(project + "\x00")
	return e.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketUsage).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			uk, ok := parseUsageDBKey(k)
			if !ok {
				continue
			}
			var a usageAgg
			if json.Unmarshal(v, &a) == nil {
				f(uk, a)
			}
		}
		return nil
	})
}

// writeRevocation stores one revocation at once. e.flushMu is held.
func (e *Embedded) writeRevocation(k revKey, at time.Time) error {
	if e.db == nil {
		return nil
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(at.UnixNano()))
	return e.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRevocations).Put([]byte(k.project+"\x00"+k.kind+"\x00"+k.id), v[:])
	})
}

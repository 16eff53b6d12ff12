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
// revocations: appendRevocationKey -> unix ns (8 bytes, big-endian). claims: appendClaimKey ->
// the claim's end, unix ns (8 bytes, big-endian). meta: "format" -> "2".
var (
	bucketMeta        = []byte("meta")
	bucketUsers       = []byte("users")
	bucketProjects    = []byte("projects")
	bucketUsage       = []byte("usage")
	bucketRevocations = []byte("revocations")
	bucketClaims      = []byte("claims")

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
	projects := map[string]*projectState{}
	err = tx.Bucket(bucketProjects).ForEach(func(k, v []byte) error {
		p, err := parseProject(v)
		if err != nil {
			return fmt.Errorf("project %q: %w", k, err)
		}
		projects[string(k)] = p
		return nil
	})
	e.projects.Store(&projects)
	if err != nil {
		return err
	}
	// No call has told the store the time yet: expire revocations by the wall clock.
	cutoff := time.Now().Add(-e.opts.RevocationTTL).UnixNano()
	var expired [][]byte
	sets := map[string]*revocationSet{}
	revs := tx.Bucket(bucketRevocations)
	err = revs.ForEach(func(k, v []byte) error {
		rk, err := parseRevocationKey(k)
		if err != nil || len(v) != 8 || (rk.kind != RevokeUser && rk.kind != RevokeSession) {
			return fmt.Errorf("revocation %q: %w", k, errCorrupt)
		}
		at := int64(binary.BigEndian.Uint64(v))
		if at < cutoff {
			expired = append(expired, k)
			return nil
		}
		r := sets[rk.project]
		if r == nil {
			r = &revocationSet{users: map[string]int64{}, sessions: map[string]int64{}}
			sets[rk.project] = r
		}
		r.of(rk.kind)[rk.id] = at
		return nil
	})
	for id, r := range sets {
		e.project(id).revoked.Store(r)
	}
	for _, k := range expired {
		if err == nil {
			err = revs.Delete(k)
		}
	}
	if err != nil {
		return err
	}
	return e.loadClaims(tx)
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
func scanUsage(ctx context.Context, tx *bolt.Tx, f *usageFilter, add func(groupKey, usageAgg)) error {
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

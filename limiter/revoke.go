package limiter

import (
	"context"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// revKey names a revoked session or user of a project.
type revKey struct{ project, kind, id string }

// revocations holds the latest revocation time (unix ns) of each revoked session and user.
type revocations struct {
	mu sync.RWMutex
	m  map[revKey]int64
}

// covers reports whether a token issued at iat (unix ns) to user in session was revoked: at or
// before the latest revocation of either.
func (r *revocations) covers(project, user, session string, iat int64) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.m) == 0 {
		return false
	}
	if at, ok := r.m[revKey{project, RevokeUser, user}]; ok && user != "" && iat <= at {
		return true
	}
	at, ok := r.m[revKey{project, RevokeSession, session}]
	return ok && session != "" && iat <= at
}

// Revoke implements Store. The revocation holds in memory at once, and is in the file before
// Revoke returns: one the API has confirmed must survive a crash. Of several revocations of
// one session or user the latest is kept.
func (e *Embedded) Revoke(_ context.Context, project, kind, id string, at time.Time) error {
	if e.closed.Load() {
		return ErrClosed
	}
	if kind != RevokeSession && kind != RevokeUser {
		return fmt.Errorf("limiter: revocation kind %q is not %q or %q", kind, RevokeSession, RevokeUser)
	}
	if id == "" {
		return fmt.Errorf("limiter: revoking a %s needs its id", kind)
	}
	k, ns := revKey{project, kind, id}, at.UnixNano()
	e.revs.mu.Lock()
	if cur, ok := e.revs.m[k]; !ok || ns > cur {
		e.revs.m[revKey{project, kind, id}] = ns
	}
	e.revs.mu.Unlock()
	if e.db == nil {
		return nil
	}
	// The latest time is read inside the write transaction, so of two Revokes racing, the one
	// that commits last writes the later time.
	err := e.db.Update(func(tx *bolt.Tx) error {
		e.revs.mu.RLock()
		latest, ok := e.revs.m[k]
		e.revs.mu.RUnlock()
		if !ok { // expired meanwhile
			return nil
		}
		return putRevocation(tx, k, latest)
	})
	if err != nil {
		return fmt.Errorf("%w: writing the revocation of %s %q: %v", ErrUnavailable, kind, id, err)
	}
	return nil
}

// RevokedBefore implements Store.
func (e *Embedded) RevokedBefore(_ context.Context, project, kind, id string) (time.Time, error) {
	if e.closed.Load() {
		return time.Time{}, ErrClosed
	}
	e.revs.mu.RLock()
	ns, ok := e.revs.m[revKey{project, kind, id}]
	e.revs.mu.RUnlock()
	if !ok {
		return time.Time{}, nil
	}
	return time.Unix(0, ns).UTC(), nil
}

// expireRevocations drops from memory the revocations older than RevocationTTL at clock (unix
// ns) and returns them, for the flush to delete from the file.
func (e *Embedded) expireRevocations(clock int64, into []revKey) []revKey {
	if clock == 0 {
		return into
	}
	cutoff := clock - int64(e.opts.RevocationTTL)
	e.revs.mu.Lock()
	defer e.revs.mu.Unlock()
	for k, at := range e.revs.m {
		if at < cutoff {
			delete(e.revs.m, k)
			into = append(into, k)
		}
	}
	return into
}

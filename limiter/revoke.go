package limiter

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// revKey names a revoked session or user of a project.
type revKey struct{ project, kind, id string }

// revocationSet is one project's revocations: the latest time (unix ns) each revoked user and
// session was revoked at. A set is never changed once published (see projectState.revoked).
type revocationSet struct{ users, sessions map[string]int64 }

func (r *revocationSet) of(kind string) map[string]int64 {
	if kind == RevokeUser {
		return r.users
	}
	return r.sessions
}

// covers reports whether a token issued at iat (unix ns) to user in session was revoked: at or
// before the latest revocation of either. An empty user or session is never revoked.
func (p *projectState) covers(user, session string, iat int64) bool {
	r := p.revoked.Load()
	if r == nil {
		return false
	}
	if at, ok := r.users[user]; ok && user != "" && iat <= at {
		return true
	}
	at, ok := r.sessions[session]
	return ok && session != "" && iat <= at
}

// revokedAt returns the latest revocation of id (unix ns).
func (p *projectState) revokedAt(kind, id string) (int64, bool) {
	r := p.revoked.Load()
	if r == nil {
		return 0, false
	}
	at, ok := r.of(kind)[id]
	return at, ok
}

// edit publishes a copy of p's revocations changed by f (nil when it leaves none).
// e.revokeMu is held.
func (p *projectState) edit(f func(*revocationSet)) {
	next := &revocationSet{users: map[string]int64{}, sessions: map[string]int64{}}
	if cur := p.revoked.Load(); cur != nil {
		for k, v := range cur.users {
			next.users[k] = v
		}
		for k, v := range cur.sessions {
			next.sessions[k] = v
		}
	}
	f(next)
	if len(next.users)+len(next.sessions) == 0 {
		next = nil
	}
	p.revoked.Store(next)
}

// Revoke implements Store. The revocation holds in memory at once, and is in the file before
// Revoke returns: one the API has confirmed must survive a crash. Of several revocations of
// one session or user the latest is kept. Revocations are rare, so each copies its project's.
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
	p, ns := e.project(project), at.UnixNano()
	e.revokeMu.Lock()
	if cur, ok := p.revokedAt(kind, id); !ok || ns > cur {
		p.edit(func(r *revocationSet) { r.of(kind)[id] = ns })
	}
	e.revokeMu.Unlock()
	if e.db == nil {
		return nil
	}
	// The latest time is read inside the write transaction, so of two Revokes racing, the one
	// that commits last writes the later time.
	err := e.db.Update(func(tx *bolt.Tx) error {
		latest, ok := p.revokedAt(kind, id)
		if !ok { // expired meanwhile
			return nil
		}
		return putRevocation(tx, revKey{project, kind, id}, latest)
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
	p := e.lookupProject(project)
	if p == nil {
		return time.Time{}, nil
	}
	ns, ok := p.revokedAt(kind, id)
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
	e.revokeMu.Lock()
	defer e.revokeMu.Unlock()
	for id, p := range *e.projects.Load() {
		r := p.revoked.Load()
		if r == nil {
			continue
		}
		n := len(into)
		for _, kind := range [...]string{RevokeUser, RevokeSession} {
			for k, at := range r.of(kind) {
				if at < cutoff {
					into = append(into, revKey{id, kind, k})
				}
			}
		}
		if expired := into[n:]; len(expired) > 0 {
			p.edit(func(r *revocationSet) {
				for _, k := range expired {
					delete(r.of(k.kind), k.id)
				}
			})
		}
	}
	return into
}

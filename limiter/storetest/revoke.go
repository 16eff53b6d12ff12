package storetest

import (
	"testing"
	"time"

	"github.com/behest/caddy-behest/limiter"
)

func testRevoke(t *testing.T, open func(t *testing.T) limiter.Store) {
	at := Base.Add(-time.Hour)
	for _, c := range []struct{ kind, id string }{{limiter.RevokeSession, "sess-u1"}, {limiter.RevokeUser, "u1"}} {
		t.Run(c.kind, func(t *testing.T) {
			e := newEnv(t, open)
			if err := e.s.Revoke(e.ctx, e.project, c.kind, c.id, at); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			r := e.req("u1", limiter.Limits{RequestsPerMinute: 1})
			if c.kind == limiter.RevokeUser {
				r.Session = "another-session" // a user's revocation covers all their sessions
			}
			for _, iat := range []time.Time{at.Add(-time.Second), at.Add(-time.Nanosecond), at} {
				r.IssuedAt = iat
				_, dec := e.reserve(Base, r)
				if !dec.Revoked || dec.Allowed {
					t.Errorf("issued at %s, revoked at %s: %+v, want Revoked", iat.Format(time.RFC3339Nano), at.Format(time.RFC3339), dec)
				}
			}
			// Revoked requests reserved nothing: the one request a minute is still there.
			r.IssuedAt = at.Add(time.Nanosecond)
			e.admit(Base, r)
			r.IssuedAt = time.Time{} // no iat: not checked
			e.refuse(Base, r, limiter.LimitRequestsPerMinute)

			other := e.req("u2", limiter.Limits{})
			other.IssuedAt = at.Add(-time.Second)
			e.admit(Base, other)
			elsewhere := r
			elsewhere.Project, elsewhere.IssuedAt = newID("proj"), at.Add(-time.Second)
			e.admit(Base, elsewhere)

			got, err := e.s.RevokedBefore(e.ctx, e.project, c.kind, c.id)
			if err != nil || !got.Equal(at) {
				t.Errorf("RevokedBefore = %v, %v; want %v", got, err, at)
			}
			for _, k := range []struct{ project, kind, id string }{
				{e.project, c.kind, "nobody"}, {elsewhere.Project, c.kind, c.id}, {e.project, otherKind(c.kind), c.id},
			} {
				if got, err := e.s.RevokedBefore(e.ctx, k.project, k.kind, k.id); err != nil || !got.IsZero() {
					t.Errorf("RevokedBefore(%q, %q, %q) = %v, %v; want zero", k.project, k.kind, k.id, got, err)
				}
			}
		})
	}
	t.Run("keeps_latest", func(t *testing.T) {
		e := newEnv(t, open)
		for _, a := range []time.Time{at, at.Add(-time.Hour)} {
			if err := e.s.Revoke(e.ctx, e.project, limiter.RevokeUser, "u1", a); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := e.s.RevokedBefore(e.ctx, e.project, limiter.RevokeUser, "u1"); !got.Equal(at) {
			t.Errorf("after an earlier revocation, RevokedBefore = %v, want %v", got, at)
		}
		_ = e.s.Revoke(e.ctx, e.project, limiter.RevokeUser, "u1", at.Add(time.Hour))
		if got, _ := e.s.RevokedBefore(e.ctx, e.project, limiter.RevokeUser, "u1"); !got.Equal(at.Add(time.Hour)) {
			t.Errorf("after a later revocation, RevokedBefore = %v, want %v", got, at.Add(time.Hour))
		}
	})
}

func otherKind(kind string) string {
	if kind == limiter.RevokeUser {
		return limiter.RevokeSession
	}
	return limiter.RevokeUser
}

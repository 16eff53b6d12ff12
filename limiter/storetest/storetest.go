// Package storetest is the conformance suite every limiter.Store must pass: the embedded store
// runs it in limiter's tests, and a Redis store runs the same suite unchanged.
//
// Every call takes its time explicitly, from a fixed base near a day and month boundary, so the
// suite never sleeps. Each subtest opens its own store and uses a project ID of its own, so a
// store backed by a shared server (Redis) needs no flushing between subtests.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/behest/caddy-behest/limiter"
)

// Base is the suite's "now": two minutes before both a UTC day and a UTC month end.
var Base = time.Date(2026, 1, 31, 23, 58, 0, 0, time.UTC)

// Run runs the suite. open makes a fresh, empty store for one subtest; Run closes it when the
// subtest ends, so open must not.
func Run(t *testing.T, open func(t *testing.T) limiter.Store) {
	t.Run("Limits", func(t *testing.T) { testLimits(t, open) })
	t.Run("RefusalOrder", func(t *testing.T) { testRefusalOrder(t, open) })
	t.Run("RollingMinuteEdges", func(t *testing.T) { testRollingMinuteEdges(t, open) })
	t.Run("RollingRetryAfter", func(t *testing.T) { testRollingRetryAfter(t, open) })
	t.Run("PeriodRollover", func(t *testing.T) { testPeriodRollover(t, open) })
	t.Run("PeriodsAreUTC", func(t *testing.T) { testPeriodsAreUTC(t, open) })
	t.Run("OutOfOrderNow", func(t *testing.T) { testOutOfOrderNow(t, open) })
	t.Run("TierChange", func(t *testing.T) { testTierChange(t, open) })
	t.Run("Settle", func(t *testing.T) { testSettle(t, open) })
	t.Run("DecisionHeaders", func(t *testing.T) { testDecisionHeaders(t, open) })
	t.Run("Revoke", func(t *testing.T) { testRevoke(t, open) })
	t.Run("Usage", func(t *testing.T) { testUsage(t, open) })
	t.Run("UsageTwoDimensions", func(t *testing.T) { testUsageTwoDimensions(t, open) })
	t.Run("SettleSpend", func(t *testing.T) { testSettleSpend(t, open) })
	t.Run("Claim", func(t *testing.T) { testClaim(t, open) })
	t.Run("FreeRequests", func(t *testing.T) { testFreeRequests(t, open) })
	t.Run("Remaining", func(t *testing.T) { testRemaining(t, open) })
	t.Run("Race", func(t *testing.T) { testRace(t, open) })
}

// env is one subtest's store and project.
type env struct {
	t       *testing.T
	s       limiter.Store
	ctx     context.Context
	project string
}

func newEnv(t *testing.T, open func(t *testing.T) limiter.Store) *env {
	t.Helper()
	s := open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &env{t: t, s: s, ctx: context.Background(), project: newID("proj")}
}

// newID is unique across runs, so stores that outlive a test run never see old keys.
func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func (e *env) req(user string, l limiter.Limits) limiter.Request {
	return limiter.Request{
		Project: e.project, User: user, Session: "sess-" + user, Tier: "free", Model: "gpt-4o-mini",
		Limits: l,
	}
}

func (e *env) reserve(now time.Time, r limiter.Request) (limiter.Reservation, limiter.Decision) {
	e.t.Helper()
	res, dec, err := e.s.Reserve(e.ctx, now, r)
	if err != nil {
		e.t.Fatalf("Reserve at %s: %v", now.Format(time.RFC3339Nano), err)
	}
	return res, dec
}

func (e *env) admit(now time.Time, r limiter.Request) limiter.Reservation {
	e.t.Helper()
	res, dec := e.reserve(now, r)
	if !dec.Allowed || dec.Refused != limiter.LimitNone || dec.Revoked {
		e.t.Fatalf("Reserve at %s (tokens %d, cost %d): want admitted, got %+v",
			now.Format(time.RFC3339Nano), r.Tokens, r.Cost, dec)
	}
	if res.ID == 0 {
		e.t.Fatalf("Reserve at %s: admitted with reservation ID 0", now.Format(time.RFC3339Nano))
	}
	return res
}

func (e *env) refuse(now time.Time, r limiter.Request, want limiter.Limit) limiter.Decision {
	e.t.Helper()
	res, dec := e.reserve(now, r)
	if res.ID != 0 {
		e.t.Errorf("refused by %q with a reservation (ID %d): a refusal holds nothing", want, res.ID)
	}
	if dec.Allowed || dec.Refused != want {
		e.t.Fatalf("Reserve at %s (tokens %d, cost %d): want refused by %q, got allowed=%v refused=%q revoked=%v",
			now.Format(time.RFC3339Nano), r.Tokens, r.Cost, want, dec.Allowed, dec.Refused, dec.Revoked)
	}
	if dec.RetryAfter <= 0 {
		e.t.Errorf("refused by %q: RetryAfter = %v, want > 0", want, dec.RetryAfter)
	}
	return dec
}

func (e *env) settle(now time.Time, res limiter.Reservation, used limiter.Usage) limiter.Spend {
	e.t.Helper()
	spend, err := e.s.Settle(e.ctx, now, res, used)
	if err != nil {
		e.t.Fatalf("Settle: %v", err)
	}
	return spend
}

func (e *env) remaining(now time.Time, r limiter.Request) limiter.Remaining {
	e.t.Helper()
	rem, err := e.s.Remaining(e.ctx, now, r)
	if err != nil {
		e.t.Fatalf("Remaining: %v", err)
	}
	return rem
}

func (e *env) usage(q limiter.UsageQuery) []limiter.UsageRow {
	e.t.Helper()
	rows, err := e.s.Usage(e.ctx, q)
	if err != nil {
		e.t.Fatalf("Usage(%+v): %v", q, err)
	}
	return rows
}

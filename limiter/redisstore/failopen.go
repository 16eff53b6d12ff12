package redisstore

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/behest/caddy-behest/limiter"
)

// failOpenLogEvery is the most often a fail-open admission is logged: an outage under load
// would otherwise log every request.
const failOpenLogEvery = 10 * time.Second

// FailOpenCount is how many requests were admitted (or refused) by the local fallback because
// Redis could not answer, since New.
func (s *Store) FailOpenCount() uint64 { return s.failOpens.Load() }

// reserveFailed applies the failure policy to a Reserve that Redis did not answer.
func (s *Store) reserveFailed(ctx context.Context, now time.Time, req limiter.Request, err error) (limiter.Reservation, limiter.Decision, error) {
	err = unavailable(err)
	// A caller that went away gets its error: there is nobody to admit.
	if s.fallback == nil || ctx.Err() != nil {
		return limiter.Reservation{}, limiter.Decision{}, err
	}
	n := s.failOpens.Add(1)
	s.fallbackUsed.Store(true)
	s.logFailOpen(n, err)
	res, dec, ferr := s.fallback.Reserve(ctx, now, req)
	if ferr != nil {
		return limiter.Reservation{}, limiter.Decision{}, ferr
	}
	if dec.Allowed {
		res.ID |= fallbackID
	}
	return res, dec, nil
}

// logFailOpen logs at most once per failOpenLogEvery, from whichever request wins the race.
func (s *Store) logFailOpen(total uint64, err error) {
	now := time.Now().UnixNano()
	last := s.lastOpenLog.Load()
	if now-last < int64(failOpenLogEvery) || !s.lastOpenLog.CompareAndSwap(last, now) {
		return
	}
	if ce := s.logger.Check(zap.WarnLevel, "redis unavailable: admitting against local limits (on_store_error open)"); ce != nil {
		ce.Write(zap.Error(err), zap.Uint64("fail_open_total", total))
	}
}

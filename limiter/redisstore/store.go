package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/behest/caddy-behest/limiter"
)

// Store is a limiter.Store in Redis, shared exactly by every instance that uses the same Redis
// and KeyPrefix. It is safe for concurrent use; make one with New and Close it when done.
//
// Do not use it for a single instance that has no Redis anyway: limiter.Embedded is faster and
// durable on its own.
type Store struct {
	client  redis.UniversalClient
	cluster bool
	prefix  string
	opts    Options
	logger  *zap.Logger

	// Script arguments that never change, boxed once.
	counterTTL, windowTTL, inflightTTL, usageTTL any // seconds
	revocationTTL                                any // ms
	usageDays                                    int64

	// fallback admits while Redis is down, with FailOpen; nil otherwise.
	fallback     *limiter.Embedded
	failOpens    atomic.Uint64
	lastOpenLog  atomic.Int64 // unix ns of the last fail-open log line
	fallbackUsed atomic.Bool

	retries   settleQueue
	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

// fallbackID marks the ids of reservations the fallback made; Redis ids never have it.
const fallbackID = 1 << 63

// New connects to Redis as opts say. It does not wait for Redis to answer: a Redis that is down
// now is used as soon as it is up.
func New(opts Options) (*Store, error) {
	opts.setDefaults()
	client, err := opts.newClient()
	if err != nil {
		return nil, fmt.Errorf("redis store: %w", err)
	}
	s := &Store{
		client:        client,
		cluster:       opts.Cluster,
		prefix:        opts.KeyPrefix,
		opts:          opts,
		logger:        opts.Logger,
		counterTTL:    int64(counterTTL / time.Second),
		windowTTL:     int64(windowTTL / time.Second),
		inflightTTL:   int64((opts.ConcurrencyLease + settleGrace) / time.Second),
		usageTTL:      int64(opts.UsageRetention / time.Second),
		usageDays:     int64(opts.UsageRetention / (24 * time.Hour)),
		revocationTTL: opts.RevocationTTL.Milliseconds(),
		stop:          make(chan struct{}),
		done:          make(chan struct{}),
	}
	if opts.FailOpen {
		// In memory only, so it starts no goroutine and cannot fail.
		if s.fallback, err = limiter.OpenEmbedded("", limiter.EmbeddedOptions{Logger: opts.Logger}); err != nil {
			client.Close()
			return nil, fmt.Errorf("redis store: fallback: %w", err)
		}
	}
	go s.retrySettles()
	return s, nil
}

// Client returns the Redis client, e.g. to add a hook for metrics.
func (s *Store) Client() redis.UniversalClient { return s.client }

// Close settles what is still queued if Redis answers within a few seconds, and closes the
// client.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s.drainSettles(ctx)
		cancel()
		if n := s.retries.len(); n > 0 {
			s.logger.Error("settlements lost: redis did not answer before closing", zap.Int("count", n))
		}
		err = s.client.Close()
		if s.fallback != nil {
			s.fallback.Close()
		}
	})
	return err
}

// unavailable wraps a Redis error so that errors.Is(err, limiter.ErrUnavailable) holds.
func unavailable(err error) error {
	return fmt.Errorf("%w: redis: %w", limiter.ErrUnavailable, err)
}

// refusedLimits maps the reserve script's refusal codes to limits.
var refusedLimits = [...]limiter.Limit{
	1: limiter.LimitConcurrentRequests,
	2: limiter.LimitRequestsPerMinute,
	3: limiter.LimitTokensPerMinute,
	4: limiter.LimitTokensPerDay,
	5: limiter.LimitCostPerDay,
	6: limiter.LimitCostPerMonth,
	7: limiter.LimitProjectCostPerMonth,
}

// Reserve implements limiter.Store in one round trip.
func (s *Store) Reserve(ctx context.Context, now time.Time, req limiter.Request) (limiter.Reservation, limiter.Decision, error) {
	if refused, wait := limiter.TooLarge(req, now); refused != limiter.LimitNone {
		// Over a limit by itself: refused without a round trip, as the embedded store does.
		return limiter.Reservation{}, limiter.Decision{Refused: refused, RetryAfter: wait, Never: true}, nil
	}
	k := s.userKeys(req.Project, req.User, req.Session)
	id := rand.Uint64()>>1 | 1 // never 0, never fallbackID
	iat := ""
	if !req.IssuedAt.IsZero() {
		iat = unixNanos(req.IssuedAt)
	}
	// Like limiter.Embedded, an empty user or session id is not checked for revocation.
	check := revocationChecks[btoi(req.User != "")<<1|btoi(req.Session != "")]
	wall := time.Now().UnixMilli()
	l := req.Limits
	v, lost, err := s.runReserve(ctx, k[:], []any{
		now.Unix(), dayOf(now), monthOf(now),
		l.RequestsPerMinute, l.TokensPerMinute, l.TokensPerDay, int64(l.CostPerDay), int64(l.CostPerMonth),
		int64(req.ProjectCostPerMonth), l.ConcurrentRequests, req.Tokens, int64(req.Cost),
		iat, check, id,
		wall, wall + s.opts.ConcurrencyLease.Milliseconds(), wall - settleGrace.Milliseconds(),
		s.counterTTL, s.windowTTL, s.inflightTTL, windowSecond(now),
	})
	if err == nil && len(v) == 1 && v[0] == -2 {
		// Released before it ran: only a retry of a call given up on gets here.
		return limiter.Reservation{}, limiter.Decision{}, unavailable(errors.New("the reservation was released before it ran"))
	}
	if err == nil && !(len(v) == 1 && v[0] == -1 || len(v) == 6 && v[0] >= 0 && v[0] < int64(len(refusedLimits))) {
		err, lost = fmt.Errorf("unexpected reply %v from the reserve script", v), true
	}
	if err != nil {
		if lost {
			// The script may have reserved with its answer lost (Redis paused with the call in
			// its socket, or gone after running it): undo it by id once Redis answers, or it
			// holds a slot for the lease.
			s.queueRelease(limiter.Reservation{Request: req, At: now, ID: id})
		}
		return s.reserveFailed(ctx, now, req, err)
	}

	var dec limiter.Decision
	if v[0] == -1 {
		dec.Revoked = true
		return limiter.Reservation{}, dec, nil
	}
	if l.RequestsPerMinute > 0 {
		dec.RequestsLimit = l.RequestsPerMinute
		dec.RequestsRemaining = max(l.RequestsPerMinute-v[2], 0)
		dec.RequestsReset = time.Duration(v[3]) * time.Second
	}
	if l.TokensPerMinute > 0 {
		dec.TokensLimit = l.TokensPerMinute
		dec.TokensRemaining = max(l.TokensPerMinute-v[4], 0)
		dec.TokensReset = time.Duration(v[5]) * time.Second
	}
	if v[0] > 0 {
		dec.Refused = refusedLimits[v[0]]
		switch {
		case !dec.Refused.Quota():
			dec.RetryAfter = time.Duration(v[1]) * time.Second
		case dec.Refused == limiter.LimitTokensPerDay || dec.Refused == limiter.LimitCostPerDay:
			dec.RetryAfter = untilNextDay(now)
		default:
			dec.RetryAfter = untilNextMonth(now)
		}
		return limiter.Reservation{}, dec, nil
	}
	dec.Allowed = true
	return limiter.Reservation{Request: req, At: now, ID: id}, dec, nil
}

// recordUsage is the settle script's flag: "1" records the usage, "0" (a free request) not.
var recordUsage = [2]string{"0", "1"}

// revocationChecks says which revocations the reserve script checks: the user's ("1" first),
// the session's ("1" second).
var revocationChecks = [4]string{"00", "01", "10", "11"}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// runReserve runs the reserve script with args; lost reports whether an attempt may have run
// without its answer reaching us. A call whose connection broke under it is made once more
// under the same id (the script answers a reservation it already holds as admitted); a timeout
// is not: Redis is slow, and a request would wait twice. In Cluster, go-redis makes that
// retry, on another node if need be, and the hook sees each attempt.
func (s *Store) runReserve(ctx context.Context, keys []string, args []any) (v []int64, lost bool, err error) {
	if s.cluster {
		tr := &callTrace{Context: ctx}
		v, err = reserveScript.Run(tr, s.client, keys, args...).Int64Slice()
		return v, err != nil && tr.lost.Load(), err
	}
	for attempt := 0; ; attempt++ {
		v, err = reserveScript.Run(ctx, s.client, keys, args...).Int64Slice()
		if err == nil {
			return v, false, nil
		}
		lost = lost || answerLost(err)
		if attempt > 0 || !answerLost(err) || timedOut(err) || ctx.Err() != nil {
			return v, lost, err
		}
	}
}

// tombstoneLife is how long a release that found no reservation refuses a late reserve of it.
const tombstoneLife = 10 * time.Minute

// queueRelease queues res to be released in the background.
func (s *Store) queueRelease(res limiter.Reservation) {
	if !s.retries.push(pendingSettle{res: res, release: true}) {
		s.logger.Error("release queue full: a reservation whose answer was lost stays held until its lease ends",
			zap.String("project", res.Request.Project))
	}
}

// release runs the release script for res.
func (s *Store) release(ctx context.Context, res limiter.Reservation) error {
	req := &res.Request
	k := s.userKeys(req.Project, req.User, req.Session)
	// Scored below any lease (never in flight), and past the point where reserve forgets ended
	// leases once tombstoneLife has gone by.
	tombstone := time.Now().Add(tombstoneLife - settleGrace).UnixMilli()
	return releaseScript.Run(ctx, s.client, k[:keyRevUser],
		res.ID, windowSecond(res.At), dayOf(res.At), monthOf(res.At), -req.Tokens, -int64(req.Cost), tombstone, s.inflightTTL,
	).Err()
}

// settleTimeout bounds a settle's wait for Redis; what it cannot settle by then is queued.
const settleTimeout = 5 * time.Second

// Settle implements limiter.Store in one round trip. When Redis cannot take it, it is queued
// and retried in the background, and the error says so.
func (s *Store) Settle(ctx context.Context, now time.Time, res limiter.Reservation, used limiter.Usage) (limiter.Spend, error) {
	if res.ID&fallbackID != 0 {
		if s.fallback == nil {
			return limiter.Spend{}, nil
		}
		res.ID &^= fallbackID
		return s.fallback.Settle(ctx, now, res, used)
	}
	if res.ID == 0 {
		return limiter.Spend{}, nil // not a reservation (a refused request)
	}
	// The caller's request may be over, its context cancelled: settle regardless, bounded here.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	spend, err := s.settle(ctx, res, used)
	if err == nil {
		return spend, nil
	}
	if !transient(err) {
		return limiter.Spend{}, unavailable(err)
	}
	if !s.retries.push(pendingSettle{res: res, used: used}) {
		return limiter.Spend{}, fmt.Errorf("%w (retry queue full: usage dropped)", unavailable(err))
	}
	return limiter.Spend{}, fmt.Errorf("%w (queued for retry)", unavailable(err))
}

// settle runs the settle script.
func (s *Store) settle(ctx context.Context, res limiter.Reservation, used limiter.Usage) (limiter.Spend, error) {
	req := &res.Request
	day := dayOf(res.At)
	keys := s.settleKeys(req.Project, req.User, strconv.FormatInt(day, 10))
	in, out, cost := max(used.InputTokens, 0), max(used.OutputTokens, 0), max(used.Cost, 0)
	cached := min(max(used.CachedInputTokens, 0), in)
	v, err := settleScript.Run(ctx, s.client, keys[:],
		res.ID, windowSecond(res.At), day, monthOf(res.At),
		in+out-req.Tokens, int64(cost-req.Cost),
		usageField(req), in, out, int64(cost),
		s.usageTTL, day-s.usageDays, cached, recordUsage[btoi(!req.Free)],
	).Int64Slice()
	switch {
	case errors.Is(err, redis.Nil):
		return limiter.Spend{}, nil
	case err != nil:
		return limiter.Spend{}, err
	case len(v) != 4:
		return limiter.Spend{}, nil // nothing was settled: {0}
	}
	return limiter.Spend{UserDay: spent(v[1]), UserMonth: spent(v[2]), ProjectMonth: spent(v[3])}, nil
}

// spent reads a settle script's spend, -1 meaning a period no longer current.
func spent(v int64) limiter.Nanos { return limiter.Nanos(max(v, 0)) }

// Remaining implements limiter.Store in one round trip. With FailOpen and Redis down, it
// reports the local fallback's view.
func (s *Store) Remaining(ctx context.Context, now time.Time, req limiter.Request) (limiter.Remaining, error) {
	k := s.userKeys(req.Project, req.User, req.Session)
	v, err := remainingScript.Run(ctx, s.client, k[keyUser:keyRevUser],
		now.Unix(), dayOf(now), monthOf(now), time.Now().UnixMilli()).Int64Slice()
	if err == nil && len(v) != 7 {
		err = fmt.Errorf("unexpected reply %v from the remaining script", v)
	}
	if err != nil {
		if s.fallback != nil && ctx.Err() == nil {
			return s.fallback.Remaining(ctx, now, req)
		}
		return limiter.Remaining{}, unavailable(err)
	}
	l := req.Limits
	return limiter.Remaining{
		RequestsPerMinute:   left(l.RequestsPerMinute, v[0]),
		TokensPerMinute:     left(l.TokensPerMinute, v[1]),
		TokensPerDay:        left(l.TokensPerDay, v[2]),
		CostPerDay:          limiter.Nanos(left(int64(l.CostPerDay), v[3])),
		CostPerMonth:        limiter.Nanos(left(int64(l.CostPerMonth), v[4])),
		ConcurrentRequests:  left(l.ConcurrentRequests, v[5]),
		ProjectCostPerMonth: limiter.Nanos(left(int64(req.ProjectCostPerMonth), v[6])),
	}, nil
}

// left is what is left of limit after used, or -1 for a limit that is off.
func left(limit, used int64) int64 {
	if limit <= 0 {
		return -1
	}
	return max(limit-used, 0)
}

var _ limiter.Store = (*Store)(nil)

// windowSecond is the rolling-window bucket a request made at t is added to: its second
// rounded up, as the embedded store does, so it is held for at least 60 s of real time and no
// 60 s ever exceed a limit.
func windowSecond(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

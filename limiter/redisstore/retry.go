package redisstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/behest/caddy-behest/limiter"
)

// maxPendingSettles bounds the memory an outage can take: past it, usage is dropped (and the
// reservation's worst case stays charged, never less).
const maxPendingSettles = 100_000

// retryEvery is how often queued settlements are retried.
const retryEvery = time.Second

// pendingSettle is a settlement Redis could not take, or (release set) a reservation to undo
// because its answer never came back.
type pendingSettle struct {
	res     limiter.Reservation
	used    limiter.Usage
	release bool
}

// settleQueue holds the settlements and releases Redis could not take. Retrying is safe: one
// that did reach Redis is a no-op the second time.
type settleQueue struct {
	mu    sync.Mutex
	items []pendingSettle
}

func (q *settleQueue) push(p pendingSettle) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) >= maxPendingSettles {
		return false
	}
	q.items = append(q.items, p)
	return true
}

func (q *settleQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// take empties the queue.
func (q *settleQueue) take() []pendingSettle {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

// putBack returns what was not settled, ahead of what was queued since.
func (q *settleQueue) putBack(items []pendingSettle) {
	if len(items) == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = append(items, q.items...)
}

// retrySettles retries queued settlements until Close.
func (s *Store) retrySettles() {
	defer close(s.done)
	t := time.NewTicker(retryEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if s.retries.len() > 0 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				s.drainSettles(ctx)
				cancel()
			}
		}
	}
}

// drainSettles settles queued settlements in order, stopping at the first Redis refuses.
func (s *Store) drainSettles(ctx context.Context) {
	items := s.retries.take()
	for i, p := range items {
		var err error
		if p.release {
			err = s.release(ctx, p.res)
		} else {
			_, err = s.settle(ctx, p.res, p.used)
		}
		if err != nil && transient(err) {
			s.retries.putBack(items[i:])
			return
		}
		if err != nil {
			s.logger.Error("a queued settlement or release failed: dropped", zap.String("project", p.res.Request.Project), zap.Error(err))
		}
	}
	if len(items) > 0 {
		s.logger.Info("queued settlements and releases reached redis", zap.Int("count", len(items)))
	}
}

// transient reports whether Redis may take a failed call later: it did not answer, or it
// answered "not now". Any other error reply would fail again.
func transient(err error) bool {
	var reply redis.Error
	if !errors.As(err, &reply) {
		return true
	}
	for _, p := range [...]string{"LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "OOM", "NOSCRIPT", "MOVED", "ASK"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

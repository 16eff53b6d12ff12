package redisstore

import (
	"context"
	"errors"
	"net"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// The store, not go-redis, decides whether a failed call is tried again and whether it may have
// reached Redis. go-redis's retries are off: they retry a timed-out call (a request would wait
// read_timeout twice, and more in Cluster), and they hide whether an earlier attempt of a call
// that failed to connect had been sent (a reserve that may have run must be released by id;
// one that never left must not be, or every request refused during an outage queues a release).

// errNotSent is an attempt that failed before anything was sent: no connection could be made
// (Redis or Sentinel unreachable, or go-redis still refusing to dial after such failures).
type errNotSent struct{ err error }

func (e errNotSent) Error() string { return e.err.Error() }
func (e errNotSent) Unwrap() error { return e.err }

// errFinal is a timeout hidden from go-redis, so that Cluster does not try again; Unwrap is
// deliberately missing.
type errFinal struct{ err error }

func (e errFinal) Error() string { return e.err.Error() }

// notSent reports whether err proves its call never reached Redis.
func notSent(err error) bool {
	var ns errNotSent
	return errors.As(err, &ns) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrClosed)
}

// answered reports whether err is Redis's own reply: the call ran (to an error) or was refused,
// and nothing of it is pending.
func answered(err error) bool {
	var reply redis.Error
	return errors.As(err, &reply)
}

// answerLost reports whether a failed call may have run without its answer reaching us.
func answerLost(err error) bool {
	return err != nil && !answered(err) && !notSent(err)
}

// timedOut reports whether err is a timeout waiting for Redis.
func timedOut(err error) bool {
	var final errFinal
	if errors.As(err, &final) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// callTrace goes in the context of a call made through a Cluster client, where go-redis tries a
// call on several nodes: it records whether one of the attempts may have run unseen.
type callTrace struct {
	context.Context
	lost atomic.Bool
}

type callTraceKey struct{}

func (c *callTrace) Value(key any) any {
	if key == (callTraceKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// attemptHook sees each attempt of a call on one client: every client of a single server or
// Sentinel, or each node's client in Cluster.
type attemptHook struct {
	cluster bool
}

func (attemptHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			return nil, errNotSent{err}
		}
		return conn, nil
	}
}

func (h attemptHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	if !h.cluster {
		return next
	}
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if !answerLost(err) {
			return err
		}
		if tr, ok := ctx.Value(callTraceKey{}).(*callTrace); ok {
			tr.lost.Store(true)
		}
		if timedOut(err) {
			err = errFinal{err}
			cmd.SetErr(err)
		}
		return err
	}
}

func (attemptHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// hookAttempts installs attemptHook where it sees single attempts.
func hookAttempts(c redis.UniversalClient) {
	switch c := c.(type) {
	case *redis.ClusterClient:
		c.OnNewNode(func(node *redis.Client) { node.AddHook(attemptHook{cluster: true}) })
	case *redis.Client:
		c.AddHook(attemptHook{})
	}
}

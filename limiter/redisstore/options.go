package redisstore

import (
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"
)

// Options configure New. Exactly one of URL and Addrs says where Redis is.
type Options struct {
	// URL of one Redis server: redis://[user:password@]host:port[/db] or rediss:// for TLS
	// (also unix:///path). Query options of redis.ParseURL are honoured, but max_retries: the
	// store decides what is tried again.
	URL string
	// Addrs are Sentinel addresses (with MasterName), Cluster seed nodes (with Cluster), or the
	// one address of a single server.
	Addrs []string
	// MasterName selects Sentinel: the name of the master set to follow.
	MasterName string
	// Cluster selects Redis Cluster.
	Cluster bool

	// Password (and DB, not for Cluster) override what URL says, when set.
	Password string
	DB       int
	// PoolSize is the most connections per node (default: go-redis's, 10 per CPU).
	PoolSize int
	// DialTimeout (default 2s), ReadTimeout and WriteTimeout (default 1s) bound how long a
	// request can wait on an unreachable Redis before the failure policy applies. When set
	// they override the URL's query options.
	DialTimeout, ReadTimeout, WriteTimeout time.Duration

	// KeyPrefix starts every key (default "behest:").
	KeyPrefix string
	// FailOpen admits requests against a local in-memory store while Redis cannot answer,
	// instead of refusing them with limiter.ErrUnavailable.
	FailOpen bool
	// Logger (default zap.NewNop()).
	Logger *zap.Logger

	// ConcurrencyLease is the longest a request holds its concurrency slot if it is never
	// settled (its instance died): after it, the slot is free again (default 1h). A request
	// running longer than this frees its slot early.
	ConcurrencyLease time.Duration
	// UsageRetention is how long usage aggregates are kept after their last write (default
	// 400 days).
	UsageRetention time.Duration
	// RevocationTTL is how long a revocation is kept (default 30 days, far past any token's
	// life).
	RevocationTTL time.Duration
}

// Timeouts shorter than go-redis's, because a request waits on them.
const (
	defaultDialTimeout = 2 * time.Second
	defaultIOTimeout   = time.Second
)

// noRetries turns go-redis's retries off: the store decides (attempt.go). Cluster still tries
// another node after a failed connection (and follows MOVED), after minRetryBackoff.
const (
	noRetries       = -1
	minRetryBackoff = time.Millisecond
)

// first returns the first positive duration of ds (0 if none).
func first(ds ...time.Duration) time.Duration {
	for _, d := range ds {
		if d > 0 {
			return d
		}
	}
	return 0
}

func (o *Options) setDefaults() {
	if o.KeyPrefix == "" {
		o.KeyPrefix = "behest:"
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.ConcurrencyLease <= 0 {
		o.ConcurrencyLease = time.Hour
	}
	if o.UsageRetention <= 0 {
		o.UsageRetention = 400 * 24 * time.Hour
	}
	if o.RevocationTTL <= 0 {
		o.RevocationTTL = 30 * 24 * time.Hour
	}
}

// newClient connects as o says; go-redis dials lazily and reconnects by itself.
func (o *Options) newClient() (redis.UniversalClient, error) {
	switch {
	case o.URL != "" && len(o.Addrs) > 0:
		return nil, errors.New("url and addrs are exclusive: give one of them")
	case o.URL == "" && len(o.Addrs) == 0:
		return nil, errors.New("a url or addrs is required")
	case o.Cluster && o.MasterName != "":
		return nil, errors.New("cluster and sentinel (master_name) are exclusive")
	case o.Cluster && o.DB != 0:
		return nil, fmt.Errorf("db %d: Redis Cluster has only db 0", o.DB)
	case o.MasterName == "" && !o.Cluster && len(o.Addrs) > 1:
		return nil, fmt.Errorf("%d addrs: several addresses need cluster or sentinel", len(o.Addrs))
	case o.URL != "" && (o.Cluster || o.MasterName != ""):
		return nil, errors.New("cluster and sentinel take addrs, not a url")
	}
	// The failure policy, not go-redis, decides what an outage costs a request: one dial per
	// attempt and no retry by go-redis (the store tries a broken connection's call once more
	// itself), instead of go-redis's 5 dials and 3 retries with backoff, so a down Redis costs a
	// request a few ms, not ~100ms, and a silent one one read timeout.
	maint := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	var client redis.UniversalClient
	if o.URL != "" {
		opt, err := redis.ParseURL(o.URL)
		if err != nil {
			return nil, fmt.Errorf("url: %w", err)
		}
		if o.Password != "" {
			opt.Password = o.Password
		}
		if o.DB != 0 {
			opt.DB = o.DB
		}
		if o.PoolSize > 0 {
			opt.PoolSize = o.PoolSize
		}
		opt.DialTimeout = first(o.DialTimeout, opt.DialTimeout, defaultDialTimeout)
		opt.ReadTimeout = first(o.ReadTimeout, opt.ReadTimeout, defaultIOTimeout)
		opt.WriteTimeout = first(o.WriteTimeout, opt.WriteTimeout, opt.ReadTimeout)
		opt.DialerRetries = 1
		opt.MaxRetries = noRetries
		opt.MaintNotificationsConfig = maint
		client = redis.NewClient(opt)
	} else {
		client = redis.NewUniversalClient(&redis.UniversalOptions{
			Addrs:                    o.Addrs,
			MasterName:               o.MasterName,
			IsClusterMode:            o.Cluster,
			Password:                 o.Password,
			DB:                       o.DB,
			PoolSize:                 o.PoolSize,
			DialTimeout:              first(o.DialTimeout, defaultDialTimeout),
			ReadTimeout:              first(o.ReadTimeout, defaultIOTimeout),
			WriteTimeout:             first(o.WriteTimeout, o.ReadTimeout, defaultIOTimeout),
			DialerRetries:            1,
			MaxRetries:               noRetries,
			MinRetryBackoff:          minRetryBackoff,
			MaintNotificationsConfig: maint,
		})
	}
	hookAttempts(client)
	return client, nil
}

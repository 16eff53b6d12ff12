package behest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/behest/caddy-behest/limiter"
	"github.com/behest/caddy-behest/limiter/redisstore"
)

func init() {
	caddy.RegisterModule(RedisStore{})
}

// RedisStore keeps limits, usage and revocations in Redis, so that any number of Caddy
// instances behind a load balancer share one set of limits exactly. Admitting a request is one
// round trip to Redis and settling it one more. Every key has a TTL; see the README for the key
// layout. In Redis Cluster all keys of a project share one slot (the project is a hash tag).
//
// The url and password may use placeholders such as {env.REDIS_URL}.
type RedisStore struct {
	// URL of one Redis server: redis://[user:password@]host:port[/db], rediss:// for TLS, or
	// unix:///path. Exclusive with addrs.
	URL string `json:"url,omitempty"`
	// Addrs are the Sentinel addresses (with master_name) or the Cluster seed nodes (with
	// cluster).
	Addrs []string `json:"addrs,omitempty"`
	// MasterName is the Sentinel master set to follow: after a failover every new connection
	// goes to the master Sentinel names, and the old master's are closed as soon as Sentinel
	// announces the switch, without a reload. Until the promotion on_store_error applies.
	MasterName string `json:"master_name,omitempty"`
	// Cluster connects to Redis Cluster through addrs.
	Cluster bool `json:"cluster,omitempty"`
	// Password overrides the URL's.
	Password string `json:"password,omitempty"`
	// DB is the database number, overriding the URL's (not with cluster).
	DB int `json:"db,omitempty"`
	// PoolSize is the most connections per Redis node (default 10 per CPU).
	PoolSize int `json:"pool_size,omitempty"`
	// DialTimeout bounds connecting (default 2s).
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// ReadTimeout bounds waiting for an answer (default 1s): a request waits this long at most
	// (plus dial_timeout when it needs a new connection) before on_store_error applies.
	ReadTimeout caddy.Duration `json:"read_timeout,omitempty"`
	// WriteTimeout bounds sending (default: read_timeout).
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`
	// KeyPrefix starts every key (default "behest:"). Instances that share limits use the
	// same prefix.
	KeyPrefix string `json:"key_prefix,omitempty"`
	// OnStoreError is what requests get while Redis cannot answer: "closed" (default) refuses
	// them with 503 store_unavailable; "open" admits them against limits kept in this instance
	// only (logged and counted), so budgets are not hard during the outage.
	OnStoreError string `json:"on_store_error,omitempty"`

	store *redisstore.Store
	key   string
}

// CaddyModule returns the Caddy module information.
func (RedisStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.behest.stores.redis",
		New: func() caddy.Module { return new(RedisStore) },
	}
}

// pooledRedis puts a Redis store in the stores usage pool (store_embedded.go), so a config
// reload keeps the client and its connections.
type pooledRedis struct{ *redisstore.Store }

func (s pooledRedis) Destruct() error { return s.Close() }

// Provision connects to Redis, or shares the client of a config with the same options.
func (s *RedisStore) Provision(ctx caddy.Context) error {
	opts, err := s.options()
	if err != nil {
		return fmt.Errorf("redis store: %w", err)
	}
	// The pool key is every option, so a reload that changes one gets a new client; it holds
	// the password, but is only ever compared, never logged.
	key, err := json.Marshal(opts)
	if err != nil {
		return fmt.Errorf("redis store: %w", err)
	}
	s.key = "redis:" + string(key)
	opts.Logger = ctx.Logger()
	v, _, err := stores.LoadOrNew(s.key, func() (caddy.Destructor, error) {
		st, err := redisstore.New(opts)
		if err != nil {
			return nil, err
		}
		return pooledRedis{st}, nil
	})
	if err != nil {
		s.key = ""
		return fmt.Errorf("redis store: %w", err)
	}
	s.store = v.(pooledRedis).Store
	return nil
}

// options checks the config and resolves its placeholders.
func (s *RedisStore) options() (redisstore.Options, error) {
	switch {
	case s.OnStoreError != "" && s.OnStoreError != "closed" && s.OnStoreError != "open":
		return redisstore.Options{}, fmt.Errorf("on_store_error %q: closed or open is expected", s.OnStoreError)
	case s.PoolSize < 0:
		return redisstore.Options{}, fmt.Errorf("pool_size %d: a positive number is expected", s.PoolSize)
	case s.DB < 0:
		return redisstore.Options{}, fmt.Errorf("db %d: a database number (0 or more) is expected", s.DB)
	}
	for _, t := range []struct {
		name string
		d    caddy.Duration
	}{{"dial_timeout", s.DialTimeout}, {"read_timeout", s.ReadTimeout}, {"write_timeout", s.WriteTimeout}} {
		if t.d < 0 {
			return redisstore.Options{}, fmt.Errorf("%s %s: a positive duration is expected", t.name, time.Duration(t.d))
		}
	}
	repl := caddy.NewReplacer()
	addrs := make([]string, len(s.Addrs))
	for i, a := range s.Addrs {
		addrs[i] = repl.ReplaceKnown(a, "")
	}
	return redisstore.Options{
		URL:          repl.ReplaceKnown(s.URL, ""),
		Addrs:        addrs,
		MasterName:   s.MasterName,
		Cluster:      s.Cluster,
		Password:     repl.ReplaceKnown(s.Password, ""),
		DB:           s.DB,
		PoolSize:     s.PoolSize,
		DialTimeout:  time.Duration(s.DialTimeout),
		ReadTimeout:  time.Duration(s.ReadTimeout),
		WriteTimeout: time.Duration(s.WriteTimeout),
		KeyPrefix:    s.KeyPrefix,
		FailOpen:     s.OnStoreError == "open",
	}, nil
}

// Store returns the connected store.
func (s *RedisStore) Store() limiter.Store { return s.store }

// Cleanup releases this config's hold on the client; the last one closes it.
func (s *RedisStore) Cleanup() error {
	if s.key == "" {
		return nil
	}
	_, err := stores.Delete(s.key)
	return err
}

// UnmarshalCaddyfile sets up the store from:
//
//	store redis [<url>] {
//		pool_size      <n>
//		dial_timeout   <duration>
//		read_timeout   <duration>
//		write_timeout  <duration>
//		key_prefix     <prefix>
//		sentinel       <master> <addr...>
//		cluster        <addr...>
//		password       <password>
//		db             <n>
//		on_store_error closed|open
//	}
func (s *RedisStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the store's name
	if d.NextArg() {
		s.URL = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "sentinel":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.Errf("sentinel: expected <master> <addr...>, like: sentinel mymaster 10.0.0.1:26379 10.0.0.2:26379")
			}
			s.MasterName, s.Addrs = args[0], args[1:]
			continue
		case "cluster":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("cluster: expected <addr...>, like: cluster 10.0.0.1:6379 10.0.0.2:6379")
			}
			s.Cluster, s.Addrs = true, args
			continue
		}
		if !d.NextArg() {
			return d.ArgErr()
		}
		v := d.Val()
		switch opt {
		case "pool_size", "db":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || opt == "pool_size" && n == 0 {
				return d.Errf("%s %q: a whole number is expected", opt, v)
			}
			if opt == "db" {
				s.DB = n
			} else {
				s.PoolSize = n
			}
		case "dial_timeout", "read_timeout", "write_timeout":
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("%s %q: a positive duration like 2s is expected", opt, v)
			}
			switch opt {
			case "dial_timeout":
				s.DialTimeout = caddy.Duration(dur)
			case "read_timeout":
				s.ReadTimeout = caddy.Duration(dur)
			default:
				s.WriteTimeout = caddy.Duration(dur)
			}
		case "key_prefix":
			s.KeyPrefix = v
		case "password":
			s.Password = v
		case "on_store_error":
			if v != "closed" && v != "open" {
				return d.Errf("on_store_error %q: closed or open is expected", v)
			}
			s.OnStoreError = v
		default:
			return d.Errf("unrecognized redis store option %q", opt)
		}
		if d.NextArg() {
			return d.Errf("%s: one value is expected, got another: %q", opt, d.Val())
		}
	}
	return nil
}

var (
	_ caddy.Provisioner     = (*RedisStore)(nil)
	_ caddy.CleanerUpper    = (*RedisStore)(nil)
	_ StoreProvider         = (*RedisStore)(nil)
	_ caddyfile.Unmarshaler = (*RedisStore)(nil)
)

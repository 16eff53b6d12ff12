package behest

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/behest/caddy-behest/limiter"
)

func init() {
	caddy.RegisterModule(EmbeddedStore{})
}

// EmbeddedStore keeps limits, usage and revocations in this process, durable in a file under
// Caddy's data directory (written behind, at most one second old). One instance only: several
// instances sharing limits need the redis store.
type EmbeddedStore struct {
	// Path of the database file (default: <caddy data dir>/behest/limits.db).
	Path string `json:"path,omitempty"`

	store *limiter.Embedded
	key   string
}

// CaddyModule returns the Caddy module information.
func (EmbeddedStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.behest.stores.embedded",
		New: func() caddy.Module { return new(EmbeddedStore) },
	}
}

// stores keeps stores open across config reloads, so counters are not reset by one: a new
// config's handler takes over the store before the old one lets go of it.
var stores = caddy.NewUsagePool()

type pooledStore struct{ *limiter.Embedded }

func (s pooledStore) Destruct() error { return s.Close() }

// Provision opens the store, or shares the one already open at Path.
func (s *EmbeddedStore) Provision(ctx caddy.Context) error {
	if s.Path == "" {
		s.Path = filepath.Join(caddy.AppDataDir(), "behest", "limits.db")
	}
	s.key = "embedded:" + s.Path
	logger := ctx.Logger()
	v, _, err := stores.LoadOrNew(s.key, func() (caddy.Destructor, error) {
		if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
			return nil, err
		}
		st, err := limiter.OpenEmbedded(s.Path, limiter.EmbeddedOptions{Logger: logger})
		if err != nil {
			return nil, err
		}
		return pooledStore{st}, nil
	})
	if err != nil {
		return fmt.Errorf("embedded store %s: %w", s.Path, err)
	}
	s.store = v.(pooledStore).Embedded
	return nil
}

// Store returns the opened store.
func (s *EmbeddedStore) Store() limiter.Store { return s.store }

// Cleanup releases this config's hold on the store; the last one closes it.
func (s *EmbeddedStore) Cleanup() error {
	if s.key == "" {
		return nil
	}
	_, err := stores.Delete(s.key)
	return err
}

// UnmarshalCaddyfile sets up the store from `store embedded [<path>]`.
func (s *EmbeddedStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the store's name
	if d.NextArg() {
		s.Path = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

var (
	_ caddy.Provisioner     = (*EmbeddedStore)(nil)
	_ caddy.CleanerUpper    = (*EmbeddedStore)(nil)
	_ StoreProvider         = (*EmbeddedStore)(nil)
	_ caddyfile.Unmarshaler = (*EmbeddedStore)(nil)
)

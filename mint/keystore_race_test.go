package mint_test

import (
	"context"
	"errors"
	"github.com/behest/caddy-behest/mint"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memStorage is an in-memory mint.Storage. Lock really serialises holders of one name (a per-name
// mutex), as certmagic's storage locks do across instances.
type memStorage struct {
	mu    sync.Mutex
	data  map[string][]byte
	locks map[string]*sync.Mutex

	storeDelay time.Duration // makes a racing Store slow enough to be caught
	stores     atomic.Int32
	loadErr    error // returned by Load when set
	storeErr   error // returned by Store when set
	lockErr    error // returned by Lock when set
	unlocks    atomic.Int32
}

func newMemStorage() *memStorage {
	return &memStorage{data: map[string][]byte{}, locks: map[string]*sync.Mutex{}}
}

func (s *memStorage) lockFor(name string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.locks[name]
	if !ok {
		l = &sync.Mutex{}
		s.locks[name] = l
	}
	return l
}

func (s *memStorage) Lock(ctx context.Context, name string) error {
	if s.lockErr != nil {
		return s.lockErr
	}
	s.lockFor(name).Lock()
	return nil
}

func (s *memStorage) Unlock(ctx context.Context, name string) error {
	s.unlocks.Add(1)
	s.lockFor(name).Unlock()
	return nil
}

func (s *memStorage) Store(ctx context.Context, key string, value []byte) error {
	if s.storeErr != nil {
		return s.storeErr
	}
	if s.storeDelay > 0 {
		time.Sleep(s.storeDelay)
	}
	s.stores.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[key] = append([]byte(nil), value...)
	return nil
}

func (s *memStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if s.loadErr != nil {
		return nil, s.loadErr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return append([]byte(nil), v...), nil
}

const keyName = "behest/mint/signing_key.pem"

func TestLoadOrCreateKey(t *testing.T) {
	ctx := context.Background()
	s := newMemStorage()
	first, err := mint.LoadOrCreateKey(ctx, s, keyName)
	if err != nil {
		t.Fatalf("first call: %v", err)
	}
	if first.Algorithm() != "EdDSA" {
		t.Errorf("created key alg %q, want EdDSA", first.Algorithm())
	}
	if n := s.stores.Load(); n != 1 {
		t.Fatalf("first call stored %d times, want 1", n)
	}
	stored, err := s.Load(ctx, keyName)
	if err != nil {
		t.Fatalf("nothing stored under %s: %v", keyName, err)
	}
	if !strings.Contains(string(stored), "PRIVATE KEY") {
		t.Errorf("stored value is not a PEM private key")
	}
	if s.unlocks.Load() != 1 {
		t.Errorf("the lock was released %d times, want 1", s.unlocks.Load())
	}

	second, err := mint.LoadOrCreateKey(ctx, s, keyName)
	if err != nil {
		t.Fatalf("second call: %v", err)
	}
	if second.KeyID() != first.KeyID() {
		t.Errorf("second call KeyID %q, want %q", second.KeyID(), first.KeyID())
	}
	if n := s.stores.Load(); n != 1 {
		t.Errorf("second call stored again (%d stores)", n)
	}

	// A token minted with the first verifies with the second's public key.
	tok, err := newMinter(first).Mint(testClaims)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mint.NewKeyring(second).PublicKey(first.KeyID()); !ok {
		t.Errorf("reloaded keyring does not know kid %s", first.KeyID())
	}
	_ = tok

	// Another name is another key.
	other, err := mint.LoadOrCreateKey(ctx, s, keyName+".other")
	if err != nil {
		t.Fatal(err)
	}
	if other.KeyID() == first.KeyID() {
		t.Errorf("a second name got the same key")
	}
}

func TestLoadOrCreateKeyRace(t *testing.T) {
	s := newMemStorage()
	s.storeDelay = 20 * time.Millisecond
	const n = 8
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		kids  [n]string
		errs  [n]error
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			k, err := mint.LoadOrCreateKey(context.Background(), s, keyName)
			errs[i] = err
			if err == nil {
				kids[i] = k.KeyID()
			}
		}()
	}
	close(start)
	wg.Wait()
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if kids[i] != kids[0] {
			t.Errorf("goroutine %d got kid %s, goroutine 0 got %s", i, kids[i], kids[0])
		}
	}
	if got := s.stores.Load(); got != 1 {
		t.Errorf("%d stores, want exactly 1", got)
	}
	stored, _ := s.Load(context.Background(), keyName)
	k, err := mint.ParseKeyPEM(stored)
	if err != nil {
		t.Fatal(err)
	}
	if k.KeyID() != kids[0] {
		t.Errorf("stored key %s is not the one returned (%s)", k.KeyID(), kids[0])
	}
}

func TestLoadOrCreateKeyErrors(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("disk on fire")

	t.Run("load error other than absent", func(t *testing.T) {
		s := newMemStorage()
		s.loadErr = boom
		if _, err := mint.LoadOrCreateKey(ctx, s, keyName); !errors.Is(err, boom) {
			t.Errorf("err = %v, want %v", err, boom)
		}
		if s.stores.Load() != 0 {
			t.Errorf("a key was stored although Load failed")
		}
	})
	t.Run("lock error", func(t *testing.T) {
		s := newMemStorage()
		s.lockErr = boom
		_, err := mint.LoadOrCreateKey(ctx, s, keyName)
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), keyName) {
			t.Errorf("err = %v, want %v naming %s", err, boom, keyName)
		}
	})
	t.Run("store error", func(t *testing.T) {
		s := newMemStorage()
		s.storeErr = boom
		_, err := mint.LoadOrCreateKey(ctx, s, keyName)
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want %v", err, boom)
		}
		if s.unlocks.Load() != 1 {
			t.Errorf("the lock was not released after a failed Store")
		}
	})
	t.Run("corrupt stored key", func(t *testing.T) {
		s := newMemStorage()
		s.data[keyName] = []byte("not a key")
		_, err := mint.LoadOrCreateKey(ctx, s, keyName)
		if err == nil || !strings.Contains(err.Error(), keyName) {
			t.Errorf("err = %v, want an error naming %s", err, keyName)
		}
		if string(s.data[keyName]) != "not a key" {
			t.Errorf("a corrupt stored key was overwritten")
		}
	})
}

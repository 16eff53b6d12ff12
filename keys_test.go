package behest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/behest/caddy-behest/mint"
)

func TestKeyRotation(t *testing.T) {
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	newInstance := func() *keyRotation {
		return &keyRotation{storage: storage, period: time.Hour, keep: 2 * time.Hour, now: clock, logger: zap.NewNop()}
	}
	ctx := context.Background()
	a := newInstance()
	if err := a.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	first := a.ring.Current().KeyID()

	// Another instance sharing storage signs with the same key.
	b := newInstance()
	if err := b.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if b.ring.Current().KeyID() != first {
		t.Fatal("two instances sharing storage made different keys")
	}

	// Not due yet: the same key.
	now = now.Add(59 * time.Minute)
	if err := a.ensure(ctx); err != nil || a.ring.Current().KeyID() != first {
		t.Fatalf("rotated early: %v", err)
	}

	// Due: a new key signs; the old one still verifies and stays in the JWKS.
	now = now.Add(time.Minute)
	if err := a.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	second := a.ring.Current().KeyID()
	if second == first {
		t.Fatal("no rotation after the period")
	}
	if _, ok := a.PublicKey(first); !ok || !strings.Contains(string(a.ring.JWKS()), first) {
		t.Fatal("the retired key left before its tokens expired")
	}

	// The other instance has not looked yet: a token signed with the new key makes it re-read
	// storage, and then it verifies there too.
	if _, ok := b.PublicKey(second); !ok {
		t.Fatal("an instance did not pick up a key another instance rotated in")
	}
	m := &mint.Minter{Issuer: "gw", Keys: a.ring, Now: clock}
	if _, err := m.Mint(mint.Claims{TenantID: "t", ProjectID: "p", UserID: "u", Tier: "1", TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	// An unknown kid re-reads storage at most once per keyReloadInterval.
	if _, ok := b.PublicKey("nope"); ok {
		t.Fatal("unknown kid found")
	}
	before := b.reloaded
	b.PublicKey("nope-again")
	if b.reloaded != before {
		t.Fatal("storage re-read twice within the reload interval")
	}

	// Two periods later the first key's tokens have all expired (keep = 2h after it retired).
	now = now.Add(time.Hour)
	_ = a.ensure(ctx) // third key; the first retired 1h ago: kept
	if _, ok := a.ring.PublicKey(first); !ok {
		t.Fatal("the first key was dropped while its tokens could live")
	}
	now = now.Add(time.Hour)
	_ = a.ensure(ctx)
	if _, ok := a.ring.PublicKey(first); ok {
		t.Fatal("the first key is still published after every token it signed expired")
	}
	if _, ok := a.ring.PublicKey(second); !ok {
		t.Fatal("the second key left too early")
	}
	var stored storedKeys
	data, _ := storage.Load(ctx, rotatedKeysStorageName)
	_ = json.Unmarshal(data, &stored)
	if len(stored.Keys) != 3 {
		t.Fatalf("storage holds %d keys, want 3 (second, third, current)", len(stored.Keys))
	}
}

package verifier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"go.uber.org/zap"
)

// warnEvery rate-limits the warning about an issuer whose JWKS cannot be fetched.
const warnEvery = time.Minute

var errClosed = errors.New("the verifier is closed")

// jwksCache holds the keys served at one JWKS URL, for every trust naming that URL.
//
// Keys are trusted for the TTL after a successful fetch; after that the next request fetches
// again, so a key the issuer stopped serving is refused once the TTL has passed. An unknown kid
// causes a fetch at most once per refetch interval. A failed fetch keeps the last good keys in
// service and is retried no more often than the refetch interval. Only one fetch runs at a
// time: whoever needs one while it runs waits for it, each with its own context.
type jwksCache struct {
	url string
	v   *Verifier

	mu          sync.Mutex
	keys        map[string]*jwksKey // by kid; nil until a fetch succeeds
	expires     time.Time           // keys are trusted until then
	lastAttempt time.Time           // start of the last fetch, successful or not
	inflight    chan struct{}       // closed when the running fetch ends; nil when none runs
	lastErr     error               // of the last fetch
	warnedAt    time.Time
}

// key returns the key kid and the time until which it may be trusted.
func (c *jwksCache) key(ctx context.Context, kid string) (*jwksKey, time.Time, error) {
	now := c.v.now()
	c.mu.Lock()
	k, known := c.keys[kid]
	fresh := c.keys != nil && now.Before(c.expires)
	if fresh && known {
		until := c.expires
		c.mu.Unlock()
		return k, until, nil
	}
	// A fetch ended moments ago: an unknown kid waits for the next window, and a failed fetch
	// is not retried on every request while the issuer is down. Keys past their TTL after a
	// successful fetch are refetched at once (only a TTL shorter than the interval gets here).
	if c.inflight == nil && now.Sub(c.lastAttempt) < c.v.refetch && (fresh || c.lastErr != nil) {
		defer c.mu.Unlock()
		return c.answerLocked(kid, now)
	}
	ch, err := c.startFetchLocked(now)
	c.mu.Unlock()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %v", ErrIssuerUnavailable, err)
	}

	select {
	case <-ch:
	case <-ctx.Done():
		return nil, time.Time{}, fmt.Errorf("%w: gave up waiting for the issuer's keys: %w", ErrIssuerUnavailable, ctx.Err())
	}
	now = c.v.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answerLocked(kid, now)
}

// answerLocked answers from the keys held. Keys past their TTL are only held when the last
// fetch failed: they keep serving (the issuer is down, not rotating) until the next attempt.
func (c *jwksCache) answerLocked(kid string, now time.Time) (*jwksKey, time.Time, error) {
	if c.keys == nil {
		return nil, time.Time{}, fmt.Errorf("%w: %v", ErrIssuerUnavailable, c.lastErr)
	}
	k, ok := c.keys[kid]
	if !ok {
		return nil, time.Time{}, fmt.Errorf("%w: %s", ErrUnknownKey, quoted(kid))
	}
	if now.Before(c.expires) {
		return k, c.expires, nil
	}
	return k, now.Add(c.v.refetch), nil
}

// startFetchLocked starts a fetch unless one is running, and returns its done channel.
func (c *jwksCache) startFetchLocked(now time.Time) (chan struct{}, error) {
	if c.inflight != nil {
		return c.inflight, nil
	}
	ch := make(chan struct{})
	// The goroutine needs c.mu to finish, which the caller holds: inflight is set before it ends.
	if !c.v.spawn(func() { c.runFetch(ch) }) {
		return nil, errClosed
	}
	c.inflight, c.lastAttempt = ch, now
	return ch, nil
}

// runFetch fetches the keys with the Verifier's context (not a request's: the fetch is shared,
// and a request giving up must not cancel it for the others), then wakes the waiters.
func (c *jwksCache) runFetch(done chan struct{}) {
	keys, err := c.fetch(c.v.ctx)
	now := c.v.now()
	c.mu.Lock()
	defer close(done)
	defer c.mu.Unlock()
	c.inflight = nil
	if err == nil {
		if c.lastErr != nil && c.keys != nil {
			c.v.logger.Info("an issuer's JWKS can be fetched again", zap.String("jwks_url", c.url))
		}
		c.keys, c.expires, c.lastErr = keys, now.Add(c.v.ttl), nil
		if ce := c.v.logger.Check(zap.DebugLevel, "fetched an issuer's JWKS"); ce != nil {
			ce.Write(zap.String("jwks_url", c.url), zap.Int("keys", len(keys)))
		}
		return
	}
	c.lastErr = err
	if errors.Is(err, context.Canceled) && c.v.ctx.Err() != nil {
		return // closing
	}
	if c.warnedAt.IsZero() || now.Sub(c.warnedAt) >= warnEvery {
		c.warnedAt = now
		msg := "fetching an issuer's JWKS failed; keeping its last good keys"
		if c.keys == nil {
			msg = "fetching an issuer's JWKS failed; its tokens are refused until it answers"
		}
		c.v.logger.Warn(msg, zap.String("jwks_url", c.url), zap.Error(err))
	}
}

// refreshIfDue starts a fetch in the background when the keys are near expiry (or missing), so
// that requests rarely wait for one.
func (c *jwksCache) refreshIfDue() {
	now := c.v.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	due := c.expires.Add(-c.v.ttl / 5)
	if c.inflight == nil && !now.Before(due) && (c.lastAttempt.IsZero() || now.Sub(c.lastAttempt) >= c.v.refetch) {
		_, _ = c.startFetchLocked(now) // fails only when closing
	}
}

// refresh fetches every issuer's keys at once, then again as they near expiry, until Close. It
// ticks on the real clock and compares against the configured one.
func (v *Verifier) refresh() {
	tick := time.NewTicker(max(min(v.ttl/10, time.Minute), time.Second))
	defer tick.Stop()
	for {
		for _, c := range v.jwks {
			c.refreshIfDue()
		}
		select {
		case <-v.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (c *jwksCache) fetch(ctx context.Context) (map[string]*jwksKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", c.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.v.maxJWKS+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading the body: %w", c.url, err)
	}
	if int64(len(body)) > c.v.maxJWKS {
		return nil, fmt.Errorf("GET %s: the JWKS is over %d bytes", c.url, c.v.maxJWKS)
	}
	set, err := jwk.Parse(body, jwk.WithIgnoreParseError(true)) // one unreadable key must not block the rest
	if err != nil {
		return nil, fmt.Errorf("GET %s: parsing the JWKS: %w", c.url, err)
	}
	keys := make(map[string]*jwksKey, set.Len())
	for i := range set.Len() {
		k, _ := set.Key(i)
		kid, ok := k.KeyID()
		if !ok || kid == "" {
			continue // a token can only name keys by kid
		}
		if use, ok := k.KeyUsage(); ok && use != "sig" {
			continue // an encryption key must not verify signatures
		}
		jk, err := usableKey(k)
		if err != nil {
			continue
		}
		keys[kid] = jk
	}
	return keys, nil
}

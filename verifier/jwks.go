package verifier

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"go.uber.org/zap"
)

// jwksKey is one usable public key of an issuer.
type jwksKey struct {
	alg string // the JWK's alg, "" when it has none
	kty string // "RSA", "EC", "OKP"
	crv string // for EC and OKP
	raw any    // the crypto.PublicKey jwx verifies with
}

// jwksCache holds one JWKS URL's keys. Fetches are shared: whoever needs a fetch while one is
// running waits for that one.
type jwksCache struct {
	url string
	v   *Verifier

	mu          sync.Mutex
	keys        map[string]*jwksKey
	expires     time.Time     // keys are trusted until then
	lastAttempt time.Time     // of the last fetch, successful or not
	inflight    chan struct{} // closed when the running fetch ends
	lastErr     error
	warnedAt    time.Time
}

// key returns the key kid and the time until which it may be trusted.
func (c *jwksCache) key(ctx context.Context, kid string) (*jwksKey, time.Time, error) {
	now := c.v.now()
	c.mu.Lock()
	k, known := c.keys[kid]
	fresh := c.keys != nil && now.Before(c.expires)
	if fresh && known {
		exp := c.expires
		c.mu.Unlock()
		return k, exp, nil
	}
	// Keys past their TTL are refetched at once after a successful fetch (a short TTL is
	// honoured), and after a failed one only once the refetch interval has passed.
	if c.inflight == nil && now.Sub(c.lastAttempt) < c.v.refetch && (fresh || c.lastErr != nil) {
		// A fetch ended moments ago: an unknown kid waits for the next window, and a failed
		// fetch is not retried on every request while the issuer is down.
		c.mu.Unlock()
		switch {
		case c.keys == nil:
			return nil, time.Time{}, ErrIssuerUnavailable
		case !known:
			return nil, time.Time{}, ErrUnknownKey
		}
		return k, c.staleUntil(now), nil
	}
	ch := c.startFetchLocked()
	c.mu.Unlock()

	select {
	case <-ch:
	case <-ctx.Done():
		return nil, time.Time{}, ctx.Err()
	}

	now = c.v.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil {
		return nil, time.Time{}, fmt.Errorf("%w: %v", ErrIssuerUnavailable, c.lastErr)
	}
	if k, known = c.keys[kid]; !known {
		return nil, time.Time{}, ErrUnknownKey
	}
	return k, c.staleUntil(now), nil
}

// staleUntil is how long keys may be trusted: until they expire, or, when the issuer could not
// be reached to renew them, until the next attempt.
func (c *jwksCache) staleUntil(now time.Time) time.Time {
	if now.Before(c.expires) {
		return c.expires
	}
	return now.Add(c.v.refetch)
}

// startFetchLocked starts a fetch unless one is running, and returns its done channel.
func (c *jwksCache) startFetchLocked() chan struct{} {
	if c.inflight != nil {
		return c.inflight
	}
	ch := make(chan struct{})
	c.inflight = ch
	c.lastAttempt = c.v.now()
	c.v.wg.Add(1)
	go func() {
		defer c.v.wg.Done()
		keys, err := c.fetch(c.v.ctx)
		now := c.v.now()
		c.mu.Lock()
		if err == nil {
			c.keys, c.expires, c.lastErr = keys, now.Add(c.v.ttl), nil
		} else {
			c.lastErr = err
			if now.Sub(c.warnedAt) > time.Minute {
				c.warnedAt = now
				msg := "fetching an issuer's JWKS failed; keeping the last good keys"
				if c.keys == nil {
					msg = "fetching an issuer's JWKS failed; its tokens are refused until it answers"
				}
				c.v.logger.Warn(msg, zap.String("jwks_url", c.url), zap.Error(err))
			}
		}
		c.inflight = nil
		c.mu.Unlock()
		close(ch)
	}()
	return ch
}

// refreshIfDue starts a background fetch when the keys are near expiry, so requests rarely
// wait for one.
func (c *jwksCache) refreshIfDue() {
	now := c.v.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	due := c.expires.Add(-c.v.ttl / 5)
	if c.inflight == nil && !now.Before(due) && now.Sub(c.lastAttempt) >= c.v.refetch {
		c.startFetchLocked()
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
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.v.maxJWKS+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > c.v.maxJWKS {
		return nil, fmt.Errorf("JWKS is over %d bytes", c.v.maxJWKS)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, fmt.Errorf("parsing the JWKS: %w", err)
	}
	keys := make(map[string]*jwksKey, set.Len())
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		kid, ok := k.KeyID()
		if !ok || kid == "" {
			continue
		}
		if use, ok := k.KeyUsage(); ok && use != "sig" {
			continue
		}
		jk, err := usableKey(k)
		if err != nil {
			continue
		}
		keys[kid] = jk
	}
	return keys, nil
}

// usableKey converts a public JWK for verification.
func usableKey(k jwk.Key) (*jwksKey, error) {
	if ok, _ := jwk.IsPrivateKey(k); ok {
		pub, err := k.PublicKey()
		if err != nil {
			return nil, err
		}
		k = pub
	}
	var raw any
	if err := jwk.Export(k, &raw); err != nil {
		return nil, err
	}
	jk := &jwksKey{kty: k.KeyType().String(), raw: raw}
	if alg, ok := k.Algorithm(); ok {
		jk.alg = alg.String()
	}
	switch key := k.(type) {
	case jwk.ECDSAPublicKey:
		if crv, ok := key.Crv(); ok {
			jk.crv = crv.String()
		}
	case jwk.OKPPublicKey:
		if crv, ok := key.Crv(); ok {
			jk.crv = crv.String()
		}
	}
	return jk, nil
}

// fits reports whether alg may be used with k: the JWK's own alg when it names one, else an
// alg of its key type and curve.
func (k *jwksKey) fits(alg string) bool {
	if k.alg != "" {
		return k.alg == alg
	}
	switch k.kty {
	case "RSA":
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case "EC":
		return (alg == "ES256" && k.crv == "P-256") || (alg == "ES384" && k.crv == "P-384") ||
			(alg == "ES512" && k.crv == "P-521")
	case "OKP":
		return alg == "EdDSA" && k.crv == "Ed25519"
	}
	return false
}

package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
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
// causes a fetch at most once per refetch interval, counted apart from the scheduled refreshes,
// so a key the issuer rotates in just after one is still picked up on the first request naming
// it. A failed fetch keeps the last good keys in service; until the next attempt is due (one
// refetch interval after the failure ended), requests that need a fetch are answered at once
// from what is held. Only one fetch runs at a time: whoever needs one while it runs waits for it,
// each with its own context and for at most the fetch timeout.
type jwksCache struct {
	url    string // the JWKS URL: configured, or the default one of a discovering cache
	issuer string // of the first trust naming url, for OnFetch and discovery
	v      *Verifier
	// discover: the JWKS URL is the jwks_uri of the issuer's discovery document. The fields
	// below are used only by the fetch running, of which there is one at a time.
	discover     bool
	discovered   string    // the jwks_uri last discovered; "" when none was
	discoveredAt time.Time // when the document was last fetched (successfully or not)

	mu         sync.Mutex
	keys       map[string]*jwksKey // by kid; nil until a fetch succeeds
	expires    time.Time           // keys are trusted until then
	inflight   *fetchRun           // the running fetch; nil when none runs
	lastErr    error               // of the last fetch
	retryAt    time.Time           // after a failed fetch, no request starts one before then
	kidFetchAt time.Time           // start of the last fetch an unknown kid caused
	warnedAt   time.Time
}

// fetchRun is one fetch; done is closed when it ends.
type fetchRun struct {
	done chan struct{}
	// forKid is set when a kid the keys lack caused the fetch: it is the unknown-kid refetch of
	// its interval, and requests joining it wait for no other.
	forKid bool
}

// key returns the key kid and the time until which it may be trusted.
func (c *jwksCache) key(ctx context.Context, kid string) (*jwksKey, time.Time, error) {
	now := c.v.now()
	c.mu.Lock()
	if k, ok := c.keys[kid]; ok && c.freshLocked(now) {
		until := c.expires
		c.mu.Unlock()
		return k, until, nil
	}
	// At most two waits: a request that joined a fetch it did not cause (a scheduled refresh,
	// say, which may have started just before the issuer rotated a key in) and still misses its
	// kid may then cause the unknown-kid refetch.
	for joined := false; ; {
		run, started := c.inflight, false
		if run == nil {
			if !c.fetchDueLocked(kid, now) {
				defer c.mu.Unlock()
				return c.answerLocked(kid, now)
			}
			// Caused by a kid the keys lack, it is the unknown-kid refetch of its interval; the
			// first fetch of all is not (every kid is unknown before it).
			_, known := c.keys[kid]
			var err error
			if run, err = c.startFetchLocked(now, c.keys != nil && !known); err != nil {
				c.mu.Unlock()
				return nil, time.Time{}, fmt.Errorf("%w: %v", ErrIssuerUnavailable, err)
			}
			started = true
		}
		c.mu.Unlock()
		if err := c.wait(ctx, run); err != nil {
			return nil, time.Time{}, err
		}
		now = c.v.now()
		c.mu.Lock()
		k, ok := c.keys[kid]
		if ok && c.freshLocked(now) {
			until := c.expires
			c.mu.Unlock()
			return k, until, nil
		}
		if started || joined || run.forKid || ok || c.lastErr != nil {
			defer c.mu.Unlock()
			return c.answerLocked(kid, now)
		}
		joined = true
	}
}

// freshLocked reports whether the keys held are within their TTL.
func (c *jwksCache) freshLocked(now time.Time) bool {
	return c.keys != nil && now.Before(c.expires)
}

// fetchDueLocked reports whether a request for kid, finding no fetch running, starts one: the
// keys are missing or past their TTL, or kid is unknown and the unknown-kid refetch is due.
// Not while the last fetch's failure is recent: then the request is answered from what is held.
func (c *jwksCache) fetchDueLocked(kid string, now time.Time) bool {
	if now.Before(c.retryAt) {
		return false
	}
	if !c.freshLocked(now) {
		return true
	}
	_, known := c.keys[kid]
	return !known && now.Sub(c.kidFetchAt) >= c.v.refetch
}

// wait waits for run to end, for at most the fetch timeout and while ctx lasts.
func (c *jwksCache) wait(ctx context.Context, run *fetchRun) error {
	timer := time.NewTimer(c.v.fetchTimeout)
	defer timer.Stop()
	select {
	case <-run.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: gave up waiting for the issuer's keys: %w", ErrIssuerUnavailable, ctx.Err())
	case <-timer.C:
		return fmt.Errorf("%w: the issuer did not answer within %s", ErrIssuerUnavailable, c.v.fetchTimeout)
	}
}

// answerLocked answers from the keys held. Keys past their TTL are only held when the last
// fetch failed: they keep serving (the issuer is down, not rotating) until the next attempt.
// A kid the keys lack, when the last fetch failed, may be a key the issuer rotated in that
// could not be fetched: it is unavailable (try again), not unknown.
func (c *jwksCache) answerLocked(kid string, now time.Time) (*jwksKey, time.Time, error) {
	if c.keys == nil {
		return nil, time.Time{}, fmt.Errorf("%w: %v", ErrIssuerUnavailable, c.lastErr)
	}
	k, ok := c.keys[kid]
	switch {
	case !ok && c.lastErr != nil:
		return nil, time.Time{}, fmt.Errorf("%w: %s is not among the last good keys, and fetching new ones failed: %v",
			ErrIssuerUnavailable, quoted(kid), c.lastErr)
	case !ok:
		return nil, time.Time{}, fmt.Errorf("%w: %s", ErrUnknownKey, quoted(kid))
	case now.Before(c.expires):
		return k, c.expires, nil
	}
	return k, maxTime(c.retryAt, now.Add(time.Second)), nil
}

// startFetchLocked starts a fetch; none may be running.
func (c *jwksCache) startFetchLocked(now time.Time, forKid bool) (*fetchRun, error) {
	run := &fetchRun{done: make(chan struct{}), forKid: forKid}
	// The goroutine needs c.mu to finish, which the caller holds: inflight is set before it ends.
	if !c.v.spawn(func() { c.runFetch(run) }) {
		return nil, errClosed
	}
	c.inflight = run
	if forKid {
		c.kidFetchAt = now
	}
	return run, nil
}

// runFetch fetches the keys with the Verifier's context (not a request's: the fetch is shared,
// and a request giving up must not cancel it for the others), then wakes the waiters.
func (c *jwksCache) runFetch(run *fetchRun) {
	ctx, cancel := context.WithTimeout(c.v.ctx, c.v.fetchTimeout)
	keys, err := c.fetch(ctx, run.forKid)
	cancel()
	if c.v.onFetch != nil && !(errors.Is(err, context.Canceled) && c.v.ctx.Err() != nil) {
		c.v.onFetch(c.issuer, err)
	}
	now := c.v.now()
	c.mu.Lock()
	defer close(run.done)
	defer c.mu.Unlock()
	c.inflight = nil
	if err == nil {
		if c.lastErr != nil && c.keys != nil {
			c.v.logger.Info("an issuer's JWKS can be fetched again", zap.String("jwks_url", c.url))
		}
		c.keys, c.expires, c.lastErr, c.retryAt = keys, now.Add(c.v.ttl), nil, time.Time{}
		if ce := c.v.logger.Check(zap.DebugLevel, "fetched an issuer's JWKS"); ce != nil {
			ce.Write(zap.String("jwks_url", c.url), zap.Int("keys", len(keys)))
		}
		return
	}
	c.lastErr = err
	// The interval runs from the failure's end: a fetch that hung for its whole timeout must
	// not let the next request hang again at once.
	c.retryAt = now.Add(c.v.refetch)
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
	if c.inflight == nil && !now.Before(due) && !now.Before(c.retryAt) {
		_, _ = c.startFetchLocked(now, false) // fails only when closing
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

func (c *jwksCache) fetch(ctx context.Context, forKid bool) (map[string]*jwksKey, error) {
	url := c.url
	if c.discover {
		url = c.jwksURL(ctx, forKid)
	}
	body, err := c.get(ctx, url)
	if err != nil {
		return nil, err
	}
	set, err := jwk.Parse(body, jwk.WithIgnoreParseError(true)) // one unreadable key must not block the rest
	if err != nil {
		return nil, fmt.Errorf("GET %s: parsing the JWKS: %w", url, err)
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

// get reads a JSON document of at most MaxJWKSBytes.
func (c *jwksCache) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
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
		return nil, &statusError{url: url, status: resp.StatusCode}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.v.maxJWKS+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading the body: %w", url, err)
	}
	if int64(len(body)) > c.v.maxJWKS {
		return nil, fmt.Errorf("GET %s: the document is over %d bytes", url, c.v.maxJWKS)
	}
	return body, nil
}

type statusError struct {
	url    string
	status int
}

func (e *statusError) Error() string { return fmt.Sprintf("GET %s: status %d", e.url, e.status) }

// jwksURL is the jwks_uri of the issuer's OpenID discovery document, fetched again once the
// last fetch of it is older than the TTL, or for an unknown kid (the same rules as the keys').
// A document that cannot be had, or names another issuer or no usable jwks_uri, is not used:
// the keys are then at the default path, or at the jwks_uri last discovered when the document
// only failed to answer this time.
func (c *jwksCache) jwksURL(ctx context.Context, forKid bool) string {
	now := c.v.now()
	if !c.discoveredAt.IsZero() && now.Sub(c.discoveredAt) < c.v.ttl && !forKid {
		return c.discoveredOrDefault()
	}
	c.discoveredAt = now
	docURL := strings.TrimSuffix(c.issuer, "/") + "/.well-known/openid-configuration"
	body, err := c.get(ctx, docURL)
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	var se *statusError
	switch {
	case errors.As(err, &se) && (se.status == http.StatusNotFound || se.status == http.StatusGone):
		c.discovered = "" // no document: the default path
	case err != nil:
		c.v.logger.Warn("fetching an issuer's discovery document failed; using the keys' last known URL",
			zap.String("issuer", c.issuer), zap.Error(err))
	case json.Unmarshal(body, &doc) != nil:
		c.discovered = ""
		c.v.logger.Warn("an issuer's discovery document is not JSON; using the default JWKS path", zap.String("issuer", c.issuer))
	case doc.Issuer != c.issuer:
		// A document claiming another issuer could point anywhere: it is not trusted.
		c.discovered = ""
		c.v.logger.Warn("an issuer's discovery document names another issuer; using the default JWKS path",
			zap.String("issuer", c.issuer), zap.String("document_issuer", quoted(doc.Issuer)))
	case checkHTTPURL(doc.JWKSURI) != nil:
		c.discovered = ""
		c.v.logger.Warn("an issuer's discovery document has no usable jwks_uri; using the default JWKS path",
			zap.String("issuer", c.issuer))
	default:
		c.discovered = doc.JWKSURI
	}
	return c.discoveredOrDefault()
}

func (c *jwksCache) discoveredOrDefault() string {
	if c.discovered != "" {
		return c.discovered
	}
	return c.url
}

package behest

import (
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/behest/caddy-behest/limiter"
	"github.com/behest/caddy-behest/meter"
)

// meterWriter passes the provider's response through unbuffered while the dialect's parser reads
// its usage, and puts the gateway's own rate-limit and CORS headers over the provider's.
type meterWriter struct {
	*caddyhttp.ResponseWriterWrapper
	route  meter.Route
	origin string
	rl     rateLimit
	status int
	parser meter.Parser
}

// providerHeaderPrefixes start the response headers a provider sends that describe its account
// with the gateway's key, not the end user's limits (OpenAI's x-ratelimit-*, Anthropic's
// anthropic-ratelimit-*): they are replaced, never passed on; so are its CORS headers.
var (
	providerHeaders = []string{
		"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Expose-Headers",
	}
	providerHeaderPrefixes = []string{"X-Ratelimit-", "Anthropic-Ratelimit-"}
)

func (mw *meterWriter) WriteHeader(status int) {
	if status < 200 {
		mw.ResponseWriter.WriteHeader(status) // 1xx informational: the final header follows
		return
	}
	if mw.status != 0 {
		return
	}
	mw.status = status
	hdr := mw.Header()
	for _, name := range providerHeaders {
		hdr.Del(name)
	}
	for name := range hdr {
		for _, p := range providerHeaderPrefixes {
			if strings.HasPrefix(name, p) {
				delete(hdr, name)
			}
		}
	}
	mw.rl.apply(hdr)
	setCORSHeaders(hdr, mw.origin)
	mw.parser = mw.route.Dialect.NewParser(mw.route, hdr.Get("Content-Type"))
	mw.ResponseWriter.WriteHeader(status)
}

func (mw *meterWriter) Write(b []byte) (int, error) {
	if mw.status == 0 {
		mw.WriteHeader(http.StatusOK)
	}
	_, _ = mw.parser.Write(b)
	return mw.ResponseWriter.Write(b)
}

// ReadFrom keeps io.Copy from going around Write (and so around the parser).
func (mw *meterWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(writerOnly{mw}, r)
}

type writerOnly struct{ io.Writer }

func (mw *meterWriter) usage() (meter.Usage, bool) {
	if mw.parser == nil || mw.status >= 300 {
		return meter.Usage{}, false
	}
	return mw.parser.Usage()
}

// rateLimit holds the x-ratelimit-* header values of one decision, for the limits the tier has.
type rateLimit struct {
	requests, tokens bool
	values           [6]string
}

var rateLimitNames = [6]string{
	"X-Ratelimit-Limit-Requests", "X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests",
	"X-Ratelimit-Limit-Tokens", "X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens",
}

func rateLimitHeaders(t *tier, dec limiter.Decision) rateLimit {
	rl := rateLimit{requests: t.limits.RequestsPerMinute > 0, tokens: t.limits.TokensPerMinute > 0}
	if rl.requests {
		rl.values[0] = strconv.FormatInt(dec.RequestsLimit, 10)
		rl.values[1] = strconv.FormatInt(max(dec.RequestsRemaining, 0), 10)
		rl.values[2] = fmtDuration(dec.RequestsReset)
	}
	if rl.tokens {
		rl.values[3] = strconv.FormatInt(dec.TokensLimit, 10)
		rl.values[4] = strconv.FormatInt(max(dec.TokensRemaining, 0), 10)
		rl.values[5] = fmtDuration(dec.TokensReset)
	}
	return rl
}

func (rl rateLimit) apply(h http.Header) {
	for i, v := range rl.values {
		if v != "" {
			h[rateLimitNames[i]] = []string{v}
		}
	}
}

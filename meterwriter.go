package behest

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/behest/caddy-behest/limiter"
	"github.com/behest/caddy-behest/meter"
)

// meterWriter passes the provider's response through unbuffered while the dialect's parser reads
// its usage, and puts the gateway's own rate-limit and CORS headers over the provider's.
type meterWriter struct {
	caddyhttp.ResponseWriterWrapper
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
		delete(hdr, name) // canonical names
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
	if !rl.requests && !rl.tokens {
		return rl
	}
	// The six values are written into one string and sliced out of it: one allocation.
	var buf [128]byte
	var ends [6]int
	b := appendLimit(buf[:0], ends[0:3], rl.requests, dec.RequestsLimit, dec.RequestsRemaining, dec.RequestsReset)
	b = appendLimit(b, ends[3:6], rl.tokens, dec.TokensLimit, dec.TokensRemaining, dec.TokensReset)
	all, start := string(b), 0
	for i, end := range ends {
		rl.values[i], start = all[start:end], end
	}
	return rl
}

// appendLimit appends one limit's values (limit, remaining, reset) when on, and notes in ends
// where each ends; an absent limit's values are empty.
func appendLimit(b []byte, ends []int, on bool, limit, remaining int64, reset time.Duration) []byte {
	if !on {
		ends[0], ends[1], ends[2] = len(b), len(b), len(b)
		return b
	}
	b = strconv.AppendInt(b, limit, 10)
	ends[0] = len(b)
	b = strconv.AppendInt(b, max(remaining, 0), 10)
	ends[1] = len(b)
	b = appendResetDuration(b, reset)
	ends[2] = len(b)
	return b
}

// appendResetDuration appends fmtDuration(d) without allocating for the resets a minute's
// window has (under a minute); longer ones are rare and take Duration.String.
func appendResetDuration(b []byte, d time.Duration) []byte {
	d = max(d, 0).Round(time.Millisecond)
	ms := d.Milliseconds()
	switch {
	case ms == 0:
		return append(b, "0s"...)
	case ms < 1000:
		return append(strconv.AppendInt(b, ms, 10), "ms"...)
	case ms < 60_000:
		b = strconv.AppendInt(b, ms/1000, 10)
		if frac := ms % 1000; frac != 0 {
			// Three digits, trailing zeros trimmed: 51.189s, 1.5s.
			digits := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
			n := 3
			for digits[n-1] == '0' {
				n--
			}
			b = append(append(b, '.'), digits[:n]...)
		}
		return append(b, 's')
	}
	return append(b, d.String()...)
}

// apply sets the headers; their values are slices of rl.values, so rl must outlive h's use.
func (rl *rateLimit) apply(h http.Header) {
	if !rl.requests && !rl.tokens {
		return
	}
	for i := range rl.values {
		if rl.values[i] != "" {
			h[rateLimitNames[i]] = rl.values[i : i+1 : i+1]
		}
	}
}

package behest

import (
	"net/http"
	"testing"
	"time"

	"github.com/behest/caddy-behest/limiter"
)

// appendResetDuration must write exactly what fmtDuration (Duration.String) writes.
func TestAppendResetDuration(t *testing.T) {
	var ds []time.Duration
	for ms := int64(-5); ms < 70_000; ms += 7 {
		ds = append(ds, time.Duration(ms)*time.Millisecond)
	}
	ds = append(ds, 1, 499*time.Microsecond, 500*time.Microsecond, 59_999_600*time.Microsecond,
		time.Second, 10*time.Second, time.Minute, 90*time.Minute, 25*time.Hour)
	for _, d := range ds {
		if got, want := string(appendResetDuration(nil, d)), fmtDuration(d); got != want {
			t.Fatalf("appendResetDuration(%v) = %q; want %q", d, got, want)
		}
	}
}

func TestRateLimitHeaders(t *testing.T) {
	dec := limiter.Decision{RequestsLimit: 600, RequestsRemaining: -1, RequestsReset: 1500 * time.Millisecond,
		TokensLimit: 1_000_000, TokensRemaining: 999_000, TokensReset: 51189 * time.Millisecond}
	for _, tc := range []struct {
		rpm, tpm int64
		want     map[string]string
	}{
		{10, 10, map[string]string{"X-Ratelimit-Limit-Requests": "600", "X-Ratelimit-Remaining-Requests": "0",
			"X-Ratelimit-Reset-Requests": "1.5s", "X-Ratelimit-Limit-Tokens": "1000000",
			"X-Ratelimit-Remaining-Tokens": "999000", "X-Ratelimit-Reset-Tokens": "51.189s"}},
		{0, 10, map[string]string{"X-Ratelimit-Limit-Tokens": "1000000", "X-Ratelimit-Remaining-Tokens": "999000",
			"X-Ratelimit-Reset-Tokens": "51.189s"}},
		{10, 0, map[string]string{"X-Ratelimit-Limit-Requests": "600", "X-Ratelimit-Remaining-Requests": "0",
			"X-Ratelimit-Reset-Requests": "1.5s"}},
		{0, 0, map[string]string{}},
	} {
		tr := &tier{limits: limiter.Limits{RequestsPerMinute: tc.rpm, TokensPerMinute: tc.tpm}}
		h := http.Header{}
		rl := rateLimitHeaders(tr, dec)
		rl.apply(h)
		if len(h) != len(tc.want) {
			t.Errorf("rpm %d tpm %d: headers %v; want %v", tc.rpm, tc.tpm, h, tc.want)
		}
		for name, v := range tc.want {
			if got := h.Values(name); len(got) != 1 || got[0] != v {
				t.Errorf("rpm %d tpm %d: %s = %q; want %q", tc.rpm, tc.tpm, name, got, v)
			}
		}
	}
}

package behest

import (
	"math"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/behest/caddy-behest/limiter"
	"github.com/behest/caddy-behest/meter"
)

func TestPriceOf(t *testing.T) {
	p, err := compileProject(&Project{ID: "p", Tenant: "t", Prices: map[string]Price{
		"gpt-4o-mini":      {Input: 0.15, Output: 0.60},
		"gpt-4":            {Input: 30, Output: 60},
		"claude-haiku-4-5": {Input: 1, Output: 5},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		model string
		want  bool
		in    int64
	}{
		{"gpt-4o-mini", true, 150_000_000},
		{"gpt-4o-mini-2024-07-18", true, 150_000_000},
		{"gpt-4-0613", true, 30_000_000_000},
		{"gpt-4o", false, 0},
		{"gpt-4o-mini-latest", false, 0},
		{"claude-haiku-4-5-20251001", true, 1_000_000_000}, // Anthropic's snapshots
		{"claude-haiku-4-5-2025100", false, 0},
		{"gpt-4o-mini-2024-07-1x", false, 0},
		{"gpt-4o-mini-2024_07_18", false, 0},
		{"-0613", false, 0},
	} {
		pr, ok := p.priceOf(tc.model)
		if ok != tc.want || pr.input != tc.in {
			t.Errorf("priceOf(%q) = %+v, %v; want input %d, %v", tc.model, pr, ok, tc.in, tc.want)
		}
	}
	p.prices["*"] = price{input: 1, output: 2}
	if pr, ok := p.priceOf("anything"); !ok || pr.output != 2 {
		t.Errorf("the * price was not used: %+v %v", pr, ok)
	}
}

func TestCostRoundsUpAndCannotOverflow(t *testing.T) {
	in, err := pricePerMillion(0.15)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := pricePerMillion(0.60)
	p := price{input: in, output: out}
	for _, tc := range []struct {
		in, out int64
		want    limiter.Nanos
	}{
		{1_000_000, 0, 150_000_000}, // $0.15
		{12, 3, 1_800 + 1_800},      // 12×150 + 3×600 nanodollars
		{1, 0, 150},
		{0, 0, 0},
	} {
		if got := p.cost(tc.in, tc.out); got != tc.want {
			t.Errorf("cost(%d, %d) = %d, want %d", tc.in, tc.out, got, tc.want)
		}
	}
	// A sub-nanodollar cost is rounded up, never down to free.
	tiny, _ := pricePerMillion(0.0001)
	if got := (price{input: tiny}).cost(1, 0); got != 1 {
		t.Errorf("1 token at $0.0001/1M costs %d nanodollars, want 1 (rounded up)", got)
	}
	// The largest reservation at the highest price still fits an int64.
	top, _ := pricePerMillion(maxPricePerMillion)
	if got := (price{input: top, output: top}).cost(defaultMaxRequestBody, maxReservedOutput); got <= 0 || got > math.MaxInt64/2 {
		t.Errorf("worst-case cost overflowed: %d", got)
	}
	if _, err := pricePerMillion(maxPricePerMillion + 1); err == nil {
		t.Error("a price over the cap was accepted")
	}
}

func TestRefusal(t *testing.T) {
	for _, tc := range []struct {
		dec              limiter.Decision
		code, typ        string
		noRetry          bool
		retryAfterHeader string
	}{
		{limiter.Decision{Refused: limiter.LimitRequestsPerMinute, RetryAfter: 1500 * time.Millisecond}, "rate_limit_exceeded", "requests", false, "2"},
		{limiter.Decision{Refused: limiter.LimitTokensPerMinute, RetryAfter: time.Second}, "rate_limit_exceeded", "tokens", false, "1"},
		{limiter.Decision{Refused: limiter.LimitTokensPerMinute, RetryAfter: time.Minute, Never: true}, "rate_limit_exceeded", "tokens", true, "60"},
		{limiter.Decision{Refused: limiter.LimitConcurrentRequests, RetryAfter: time.Second}, "rate_limit_exceeded", "requests", false, "1"},
		{limiter.Decision{Refused: limiter.LimitCostPerMonth, RetryAfter: 49 * time.Hour}, "insufficient_quota", "insufficient_quota", true, "176400"},
		{limiter.Decision{Refused: limiter.LimitProjectCostPerMonth, RetryAfter: time.Hour}, "insufficient_quota", "insufficient_quota", true, "3600"},
	} {
		e := refusal(tc.dec)
		if e.status != 429 || e.code != tc.code || e.typ != tc.typ || e.noRetry != tc.noRetry {
			t.Errorf("%v: %+v", tc.dec.Refused, e)
		}
		h := &Handler{}
		h.logger = nopLogger()
		w := httptest.NewRecorder()
		_ = h.writeError(w, httptest.NewRequest("POST", "/v1/chat/completions", nil), nil, e)
		if got := w.Header().Get("Retry-After"); got != tc.retryAfterHeader {
			t.Errorf("%v: Retry-After %q, want %q", tc.dec.Refused, got, tc.retryAfterHeader)
		}
		if got := w.Header().Get("x-should-retry") == "false"; got != tc.noRetry {
			t.Errorf("%v: x-should-retry false = %v, want %v", tc.dec.Refused, got, tc.noRetry)
		}
	}
}

func TestFmtDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Second: "1s", 6 * time.Minute: "6m0s", 51189 * time.Millisecond: "51.189s",
		51189400 * time.Microsecond: "51.189s", 0: "0s", -time.Second: "0s",
	} {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestBearerTokenAndSessionID(t *testing.T) {
	for hdr, want := range map[string]string{
		"Bearer abc": "abc", "bearer abc": "abc", "BEARER  abc ": "abc", "Basic abc": "", "Bearer": "", "": "",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", hdr)
		if got := bearerToken(r); got != want {
			t.Errorf("bearerToken(%q) = %q, want %q", hdr, got, want)
		}
	}
	for s, want := range map[string]bool{"sess_abc": true, "chat-42:x": true, "": true, "a b": false, "é": false,
		string(make([]byte, 129)): false} {
		if got := validSessionID(s); got != want {
			t.Errorf("validSessionID(%q) = %v", s, got)
		}
	}
}

func nopLogger() *zap.Logger { return zap.NewNop() }

// TestUsageCostCachedPrices: cached input is charged at the cached price, Anthropic cache
// writes at the cache-write price, the rest of the input at the input price; both default to the
// input price, and a reservation prices the input at the highest of its rates.
func TestUsageCostCachedPrices(t *testing.T) {
	cached, write := 0.10, 1.25
	p, err := compileProject(&Project{ID: "p", Tenant: "t", Prices: map[string]Price{
		"claude": {Input: 1, Output: 5, CachedInput: &cached, CacheWrite: &write},
		"plain":  {Input: 1, Output: 5},
	}})
	if err != nil {
		t.Fatal(err)
	}
	u := meter.Usage{InputTokens: 1_000_000 + 2_000_000 + 4_000_000, CachedInputTokens: 2_000_000, CacheWriteTokens: 4_000_000, OutputTokens: 1_000_000}
	if got, want := p.prices["claude"].usageCost(u), limiter.USD(1*1+0.10*2+1.25*4+5*1); got != want {
		t.Errorf("claude: usageCost = %d, want %d", got, want)
	}
	if got, want := p.prices["plain"].usageCost(u), limiter.USD(7*1+5*1); got != want {
		t.Errorf("plain: usageCost = %d, want %d (cached and writes at the input price)", got, want)
	}
	if got, want := p.prices["claude"].cost(u.InputTokens, u.OutputTokens), limiter.USD(7*1.25+5*1); got != want {
		t.Errorf("claude: reservation cost = %d, want %d (the input at the cache-write price, the highest)", got, want)
	}
	if got, want := p.prices["plain"].cost(u.InputTokens, u.OutputTokens), limiter.USD(7*1+5*1); got != want {
		t.Errorf("plain: reservation cost = %d, want %d (the input price)", got, want)
	}
	// Whatever part of the input is cached or written, the reservation covers it.
	for _, split := range []meter.Usage{{InputTokens: 7, CacheWriteTokens: 7}, {InputTokens: 7, CachedInputTokens: 7}, {InputTokens: 7}} {
		split.OutputTokens = 1
		if res, used := p.prices["claude"].cost(7, 1), p.prices["claude"].usageCost(split); used > res {
			t.Errorf("usage %+v costs %d, over its reservation %d", split, used, res)
		}
	}
	// Counts that do not add up are bounded by the input: never a negative charge.
	odd := meter.Usage{InputTokens: 10, CachedInputTokens: 50, CacheWriteTokens: 50}
	if got := p.prices["claude"].usageCost(odd); got != limiter.Nanos(perMillion(10, 100_000_000)) {
		t.Errorf("odd counts: usageCost = %d", got)
	}
}

func TestModelGlobs(t *testing.T) {
	tr := &tier{name: "1"}
	for _, m := range []string{"gpt-4o-mini", "claude-haiku-*", "gemini-*-flash*", "*-nano"} {
		tr.models = append(tr.models, compileGlob(m))
	}
	for model, want := range map[string]bool{
		"gpt-4o-mini": true, "gpt-4o-mini-2024-07-18": false, "gpt-4o": false,
		"claude-haiku-4-5": true, "claude-haiku-": true, "claude-sonnet-4-5": false, "xclaude-haiku-4": false,
		"gemini-2.5-flash": true, "gemini-2.5-flash-lite": true, "gemini-flash": false, "gemini-2.5-pro": false,
		"gpt-5-nano": true, "nano": false, "": false,
	} {
		if got := tr.allowsModel(model); got != want {
			t.Errorf("allowsModel(%q) = %v, want %v", model, got, want)
		}
	}
	if !(&tier{}).allowsModel("anything") {
		t.Error("a tier without models refused a model")
	}
}

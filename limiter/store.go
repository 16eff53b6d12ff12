// Package limiter enforces per-user quotas and hard budgets by reservation, and keeps usage
// aggregates and revocations. It does not import Caddy.
//
// A request is admitted by Store.Reserve, which reserves its worst-case tokens and cost against
// every limit at once, and is settled by Store.Settle with what it really used. Limits with a
// zero value are off.
package limiter

import (
	"context"
	"errors"
	"time"
)

// Nanos is an amount of US dollars in units of 1e-9 USD. Costs are rounded up, never down.
type Nanos int64

// USD converts dollars to Nanos, rounding up.
func USD(dollars float64) Nanos {
	n := dollars * 1e9
	i := Nanos(n)
	if float64(i) < n {
		i++
	}
	return i
}

// Dollars returns n in dollars.
func (n Nanos) Dollars() float64 { return float64(n) / 1e9 }

// Limits are one tier's limits, per end user within a project. Zero means no limit.
type Limits struct {
	RequestsPerMinute  int64 // rolling 60 s
	TokensPerMinute    int64 // rolling 60 s
	TokensPerDay       int64 // UTC calendar day
	CostPerDay         Nanos // UTC calendar day
	CostPerMonth       Nanos // UTC calendar month
	ConcurrentRequests int64
}

// Request is one request asking to be admitted.
type Request struct {
	Project string
	User    string
	// Org is the user's org, for usage by org ("" for none).
	Org     string
	Session string
	Tier    string
	Model   string
	Limits  Limits
	// ProjectCostPerMonth is the project's hard monthly budget (0: none).
	ProjectCostPerMonth Nanos
	// Tokens and Cost are the worst case this request can use; they are reserved.
	Tokens int64
	Cost   Nanos
	// IssuedAt is the iat of the request's token: Reserve refuses the request (Revoked) when its
	// session or user was revoked at or after it.
	IssuedAt time.Time
	// Free requests (model listings, token counts) count against requests per minute and
	// concurrency like any other, but are recorded in no usage aggregate: they cost nothing.
	Free bool
}

// Limit names which limit refused a request.
type Limit uint8

const (
	LimitNone Limit = iota
	LimitRequestsPerMinute
	LimitTokensPerMinute
	LimitConcurrentRequests
	LimitTokensPerDay
	LimitCostPerDay
	LimitCostPerMonth
	LimitProjectCostPerMonth
)

var limitNames = [...]string{"", "requests_per_minute", "tokens_per_minute", "concurrent_requests",
	"tokens_per_day", "cost_per_day", "cost_per_month", "project_cost_per_month"}

func (l Limit) String() string { return limitNames[l] }

// Quota reports whether waiting a minute can help: false for rolling-minute and concurrency
// limits (a rate limit), true for day, month and budget limits (a quota used up).
func (l Limit) Quota() bool { return l >= LimitTokensPerDay }

// Decision is the outcome of Reserve, with what the x-ratelimit-* headers report.
//
// When several limits have no room, the one reported is the first in this order: concurrent
// requests, requests per minute, tokens per minute, tokens per day, cost per day, cost per
// month, project cost per month. A request whose worst case alone is over a limit (Tokens over
// tokens per minute or per day, Cost over a cost limit) is refused by the first such limit, in
// the same order, before anything in use is looked at, with Never set: no wait would admit it,
// so it must not be told to retry soon.
type Decision struct {
	Allowed bool
	// Revoked is set when the token's session or user has been revoked.
	Revoked bool
	// Refused is the limit that refused the request (LimitNone when Allowed).
	Refused Limit
	// RetryAfter is how long until the refused limit can have room for the request: for a
	// rolling minute, until enough of the window has left it; for concurrency, a fixed 1s hint;
	// for a day or month limit, until the next UTC day or month starts. With Never it is what
	// it would be for that limit used up (a minute for tokens per minute).
	RetryAfter time.Duration
	// Never is set with a refusal when the request's worst case alone is over the refusing
	// limit, so retrying the same request can never succeed (answer it like a used-up quota:
	// x-should-retry: false). Limits are never loosened to let such a request through.
	Never bool

	// Requests per minute: limit, remaining after this request, time until fully reset.
	RequestsLimit, RequestsRemaining int64
	RequestsReset                    time.Duration
	// Tokens per minute: likewise.
	TokensLimit, TokensRemaining int64
	TokensReset                  time.Duration
}

// Reservation is an admitted request's hold on its limits; pass it to Settle exactly once.
// Settling it again, or settling the zero Reservation (what a refused Reserve returns), does
// nothing.
type Reservation struct {
	Request Request
	// At is when it was reserved; Settle adjusts the windows that held it then, and the usage
	// is recorded under its UTC day.
	At time.Time
	// ID identifies the reservation within its store (never 0).
	ID uint64
}

// Usage is what a request really used, to be charged at Settle.
type Usage struct {
	InputTokens int64
	// CachedInputTokens is the part of InputTokens the provider read from its prompt cache.
	CachedInputTokens int64
	OutputTokens      int64
	Cost              Nanos
}

// Spend is what a user and their project have spent in the periods a reservation was charged
// to, just after Settle charged it: what settled, and what requests still in flight hold. A
// period that is no longer the current one (the day rolled over meanwhile) reads 0.
type Spend struct {
	UserDay, UserMonth, ProjectMonth Nanos
}

// Revocation kinds.
const (
	RevokeSession = "session"
	RevokeUser    = "user"
)

// UsageQuery selects usage aggregates of one project.
type UsageQuery struct {
	Project string
	// GroupBy is one or two of user, org, session, tier, model, day (default: user).
	GroupBy []string
	// From and To are UTC days, inclusive; a zero one leaves that end open.
	From, To time.Time
	// User, when set, keeps only that user's usage.
	User string
}

// UsageRow is one group of usage.
type UsageRow struct {
	// Group is the row's value of each of the query's GroupBy dimensions, in order.
	Group             []string
	Requests          int64
	InputTokens       int64
	CachedInputTokens int64
	OutputTokens      int64
	Cost              Nanos
}

// Remaining is what is left of each of a user's limits, for GET /v1/me. A field for a limit
// that is off is -1.
type Remaining struct {
	RequestsPerMinute   int64
	TokensPerMinute     int64
	TokensPerDay        int64
	CostPerDay          Nanos
	CostPerMonth        Nanos
	ConcurrentRequests  int64
	ProjectCostPerMonth Nanos
}

// ErrUnavailable wraps a store's failure to answer (e.g. Redis down).
var ErrUnavailable = errors.New("limit store unavailable")

// Store keeps counters, usage and revocations. Implementations are safe for concurrent use.
type Store interface {
	// Reserve admits req if every limit has room for its worst case, reserving it, at now.
	Reserve(ctx context.Context, now time.Time, req Request) (Reservation, Decision, error)
	// Settle replaces res's reservation by used (which may be more or less than reserved),
	// records it in the usage aggregates and frees its concurrency slot. It reports the
	// spend of the user and project just after; settling a reservation again reports nothing.
	// ctx may be cancelled already (the request is over): a store settles regardless, and
	// bounds its own wait.
	Settle(ctx context.Context, now time.Time, res Reservation, used Usage) (Spend, error)
	// Remaining reports what is left of req's limits at now, reserving nothing.
	Remaining(ctx context.Context, now time.Time, req Request) (Remaining, error)
	// Usage returns the aggregates q asks for, sorted by group.
	Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error)
	// Claim records key of a project until it expires at until, and reports whether this call
	// was the first to: once-only events (an alert announced, an attestation token used) are
	// decided by it, across the instances that share the store.
	Claim(ctx context.Context, project, key string, until time.Time) (first bool, err error)
	// Revoke refuses, from now on, every token of the session or user (kind) issued at or
	// before at.
	Revoke(ctx context.Context, project, kind, id string, at time.Time) error
	// RevokedBefore returns the time before or at which tokens of the session or user were
	// revoked (zero when never).
	RevokedBefore(ctx context.Context, project, kind, id string) (time.Time, error)
	// Close flushes what is pending and releases resources.
	Close() error
}

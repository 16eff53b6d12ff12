package limiter

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
)

// usageKey is the finest grain usage is kept at: one project's requests of one day, user,
// session, tier and model. The day is the UTC day the request was reserved.
type usageKey struct {
	project                    string
	day                        int64
	user, session, tier, model string
}

// usageAgg is what the requests of one usageKey used.
type usageAgg struct {
	Requests     int64
	InputTokens  int64
	OutputTokens int64
	Cost         Nanos
}

func (a *usageAgg) add(b usageAgg) {
	a.Requests += b.Requests
	a.InputTokens += b.InputTokens
	a.OutputTokens += b.OutputTokens
	a.Cost += b.Cost
}

// Usage group_by values.
const (
	GroupByUser    = "user"
	GroupByOrg     = "org"
	GroupBySession = "session"
	GroupByTier    = "tier"
	GroupByModel   = "model"
	GroupByDay     = "day"
)

// minDay and maxDay leave a range of days open.
const minDay, maxDay = math.MinInt64, math.MaxInt64

// usageFilter is a UsageQuery compiled: which keys it keeps and the group each falls in.
type usageFilter struct {
	project  string
	from, to int64 // days, inclusive
	user     string
	groupBy  string
}

func newUsageFilter(q UsageQuery) (usageFilter, error) {
	f := usageFilter{project: q.Project, from: minDay, to: maxDay, user: q.User, groupBy: q.GroupBy}
	switch f.groupBy {
	case "":
		f.groupBy = GroupByUser
	case GroupByUser, GroupByOrg, GroupBySession, GroupByTier, GroupByModel, GroupByDay:
	default:
		return f, fmt.Errorf("limiter: group_by %q is not one of user, org, session, tier, model, day", q.GroupBy)
	}
	if !q.From.IsZero() {
		f.from = dayOf(q.From)
	}
	if !q.To.IsZero() {
		f.to = dayOf(q.To)
	}
	return f, nil
}

func (f *usageFilter) keeps(k *usageKey) bool {
	return k.project == f.project && k.day >= f.from && k.day <= f.to && (f.user == "" || k.user == f.user)
}

// group is the group k falls in.
func (f *usageFilter) group(k *usageKey) string {
	switch f.groupBy {
	case GroupByOrg:
		org, _, _ := strings.Cut(k.user, ":")
		return org
	case GroupBySession:
		return k.session
	case GroupByTier:
		return k.tier
	case GroupByModel:
		return k.model
	case GroupByDay:
		return dayString(k.day)
	}
	return k.user
}

// usageRows sums aggregates into groups.
type usageRows map[string]*UsageRow

func (r usageRows) add(key string, a usageAgg) {
	row := r[key]
	if row == nil {
		row = &UsageRow{Key: key}
		r[key] = row
	}
	row.Requests += a.Requests
	row.InputTokens += a.InputTokens
	row.OutputTokens += a.OutputTokens
	row.Cost += a.Cost
}

func (r usageRows) sorted() []UsageRow {
	rows := make([]UsageRow, 0, len(r))
	for _, row := range r {
		rows = append(rows, *row)
	}
	slices.SortFunc(rows, func(a, b UsageRow) int { return strings.Compare(a.Key, b.Key) })
	return rows
}

// Usage implements Store. It adds what is on file to what settled since the last flush. From
// and To are the UTC days that contain them, inclusive; a zero From or To leaves that end
// open. GroupBy "" means user; an unknown GroupBy is an error.
func (e *Embedded) Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	f, err := newUsageFilter(q)
	if err != nil {
		return nil, err
	}
	rows := usageRows{}
	// A flush moves usage from memory to the file. Reading memory and starting the file's
	// read transaction (a snapshot) with no flush between them counts each request once.
	e.flushMu.Lock()
	tx, err := e.beginRead()
	if err != nil {
		e.flushMu.Unlock()
		return nil, err
	}
	for i := range e.shards {
		sh := &e.shards[i]
		sh.mu.Lock()
		for uk, u := range sh.users {
			if uk.project != f.project {
				continue
			}
			for _, en := range u.usage {
				k := usageKey{project: uk.project, day: en.day, user: uk.user, session: en.session, tier: en.tier, model: en.model}
				if f.keeps(&k) {
					rows.add(f.group(&k), en.agg)
				}
			}
		}
		sh.mu.Unlock()
	}
	e.flushMu.Unlock()
	if tx != nil {
		defer tx.Rollback()
		if err := scanUsage(ctx, tx, &f, rows.add); err != nil {
			return nil, err
		}
	}
	return rows.sorted(), nil
}

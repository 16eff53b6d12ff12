package limiter

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// usageKey is the finest grain usage is kept at: one project's requests of one day, user,
// session, tier and model. The day is the UTC day the request was reserved.
type usageKey struct {
	project                         string
	day                             int64
	user, org, session, tier, model string
}

// usageAgg is what the requests of one usageKey used.
type usageAgg struct {
	Requests          int64
	InputTokens       int64
	CachedInputTokens int64
	OutputTokens      int64
	Cost              Nanos
}

func (a *usageAgg) add(b usageAgg) {
	a.Requests += b.Requests
	a.InputTokens += b.InputTokens
	a.CachedInputTokens += b.CachedInputTokens
	a.OutputTokens += b.OutputTokens
	a.Cost += b.Cost
}

// Usage group_by dimensions.
const (
	GroupByUser    = "user"
	GroupByOrg     = "org"
	GroupBySession = "session"
	GroupByTier    = "tier"
	GroupByModel   = "model"
	GroupByDay     = "day"
)

// GroupByDimensions are the dimensions usage can be grouped by, in the order documented.
var GroupByDimensions = []string{GroupByUser, GroupByOrg, GroupBySession, GroupByTier, GroupByModel, GroupByDay}

// minDay and maxDay leave a range of days open.
const minDay, maxDay = math.MinInt64, math.MaxInt64

// usageFilter is a UsageQuery compiled: which keys it keeps and the group each falls in.
type usageFilter struct {
	project  string
	from, to int64 // days, inclusive
	user     string
	dims     []string
}

func newUsageFilter(q UsageQuery) (usageFilter, error) {
	f := usageFilter{project: q.Project, from: minDay, to: maxDay, user: q.User, dims: q.GroupBy}
	if len(f.dims) == 0 {
		f.dims = []string{GroupByUser}
	}
	if len(f.dims) > 2 || (len(f.dims) == 2 && f.dims[0] == f.dims[1]) {
		return f, fmt.Errorf("limiter: group_by %q: one or two different dimensions", strings.Join(q.GroupBy, ","))
	}
	for _, d := range f.dims {
		if !slices.Contains(GroupByDimensions, d) {
			return f, fmt.Errorf("limiter: group_by %q is not one of user, org, session, tier, model, day", d)
		}
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

// group is the group k falls in: its value of each dimension.
func (f *usageFilter) group(k *usageKey) groupKey {
	var g groupKey
	for i, d := range f.dims {
		g[i] = dimension(d, k.day, k.user, k.org, k.session, k.tier, k.model)
	}
	return g
}

// dimension is a usage record's value of one group_by dimension, day its UTC date.
func dimension(d string, day int64, user, org, session, tier, model string) string {
	switch d {
	case GroupByOrg:
		return org
	case GroupBySession:
		return session
	case GroupByTier:
		return tier
	case GroupByModel:
		return model
	case GroupByDay:
		return dayString(day)
	}
	return user
}

// groupKey is a group's values, one per dimension (the second empty with one).
type groupKey [2]string

// usageRows sums aggregates into groups.
type usageRows struct {
	dims int
	m    map[groupKey]*UsageRow
}

func newUsageRows(dims int) usageRows { return usageRows{dims: dims, m: map[groupKey]*UsageRow{}} }

func (r usageRows) add(key groupKey, a usageAgg) {
	row := r.m[key]
	if row == nil {
		row = &UsageRow{Group: slices.Clone(key[:r.dims])}
		r.m[key] = row
	}
	row.Requests += a.Requests
	row.InputTokens += a.InputTokens
	row.CachedInputTokens += a.CachedInputTokens
	row.OutputTokens += a.OutputTokens
	row.Cost += a.Cost
}

func (r usageRows) sorted() []UsageRow {
	rows := make([]UsageRow, 0, len(r.m))
	for _, row := range r.m {
		rows = append(rows, *row)
	}
	slices.SortFunc(rows, func(a, b UsageRow) int { return slices.Compare(a.Group, b.Group) })
	return rows
}

// UsageGrouper sums usage records into the rows a query asks for, as Embedded.Usage does, for
// other stores to share its meaning of each dimension. Make one with NewUsageGrouper.
type UsageGrouper struct {
	f    usageFilter
	rows usageRows
}

// NewUsageGrouper checks q and starts an empty set of rows.
func NewUsageGrouper(q UsageQuery) (*UsageGrouper, error) {
	f, err := newUsageFilter(q)
	if err != nil {
		return nil, err
	}
	return &UsageGrouper{f: f, rows: newUsageRows(len(f.dims))}, nil
}

// UsageRecord is one day's usage of one user (of an org), session, tier and model.
type UsageRecord struct {
	Day                             time.Time
	User, Org, Session, Tier, Model string
	Requests                        int64
	InputTokens                     int64
	CachedInputTokens               int64
	OutputTokens                    int64
	Cost                            Nanos
}

// Add adds rec to its group, when the query keeps it.
func (g *UsageGrouper) Add(rec UsageRecord) {
	k := usageKey{project: g.f.project, day: dayOf(rec.Day), user: rec.User, org: rec.Org, session: rec.Session, tier: rec.Tier, model: rec.Model}
	if !g.f.keeps(&k) {
		return
	}
	g.rows.add(g.f.group(&k), usageAgg{Requests: rec.Requests, InputTokens: rec.InputTokens,
		CachedInputTokens: rec.CachedInputTokens, OutputTokens: rec.OutputTokens, Cost: rec.Cost})
}

// AddRow adds a row already grouped the same way (another store's answer to the same query).
func (g *UsageGrouper) AddRow(row UsageRow) {
	var k groupKey
	copy(k[:], row.Group)
	g.rows.add(k, usageAgg{Requests: row.Requests, InputTokens: row.InputTokens,
		CachedInputTokens: row.CachedInputTokens, OutputTokens: row.OutputTokens, Cost: row.Cost})
}

// Rows returns the groups, sorted.
func (g *UsageGrouper) Rows() []UsageRow { return g.rows.sorted() }

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
	rows := newUsageRows(len(f.dims))
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
		for key, u := range sh.users {
			if u.act == nil || len(u.act.usage) == 0 {
				continue // idle users have written all theirs
			}
			uk := splitMapKey(key)
			if uk.project != f.project {
				continue
			}
			for _, en := range u.act.usage {
				k := usageKey{project: uk.project, day: en.day, user: uk.user, org: en.org, session: en.session, tier: en.tier, model: en.model}
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

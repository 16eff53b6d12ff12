package limiter

import (
	"context"
	"sort"
	"strings"
	"time"
)

// usageKey is the finest grain usage is kept at.
type usageKey struct {
	project                    string
	day                        int64
	user, session, tier, model string
}

type usageAgg struct {
	Requests     int64 `json:"r"`
	InputTokens  int64 `json:"i"`
	OutputTokens int64 `json:"o"`
	Cost         Nanos `json:"c"`
}

func (a *usageAgg) add(b usageAgg) {
	a.Requests += b.Requests
	a.InputTokens += b.InputTokens
	a.OutputTokens += b.OutputTokens
	a.Cost += b.Cost
}

// addUsage records a settled request under the day it was admitted. e.mu is held.
func (e *Embedded) addUsage(res Reservation, used Usage) {
	req := res.Request
	k := usageKey{project: req.Project, day: dayOf(res.At), user: req.User, session: req.Session, tier: req.Tier, model: req.Model}
	a, ok := e.usage[k]
	if !ok {
		a = new(usageAgg)
		e.usage[k] = a
	}
	a.add(usageAgg{Requests: 1, InputTokens: used.InputTokens, OutputTokens: used.OutputTokens, Cost: used.Cost})
}

// Usage implements Store.
func (e *Embedded) Usage(_ context.Context, q UsageQuery) ([]UsageRow, error) {
	from, to := dayOf(q.From), dayOf(q.To)
	groups := map[string]*UsageRow{}
	collect := func(k usageKey, a usageAgg) {
		if k.project != q.Project || k.day < from || k.day > to || (q.User != "" && k.user != q.User) {
			return
		}
		key := groupKey(q.GroupBy, k)
		row, ok := groups[key]
		if !ok {
			row = &UsageRow{Key: key}
			groups[key] = row
		}
		row.Requests += a.Requests
		row.InputTokens += a.InputTokens
		row.OutputTokens += a.OutputTokens
		row.Cost += a.Cost
	}
	// flushMu keeps a flush from moving deltas to the file between the two reads below.
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	e.mu.Lock()
	for k, a := range e.usage {
		collect(k, *a)
	}
	e.mu.Unlock()
	if err := e.scanUsage(q.Project, collect); err != nil {
		return nil, err
	}
	rows := make([]UsageRow, 0, len(groups))
	for _, r := range groups {
		rows = append(rows, *r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Key < rows[j].Key })
	return rows, nil
}

// groupKey is the group a usage key falls in.
func groupKey(groupBy string, k usageKey) string {
	switch groupBy {
	case "org":
		if org, _, ok := strings.Cut(k.user, ":"); ok {
			return org
		}
		return k.user
	case "session":
		return k.session
	case "tier":
		return k.tier
	case "model":
		return k.model
	case "day":
		return time.Unix(k.day*86400, 0).UTC().Format(time.DateOnly)
	}
	return k.user
}

// Revoke implements Store. A revocation is written to the file before Revoke returns: one the
// API confirmed must survive a crash.
func (e *Embedded) Revoke(_ context.Context, project, kind, id string, at time.Time) error {
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	e.mu.Lock()
	k := revKey{project, kind, id}
	if prev, ok := e.revoked[k]; !ok || at.After(prev) {
		e.revoked[k] = at
	}
	latest := e.revoked[k]
	e.mu.Unlock()
	return e.writeRevocation(k, latest)
}

// RevokedBefore implements Store.
func (e *Embedded) RevokedBefore(_ context.Context, project, kind, id string) (time.Time, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.revoked[revKey{project, kind, id}], nil
}

// isRevoked reports whether req's token was issued at or before a revocation of its user or
// session. e.mu is held.
func (e *Embedded) isRevoked(req Request) bool {
	if req.IssuedAt.IsZero() {
		return false
	}
	for _, k := range [...]revKey{{req.Project, RevokeUser, req.User}, {req.Project, RevokeSession, req.Session}} {
		if k.id == "" {
			continue
		}
		if at, ok := e.revoked[k]; ok && !req.IssuedAt.After(at) {
			return true
		}
	}
	return false
}

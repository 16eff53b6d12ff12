package limiter

import (
	"context"
	"time"
)

// Reserve implements Store. Under the user's lock (and then the project's, always in that
// order) it checks every limit against req's worst case and reserves all of it or nothing, so
// concurrent requests can never together pass a limit. See Decision for the order in which
// limits refuse.
func (e *Embedded) Reserve(_ context.Context, now time.Time, req Request) (Reservation, Decision, error) {
	if e.closed.Load() {
		return Reservation{}, Decision{}, ErrClosed
	}
	p := e.project(req.Project)
	if !req.IssuedAt.IsZero() && p.covers(req.User, req.Session, req.IssuedAt.UnixNano()) {
		return Reservation{}, Decision{Revoked: true}, nil
	}
	tokens, cost := max(req.Tokens, 0), max(req.Cost, 0) // a negative worst case would loosen
	l := req.Limits
	nowNs := now.UnixNano()

	si := shardIndex(req.Project, req.User)
	sh := &e.shards[si]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := e.userLocked(sh, userKey{req.Project, req.User})
	ns := u.advance(nowNs)
	w := u.sums(ns)
	reqs, toks := w.reqs, w.tokens

	var dec Decision
	dec.Refused, dec.RetryAfter, dec.Never = tooLarge(u, l, req.ProjectCostPerMonth, tokens, cost, nowNs)
	if dec.Refused == LimitNone {
		dec.Refused, dec.RetryAfter = u.refusal(l, reqs, toks, tokens, cost, ns, nowNs)
	}
	var projectMonth int64
	if dec.Refused == LimitNone {
		// The project's budget is checked last and under its own lock, held only for this.
		p.mu.Lock()
		projectMonth = p.roll(int64(u.month))
		if b := req.ProjectCostPerMonth; b > 0 && p.monthCost+cost > b {
			dec.Refused, dec.RetryAfter = LimitProjectCostPerMonth, untilMonth(now, projectMonth+1)
		} else {
			p.monthCost += cost
			p.dirty = true
		}
		p.mu.Unlock()
	}

	var res Reservation
	if dec.Refused == LimitNone {
		dec.Allowed = true
		a := u.active()
		if a.win == nil {
			a.win = getWindow()
		}
		sec := a.win.add(ns, 1, tokens)
		reqs, toks = reqs+1, toks+tokens
		w.newestReq = max(w.newestReq, sec)
		if tokens > 0 {
			w.newestTok = max(w.newestTok, sec)
		}
		u.dayTokens += tokens
		u.dayCost += cost
		u.monthCost += cost
		a.concurrent++
		sh.seq++
		id := sh.seq<<shardBits | uint64(si)
		if a.holds == nil {
			a.holds = make(map[uint64]hold, 1)
		}
		a.holds[id] = hold{at: ns, sec: sec, tokens: tokens, cost: cost, day: u.day, month: u.month,
			projectMonth: projectMonth, slot: true}
		a.dirty = true
		res = Reservation{Request: req, At: now, ID: id}
	}

	if l.RequestsPerMinute > 0 {
		dec.RequestsLimit, dec.RequestsRemaining = l.RequestsPerMinute, max(l.RequestsPerMinute-reqs, 0)
		dec.RequestsReset = resetAfter(w.newestReq, nowNs)
	}
	if l.TokensPerMinute > 0 {
		dec.TokensLimit, dec.TokensRemaining = l.TokensPerMinute, max(l.TokensPerMinute-toks, 0)
		dec.TokensReset = resetAfter(w.newestTok, nowNs)
	}
	return res, dec, nil
}

// tooLarge finds the first limit (in the order of refusal) that a worst case of tokens and cost
// is over on its own, so that no wait would ever admit it. RetryAfter is then what it would be
// for that limit when used up: a minute for tokens per minute, the next day or month otherwise.
// Checking this before what is in use means such a request is never told to retry soon (by a
// concurrency or requests-per-minute refusal) when it never can.
func tooLarge(u *userState, l Limits, budget Nanos, tokens int64, cost Nanos, now int64) (Limit, time.Duration, bool) {
	t := time.Unix(0, now)
	switch {
	case l.TokensPerMinute > 0 && tokens > l.TokensPerMinute:
		return LimitTokensPerMinute, time.Minute, true
	case l.TokensPerDay > 0 && tokens > l.TokensPerDay:
		return LimitTokensPerDay, untilDay(t, int64(u.day)+1), true
	case l.CostPerDay > 0 && cost > l.CostPerDay:
		return LimitCostPerDay, untilDay(t, int64(u.day)+1), true
	case l.CostPerMonth > 0 && cost > l.CostPerMonth:
		return LimitCostPerMonth, untilMonth(t, int64(u.month)+1), true
	case budget > 0 && cost > budget:
		return LimitProjectCostPerMonth, untilMonth(t, int64(u.month)+1), true
	}
	return LimitNone, 0, false
}

// refusal finds the first of the user's limits without room for one more request of tokens and
// cost, given reqs and toks in the window at ns. now is the caller's time, which RetryAfter
// counts from.
func (u *userState) refusal(l Limits, reqs, toks, tokens int64, cost Nanos, ns, now int64) (Limit, time.Duration) {
	t := time.Unix(0, now)
	switch {
	case l.ConcurrentRequests > 0 && u.concurrent()+1 > l.ConcurrentRequests:
		// A slot frees when a request ends, which cannot be foreseen: a short hint.
		return LimitConcurrentRequests, time.Second
	case l.RequestsPerMinute > 0 && reqs+1 > l.RequestsPerMinute:
		// reqs > 0: the window exists.
		return LimitRequestsPerMinute, u.win().waitFor(&u.win().reqs, ns, now, reqs+1-l.RequestsPerMinute)
	case l.TokensPerMinute > 0 && toks+tokens > l.TokensPerMinute:
		if w := u.win(); w != nil {
			return LimitTokensPerMinute, w.waitFor(&w.tokens, ns, now, toks+tokens-l.TokensPerMinute)
		}
		return LimitTokensPerMinute, time.Minute // unreachable: tooLarge refused it
	case l.TokensPerDay > 0 && u.dayTokens+tokens > l.TokensPerDay:
		return LimitTokensPerDay, untilDay(t, int64(u.day)+1)
	case l.CostPerDay > 0 && u.dayCost+cost > l.CostPerDay:
		return LimitCostPerDay, untilDay(t, int64(u.day)+1)
	case l.CostPerMonth > 0 && u.monthCost+cost > l.CostPerMonth:
		return LimitCostPerMonth, untilMonth(t, int64(u.month)+1)
	}
	return LimitNone, 0
}

// Settle implements Store. The reservation is looked up by its ID among the user's holds: one
// already settled, never made here (or made before a restart) or made by another store is
// ignored, so a slot is freed exactly once and nothing is charged twice.
func (e *Embedded) Settle(_ context.Context, now time.Time, res Reservation, used Usage) (Spend, error) {
	if e.closed.Load() {
		return Spend{}, ErrClosed
	}
	if res.ID == 0 {
		return Spend{}, nil
	}
	req := res.Request
	sh := &e.shards[shardIndex(req.Project, req.User)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := sh.user(userKey{req.Project, req.User}) // a user with holds is never evicted
	if u == nil || u.act == nil {
		return Spend{}, nil
	}
	a := u.act
	h, ok := a.holds[res.ID]
	if !ok {
		return Spend{}, nil
	}
	delete(a.holds, res.ID)
	if h.slot {
		a.concurrent--
	}
	in, out, cost := max(used.InputTokens, 0), max(used.OutputTokens, 0), max(used.Cost, 0)
	cached := min(max(used.CachedInputTokens, 0), in)
	dTokens, dCost := in+out-h.tokens, cost-h.cost
	// Only the window second, day and month that held the reservation change: settling
	// yesterday's request must not make room today.
	if a.win != nil && dTokens != 0 {
		a.win.adjustTokens(h.sec, dTokens)
	}
	var spend Spend
	if u.day == h.day {
		u.dayTokens = max(u.dayTokens+dTokens, 0)
		u.dayCost = max(u.dayCost+dCost, 0)
		spend.UserDay = u.dayCost
	}
	if u.month == h.month {
		u.monthCost = max(u.monthCost+dCost, 0)
		spend.UserMonth = u.monthCost
	}
	p := e.project(req.Project)
	p.mu.Lock()
	if p.month == h.projectMonth {
		if dCost != 0 {
			p.monthCost = max(p.monthCost+dCost, 0)
			p.dirty = true
		}
		spend.ProjectMonth = p.monthCost
	}
	p.mu.Unlock()
	a.dirty = true
	if !req.Free {
		a.addUsage(dayOf(res.At), req.Org, req.Session, req.Tier, req.Model,
			usageAgg{Requests: 1, InputTokens: in, CachedInputTokens: cached, OutputTokens: out, Cost: cost})
	}
	return spend, nil
}

// Remaining implements Store. It changes nothing, and does not keep a user it had to read
// from the file.
func (e *Embedded) Remaining(_ context.Context, now time.Time, req Request) (Remaining, error) {
	if e.closed.Load() {
		return Remaining{}, ErrClosed
	}
	k := userKey{req.Project, req.User}
	sh := &e.shards[shardIndex(req.Project, req.User)]
	sh.mu.Lock()
	u := sh.user(k)
	if u == nil {
		sh.mu.Unlock()
		u = e.loadUser(k)
	} else {
		defer sh.mu.Unlock()
	}
	v := *u // advance a copy: Remaining reserves nothing, not even the passing of time
	ns := v.advance(now.UnixNano())
	w := v.sums(ns)
	reqs, toks := w.reqs, w.tokens
	var spent Nanos
	if p := e.lookupProject(req.Project); p != nil {
		p.mu.Lock()
		spent = p.spentIn(int64(v.month))
		p.mu.Unlock()
	}
	l := req.Limits
	return Remaining{
		RequestsPerMinute:   left(l.RequestsPerMinute, reqs),
		TokensPerMinute:     left(l.TokensPerMinute, toks),
		TokensPerDay:        left(l.TokensPerDay, v.dayTokens),
		CostPerDay:          Nanos(left(int64(l.CostPerDay), int64(v.dayCost))),
		CostPerMonth:        Nanos(left(int64(l.CostPerMonth), int64(v.monthCost))),
		ConcurrentRequests:  left(l.ConcurrentRequests, v.concurrent()),
		ProjectCostPerMonth: Nanos(left(int64(req.ProjectCostPerMonth), int64(spent))),
	}, nil
}

// left is what limit leaves after used: -1 when the limit is off, never below 0.
func left(limit, used int64) int64 {
	if limit <= 0 {
		return -1
	}
	return max(limit-used, 0)
}

// TooLarge returns the first limit req's worst case alone is over (in the refusal order) and how
// long until that limit renews; LimitNone when every limit could hold it. No wait admits such a
// request: stores refuse it with Decision.Never before looking at anything in use.
func TooLarge(req Request, now time.Time) (Limit, time.Duration) {
	d := dayOfNanos(now.UnixNano())
	u := userState{day: int32(d), month: int32(monthOfDay(d))}
	l, wait, _ := tooLarge(&u, req.Limits, req.ProjectCostPerMonth, req.Tokens, req.Cost, now.UnixNano())
	return l, wait
}

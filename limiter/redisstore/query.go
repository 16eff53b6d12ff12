package redisstore

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/behest/caddy-behest/limiter"
)

// Usage implements limiter.Store in two round trips: the days that have usage, then their
// aggregates. With FailOpen, what this instance admitted while Redis was down is added in.
func (s *Store) Usage(ctx context.Context, q limiter.UsageQuery) ([]limiter.UsageRow, error) {
	days, err := s.client.ZRangeByScore(ctx, s.usageDaysKey(q.Project), &redis.ZRangeBy{
		Min: strconv.FormatInt(dayOf(q.From), 10), Max: strconv.FormatInt(dayOf(q.To), 10),
	}).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	groups := map[string]*limiter.UsageRow{}
	if len(days) > 0 {
		// Every key of a project is in one slot, so this pipeline is one round trip in Cluster
		// too.
		pipe := s.client.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(days))
		for i, d := range days {
			cmds[i] = pipe.HGetAll(ctx, s.projectKey(q.Project, "usage:", d))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, unavailable(err)
		}
		for i, cmd := range cmds {
			day, err := strconv.ParseInt(days[i], 10, 64)
			if err != nil {
				continue
			}
			for field, val := range cmd.Val() {
				addUsage(groups, q, day, field, val)
			}
		}
	}
	if s.fallbackUsed.Load() {
		rows, err := s.fallback.Usage(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			g := group(groups, r.Key)
			g.Requests += r.Requests
			g.InputTokens += r.InputTokens
			g.OutputTokens += r.OutputTokens
			g.Cost += r.Cost
		}
	}
	rows := make([]limiter.UsageRow, 0, len(groups))
	for _, r := range groups {
		rows = append(rows, *r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Key < rows[j].Key })
	return rows, nil
}

// addUsage adds one usage field ("user\0session\0tier\0model\0" + r|i|o|c) of day to its
// group, if q selects it.
func addUsage(groups map[string]*limiter.UsageRow, q limiter.UsageQuery, day int64, field, val string) {
	if len(field) < 2 || field[len(field)-2] != 0 {
		return
	}
	metric := field[len(field)-1]
	// Split from the right, so a NUL inside a user id only misfiles that user.
	rest := field[:len(field)-2]
	var tuple [4]string // user, session, tier, model
	for i := 3; i > 0; i-- {
		j := strings.LastIndexByte(rest, 0)
		if j < 0 {
			return
		}
		tuple[i], rest = rest[j+1:], rest[:j]
	}
	tuple[0] = rest
	if q.User != "" && tuple[0] != q.User {
		return
	}
	n, err := strconv.ParseInt(val, 10, 64)
	if err != nil {
		return
	}
	g := group(groups, groupKey(q.GroupBy, day, tuple))
	switch metric {
	case 'r':
		g.Requests += n
	case 'i':
		g.InputTokens += n
	case 'o':
		g.OutputTokens += n
	case 'c':
		g.Cost += limiter.Nanos(n)
	}
}

func group(groups map[string]*limiter.UsageRow, key string) *limiter.UsageRow {
	g, ok := groups[key]
	if !ok {
		g = &limiter.UsageRow{Key: key}
		groups[key] = g
	}
	return g
}

// groupKey is the group of a usage tuple, as limiter.Embedded groups: org is the part of the
// user before the first ':', and anything unknown groups by user.
func groupKey(groupBy string, day int64, t [4]string) string {
	switch groupBy {
	case "org":
		org, _, _ := strings.Cut(t[0], ":")
		return org
	case "session":
		return t[1]
	case "tier":
		return t[2]
	case "model":
		return t[3]
	case "day":
		return time.Unix(day*86400, 0).UTC().Format(time.DateOnly)
	}
	return t[0]
}

// Revoke implements limiter.Store.
func (s *Store) Revoke(ctx context.Context, project, kind, id string, at time.Time) error {
	key := s.revocationKey(project, kind, id)
	if err := revokeScript.Run(ctx, s.client, []string{key}, unixNanos(at), s.revocationTTL).Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// RevokedBefore implements limiter.Store.
func (s *Store) RevokedBefore(ctx context.Context, project, kind, id string) (time.Time, error) {
	v, err := s.client.Get(ctx, s.revocationKey(project, kind, id)).Int64()
	switch {
	case errors.Is(err, redis.Nil):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, unavailable(err)
	}
	return time.Unix(0, v).UTC(), nil
}

package redisstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/behest/caddy-behest/limiter"
)

// Usage implements limiter.Store in two round trips: the days that have usage, then their
// aggregates. With FailOpen, what this instance admitted while Redis was down is added in.
func (s *Store) Usage(ctx context.Context, q limiter.UsageQuery) ([]limiter.UsageRow, error) {
	g, err := limiter.NewUsageGrouper(q)
	if err != nil {
		return nil, err
	}
	from, to := "-inf", "+inf"
	if !q.From.IsZero() {
		from = strconv.FormatInt(dayOf(q.From), 10)
	}
	if !q.To.IsZero() {
		to = strconv.FormatInt(dayOf(q.To), 10)
	}
	days, err := s.client.ZRangeByScore(ctx, s.usageDaysKey(q.Project), &redis.ZRangeBy{Min: from, Max: to}).Result()
	if err != nil {
		return nil, unavailable(err)
	}
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
				addUsage(g, q.User, day, field, val)
			}
		}
	}
	if s.fallbackUsed.Load() {
		rows, err := s.fallback.Usage(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			g.AddRow(r)
		}
	}
	return g.Rows(), nil
}

// addUsage adds one usage field ("user\0org\0session\0tier\0model\0" + r|i|k|o|c, or
// without the org as written before orgs were kept) of day to its group, if the query selects
// it.
func addUsage(g *limiter.UsageGrouper, user string, day int64, field, val string) {
	if len(field) < 2 || field[len(field)-2] != 0 {
		return
	}
	metric := field[len(field)-1]
	rest := field[:len(field)-2]
	var tuple [5]string // user, org, session, tier, model
	parts := strings.Split(rest, "\x00")
	switch len(parts) {
	case 5:
		copy(tuple[:], parts)
	case 4: // before orgs: the org is the user's part before its first ':'
		tuple[0], tuple[2], tuple[3], tuple[4] = parts[0], parts[1], parts[2], parts[3]
		if org, _, ok := strings.Cut(parts[0], ":"); ok {
			tuple[1] = org
		}
	default:
		return
	}
	if user != "" && tuple[0] != user {
		return
	}
	n, err := strconv.ParseInt(val, 10, 64)
	if err != nil {
		return
	}
	rec := limiter.UsageRecord{Day: time.Unix(day*86400, 0).UTC(), User: tuple[0], Org: tuple[1], Session: tuple[2], Tier: tuple[3], Model: tuple[4]}
	switch metric {
	case 'r':
		rec.Requests = n
	case 'i':
		rec.InputTokens = n
	case 'k':
		rec.CachedInputTokens = n
	case 'o':
		rec.OutputTokens = n
	case 'c':
		rec.Cost = limiter.Nanos(n)
	default:
		return
	}
	g.Add(rec)
}

// Claim implements limiter.Store in one round trip: SET NX with the claim's end.
func (s *Store) Claim(ctx context.Context, project, key string, until time.Time) (bool, error) {
	ok, err := s.client.SetArgs(ctx, s.projectKey(project, "claim:", key), 1, redis.SetArgs{Mode: "NX", ExpireAt: until}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, unavailable(err)
	}
	return ok == "OK", nil
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

package behest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/behest/caddy-behest/alerts"
	"github.com/behest/caddy-behest/limiter"
)

// projectAlerts is a project's alerts compiled: its thresholds and the notifier that claims and
// delivers them.
type projectAlerts struct {
	notifier                      *alerts.Notifier
	projectBudget, userCostPerDay []float64
	poolKey                       string
}

// notifiers keep alert delivery (and its retries) going across config reloads: a config with
// the same webhook and secret takes over the notifier of the one it replaces.
var notifiers = caddy.NewUsagePool()

type pooledNotifier struct{ *alerts.Notifier }

func (n pooledNotifier) Destruct() error {
	n.Close()
	return nil
}

// provisionAlerts checks a project's alerts and starts (or shares) its notifier.
func (h *Handler) provisionAlerts(p *Project, cp *project) error {
	a := p.Alerts
	if a == nil {
		return nil
	}
	u, err := url.Parse(a.Webhook)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("project %s: alerts: webhook %q must be an absolute http(s) URL", p.ID, a.Webhook)
	}
	secret := caddy.NewReplacer().ReplaceKnown(a.Secret, "")
	if secret == "" {
		return fmt.Errorf("project %s: alerts: secret is empty (is the environment variable set?)", p.ID)
	}
	for _, set := range [][]float64{a.ProjectBudget, a.UserCostPerDay} {
		for _, t := range set {
			if !(t > 0 && t <= 1) {
				return fmt.Errorf("project %s: alerts: threshold %v%% must be above 0%% and at most 100%%", p.ID, t*100)
			}
		}
	}
	if len(a.ProjectBudget) > 0 && cp.costPerMonth == 0 {
		return fmt.Errorf("project %s: alerts: project_budget needs the project's cost_per_month", p.ID)
	}
	if len(a.UserCostPerDay) > 0 && !slices.ContainsFunc(slices.Collect(maps.Values(cp.tiers)), func(t *tier) bool { return t.limits.CostPerDay > 0 }) {
		return fmt.Errorf("project %s: alerts: user_cost_per_day needs a tier with cost_per_day", p.ID)
	}
	sum := sha256.Sum256([]byte(secret))
	key := "alerts\x00" + p.ID + "\x00" + a.Webhook + "\x00" + hex.EncodeToString(sum[:])
	logger := h.logger.Named("alerts")
	v, _, err := notifiers.LoadOrNew(key, func() (caddy.Destructor, error) {
		return pooledNotifier{alerts.New(alerts.Config{Webhook: a.Webhook, Secret: []byte(secret), Logger: logger})}, nil
	})
	if err != nil {
		return err
	}
	cp.alerts = &projectAlerts{notifier: v.(pooledNotifier).Notifier, poolKey: key,
		projectBudget: slices.Sorted(slices.Values(a.ProjectBudget)), userCostPerDay: slices.Sorted(slices.Values(a.UserCostPerDay))}
	return nil
}

// releaseAlerts lets go of this config's notifiers; the last config using one stops it.
func (h *Handler) releaseAlerts() {
	for _, p := range h.projects {
		if p.alerts != nil {
			_, _ = notifiers.Delete(p.alerts.poolKey)
		}
	}
}

// periods of a time: its UTC month and day, as the events name them, and when each ends.
func periods(at time.Time) (month string, monthEnd time.Time, day string, dayEnd time.Time) {
	at = at.UTC()
	y, m, d := at.Date()
	return at.Format("2006-01"), time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC),
		at.Format(time.DateOnly), time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

// claimGrace keeps a claim past its period's end, so a late settle of the period announces
// nothing again.
const claimGrace = 48 * time.Hour

// alertSettled announces the thresholds a settled request's spend has reached.
func (h *Handler) alertSettled(p *project, t *tier, user string, at time.Time, spend limiter.Spend) {
	a := p.alerts
	month, monthEnd, day, dayEnd := periods(at)
	for _, th := range alerts.Crossed(a.projectBudget, int64(spend.ProjectMonth), int64(p.costPerMonth)) {
		a.notifier.Notify(h.store, alerts.Crossing{Scope: "project", TenantID: p.tenant, ProjectID: p.id,
			Limit: "cost_per_month", Threshold: th, SpentUSD: spend.ProjectMonth.Dollars(), LimitUSD: p.costPerMonth.Dollars(),
			Period: month, Until: monthEnd.Add(claimGrace)})
	}
	for _, th := range alerts.Crossed(a.userCostPerDay, int64(spend.UserDay), int64(t.limits.CostPerDay)) {
		a.notifier.Notify(h.store, alerts.Crossing{Scope: "user", TenantID: p.tenant, ProjectID: p.id, UserID: user,
			Limit: "cost_per_day", Threshold: th, SpentUSD: spend.UserDay.Dollars(), LimitUSD: t.limits.CostPerDay.Dollars(),
			Period: day, Until: dayEnd.Add(claimGrace)})
	}
}

// alertRefused announces 100% of a budget the first time it refuses a request in its period:
// a hard budget can stop spend just short of its limit, where no settle reaches 100%. The spend
// is read from the store when the event is made, off the request path.
func (h *Handler) alertRefused(p *project, t *tier, req limiter.Request, dec limiter.Decision, at time.Time) {
	a := p.alerts
	month, monthEnd, day, dayEnd := periods(at)
	store := h.store
	spent := func(limit limiter.Nanos, left func(limiter.Remaining) limiter.Nanos) func(context.Context) (float64, error) {
		return func(ctx context.Context) (float64, error) {
			rem, err := store.Remaining(ctx, at, req)
			if err != nil {
				return 0, err
			}
			return (limit - max(left(rem), 0)).Dollars(), nil
		}
	}
	switch {
	case dec.Refused == limiter.LimitProjectCostPerMonth && slices.Contains(a.projectBudget, 1):
		a.notifier.Notify(store, alerts.Crossing{Scope: "project", TenantID: p.tenant, ProjectID: p.id,
			Limit: "cost_per_month", Threshold: 1, SpentUSD: p.costPerMonth.Dollars(), LimitUSD: p.costPerMonth.Dollars(),
			Period: month, Until: monthEnd.Add(claimGrace),
			Spent: spent(p.costPerMonth, func(r limiter.Remaining) limiter.Nanos { return r.ProjectCostPerMonth })})
	case dec.Refused == limiter.LimitCostPerDay && slices.Contains(a.userCostPerDay, 1):
		a.notifier.Notify(store, alerts.Crossing{Scope: "user", TenantID: p.tenant, ProjectID: p.id, UserID: req.User,
			Limit: "cost_per_day", Threshold: 1, SpentUSD: t.limits.CostPerDay.Dollars(), LimitUSD: t.limits.CostPerDay.Dollars(),
			Period: day, Until: dayEnd.Add(claimGrace),
			Spent: spent(t.limits.CostPerDay, func(r limiter.Remaining) limiter.Nanos { return r.CostPerDay })})
	}
}

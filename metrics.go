package behest

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/behest/caddy-behest/limiter"
)

// metrics are made once per process and registered with each config's registry; labels are
// bounded, taken only from the config (projects, issuers, the store) and the contract (codes,
// directions, store operations), never from requests.
var metrics = struct {
	requests     *prometheus.CounterVec   // by project and outcome code
	tierUnknown  *prometheus.CounterVec   // by project
	tokens       *prometheus.CounterVec   // by project and direction
	cost         *prometheus.CounterVec   // by project
	admission    *prometheus.HistogramVec // by store
	inFlight     *prometheus.GaugeVec     // by project
	projectSpend *prometheus.GaugeVec     // by project
	jwksFetches  *prometheus.CounterVec   // by issuer and outcome
	storeErrors  *prometheus.CounterVec   // by operation
}{
	requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "behest", Name: "requests_total",
		Help: "Requests by project and outcome (ok, or the error code answered).",
	}, []string{"project", "code"}),
	tierUnknown: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "behest", Name: "tier_unknown_total",
		Help: "Tokens naming a tier the project does not have (the default tier was used).",
	}, []string{"project"}),
	tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "behest", Name: "tokens_total",
		Help: "Tokens charged, by project and direction (input, output; cached_input is the part of input read from a prompt cache).",
	}, []string{"project", "direction"}),
	cost: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "behest", Name: "cost_usd_total",
		Help: "USD charged to end users' requests, by project.",
	}, []string{"project"}),
	admission: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "behest", Name: "admission_duration_seconds",
		Help: "Time to admit or refuse a request against its limits, by store.",
		// From the embedded store's microseconds to a slow Redis's read timeout.
		Buckets: []float64{.00001, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"store"}),
	inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "behest", Name: "in_flight",
		Help: "Admitted requests not yet settled, by project.",
	}, []string{"project"}),
	projectSpend: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "behest", Name: "project_spend_usd",
		Help: "The project's spend this UTC month in USD (settled, and held by requests in flight), as of its last settled request here.",
	}, []string{"project"}),
	jwksFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "behest", Name: "jwks_fetches_total",
		Help: "Fetches of trusted issuers' JWKS, by issuer and outcome (ok, error).",
	}, []string{"issuer", "outcome"}),
	storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "behest", Name: "store_errors_total",
		Help: "Calls the limit store failed, by operation (reserve, settle, remaining, usage, revoke, claim).",
	}, []string{"op"}),
}

// registerMetrics adds the collectors to a config's registry; a reload registers them again.
func registerMetrics(registry *prometheus.Registry) error {
	if registry == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{metrics.requests, metrics.tierUnknown, metrics.tokens, metrics.cost,
		metrics.admission, metrics.inFlight, metrics.projectSpend, metrics.jwksFetches, metrics.storeErrors} {
		if err := registry.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// storeFailed counts a failed store call of op and returns err.
func storeFailed(op string, err error) error {
	if err != nil {
		metrics.storeErrors.WithLabelValues(op).Inc()
	}
	return err
}

// projectMetrics are one project's collectors, looked up once when the config is compiled so
// the request path hashes no labels.
type projectMetrics struct {
	ok, tokensIn, tokensOut, tokensCached, cost prometheus.Counter
	inFlight, spend                             prometheus.Gauge
}

func newProjectMetrics(project string) projectMetrics {
	return projectMetrics{
		ok:           metrics.requests.WithLabelValues(project, "ok"),
		tokensIn:     metrics.tokens.WithLabelValues(project, "input"),
		tokensOut:    metrics.tokens.WithLabelValues(project, "output"),
		tokensCached: metrics.tokens.WithLabelValues(project, "cached_input"),
		cost:         metrics.cost.WithLabelValues(project),
		inFlight:     metrics.inFlight.WithLabelValues(project),
		spend:        metrics.projectSpend.WithLabelValues(project),
	}
}

// settled counts a request that was admitted and has now been settled.
func (m *projectMetrics) settled(used limiter.Usage, spend limiter.Spend, err error) {
	m.inFlight.Dec()
	m.tokensIn.Add(float64(used.InputTokens))
	m.tokensOut.Add(float64(used.OutputTokens))
	m.tokensCached.Add(float64(used.CachedInputTokens))
	m.cost.Add(used.Cost.Dollars())
	if err == nil && spend.ProjectMonth > 0 {
		m.spend.Set(spend.ProjectMonth.Dollars())
	}
}

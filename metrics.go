package behest

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are made once per process and registered with each config's registry; labels are
// bounded (projects and codes come from the config and the contract, never from requests).
var metrics = struct {
	requests    *prometheus.CounterVec // by project and outcome code
	tierUnknown *prometheus.CounterVec // by project
	tokens      *prometheus.CounterVec // by project and direction
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
		Help: "Tokens charged, by project and direction (input, output).",
	}, []string{"project", "direction"}),
}

// registerMetrics adds the collectors to a config's registry; a reload registers them again.
func registerMetrics(registry *prometheus.Registry) error {
	if registry == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{metrics.requests, metrics.tierUnknown, metrics.tokens} {
		if err := registry.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

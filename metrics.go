package behest

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are made once per process and registered with each config's registry; labels are
// bounded (projects and codes come from the config and the contract, never from requests).
var metrics struct {
	once        sync.Once
	requests    *prometheus.CounterVec // by project and outcome code
	tierUnknown *prometheus.CounterVec // by project
	tokens      *prometheus.CounterVec // by project and direction
}

func initMetrics(registry *prometheus.Registry) error {
	const ns, sub = "caddy", "behest"
	metrics.once.Do(func() {
		metrics.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "Requests by project and outcome (ok, or the error code answered).",
		}, []string{"project", "code"})
		metrics.tierUnknown = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "tier_unknown_total",
			Help: "Tokens naming a tier the project does not have (the default tier was used).",
		}, []string{"project"})
		metrics.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "tokens_total",
			Help: "Tokens charged, by project and direction (input, output).",
		}, []string{"project", "direction"})
	})
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

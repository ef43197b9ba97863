package ratelimit

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	decisions   *prometheus.CounterVec
	redisErrors *prometheus.CounterVec
}

func newMetrics(r prometheus.Registerer) *metrics {
	return &metrics{
		decisions: register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mall_ratelimit_decisions_total",
			Help: "Rate limit decisions by class and result (allowed, refused, fallback_allowed, fallback_refused, fail_open).",
		}, []string{"class", "result"})),
		redisErrors: register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mall_ratelimit_redis_errors_total",
			Help: "Rate limit checks that could not reach Redis, by class.",
		}, []string{"class"})),
	}
}

// register registers c, or returns the collector already registered under its name so
// several limiters in one process (tests, fx restarts) share the series.
func register(r prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
		}
		// A conflicting descriptor is a programming error elsewhere; count unexported
		// rather than fail the limiter.
	}
	return c
}

func (m *metrics) decision(className string, r Result) {
	var result string
	switch {
	case r.Source == SourceFailOpen:
		result = "fail_open"
	case r.Source == SourceLocal && r.Allowed:
		result = "fallback_allowed"
	case r.Source == SourceLocal:
		result = "fallback_refused"
	case r.Allowed:
		result = "allowed"
	default:
		result = "refused"
	}
	m.decisions.WithLabelValues(className, result).Inc()
}

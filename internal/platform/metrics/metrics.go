// Package metrics holds the Prometheus helpers shared by the platform packages.
package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Register registers c, or returns the collector already registered under its name, so
// several instances (tests, or fx graphs in one process) can share a registry.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

// Value returns the value of the counter or gauge name whose labels include labels (of a
// histogram: its sample count), 0 when there is none. Tests and health reports read metrics
// with it.
func Value(g prometheus.Gatherer, name string, labels map[string]string) (float64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if matches(m, labels) {
				if c := m.GetCounter(); c != nil {
					return c.GetValue(), nil
				}
				if h := m.GetHistogram(); h != nil {
					return float64(h.GetSampleCount()), nil
				}
				return m.GetGauge().GetValue(), nil
			}
		}
	}
	return 0, nil
}

func matches(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := labels[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(labels)
}

package worker

import (
	"github.com/prometheus/client_golang/prometheus"

	pmetrics "github.com/mallhq/mall/internal/platform/metrics"
)

type metrics struct {
	seconds  *prometheus.HistogramVec
	failures *prometheus.CounterVec
	panics   *prometheus.CounterVec
	leader   *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	label := []string{"worker"}
	m := &metrics{
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mall_worker_run_seconds",
			Help:    "Duration of a periodic worker's runs.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10), // 1ms .. 4m
		}, label),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mall_worker_failures_total",
			Help: "Runs of a periodic worker that returned an error, timed out or panicked.",
		}, label),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mall_worker_panics_total",
			Help: "Runs of a periodic worker that panicked (recovered; also counted as failures).",
		}, label),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mall_worker_leader",
			Help: "1 while this replica holds a leader-only worker's lease.",
		}, label),
	}
	if reg == nil {
		return m, nil
	}
	// Several Runners may share a registry (the application's, and each outbox relay's
	// while it leads): they share the series.
	var err error
	for _, h := range []**prometheus.HistogramVec{&m.seconds} {
		if *h, err = pmetrics.Register(reg, *h); err != nil {
			return nil, err
		}
	}
	for _, c := range []**prometheus.CounterVec{&m.failures, &m.panics} {
		if *c, err = pmetrics.Register(reg, *c); err != nil {
			return nil, err
		}
	}
	if m.leader, err = pmetrics.Register(reg, m.leader); err != nil {
		return nil, err
	}
	return m, nil
}

// workerMetrics are one worker's series.
type workerMetrics struct {
	seconds  prometheus.Observer
	failures prometheus.Counter
	panics   prometheus.Counter
	leader   prometheus.Gauge
}

// of returns name's series; the leader gauge only for a leader-only worker (nil otherwise),
// so that per-replica workers do not show up as never leading.
func (m *metrics) of(name string, leader bool) workerMetrics {
	wm := workerMetrics{
		seconds:  m.seconds.WithLabelValues(name),
		failures: m.failures.WithLabelValues(name),
		panics:   m.panics.WithLabelValues(name),
	}
	if leader {
		wm.leader = m.leader.WithLabelValues(name)
	}
	return wm
}

package outbox

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mallhq/mall/internal/platform/metrics"
)

// Metrics are the relays' Prometheus metrics, labelled by database ("main", "shard0", ...).
// The gauges are set by the database's leading relay; other replicas report 0, so sum()
// across replicas is the database's value.
type Metrics struct {
	backlog   *prometheus.GaugeVec
	oldestAge *prometheus.GaugeVec
	deadRows  *prometheus.GaugeVec
	leader    *prometheus.GaugeVec
	published *prometheus.CounterVec
	errors    *prometheus.CounterVec
	dead      *prometheus.CounterVec
	// reg also holds the leading relay's maintenance workers' metrics (worker package).
	reg prometheus.Registerer
}

// NewMetrics registers the relay metrics with reg. A second call with the same registry
// returns collectors sharing the first call's series.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"db"})
	}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"db"})
	}
	m := &Metrics{
		backlog:   gauge("mall_outbox_backlog", "Pending outbox rows."),
		oldestAge: gauge("mall_outbox_oldest_pending_age_seconds", "Age of the oldest pending outbox row."),
		deadRows:  gauge("mall_outbox_dead_rows", "Outbox rows parked as dead, awaiting an operator."),
		leader:    gauge("mall_outbox_relay_leader", "1 while this replica's relay publishes the database's outbox."),
		published: counter("mall_outbox_published_total", "Outbox rows published to Kafka."),
		errors:    counter("mall_outbox_relay_errors_total", "Failed relay batches and failed publish attempts."),
		dead:      counter("mall_outbox_dead_total", "Outbox rows parked as dead after their last attempt."),
		reg:       reg,
	}
	var err error
	for _, g := range []**prometheus.GaugeVec{&m.backlog, &m.oldestAge, &m.deadRows, &m.leader} {
		if *g, err = metrics.Register(reg, *g); err != nil {
			return nil, err
		}
	}
	for _, c := range []**prometheus.CounterVec{&m.published, &m.errors, &m.dead} {
		if *c, err = metrics.Register(reg, *c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// dbMetrics are the series of one database.
type dbMetrics struct {
	backlog, oldestAge, deadRows, leader prometheus.Gauge
	published, errors, dead              prometheus.Counter
	reg                                  prometheus.Registerer
}

func (m *Metrics) forDB(db string) dbMetrics {
	return dbMetrics{
		backlog:   m.backlog.WithLabelValues(db),
		oldestAge: m.oldestAge.WithLabelValues(db),
		deadRows:  m.deadRows.WithLabelValues(db),
		leader:    m.leader.WithLabelValues(db),
		published: m.published.WithLabelValues(db),
		errors:    m.errors.WithLabelValues(db),
		dead:      m.dead.WithLabelValues(db),
		reg:       m.reg,
	}
}

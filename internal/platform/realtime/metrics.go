package realtime

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mallhq/mall/internal/platform/metrics"
)

// Metric names.
const (
	MetricConnections    = "mall_realtime_connections"               // open WebSocket connections on this replica
	MetricMessages       = "mall_realtime_messages_total"            // label direction: out (frames sent) | in (client frames)
	MetricPublished      = "mall_realtime_published_total"           // Publish calls handed to Redis
	MetricPublishErrors  = "mall_realtime_publish_errors_total"      // Publish calls Redis refused
	MetricDrops          = "mall_realtime_drops_total"               // connections dropped; label reason: slow_consumer | write_failed | pong_timeout | session_ended
	MetricRefused        = "mall_realtime_refused_total"             // upgrades refused; label reason: origin | capacity | room_full
	MetricLatency        = "mall_realtime_broadcast_latency_seconds" // Publish -> fan-out on this replica
	MetricSubscriptions  = "mall_realtime_subscriptions_total"       // Redis room subscriptions confirmed (including after reconnects)
	MetricBadEnvelopes   = "mall_realtime_bad_envelopes_total"       // unreadable messages on a room channel
	MetricPresenceErrors = "mall_realtime_presence_errors_total"     // failed presence writes (retried)
)

type hubMetrics struct {
	conns          prometheus.Gauge
	out, in        prometheus.Counter
	published      prometheus.Counter
	publishErrors  prometheus.Counter
	slowDrops      prometheus.Counter
	writeDrops     prometheus.Counter
	pongDrops      prometheus.Counter
	sessionEnds    prometheus.Counter
	refusedOrigin  prometheus.Counter
	refusedCap     prometheus.Counter
	refusedRoom    prometheus.Counter
	latency        prometheus.Histogram
	subscriptions  prometheus.Counter
	badEnvelopes   prometheus.Counter
	presenceErrors prometheus.Counter
}

func newHubMetrics(reg prometheus.Registerer) (*hubMetrics, error) {
	conns, err := metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricConnections,
		Help: "Open WebSocket connections on this replica."}))
	if err != nil {
		return nil, err
	}
	messages, err := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricMessages,
		Help: "WebSocket messages: out = frames sent to clients, in = frames received."}, []string{"direction"}))
	if err != nil {
		return nil, err
	}
	drops, err := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricDrops,
		Help: "WebSocket connections dropped by the server, by reason."}, []string{"reason"}))
	if err != nil {
		return nil, err
	}
	refused, err := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRefused,
		Help: "WebSocket upgrades refused, by reason."}, []string{"reason"}))
	if err != nil {
		return nil, err
	}
	latency, err := metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{Name: MetricLatency,
		Help:    "Seconds from Publish to fan-out on this replica.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}))
	if err != nil {
		return nil, err
	}
	counter := func(name, help string) (prometheus.Counter, error) {
		return metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
	}
	m := &hubMetrics{conns: conns, latency: latency,
		out: messages.WithLabelValues("out"), in: messages.WithLabelValues("in"),
		slowDrops: drops.WithLabelValues("slow_consumer"), writeDrops: drops.WithLabelValues("write_failed"),
		pongDrops: drops.WithLabelValues("pong_timeout"), sessionEnds: drops.WithLabelValues("session_ended"),
		refusedOrigin: refused.WithLabelValues("origin"), refusedCap: refused.WithLabelValues("capacity"),
		refusedRoom: refused.WithLabelValues("room_full"),
	}
	for _, c := range []struct {
		dst        *prometheus.Counter
		name, help string
	}{
		{&m.published, MetricPublished, "Realtime messages handed to Redis."},
		{&m.publishErrors, MetricPublishErrors, "Realtime messages Redis did not accept."},
		{&m.subscriptions, MetricSubscriptions, "Redis room subscriptions confirmed, including after reconnects."},
		{&m.badEnvelopes, MetricBadEnvelopes, "Unreadable messages on a room channel (ignored)."},
		{&m.presenceErrors, MetricPresenceErrors, "Failed presence writes (retried on the next flush)."},
	} {
		if *c.dst, err = counter(c.name, c.help); err != nil {
			return nil, err
		}
	}
	return m, nil
}

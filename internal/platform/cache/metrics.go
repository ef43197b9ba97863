package cache

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mallhq/mall/internal/platform/metrics"
)

// Metric names (label "cache" = Options.Name).
const (
	MetricHits          = "mall_cache_hits_total"                // label level: l1 | l2
	MetricMisses        = "mall_cache_misses_total"              // neither level had the key
	MetricLoads         = "mall_cache_loads_total"               // loader calls
	MetricLoadErrors    = "mall_cache_load_errors_total"         // loader errors other than ErrNotFound
	MetricInvalidations = "mall_cache_invalidations_total"       // keys dropped; label source: local | remote
	MetricRedisErrors   = "mall_cache_redis_errors_total"        // Redis calls that failed (reads fell back to the loader)
	MetricStaleRefused  = "mall_cache_stale_fills_refused_total" // fills refused because an invalidation overtook them
	MetricL1Clears      = "mall_cache_l1_clears_total"           // whole-L1 clears after the bus (re)subscribed
	MetricDecodeErrors  = "mall_cache_decode_errors_total"       // L2 values the codec could not read (deleted)

	MetricBusSubscribed    = "mall_cache_bus_subscribed"          // 1 while the invalidation subscription is live
	MetricBusSubscriptions = "mall_cache_bus_subscriptions_total" // (re)subscriptions, each clearing every L1
	MetricBusErrors        = "mall_cache_bus_errors_total"        // failed receives on the subscription
)

// busMetrics are registered once per Bus; caches bind their label values at New.
type busMetrics struct {
	hits, misses, loads, loadErrors, invalidations, redisErrors, staleRefused, l1Clears, decodeErrors *prometheus.CounterVec

	subscribed    prometheus.Gauge
	subscriptions prometheus.Counter
	busErrors     prometheus.Counter
}

func newBusMetrics(reg prometheus.Registerer) (*busMetrics, error) {
	vec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, append([]string{"cache"}, labels...))
	}
	m := &busMetrics{
		hits:          vec(MetricHits, "Cache hits by level (l1: in process, l2: Redis).", "level"),
		misses:        vec(MetricMisses, "Gets found in neither level."),
		loads:         vec(MetricLoads, "Loader calls (one per key per replica at a time)."),
		loadErrors:    vec(MetricLoadErrors, "Loader errors other than not found."),
		invalidations: vec(MetricInvalidations, "Keys invalidated, by source (local call or another replica).", "source"),
		redisErrors:   vec(MetricRedisErrors, "Redis calls that failed; reads fall back to the loader."),
		staleRefused:  vec(MetricStaleRefused, "Fills refused because an invalidation happened while they loaded."),
		l1Clears:      vec(MetricL1Clears, "Whole-L1 clears after the invalidation bus (re)subscribed."),
		decodeErrors:  vec(MetricDecodeErrors, "L2 values that could not be decoded (deleted and reloaded)."),
		subscribed: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricBusSubscribed,
			Help: "1 while the cache invalidation subscription is live."}),
		subscriptions: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricBusSubscriptions,
			Help: "Cache invalidation (re)subscriptions; each clears every L1."}),
		busErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricBusErrors,
			Help: "Failed receives on the cache invalidation subscription."}),
	}
	var err error
	for _, c := range []**prometheus.CounterVec{&m.hits, &m.misses, &m.loads, &m.loadErrors, &m.invalidations,
		&m.redisErrors, &m.staleRefused, &m.l1Clears, &m.decodeErrors} {
		if *c, err = metrics.Register(reg, *c); err != nil {
			return nil, err
		}
	}
	if m.subscribed, err = metrics.Register(reg, m.subscribed); err != nil {
		return nil, err
	}
	if m.subscriptions, err = metrics.Register(reg, m.subscriptions); err != nil {
		return nil, err
	}
	if m.busErrors, err = metrics.Register(reg, m.busErrors); err != nil {
		return nil, err
	}
	return m, nil
}

// cacheMetrics are one cache's series, bound once so the hot path is a bare Inc.
type cacheMetrics struct {
	l1Hits, l2Hits, misses, loads, loadErrors         prometheus.Counter
	localInvalidations, remoteInvalidations           prometheus.Counter
	redisErrors, staleRefused, l1Clears, decodeErrors prometheus.Counter
}

func (m *busMetrics) forCache(name string) cacheMetrics {
	return cacheMetrics{
		l1Hits:              m.hits.WithLabelValues(name, "l1"),
		l2Hits:              m.hits.WithLabelValues(name, "l2"),
		misses:              m.misses.WithLabelValues(name),
		loads:               m.loads.WithLabelValues(name),
		loadErrors:          m.loadErrors.WithLabelValues(name),
		localInvalidations:  m.invalidations.WithLabelValues(name, "local"),
		remoteInvalidations: m.invalidations.WithLabelValues(name, "remote"),
		redisErrors:         m.redisErrors.WithLabelValues(name),
		staleRefused:        m.staleRefused.WithLabelValues(name),
		l1Clears:            m.l1Clears.WithLabelValues(name),
		decodeErrors:        m.decodeErrors.WithLabelValues(name),
	}
}

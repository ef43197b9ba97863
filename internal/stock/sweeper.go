package stock

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mallhq/mall/internal/platform/worker"
)

type metrics struct {
	expired   prometheus.Counter
	batchSize prometheus.Histogram
	batchTime prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{expired: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mall_stock_reservations_expired_total",
		Help: "Reservation lines released by the sweeper because their order was not paid in time.",
	}), batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "mall_stock_reserve_batch_requests",
		Help:    "Reserve calls committed together in one transaction (reserve_batch.go).",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	}), batchTime: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "mall_stock_reserve_batch_seconds",
		Help:    "Time to commit one batch of Reserve calls (reserve_batch.go).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 12),
	})}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.expired, m.batchSize, m.batchTime} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// sweepBatch bounds the orders one sweep releases; the next tick takes the rest.
const sweepBatch = 200

// sweeper releases expired reservations every cfg.SweepInterval (disabled at 0).
func sweeper(svc Service) worker.Spec {
	s, ok := svc.(*service)
	if !ok || s.cfg.SweepInterval <= 0 {
		return worker.Spec{}
	}
	return worker.Spec{Name: "stock.sweeper", Interval: s.cfg.SweepInterval, Timeout: s.cfg.SweepInterval + 30*time.Second,
		Run: func(ctx context.Context) error {
			for ctx.Err() == nil {
				n, err := s.SweepExpired(ctx, sweepBatch)
				if err != nil {
					return fmt.Errorf("stock: sweeping expired reservations: %w", err)
				}
				if n == 0 {
					return nil
				}
			}
			return nil
		}}
}

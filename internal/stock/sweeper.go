package stock

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
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

// runSweeper releases expired reservations every cfg.SweepInterval until stop.
func runSweeper(s *service, interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), interval+30*time.Second)
		for {
			n, err := s.SweepExpired(ctx, sweepBatch)
			if err != nil {
				s.log.Error("stock: sweeping expired reservations failed", "error", err.Error())
				break
			}
			if n == 0 || ctx.Err() != nil {
				break
			}
		}
		cancel()
	}
}

// startSweeper runs the sweeper for the application's lifetime.
func startSweeper(lc fx.Lifecycle, svc Service, log *slog.Logger) {
	s, ok := svc.(*service)
	if !ok || s.cfg.SweepInterval <= 0 {
		return
	}
	stop, done := make(chan struct{}), make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() {
				defer close(done)
				runSweeper(s, s.cfg.SweepInterval, stop)
			}()
			return nil
		},
		OnStop: func(ctx context.Context) error {
			close(stop)
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	})
}

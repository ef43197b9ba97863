package stock

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
)

type metrics struct {
	expired prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{expired: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mall_stock_reservations_expired_total",
		Help: "Reservation lines released by the sweeper because their order was not paid in time.",
	})}
	if reg != nil {
		if err := reg.Register(m.expired); err != nil {
			return nil, err
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

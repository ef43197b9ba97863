package order

import (
	"context"
	"sync"
	"time"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/order/payment"
	"github.com/mallhq/mall/internal/platform/errs"
)

// sweepBatch bounds the orders one sweep of one shard cancels; the next tick takes the rest.
const sweepBatch = 200

// SweepExpired cancels every shard's unpaid orders past their deadline (at most batch per
// shard) and returns how many it cancelled. The gateway payment is queried and closed
// first: one the gateway reports paid is left for its notification.
func (s *service) SweepExpired(ctx context.Context, batch int) (int, error) {
	total := 0
	seen := map[any]bool{}
	for _, db := range s.cl.Shards() {
		if seen[db] {
			continue
		}
		seen[db] = true
		orders, err := s.st.expired(ctx, db, s.clock(), batch)
		if err != nil {
			return total, err
		}
		closed := map[int64]bool{} // checkouts whose payments are closed
		for _, o := range orders {
			if _, done := closed[o.CheckoutID]; !done {
				paid, err := s.closePayments(ctx, o)
				if err != nil {
					s.log.Error("order: closing the payment of an expired order", "order_id", o.ID, "error", err.Error())
					continue
				}
				closed[o.CheckoutID] = paid
			}
			if closed[o.CheckoutID] {
				continue // paid at the gateway: the notification decides
			}
			_, err := s.transition(ctx, o.ID, scope{}, change{from: []Status{StatusPendingPayment}, to: StatusCancelled,
				event: EventCancelled})
			if err != nil {
				if isConflict(err) {
					continue // paid or cancelled meanwhile
				}
				return total, err
			}
			s.m.timedOut.Inc()
			total++
		}
	}
	return total, nil
}

// closePayments closes the checkout's pending payments at their gateways; paid reports a
// payment the gateway already took.
func (s *service) closePayments(ctx context.Context, o Order) (paid bool, err error) {
	pays, err := s.st.checkoutPayments(ctx, s.cl.ForID(o.ID), o.CheckoutID, PaymentPending)
	if err != nil {
		return false, err
	}
	for _, p := range pays {
		prov, ok := s.providers[p.Provider]
		if !ok {
			continue
		}
		st, err := prov.Query(ctx, p.ID)
		if err == nil && st.Status == payment.StatusSucceeded {
			return true, nil
		}
		if err := prov.Close(ctx, p.ID); err != nil {
			return false, err
		}
	}
	return false, nil
}

func isConflict(err error) bool {
	e, ok := errsAs(err)
	return ok && e.Code == ErrStatusConflict.Code
}

// startWorkers adds the coming months' partitions at startup (in the background: DDL must
// not delay readiness) and then every PartitionInterval, and runs the payment-timeout sweeper every SweepInterval.
func startWorkers(lc fx.Lifecycle, s *service) {
	stop := make(chan struct{})
	base, cancelAll := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	// every runs fn every d (first at once when now), never blocking the start.
	every := func(d time.Duration, now bool, fn func(ctx context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if now {
				ctx, cancel := context.WithTimeout(base, time.Minute)
				fn(ctx)
				cancel()
			}
			if d <= 0 {
				return
			}
			t := time.NewTicker(d)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				ctx, cancel := context.WithTimeout(base, d+time.Minute)
				fn(ctx)
				cancel()
			}
		}()
	}
	partitions := func(ctx context.Context) {
		if s.cfg.PartitionMonths <= 0 {
			return
		}
		if n, err := EnsurePartitions(ctx, s.cl, s.clock(), s.cfg.PartitionMonths); err != nil {
			s.log.Error("order: adding partitions", "error", err.Error())
		} else if n > 0 {
			s.log.Info("order: partitions added", "count", n)
		}
	}
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			if s.cfg.PartitionMonths > 0 {
				every(s.cfg.PartitionInterval, true, partitions)
			}
			if s.cfg.SweepInterval > 0 {
				every(s.cfg.SweepInterval, false, func(ctx context.Context) {
					for ctx.Err() == nil {
						n, err := s.SweepExpired(ctx, sweepBatch)
						if err != nil {
							s.log.Error("order: payment timeout sweep", "error", err.Error())
							return
						}
						if n < sweepBatch {
							return
						}
					}
				})
			}
			return nil
		},
		OnStop: func(ctx context.Context) error {
			close(stop)
			cancelAll()
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	})
}

func errsAs(err error) (*errs.Error, bool) { return errs.As(err) }

package order

import (
	"context"
	"fmt"
	"time"

	"github.com/mallhq/mall/internal/order/payment"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/worker"
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

// partitions adds the coming months' partitions at startup (in the background: DDL must
// not delay readiness) and then every PartitionInterval.
func partitions(s *service) worker.Spec {
	if s.cfg.PartitionMonths <= 0 {
		return worker.Spec{}
	}
	return worker.Spec{Name: "order.partitions", RunAtStart: true, Interval: s.cfg.PartitionInterval,
		Timeout: s.cfg.PartitionInterval + time.Minute,
		Run: func(ctx context.Context) error {
			n, err := EnsurePartitions(ctx, s.cl, s.clock(), s.cfg.PartitionMonths)
			if err != nil {
				return fmt.Errorf("order: adding partitions: %w", err)
			}
			if n > 0 {
				s.log.Info("order: partitions added", "count", n)
			}
			return nil
		}}
}

// timeoutSweeper cancels the unpaid orders past their deadline every SweepInterval.
func timeoutSweeper(s *service) worker.Spec {
	if s.cfg.SweepInterval <= 0 {
		return worker.Spec{}
	}
	return worker.Spec{Name: "order.payment_timeout", Interval: s.cfg.SweepInterval, Timeout: s.cfg.SweepInterval + time.Minute,
		Run: func(ctx context.Context) error {
			for ctx.Err() == nil {
				n, err := s.SweepExpired(ctx, sweepBatch)
				if err != nil {
					return fmt.Errorf("order: payment timeout sweep: %w", err)
				}
				if n < sweepBatch {
					return nil
				}
			}
			return nil
		}}
}

func errsAs(err error) (*errs.Error, bool) { return errs.As(err) }

// CompleteShipped completes every shard's shipped orders shipped more than
// AutoCompleteAfter ago (at most batch per shard), as confirm-receipt would, and returns
// how many it completed.
func (s *service) CompleteShipped(ctx context.Context, batch int) (int, error) {
	total := 0
	seen := map[any]bool{}
	cutoff := s.clock().Add(-s.cfg.AutoCompleteAfter)
	for _, db := range s.cl.Shards() {
		if seen[db] {
			continue
		}
		seen[db] = true
		orders, err := s.st.dueForCompletion(ctx, db, cutoff, batch)
		if err != nil {
			return total, err
		}
		for _, o := range orders {
			if _, err := s.transition(ctx, o.ID, scope{}, complete); err != nil {
				if isConflict(err) {
					continue // confirmed or a refund requested meanwhile
				}
				return total, err
			}
			total++
		}
	}
	return total, nil
}

// autoCompleter completes shipped orders past AutoCompleteAfter every SweepInterval
// (AutoCompleteAfter 0, which validation refuses, is a test's "never").
func autoCompleter(s *service) worker.Spec {
	if s.cfg.SweepInterval <= 0 || s.cfg.AutoCompleteAfter <= 0 {
		return worker.Spec{}
	}
	return worker.Spec{Name: "order.auto_complete", Interval: s.cfg.SweepInterval, Timeout: s.cfg.SweepInterval + time.Minute,
		Run: func(ctx context.Context) error {
			for ctx.Err() == nil {
				n, err := s.CompleteShipped(ctx, sweepBatch)
				if err != nil {
					return fmt.Errorf("order: auto-complete sweep: %w", err)
				}
				if n < sweepBatch {
					return nil
				}
			}
			return nil
		}}
}

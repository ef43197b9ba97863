package order

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/mallhq/mall/internal/order/payment"
	"github.com/mallhq/mall/internal/platform/outbox"
)

// SandboxPayer is implemented by the sandbox provider: it "pays" a payment at the local
// gateway and returns the notification form the gateway would deliver, correctly signed.
// POST /api/v1/payments/{id}/sandbox/complete feeds that form to HandleNotification, the
// same path real notifications take.
type SandboxPayer interface {
	Pay(ctx context.Context, p payment.Payment) (url.Values, error)
}

// SandboxProvider is the provider name SandboxComplete uses.
const SandboxProvider = "sandbox"

// CreatePayment creates (or, for the same provider, returns) the pending payment of the
// buyer's checkout for the amount of its unpaid orders, then registers it with the
// gateway.
func (s *service) CreatePayment(ctx context.Context, buyerID, checkoutID int64, provider string) (Payment, error) {
	prov, ok := s.providers[provider]
	if !ok {
		return Payment{}, ErrProviderUnknown.WithDetail("no payment provider %q", provider)
	}
	if buyerID <= 0 || checkoutID <= 0 {
		return Payment{}, ErrNotFound
	}
	db := s.cl.ForID(checkoutID)
	var p Payment
	var created bool
	var subject string
	err := db.WithinTx(ctx, func(ctx context.Context) error {
		c, err := s.st.checkout(ctx, db, checkoutID, buyerID, true)
		if err != nil {
			return err
		}
		if !s.clock().Before(c.ExpiresAt) {
			return ErrNothingToPay.WithDetail("the checkout expired at %s", c.ExpiresAt.Format(time.RFC3339))
		}
		pending, err := s.st.checkoutPayments(ctx, db, checkoutID, PaymentPending)
		if err != nil {
			return err
		}
		if len(pending) > 0 {
			if pending[0].Provider != provider {
				return ErrPaymentExists.WithDetail("the checkout has a pending %s payment", pending[0].Provider)
			}
			p = pending[0]
			return nil
		}
		orders, err := s.st.checkoutOrders(ctx, db, checkoutID, false)
		if err != nil {
			return err
		}
		var amount int64
		for _, o := range orders {
			if o.Status == StatusPendingPayment {
				amount += o.TotalAmount
			}
		}
		if amount == 0 {
			return ErrNothingToPay
		}
		now := s.clock()
		p = Payment{ID: s.newID(buyerID), CheckoutID: c.ID, BuyerID: buyerID, Provider: provider, Amount: amount,
			Currency: Currency, Status: PaymentPending, CreatedAt: now}
		subject = fmt.Sprintf("Mall checkout %d", c.ID)
		created = true
		return s.st.insertPayment(ctx, db, p)
	})
	if err != nil {
		return Payment{}, err
	}
	if !created && p.PayURL != "" {
		return p, nil
	}
	c, err := s.st.checkout(ctx, db, checkoutID, buyerID, false)
	if err != nil {
		return Payment{}, err
	}
	if subject == "" {
		subject = fmt.Sprintf("Mall checkout %d", c.ID)
	}
	// Create at the gateway outside the transaction: the row exists first, so a
	// notification for it always finds it. Create is repeatable for the same ID.
	res, err := prov.Create(ctx, payment.Payment{ID: p.ID, Amount: p.Amount, Currency: p.Currency, Subject: subject,
		ExpiresAt: c.ExpiresAt})
	if err != nil {
		return Payment{}, fmt.Errorf("%w: %w", ErrGatewayFailed, err)
	}
	if res.PayURL != "" && res.PayURL != p.PayURL {
		if err := s.st.setPayURL(ctx, db, p.ID, res.PayURL); err != nil {
			return Payment{}, err
		}
		p.PayURL = res.PayURL
	}
	return p, nil
}

func (s *service) Payment(ctx context.Context, buyerID, paymentID int64) (Payment, error) {
	if buyerID <= 0 || paymentID <= 0 {
		return Payment{}, ErrPaymentNotFound
	}
	return s.st.payment(ctx, s.cl.ForID(paymentID), paymentID, buyerID, false)
}

// maxNotifyID is the longest notify ID the dedup table stores.
const maxNotifyID = 128

// HandleNotification: verify (else 400, nothing changes) -> find our payment (same
// provider) -> in one buyer-shard transaction: lock the payment, insert the dedup row
// (provider, notify ID) — a duplicate means the notification was applied before, so it is
// acknowledged and nothing changes — then CAS the payment pending -> succeeded and each
// pending_payment order of the checkout -> paid with order.paid. A different notification
// for a payment no longer pending changes nothing either. An order cancelled before the
// money arrived is revived as paid (order.paid_after_cancel + order.paid): the stock
// consumer re-takes its units or, when they are gone, refunds it.
//
// A signed success notification stating another amount than the payment's is never a
// success: it is recorded (dedup row, payment pending -> failed, order.payment_mismatch,
// metric, error log) in the same transaction and answered 400, every time it is delivered;
// the stock consumer then refunds whatever the gateway's own record holds for the payment
// (refundMismatch).
func (s *service) HandleNotification(ctx context.Context, provider string, form url.Values) (string, error) {
	prov, ok := s.providers[provider]
	if !ok {
		return "", ErrProviderUnknown
	}
	n, err := prov.VerifyNotification(ctx, form)
	if err != nil {
		s.m.badNotifications.Inc()
		if errors.Is(err, payment.ErrBadNotification) {
			return "", ErrBadNotification
		}
		return "", fmt.Errorf("%w: %w", ErrGatewayFailed, err)
	}
	if n.PaymentID <= 0 {
		s.m.badNotifications.Inc()
		return "", ErrBadNotification.WithDetail("unknown payment")
	}
	if n.NotifyID == "" || len(n.NotifyID) > maxNotifyID {
		s.m.badNotifications.Inc()
		return "", ErrBadNotification.WithDetail("malformed notify ID")
	}
	db := s.cl.ForID(n.PaymentID)
	var mismatch, recorded bool
	var paid Payment
	var nowPaid []int64 // orders this notification moved from pending_payment to paid
	err = db.WithinTx(ctx, func(ctx context.Context) error {
		nowPaid = nowPaid[:0]
		mismatch, recorded = false, false
		p, err := s.st.payment(ctx, db, n.PaymentID, 0, true)
		if errors.Is(err, ErrPaymentNotFound) || (err == nil && p.Provider != provider) {
			return ErrBadNotification.WithDetail("unknown payment")
		}
		if err != nil {
			return err
		}
		if n.Amount != p.Amount && n.Status != payment.StatusSucceeded {
			// No money moved: refuse and change nothing.
			return ErrBadNotification.WithDetail("amount does not match the payment")
		}
		now := s.clock()
		mismatch = n.Amount != p.Amount
		fresh, err := s.st.recordNotification(ctx, db, notificationRow{Provider: provider, NotifyID: n.NotifyID,
			PaymentID: p.ID, Status: string(n.Status), Amount: n.Amount, Mismatch: mismatch, ReceivedAt: now})
		if err != nil || !fresh {
			return err // !fresh: applied before (a redelivery): nothing to do
		}
		if mismatch {
			// The gateway took money, but not the amount asked: the payment pays nothing and
			// the difference must be reconciled. Recorded here, answered 400 below.
			recorded, paid = true, p
			if _, err := s.st.setPaymentStatus(ctx, db, p.ID, PaymentPending, PaymentFailed, now); err != nil {
				return err
			}
			return s.outbox.Add(ctx, outbox.Event{Topic: Topic, AggregateID: strconv.FormatInt(p.ID, 10),
				Type: EventPaymentMismatch, Payload: PaymentEvent{PaymentID: p.ID, CheckoutID: p.CheckoutID,
					BuyerID: p.BuyerID, Provider: provider, Amount: p.Amount, NotifiedAmount: n.Amount,
					Currency: p.Currency, TradeNo: n.TradeNo, NotifyID: n.NotifyID, OccurredAt: now}})
		}
		if n.Status != payment.StatusSucceeded || p.Status != PaymentPending {
			return nil // not a payment, or another notification of a settled payment: nothing to do
		}
		paidAt := n.PaidAt.UTC().Truncate(time.Microsecond)
		if n.PaidAt.IsZero() {
			paidAt = now
		}
		ok, err := s.st.markPaid(ctx, db, p.ID, n.TradeNo, n.NotifyID, paidAt, now)
		if err != nil || !ok {
			return err
		}
		orders, err := s.st.checkoutOrders(ctx, db, p.CheckoutID, true)
		if err != nil {
			return err
		}
		for _, o := range orders {
			switch o.Status {
			case StatusPendingPayment:
				from := o.Status
				o.Status, o.PaidAt, o.UpdatedAt = StatusPaid, paidAt, now
				ok, err := s.st.updateOrder(ctx, db, o, from)
				if err != nil {
					return err
				}
				if !ok {
					return ErrStatusConflict
				}
				if err := s.outbox.Add(ctx, s.event(EventPaid, o, false)); err != nil {
					return err
				}
				nowPaid = append(nowPaid, o.ID)
			case StatusCancelled:
				// The money arrived after the order was cancelled (timeout or the buyer):
				// revive it as paid. order.paid makes the stock consumer re-take the released
				// units if they are still there, and refund automatically otherwise (the
				// stock-lost path) — never silently dropped.
				s.m.paidAfterCancel.Inc()
				s.log.Warn("order: payment arrived for a cancelled order; reviving it as paid",
					"order_id", o.ID, "payment_id", p.ID)
				o.Status, o.PrevStatus, o.PaidAt, o.UpdatedAt = StatusPaid, StatusCancelled, paidAt, now
				ok, err := s.st.updateOrder(ctx, db, o, StatusCancelled)
				if err != nil {
					return err
				}
				if !ok {
					return ErrStatusConflict
				}
				if err := s.outbox.Add(ctx, s.event(EventPaidAfterCancel, o, false), s.event(EventPaid, o, false)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil && mismatch {
		if recorded {
			s.m.paymentMismatch.Inc()
			s.log.Error("order: payment notification states another amount; payment failed, recorded for reconciliation",
				"provider", provider, "payment_id", n.PaymentID, "checkout_id", paid.CheckoutID, "amount", paid.Amount,
				"notified_amount", n.Amount, "trade_no", n.TradeNo, "notify_id", n.NotifyID)
		}
		s.m.badNotifications.Inc()
		return "", ErrBadNotification.WithDetail("amount does not match the payment; recorded for reconciliation")
	}
	if err != nil {
		if errors.Is(err, ErrBadNotification) {
			s.m.badNotifications.Inc()
			s.log.Warn("order: payment notification refused", "provider", provider, "payment_id", n.PaymentID,
				"error", err.Error())
		}
		return "", err
	}
	// Convert the held units at once rather than only when the order.paid event reaches
	// the stock consumer: the hold cannot lapse in between, even if the event is delayed
	// (or, with the embedded development broker, lost in a crash). Confirm is idempotent;
	// the consumer repeats it and owns every failure path (stock lost, refund).
	for _, id := range nowPaid {
		if err := s.stock.Confirm(context.WithoutCancel(ctx), id); err != nil {
			s.log.Info("order: stock not confirmed at payment; the stock consumer will retry", "order_id", id, "error", err.Error())
		}
	}
	return prov.Ack(), nil
}

// SandboxComplete pays the buyer's payment at the sandbox gateway and runs the signed
// notification through HandleNotification.
func (s *service) SandboxComplete(ctx context.Context, buyerID, paymentID int64) (Payment, error) {
	if !s.sandbox {
		return Payment{}, ErrSandboxDisabled
	}
	p, err := s.Payment(ctx, buyerID, paymentID)
	if err != nil {
		return Payment{}, err
	}
	if p.Provider != SandboxProvider {
		return Payment{}, ErrPaymentNotFound.WithDetail("not a sandbox payment")
	}
	payer, ok := s.providers[SandboxProvider].(SandboxPayer)
	if !ok {
		return Payment{}, ErrSandboxDisabled.WithDetail("the sandbox provider is not configured")
	}
	if p.Status == PaymentPending {
		form, err := payer.Pay(ctx, payment.Payment{ID: p.ID, Amount: p.Amount, Currency: p.Currency,
			Subject: "Mall checkout " + strconv.FormatInt(p.CheckoutID, 10)})
		if err != nil {
			return Payment{}, fmt.Errorf("%w: %w", ErrGatewayFailed, err)
		}
		if _, err := s.HandleNotification(ctx, SandboxProvider, form); err != nil {
			return Payment{}, err
		}
	}
	return s.Payment(ctx, buyerID, paymentID)
}

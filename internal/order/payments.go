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
	"github.com/mallhq/mall/internal/platform/sqldb"
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
// buyer's checkout, then registers it with the gateway. A new payment covers exactly the
// checkout's orders pending_payment at that moment (its rows in order_payment_orders,
// written in the same transaction) and its amount is their sum. A returned pending payment
// keeps the set it was created with (ADR 0017, "Payment sets").
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
		// Locked: an order cancelled concurrently is either in the set (cancelled after the
		// payment was created) or not, never read as pending and then cancelled in between.
		orders, err := s.st.checkoutOrders(ctx, db, checkoutID, true)
		if err != nil {
			return err
		}
		paid, err := s.st.paidOrders(ctx, db, checkoutID)
		if err != nil {
			return err
		}
		id := s.newID(buyerID)
		var set []paymentOrder
		var amount int64
		for _, o := range orders {
			// A pending order is never covered by a payment that took the money (that moves
			// it to paid); checked anyway, since paying an order twice is the one thing a
			// payment set must rule out.
			if o.Status == StatusPendingPayment && !paid[o.ID] {
				set = append(set, paymentOrder{PaymentID: id, OrderID: o.ID, Amount: o.TotalAmount})
				amount += o.TotalAmount
			}
		}
		if len(set) == 0 || amount == 0 {
			return ErrNothingToPay
		}
		now := s.clock()
		p = Payment{ID: id, CheckoutID: c.ID, BuyerID: buyerID, Provider: provider, Amount: amount,
			Currency: Currency, Status: PaymentPending, CreatedAt: now}
		subject = fmt.Sprintf("Mall checkout %d", c.ID)
		created = true
		if err := s.st.insertPayment(ctx, db, p); err != nil {
			return err
		}
		return s.st.insertPaymentOrders(ctx, db, set)
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
// pending_payment order of the payment's own set (order_payment_orders) -> paid with
// order.paid; the checkout's other orders are not this money's. A different notification
// for a payment no longer pending changes nothing either. An order of the set cancelled
// after the payment was created (before the money arrived) is revived as paid
// (order.paid_after_cancel + order.paid): the stock consumer re-takes its units or, when
// they are gone, it is refunded.
//
// A signed success notification stating another amount than the payment's is never a
// success: it is recorded (dedup row, payment pending -> failed, order.payment_mismatch,
// metric, error log) in the same transaction and answered 400, every time it is delivered;
// the refunds consumer then refunds whatever the gateway's own record holds for the payment
// (refundMismatch). For a payment no longer pending (settled by a notification of the right
// amount, or failed by an earlier mismatch) it is recorded, counted and logged only: nothing
// fails and nothing is refunded automatically.
//
// The steps: verifyNotification -> decideNotification (locked reads, returns a
// notification value, no writes) -> applyNotification (the writes; what happened) ->
// afterNotification (metrics, logs, the stock reaction, the answer), driven by the value
// the transaction's last attempt returned.
func (s *service) HandleNotification(ctx context.Context, provider string, form url.Values) (string, error) {
	prov, n, err := s.verifyNotification(ctx, provider, form)
	if err != nil {
		return "", err
	}
	db := s.cl.ForID(n.PaymentID)
	var out notifyOutcome
	err = db.WithinTx(ctx, func(ctx context.Context) error {
		d, err := s.decideNotification(ctx, db, provider, n)
		if err != nil {
			return err
		}
		out, err = s.applyNotification(ctx, db, d)
		return err
	})
	return s.afterNotification(ctx, prov, provider, n, out, err)
}

// notifyAction is what a verified notification does to its payment.
type notifyAction int

const (
	// notifyNothing: not a payment, or another notification of a settled payment.
	notifyNothing notifyAction = iota
	// notifyMismatch: a success stating another amount: the payment fails, the money is
	// given back (order.payment_mismatch).
	notifyMismatch
	// notifyPaid: the payment succeeds and pays the checkout's orders.
	notifyPaid
)

// notifyOutcome is a notification decided under its payment's lock and, after
// applyNotification, what it did.
type notifyOutcome struct {
	action  notifyAction
	n       payment.Notification
	payment Payment // as locked, before the change
	row     notificationRow
	paidAt  time.Time
	// paid are the orders moving pending_payment -> paid, revived those moving
	// cancelled -> paid (the money arrived after the cancellation): as they will be stored.
	paid, revived []Order
	// strays are orders of the payment's set found neither pending nor cancelled (an
	// invariant broken elsewhere): not moved, logged as errors.
	strays []int64
	// recorded is set by applyNotification: the notification was new. A redelivery
	// (recorded false) changed nothing.
	recorded bool
	// settled is set by applyNotification for a mismatch on a payment no longer pending:
	// recorded, but nothing failed and nothing is refunded.
	settled bool
}

// verifyNotification checks the signature and the identifiers. Every refusal counts in
// mall_order_bad_payment_notifications_total.
func (s *service) verifyNotification(ctx context.Context, provider string, form url.Values) (payment.Provider, payment.Notification, error) {
	prov, ok := s.providers[provider]
	if !ok {
		return nil, payment.Notification{}, ErrProviderUnknown
	}
	n, err := prov.VerifyNotification(ctx, form)
	if err != nil {
		s.m.badNotifications.Inc()
		if errors.Is(err, payment.ErrBadNotification) {
			return nil, n, ErrBadNotification
		}
		return nil, n, fmt.Errorf("%w: %w", ErrGatewayFailed, err)
	}
	if n.PaymentID <= 0 {
		s.m.badNotifications.Inc()
		return nil, n, ErrBadNotification.WithDetail("unknown payment")
	}
	if n.NotifyID == "" || len(n.NotifyID) > maxNotifyID {
		s.m.badNotifications.Inc()
		return nil, n, ErrBadNotification.WithDetail("malformed notify ID")
	}
	return prov, n, nil
}

// decideNotification locks the payment (and, for a payment, its checkout's orders) and
// decides what the notification does. It writes nothing.
func (s *service) decideNotification(ctx context.Context, db *sqldb.DB, provider string, n payment.Notification) (notifyOutcome, error) {
	p, err := s.st.payment(ctx, db, n.PaymentID, 0, true)
	if errors.Is(err, ErrPaymentNotFound) || (err == nil && p.Provider != provider) {
		return notifyOutcome{}, ErrBadNotification.WithDetail("unknown payment")
	}
	if err != nil {
		return notifyOutcome{}, err
	}
	if n.Amount != p.Amount && n.Status != payment.StatusSucceeded {
		// No money moved: refuse and change nothing.
		return notifyOutcome{}, ErrBadNotification.WithDetail("amount does not match the payment")
	}
	now := s.clock()
	out := notifyOutcome{n: n, payment: p, row: notificationRow{Provider: provider, NotifyID: n.NotifyID,
		PaymentID: p.ID, Status: string(n.Status), Amount: n.Amount, Mismatch: n.Amount != p.Amount, ReceivedAt: now}}
	switch {
	case out.row.Mismatch:
		// The gateway took money, but not the amount asked: the payment pays nothing and
		// the difference must be reconciled. Recorded, then answered 400.
		out.action = notifyMismatch
		return out, nil
	case n.Status != payment.StatusSucceeded || p.Status != PaymentPending:
		return out, nil // notifyNothing
	}
	out.action = notifyPaid
	out.paidAt = n.PaidAt.UTC().Truncate(time.Microsecond)
	if n.PaidAt.IsZero() {
		out.paidAt = now
	}
	set, err := s.st.paymentOrders(ctx, db, p.ID)
	if err != nil {
		return notifyOutcome{}, err
	}
	covers := make(map[int64]bool, len(set))
	for _, r := range set {
		covers[r.OrderID] = true
	}
	// The checkout's orders are locked, in the order every path locks them, but only the
	// payment's own set moves: an order outside it was not pending when the payment was
	// created, so this money is not its money.
	orders, err := s.st.checkoutOrders(ctx, db, p.CheckoutID, true)
	if err != nil {
		return notifyOutcome{}, err
	}
	for _, o := range orders {
		if !covers[o.ID] {
			continue
		}
		switch o.Status {
		case StatusPendingPayment:
			o.Status, o.PaidAt, o.UpdatedAt = StatusPaid, out.paidAt, now
			out.paid = append(out.paid, o)
		case StatusCancelled:
			// The money arrived after the order was cancelled (timeout or the buyer):
			// revive it as paid. order.paid makes the stock consumer re-take the released
			// units if they are still there, and refund automatically otherwise (the
			// stock-lost path) — never silently dropped.
			o.Status, o.PrevStatus, o.PaidAt, o.UpdatedAt = StatusPaid, StatusCancelled, out.paidAt, now
			out.revived = append(out.revived, o)
		default:
			// Paid already: only another payment could have paid it, which CreatePayment
			// rules out (a set holds only orders no payment has paid). Left as it is, and
			// reported: the money for it needs a person.
			out.strays = append(out.strays, o.ID)
		}
	}
	return out, nil
}

// applyNotification writes what decideNotification decided, in its transaction, and
// returns what happened: a notification applied before (its dedup row exists) changes
// nothing.
func (s *service) applyNotification(ctx context.Context, db *sqldb.DB, out notifyOutcome) (notifyOutcome, error) {
	fresh, err := s.st.recordNotification(ctx, db, out.row)
	if err != nil || !fresh {
		return out, err // !fresh: applied before (a redelivery): nothing to do
	}
	out.recorded = true
	p, now := out.payment, out.row.ReceivedAt
	switch out.action {
	case notifyMismatch:
		failed, err := s.st.setPaymentStatus(ctx, db, p.ID, PaymentPending, PaymentFailed, now)
		if err != nil || !failed {
			// !failed: the payment was settled already (paid by a notification of the right
			// amount, or failed by an earlier mismatch, whose event is on its way). Giving back
			// "whatever the gateway holds" now would refund orders that stay paid: recorded,
			// counted and logged for an operator, nothing moves automatically.
			out.settled = !failed
			return out, err
		}
		return out, s.outbox.Add(ctx, outbox.Event{Topic: Topic, AggregateID: strconv.FormatInt(p.ID, 10),
			Type: EventPaymentMismatch, Payload: PaymentEvent{PaymentID: p.ID, CheckoutID: p.CheckoutID,
				BuyerID: p.BuyerID, Provider: p.Provider, Amount: p.Amount, NotifiedAmount: out.row.Amount,
				Currency: p.Currency, TradeNo: out.n.TradeNo, NotifyID: out.row.NotifyID, OccurredAt: now}})
	case notifyPaid:
		ok, err := s.st.markPaid(ctx, db, p.ID, out.n.TradeNo, out.row.NotifyID, out.paidAt, now)
		if err != nil {
			return out, err
		}
		if !ok {
			out.action, out.paid, out.revived, out.strays = notifyNothing, nil, nil, nil
			return out, nil
		}
		for _, o := range out.paid {
			if err := s.storePaid(ctx, db, o, StatusPendingPayment, s.event(EventPaid, o, false)); err != nil {
				return out, err
			}
		}
		for _, o := range out.revived {
			if err := s.storePaid(ctx, db, o, StatusCancelled, s.event(EventPaidAfterCancel, o, false),
				s.event(EventPaid, o, false)); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

// storePaid writes an order moving from -> paid (compare-and-set) and its events.
func (s *service) storePaid(ctx context.Context, db *sqldb.DB, o Order, from Status, events ...outbox.Event) error {
	ok, err := s.st.updateOrder(ctx, db, o, from)
	if err != nil {
		return err
	}
	if !ok {
		return ErrStatusConflict
	}
	return s.outbox.Add(ctx, events...)
}

// afterNotification runs once the transaction is over: metrics and logs of what happened,
// the stock reaction of the orders now paid, and the answer to the gateway.
func (s *service) afterNotification(ctx context.Context, prov payment.Provider, provider string, n payment.Notification, out notifyOutcome, err error) (string, error) {
	if err != nil {
		if errors.Is(err, ErrBadNotification) {
			s.m.badNotifications.Inc()
			s.log.Warn("order: payment notification refused", "provider", provider, "payment_id", n.PaymentID,
				"error", err.Error())
		}
		return "", err
	}
	if out.action == notifyMismatch {
		switch {
		case out.recorded && out.settled:
			s.m.paymentMismatch.Inc()
			s.log.Error("order: payment notification states another amount for a settled payment; recorded for reconciliation, nothing refunded",
				"provider", provider, "payment_id", n.PaymentID, "payment_status", string(out.payment.Status), "amount", out.payment.Amount,
				"notified_amount", n.Amount, "trade_no", n.TradeNo, "notify_id", n.NotifyID)
		case out.recorded:
			s.m.paymentMismatch.Inc()
			s.log.Error("order: payment notification states another amount; payment failed, recorded for reconciliation",
				"provider", provider, "payment_id", n.PaymentID, "checkout_id", out.payment.CheckoutID, "amount", out.payment.Amount,
				"notified_amount", n.Amount, "trade_no", n.TradeNo, "notify_id", n.NotifyID)
		}
		s.m.badNotifications.Inc()
		return "", ErrBadNotification.WithDetail("amount does not match the payment; recorded for reconciliation")
	}
	if !out.recorded {
		return prov.Ack(), nil
	}
	for _, id := range out.strays {
		s.log.Error("order: a payment's order was already paid; its share of the money pays nothing",
			"order_id", id, "payment_id", out.payment.ID)
	}
	for _, o := range out.revived {
		s.m.paidAfterCancel.Inc()
		s.log.Warn("order: payment arrived for a cancelled order; revived it as paid",
			"order_id", o.ID, "payment_id", out.payment.ID)
	}
	// The stock reaction at once rather than only when order.paid reaches the stock
	// consumer: the hold cannot lapse in between, even if the event is delayed (or, with the
	// embedded development broker, lost in a crash). It is idempotent; the consumer repeats
	// it, so a failure here is only logged.
	for _, o := range out.paid {
		if err := s.confirmStock(context.WithoutCancel(ctx), o.ID); err != nil {
			s.log.Info("order: stock not confirmed at payment; the stock consumer will retry", "order_id", o.ID, "error", err.Error())
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

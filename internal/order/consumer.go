package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mallhq/mall/internal/order/payment"
	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/stock"
)

// StockGroup is the consumer group turning order events into stock changes.
const StockGroup = "mall.order.stock"

// newStockHandler: order.paid -> stock.Confirm, order.cancelled -> stock.Release,
// order.refunded -> stock.Return(everything); order.payment_mismatch -> refund the money. The inbox (on db.main) records each event
// once; the stock calls are idempotent per order, so a crash anywhere converges on
// redelivery.
func newStockHandler(s *service) kafkax.Handler {
	return kafkax.Handler{Group: StockGroup, Topics: []string{Topic}, Handle: s.handleStockEvent,
		Types: []string{EventPaid, EventCancelled, EventRefunded, EventPaymentMismatch}}
}

// detached drops the context's values (the inbox transaction on db.main) but keeps its
// cancellation: the stock module runs its own transactions and must not join ours (a
// transaction never spans two modules, and a failed stock call must roll back alone).
type detached struct{ context.Context }

func (detached) Value(any) any { return nil }

func (s *service) handleStockEvent(ctx context.Context, ev kafkax.Envelope) error {
	switch ev.Type {
	case EventPaid, EventCancelled, EventRefunded:
	case EventPaymentMismatch:
		var p PaymentEvent
		if err := json.Unmarshal(ev.Payload, &p); err != nil || p.PaymentID <= 0 {
			s.log.Error("order: undecodable payment event skipped", "event_id", ev.ID, "type", ev.Type)
			return nil
		}
		return s.refundMismatch(detached{ctx}, p)
	default:
		return nil
	}
	var p OrderEvent
	if err := json.Unmarshal(ev.Payload, &p); err != nil || p.OrderID <= 0 {
		// Never applicable; blocking the partition would stop every later order event.
		s.log.Error("order: undecodable order event skipped", "event_id", ev.ID, "type", ev.Type)
		return nil
	}
	sctx := detached{ctx}
	switch ev.Type {
	case EventPaid:
		o, err := s.get(sctx, p.OrderID, scope{})
		if err != nil {
			return err
		}
		if !o.StockLost { // once lost, never re-take: the money may already be on its way back
			err = s.stock.Confirm(sctx, p.OrderID)
			if errors.Is(err, stock.ErrReservationNotFound) {
				return nil // an order that holds no stock (an auction lot without a product)
			}
			if !errors.Is(err, stock.ErrInsufficient) {
				return err
			}
		}
		return s.refundStockLost(ctx, p.OrderID)
	case EventCancelled:
		return s.stock.Release(sctx, p.OrderID)
	case EventRefunded:
		err := s.stock.Return(sctx, p.OrderID, nil)
		if errors.Is(err, stock.ErrReservationNotFound) {
			return nil // nothing was bought (a stock-lost order): nothing to return
		}
		return err
	}
	return nil
}

// refundMismatch is the compensation for a payment whose gateway took another amount than
// we asked (order.payment_mismatch; the payment is failed and pays for nothing): whatever
// the gateway says it holds for the payment is given back. The gateway's own record (Query)
// decides, not the notification: a payment the gateway does not hold as succeeded has nothing
// to refund. The refund ID is the payment's ID (IDs never repeat across kinds), so a
// redelivery refunds once at the gateway.
func (s *service) refundMismatch(ctx context.Context, ev PaymentEvent) error {
	prov, ok := s.providers[ev.Provider]
	if !ok {
		return ErrGatewayFailed.WithDetail("payment provider %q is not configured", ev.Provider)
	}
	st, err := prov.Query(ctx, ev.PaymentID)
	if err != nil {
		return fmt.Errorf("order: query mismatched payment %d: %w", ev.PaymentID, err)
	}
	if st.Status != payment.StatusSucceeded || st.Amount <= 0 {
		s.log.Warn("order: mismatched payment holds no money at the gateway; nothing to refund",
			"payment_id", ev.PaymentID, "gateway_status", string(st.Status))
		return nil
	}
	res, err := prov.Refund(ctx, payment.RefundRequest{PaymentID: ev.PaymentID, RefundID: ev.PaymentID,
		Amount: st.Amount, Reason: "payment amount did not match the order"})
	if err != nil {
		return fmt.Errorf("order: refund mismatched payment %d: %w", ev.PaymentID, err)
	}
	s.m.mismatchRefunded.Inc()
	s.log.Warn("order: refunded a payment whose amount did not match", "payment_id", ev.PaymentID,
		"refunded", res.Refunded, "checkout_id", ev.CheckoutID)
	return s.st.addRefunded(ctx, s.cl.ForID(ev.PaymentID), ev.PaymentID, res.Refunded, s.clock())
}

// refundStockLost handles a paid order whose stock was gone when the payment arrived
// (its hold had lapsed and others bought the units): it flags the order and announces
// order.stock_lost, then gives the money back through the gateway (idempotent by the
// order's refund ID) and moves the order paid -> refunded. Every step is idempotent, so a
// retry after a crash anywhere converges.
func (s *service) refundStockLost(ctx context.Context, orderID int64) error {
	ctx = detached{ctx}
	db := s.cl.ForID(orderID)
	var o Order
	err := db.WithinTx(ctx, func(ctx context.Context) error {
		var err error
		if o, err = s.st.order(ctx, db, orderID, scope{}, true); err != nil {
			return err
		}
		if o.StockLost {
			return nil
		}
		from := o.Status
		o.StockLost = true
		if o.RefundID == 0 {
			o.RefundID = s.newID(o.BuyerID)
		}
		if o.RefundReason == "" {
			o.RefundReason = "stock unavailable when the payment arrived"
		}
		o.UpdatedAt = s.clock()
		ok, err := s.st.updateOrder(ctx, db, o, from)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("order %d changed while being marked", orderID)
		}
		s.m.stockLost.Inc()
		s.log.Error("order: paid after its stock hold lapsed and the stock is gone; refunding",
			"order_id", orderID, "buyer_id", o.BuyerID)
		return s.outbox.Add(ctx, s.event(EventStockLost, o, false))
	})
	if err != nil {
		return err
	}
	if o.Status != StatusPaid {
		// Moved on meanwhile (a refund request, a shipment): the flag and the event are the
		// alarm; people decide.
		return nil
	}
	if err := s.refundMoney(ctx, o); err != nil {
		return err
	}
	_, err = s.transition(ctx, orderID, scope{}, change{from: []Status{StatusPaid}, to: StatusRefunded,
		event: EventRefunded, apply: func(o *Order, from Status) { o.PrevStatus = from }})
	if isConflict(err) {
		return nil
	}
	return err
}

package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/stock"
)

// Consumer groups of the module's own events. Both are retry nets without an inbox
// (kafkax.Handler.NoInbox, docs/adr/0024): every effect is idempotent per order or payment
// and commits in its own module's transaction, so a redelivery only repeats what is done.
const (
	// StockGroup turns order events into stock changes: order.paid -> stock.Confirm (or,
	// when the stock is gone, the stock-lost flag), order.cancelled -> stock.Release,
	// order.refunded -> stock.Return(everything).
	StockGroup = "mall.order.stock"
	// RefundsGroup gives money back through the gateway: order.payment_mismatch and
	// order.stock_lost. A group of its own, so a slow gateway holds up refunds only, never
	// the stock reactions on the same partitions; and a refund the gateway does not carry
	// out is parked (refunds.go) instead of failing the event, so not even the refunds of
	// other orders wait for it.
	RefundsGroup = "mall.order.refunds"
)

func newStockHandler(s *service) kafkax.Handler {
	return kafkax.Handler{Group: StockGroup, Topics: []string{Topic}, Handle: s.handleStockEvent, NoInbox: true,
		Types: []string{EventPaid, EventCancelled, EventRefunded}}
}

func newRefundsHandler(s *service) kafkax.Handler {
	return kafkax.Handler{Group: RefundsGroup, Topics: []string{Topic}, Handle: s.handleRefundEvent, NoInbox: true,
		Types: []string{EventPaymentMismatch, EventStockLost}}
}

// handleStockEvent repeats the order's stock reaction; each stock call is idempotent per
// order, and runs in the stock module's own transaction.
func (s *service) handleStockEvent(ctx context.Context, ev kafkax.Envelope) error {
	p, ok := s.orderEvent(ev)
	if !ok {
		return nil
	}
	switch ev.Type {
	case EventPaid:
		o, err := s.get(ctx, p.OrderID, scope{})
		if err != nil {
			return err
		}
		if o.StockLost {
			return nil // once lost, never re-take: the refunds group gives the money back
		}
		return s.confirmStock(ctx, p.OrderID)
	case EventCancelled:
		return s.stock.Release(ctx, p.OrderID)
	case EventRefunded:
		// Every line's total refunded units: a replayed or older event returns nothing more.
		// An event without them (written before line refunds) refunded everything.
		var lines []stock.Line
		for _, it := range p.Items {
			if it.RefundedQuantity > 0 {
				lines = append(lines, stock.Line{SKUID: it.SKUID, Quantity: it.RefundedQuantity})
			}
		}
		if p.Status == StatusRefunded {
			lines = nil // everything bought (a stock-lost order bought nothing)
		}
		err := s.stock.Return(ctx, p.OrderID, lines)
		switch {
		case errors.Is(err, stock.ErrReservationNotFound):
			return nil // nothing was bought (a stock-lost order): nothing to return
		case errors.Is(err, stock.ErrReservationConflict):
			// Units the order never bought (a lost line): retrying cannot change that, and
			// holding the partition would stop every later order's stock reaction.
			s.log.Error("order: refunded units not returnable to stock; skipped", "order_id", p.OrderID, "err", err)
			return nil
		}
		return err
	}
	return nil
}

// handleRefundEvent gives back money that pays for nothing. Gateway calls hold no database
// connection: every read and write around them is a statement or transaction of its own.
func (s *service) handleRefundEvent(ctx context.Context, ev kafkax.Envelope) error {
	switch ev.Type {
	case EventPaymentMismatch:
		var p PaymentEvent
		if err := json.Unmarshal(ev.Payload, &p); err != nil || p.PaymentID <= 0 {
			s.log.Error("order: undecodable payment event skipped", "event_id", ev.ID, "type", ev.Type)
			return nil
		}
		return s.refundMismatch(ctx, p)
	case EventStockLost:
		p, ok := s.orderEvent(ev)
		if !ok {
			return nil
		}
		return s.refundStockLost(ctx, p.OrderID)
	}
	return nil
}

// orderEvent decodes an order event's payload. An undecodable one is never applicable:
// blocking the partition on it would stop every later order event, so it is logged and
// skipped.
func (s *service) orderEvent(ev kafkax.Envelope) (OrderEvent, bool) {
	var p OrderEvent
	if err := json.Unmarshal(ev.Payload, &p); err != nil || p.OrderID <= 0 {
		s.log.Error("order: undecodable order event skipped", "event_id", ev.ID, "type", ev.Type)
		return OrderEvent{}, false
	}
	return p, true
}

// confirmStock is the stock reaction to an order moving to paid, the one path both for the
// payment notification (at once, after its commit) and for the stock group (the retry
// net): held units become sold, and when the stock is gone the order is flagged stock-lost
// (order.stock_lost makes the refunds group give the money back). An order that holds no
// stock (an auction lot without a product) has nothing to confirm.
func (s *service) confirmStock(ctx context.Context, orderID int64) error {
	err := s.stock.Confirm(ctx, orderID)
	switch {
	case errors.Is(err, stock.ErrReservationNotFound):
		return nil
	case errors.Is(err, stock.ErrInsufficient):
		return s.markStockLost(ctx, orderID)
	}
	return err
}

// markStockLost flags a paid order whose stock was gone when the payment arrived (its hold
// had lapsed and others bought the units) and announces order.stock_lost, in one
// buyer-shard transaction. Flagged once, however often it is called.
func (s *service) markStockLost(ctx context.Context, orderID int64) error {
	db := s.cl.ForID(orderID)
	var marked Order // the zero Order: already flagged, nothing done
	err := db.WithinTx(ctx, func(ctx context.Context) error {
		marked = Order{}
		o, err := s.st.order(ctx, db, orderID, scope{}, true)
		if err != nil || o.StockLost {
			return err
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
		if err := s.outbox.Add(ctx, s.event(EventStockLost, o, false)); err != nil {
			return err
		}
		marked = o
		return nil
	})
	if err != nil || marked.ID == 0 {
		return err
	}
	s.m.stockLost.Inc()
	s.log.Error("order: paid after its stock hold lapsed and the stock is gone; refunding",
		"order_id", orderID, "buyer_id", marked.BuyerID)
	return nil
}

// refundStockLost gives a stock-lost order's money back through the gateway (idempotent by
// the order's refund ID) and moves it paid -> refunded; a refund the gateway does not carry
// out is parked (refunds.go), never retried here: the partition moves on.
func (s *service) refundStockLost(ctx context.Context, orderID int64) error {
	f, _, ok, err := s.stockLostRefund(ctx, orderID)
	if err != nil || !ok {
		return err
	}
	_, err = s.attemptRefund(ctx, f)
	return err
}

// refundMismatch is the compensation for a payment whose gateway took another amount than
// we asked (order.payment_mismatch; the payment is failed and pays for nothing): whatever
// the gateway says it holds for the payment is given back (attemptRefund). The refund ID is
// the payment's ID (IDs never repeat across kinds), so a redelivery refunds once at the
// gateway; a refund the gateway does not carry out is parked.
func (s *service) refundMismatch(ctx context.Context, ev PaymentEvent) error {
	_, err := s.attemptRefund(ctx, ParkedRefund{Kind: RefundMismatch, RefundID: ev.PaymentID, PaymentID: ev.PaymentID,
		Provider: ev.Provider})
	return err
}

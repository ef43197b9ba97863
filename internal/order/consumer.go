package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/stock"
)

// StockGroup is the consumer group turning order events into stock changes.
const StockGroup = "mall.order.stock"

// newStockHandler: order.paid -> stock.Confirm, order.cancelled -> stock.Release,
// order.refunded -> stock.Return(everything). The inbox (on db.main) records each event
// once; the stock calls are idempotent per order, so a crash anywhere converges on
// redelivery.
func newStockHandler(s *service) kafkax.Handler {
	return kafkax.Handler{Group: StockGroup, Topics: []string{Topic}, Handle: s.handleStockEvent}
}

// detached drops the context's values (the inbox transaction on db.main) but keeps its
// cancellation: the stock module runs its own transactions and must not join ours (a
// transaction never spans two modules, and a failed stock call must roll back alone).
type detached struct{ context.Context }

func (detached) Value(any) any { return nil }

func (s *service) handleStockEvent(ctx context.Context, ev kafkax.Envelope) error {
	switch ev.Type {
	case EventPaid, EventCancelled, EventRefunded:
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
		err := s.stock.Confirm(sctx, p.OrderID)
		if errors.Is(err, stock.ErrInsufficient) {
			return s.markStockLost(ctx, p.OrderID)
		}
		return err
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

// markStockLost flags a paid order whose stock was gone when the payment arrived (the
// hold had lapsed and others bought the units) and announces it with order.stock_lost, so
// the money goes back. Idempotent: the flag is set once.
func (s *service) markStockLost(ctx context.Context, orderID int64) error {
	db := s.cl.ForID(orderID)
	return db.WithinTx(detached{ctx}, func(ctx context.Context) error {
		o, err := s.st.order(ctx, db, orderID, scope{}, true)
		if err != nil {
			return err
		}
		if o.StockLost {
			return nil
		}
		o.StockLost = true
		o.UpdatedAt = s.clock()
		ok, err := s.st.updateOrder(ctx, db, o, o.Status)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("order %d changed while being marked", orderID)
		}
		s.m.stockLost.Inc()
		s.log.Error("order: paid after its stock hold lapsed and the stock is gone; it needs a refund",
			"order_id", orderID, "buyer_id", o.BuyerID)
		return s.outbox.Add(ctx, s.event(EventStockLost, o, false))
	})
}

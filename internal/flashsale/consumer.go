package flashsale

import (
	"context"
	"encoding/json"

	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/kafkax"
)

// Consumer groups.
const (
	// IntakeGroup turns queued attempts into orders. No inbox: a ticket is recorded once
	// (its MySQL row) and its order placed once (the ticket is the checkout's idempotency
	// key), so a redelivery changes nothing.
	IntakeGroup = "mall.flashsale.intake"
	// OrdersGroup gives a cancelled flash order's units back to its sale's gate; the
	// ticket's returned flag makes it once.
	OrdersGroup = "mall.flashsale.orders"
)

func newIntakeHandler(s *service) kafkax.Handler {
	decode := func(ev kafkax.Envelope) (Attempted, bool) {
		var a Attempted
		if err := json.Unmarshal(ev.Payload, &a); err != nil || a.TicketID <= 0 || a.SaleID <= 0 || a.BuyerID <= 0 ||
			a.Quantity <= 0 {
			s.log.Error("flashsale: undecodable attempt skipped", "event_id", ev.ID)
			return a, false
		}
		return a, true
	}
	return kafkax.Handler{Group: IntakeGroup, Topics: []string{Topic}, Types: []string{EventAttempted}, NoInbox: true,
		// A partition's queued tickets go in batches: one pool commit and one ticket insert
		// per batch, not per ticket (ADR 0030).
		Batch: s.cfg.IntakeBatch,
		Handle: func(ctx context.Context, ev kafkax.Envelope) error {
			if a, ok := decode(ev); ok {
				return s.take(ctx, a)
			}
			return nil
		},
		HandleBatch: func(ctx context.Context, evs []kafkax.Envelope) error {
			as := make([]Attempted, 0, len(evs))
			for _, ev := range evs {
				if a, ok := decode(ev); ok {
					as = append(as, a)
				}
			}
			return s.takeBatch(ctx, as)
		}}
}

func newOrdersHandler(s *service) kafkax.Handler {
	return kafkax.Handler{Group: OrdersGroup, Topics: []string{order.Topic}, Types: []string{order.EventCancelled},
		NoInbox: true, Wants: func(ev kafkax.Envelope) bool {
			var p struct {
				FlashSaleID string `json:"flash_sale_id"`
			}
			return json.Unmarshal(ev.Payload, &p) == nil && p.FlashSaleID != ""
		},
		Handle: func(ctx context.Context, ev kafkax.Envelope) error {
			var p order.OrderEvent
			if err := json.Unmarshal(ev.Payload, &p); err != nil || p.OrderID <= 0 {
				s.log.Error("flashsale: undecodable order event skipped", "event_id", ev.ID)
				return nil
			}
			return s.orderCancelled(ctx, p)
		}}
}

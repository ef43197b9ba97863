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
	return kafkax.Handler{Group: IntakeGroup, Topics: []string{Topic}, Types: []string{EventAttempted}, NoInbox: true,
		Handle: func(ctx context.Context, ev kafkax.Envelope) error {
			var a Attempted
			if err := json.Unmarshal(ev.Payload, &a); err != nil || a.TicketID <= 0 || a.SaleID <= 0 || a.BuyerID <= 0 {
				s.log.Error("flashsale: undecodable attempt skipped", "event_id", ev.ID)
				return nil
			}
			return s.take(ctx, a)
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

package flashsale

import (
	"time"

	"github.com/mallhq/mall/internal/platform/kafkax"
)

// Topic carries the accepted attempts (the intake's queue), keyed by ticket: a hot sale's
// tickets spread over the partitions and are taken up in parallel.
var Topic = kafkax.Topic("flashsale")

// EventAttempted is an accepted attempt waiting for the intake.
const EventAttempted = "flash_sale.attempted"

// Attempted is the payload of flash_sale.attempted.
type Attempted struct {
	TicketID   int64     `json:"ticket_id,string"`
	SaleID     int64     `json:"sale_id,string"`
	BuyerID    int64     `json:"buyer_id,string"`
	AddressID  int64     `json:"address_id,string"`
	Quantity   int64     `json:"quantity"`
	OccurredAt time.Time `json:"occurred_at"`
	// CheckoutID and OrderID are the ticket's checkout and order, minted on the buyer's
	// shard when the attempt is accepted (order.FlashOrder); 0 in attempts queued before
	// they existed (the intake mints them then).
	CheckoutID int64 `json:"checkout_id,string,omitempty"`
	OrderID    int64 `json:"order_id,string,omitempty"`
}

// TicketMessage is what the buyer's own channel (/ws/me, realtime.UserRoom) gets when a
// ticket becomes final (API.md).
type TicketMessage struct {
	Type     string       `json:"type"` // "flash_sale.ticket"
	TicketID string       `json:"ticket_id"`
	Status   TicketStatus `json:"status"`
	OrderID  string       `json:"order_id,omitempty"`
	Code     string       `json:"code,omitempty"`
}

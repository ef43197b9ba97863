package order

import (
	"time"

	"github.com/mallhq/mall/internal/platform/kafkax"
)

// Topic carries every event of the order module, keyed by order ID.
var Topic = kafkax.Topic("order")

// Event types. Every status change writes one in the transaction of the change.
const (
	EventCreated         = "order.created"
	EventPaid            = "order.paid"
	EventCancelled       = "order.cancelled"
	EventShipped         = "order.shipped"
	EventCompleted       = "order.completed"
	EventRefundRequested = "order.refund_requested"
	EventRefunded        = "order.refunded"
	EventRefundRejected  = "order.refund_rejected"
	// EventStockLost: the order was paid after its hold lapsed and the stock was gone; it
	// must be refunded.
	EventStockLost = "order.stock_lost"
	// EventPaidAfterCancel: a payment covering the order arrived after the order was
	// cancelled; the order is revived as paid (order.paid follows), so its stock is re-taken
	// or, when gone, the money goes back (order.stock_lost, order.refunded).
	EventPaidAfterCancel = "order.paid_after_cancel"
)

// OrderEvent is the payload of every order event: the order after the change.
type OrderEvent struct {
	OrderID     int64       `json:"order_id,string"`
	CheckoutID  int64       `json:"checkout_id,string"`
	BuyerID     int64       `json:"buyer_id,string"`
	MerchantID  int64       `json:"merchant_id,string"`
	Status      Status      `json:"status"`
	PrevStatus  Status      `json:"prev_status,omitempty"`
	TotalAmount int64       `json:"total_amount"`
	Currency    string      `json:"currency"`
	Items       []EventItem `json:"items,omitempty"`
	OccurredAt  time.Time   `json:"occurred_at"`
}

// EventItem is one line in order.created.
type EventItem struct {
	SKUID    int64 `json:"sku_id,string"`
	Price    int64 `json:"price"`
	Quantity int64 `json:"quantity"`
}

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
	// EventRefundDisputed: the buyer escalated a rejected refund request to the platform.
	EventRefundDisputed = "order.refund_disputed"
	// EventDisputeRejected: the platform ruled against the buyer; the order is back in the
	// status before the request. A ruling for the buyer is order.refunded.
	EventDisputeRejected = "order.dispute_rejected"
	// EventStockLost: the order was paid after its hold lapsed and the stock was gone; it
	// must be refunded.
	EventStockLost = "order.stock_lost"
	// EventPaidAfterCancel: a payment covering the order arrived after the order was
	// cancelled; the order is revived as paid (order.paid follows), so its stock is re-taken
	// or, when gone, the money goes back (order.stock_lost, order.refunded).
	EventPaidAfterCancel = "order.paid_after_cancel"
	// EventPaymentMismatch: a correctly signed success notification for one of our
	// payments states another amount than the payment's. The payment is marked failed (its
	// orders are not paid by it; unpaid they time out) and the money the gateway took must
	// be reconciled or refunded: the event (keyed by payment ID, payload PaymentEvent) is
	// the compensation trigger. Recorded once per notification.
	EventPaymentMismatch = "order.payment_mismatch"
)

// PaymentEvent is the payload of order.payment_mismatch.
type PaymentEvent struct {
	PaymentID      int64     `json:"payment_id,string"`
	CheckoutID     int64     `json:"checkout_id,string"`
	BuyerID        int64     `json:"buyer_id,string"`
	Provider       string    `json:"provider"`
	Amount         int64     `json:"amount"`          // the payment's amount (fen)
	NotifiedAmount int64     `json:"notified_amount"` // what the gateway says it took (fen)
	Currency       string    `json:"currency"`
	TradeNo        string    `json:"trade_no"`
	NotifyID       string    `json:"notify_id"`
	OccurredAt     time.Time `json:"occurred_at"`
}

// OrderEvent is the payload of every order event: the order after the change.
type OrderEvent struct {
	OrderID     int64  `json:"order_id,string"`
	CheckoutID  int64  `json:"checkout_id,string"`
	BuyerID     int64  `json:"buyer_id,string"`
	MerchantID  int64  `json:"merchant_id,string"`
	Status      Status `json:"status"`
	PrevStatus  Status `json:"prev_status,omitempty"`
	TotalAmount int64  `json:"total_amount"`
	Currency    string `json:"currency"`
	// RefundedAmount is the money refunded so far (as of this event).
	RefundedAmount int64 `json:"refunded_amount,omitempty"`
	// Items are in order.created, order.completed and order.refunded.
	Items []EventItem `json:"items,omitempty"`
	// Refund is the refund order.refunded announces (one per refund carried out: a partial
	// refund returns the order to its earlier status, Status says which).
	Refund *EventRefund `json:"refund,omitempty"`
	// FlashSaleID is the flash sale the order came from (0: an ordinary order).
	FlashSaleID int64 `json:"flash_sale_id,string,omitempty"`
	// CompletedAt is set once the order has completed (it stays through later refunds).
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	OccurredAt  time.Time  `json:"occurred_at"`
}

// EventItem is one order line as of the event.
type EventItem struct {
	SKUID     int64 `json:"sku_id,string"`
	ProductID int64 `json:"product_id,string,omitempty"`
	Price     int64 `json:"price"`
	Quantity  int64 `json:"quantity"`
	// CommissionRateBP: the platform's commission rate of the line, fixed at placement.
	CommissionRateBP int `json:"commission_rate_bp"`
	// RefundedQuantity: units of the line refunded so far, this event's refund included.
	RefundedQuantity int64 `json:"refunded_quantity,omitempty"`
}

// EventRefund is one refund carried out: Amount (fen) went back through the gateway
// under request number RefundID, for Items' units. AfterCompletion: the order had
// completed before the refund (its settlement was posted, so the refund reverses lines).
type EventRefund struct {
	RefundID        int64        `json:"refund_id,string"`
	Amount          int64        `json:"amount"`
	Items           []RefundItem `json:"items"`
	AfterCompletion bool         `json:"after_completion"`
}

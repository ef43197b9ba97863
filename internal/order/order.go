// Package order is Mall's order module: the buyer's cart, checkout (one order per merchant
// under one checkout, stock reserved before the orders exist), the order state machine with
// compare-and-set transitions, payments through pluggable gateways (payment.Provider), the
// payment timeout and the stock reactions to order events.
//
// Orders, items, checkouts, payments and cart items live on the buyer's shard; every ID
// carries the buyer's logical shard, so an ID alone finds its database.
//
// Other modules import this package only: the Service interface, the domain types, the
// errors and the events (events.go).
package order

import (
	"context"
	"net/url"
	"time"

	"github.com/mallhq/mall/internal/platform/errs"
)

// Service is what the HTTP handlers and other modules may ask of the order module.
type Service interface {
	// Place reserves stock and creates one pending_payment order per merchant under one
	// checkout, with prices from the catalog.
	Place(ctx context.Context, cmd PlaceOrder) (Checkout, error)
	// Get returns one of the buyer's orders (ErrNotFound for another buyer's).
	Get(ctx context.Context, buyerID, orderID int64) (Order, error)
	// List returns the buyer's orders, newest first.
	List(ctx context.Context, buyerID int64, q ListQuery) ([]Order, error)
	// MerchantOrder returns one of the merchant's orders (ErrNotFound for another's).
	MerchantOrder(ctx context.Context, merchantID, orderID int64) (Order, error)
	// MerchantOrders lists the merchant's orders of every shard, newest first.
	MerchantOrders(ctx context.Context, merchantID int64, q ListQuery) ([]Order, error)

	Cancel(ctx context.Context, buyerID, orderID int64) (Order, error)
	ConfirmReceipt(ctx context.Context, buyerID, orderID int64) (Order, error)
	// RequestRefund asks for a refund of the given units (nil items: every unit not
	// refunded yet); one request is open at a time.
	RequestRefund(ctx context.Context, buyerID, orderID int64, reason string, items []RefundItem) (Order, error)
	Ship(ctx context.Context, merchantID, orderID int64, carrier, trackingNo string) (Order, error)
	ApproveRefund(ctx context.Context, merchantID, orderID int64) (Order, error)
	// RejectRefund returns the order to the status the request came from; the buyer may
	// then escalate that request once (EscalateRefund).
	RejectRefund(ctx context.Context, merchantID, orderID int64) (Order, error)
	// EscalateRefund takes the buyer's rejected refund request to the platform
	// (refund_disputed); ErrNotRejected unless the latest request was rejected by the
	// merchant and not escalated yet.
	EscalateRefund(ctx context.Context, buyerID, orderID int64) (Order, error)
	// ApproveDispute is the platform's ruling for the buyer on a refund_disputed order:
	// refunded exactly as ApproveRefund. RejectDispute rules for the merchant: back to the
	// status before the request. Either on an order not disputed is ErrStatusConflict.
	ApproveDispute(ctx context.Context, orderID int64) (Order, error)
	RejectDispute(ctx context.Context, orderID int64) (Order, error)

	Cart(ctx context.Context, buyerID int64) ([]CartItem, error)
	SetCartItem(ctx context.Context, buyerID, skuID, quantity int64) (CartItem, error)
	RemoveCartItem(ctx context.Context, buyerID, skuID int64) error

	// CreatePayment starts paying a checkout with a provider.
	CreatePayment(ctx context.Context, buyerID, checkoutID int64, provider string) (Payment, error)
	Payment(ctx context.Context, buyerID, paymentID int64) (Payment, error)
	// HandleNotification applies a gateway's notification and returns the body to answer
	// with. A notification failing verification is ErrBadNotification and changes nothing;
	// a replay changes nothing.
	HandleNotification(ctx context.Context, provider string, form url.Values) (string, error)
	// SandboxComplete makes the sandbox gateway pay the buyer's payment and deliver its
	// signed notification through HandleNotification.
	SandboxComplete(ctx context.Context, buyerID, paymentID int64) (Payment, error)
	// FailedRefunds lists the parked automatic refunds (refunds.go), newest first, before
	// the refund ID before (0: from the newest).
	FailedRefunds(ctx context.Context, before int64, limit int) ([]ParkedRefund, error)
	// RetryRefund tries a parked refund again (id: its order's, or a mismatched payment's);
	// ErrRefundNotParked when none is parked.
	RetryRefund(ctx context.Context, id int64) (ParkedRefund, error)
	// AdminOrder and AdminOrders are the operator's view of any order (every shard, newest
	// first), with the order's refunds.
	AdminOrder(ctx context.Context, orderID int64) (Order, error)
	AdminOrders(ctx context.Context, q ListQuery) ([]Order, error)
	// CompletedOrders lists every order that ever completed (CompletedAt set, whatever its
	// status now) with its items and refunds, by ascending ID after afterID: the settlement
	// check reconciles the ledger against them.
	CompletedOrders(ctx context.Context, afterID int64, limit int) ([]Order, error)
	// PlaceFlashOrder creates a flash-sale ticket's order (flash.go); idempotent per
	// ticket.
	PlaceFlashOrder(ctx context.Context, in FlashOrder) (Checkout, error)
	// PlaceFlashOrders is PlaceFlashOrder for a batch of one sale's tickets (the intake's),
	// with one pool transaction and one transaction per buyer shard (flash.go).
	PlaceFlashOrders(ctx context.Context, in []FlashOrder) ([]FlashPlaced, error)
	// PlaceAuctionOrder creates an auction winner's order (auction.go); idempotent per OrderID.
	PlaceAuctionOrder(ctx context.Context, in AuctionOrder) (Order, error)
}

// CommissionDefault is the platform's commission rate in basis points for an order line
// whose merchant has no override and whose category chain states no rate; it is fixed on
// the line when the order is placed. The settlement module provides it
// (settlement.default_commission_bp), so the order module reads no other module's config.
type CommissionDefault int

// Status is an order's state.
type Status string

// Order statuses (API.md).
const (
	StatusPendingPayment  Status = "pending_payment"
	StatusPaid            Status = "paid"
	StatusShipped         Status = "shipped"
	StatusCompleted       Status = "completed"
	StatusCancelled       Status = "cancelled"
	StatusRefundRequested Status = "refund_requested"
	StatusRefundDisputed  Status = "refund_disputed"
	StatusRefunded        Status = "refunded"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	switch s {
	case StatusPendingPayment, StatusPaid, StatusShipped, StatusCompleted, StatusCancelled,
		StatusRefundRequested, StatusRefundDisputed, StatusRefunded:
		return true
	}
	return false
}

// Currency of every amount.
const Currency = "CNY"

// PlaceOrder is a checkout request: SKUs and quantities; prices come from the catalog.
type PlaceOrder struct {
	BuyerID   int64
	AddressID int64
	Items     []LineInput
	// IdempotencyKey (the request's Idempotency-Key) is stored with the checkout, uniquely
	// per buyer. With Resumed (idempotency.Resumed: an earlier request with the key may have
	// placed a checkout and died before its response was stored) Place first looks for that
	// checkout and returns it.
	IdempotencyKey string
	Resumed        bool
}

// LineInput is one SKU and quantity of a checkout.
type LineInput struct {
	SKUID    int64
	Quantity int64
}

// Checkout is the orders placed at once; one payment pays them.
type Checkout struct {
	ID          int64
	BuyerID     int64
	TotalAmount int64
	Currency    string
	ExpiresAt   time.Time
	CreatedAt   time.Time
	Orders      []Order
}

// Order is one merchant's part of a checkout.
type Order struct {
	ID, CheckoutID, BuyerID, MerchantID int64
	Status                              Status
	// PrevStatus is the status a refund request came from (a rejection returns to it).
	PrevStatus   Status
	TotalAmount  int64
	Currency     string
	Address      Address
	Carrier      string
	TrackingNo   string
	RefundReason string
	// RefundID is the open (or last) refund request's number, also the gateway's refund
	// request number; RefundItems the open request's units (nil: every unit not refunded).
	RefundID    int64
	RefundItems []RefundItem
	// RefundedAmount is the money refunded so far; status refunded means every unit.
	RefundedAmount int64
	// Refunds are the refunds carried out, oldest first (filled by AdminOrder and
	// CompletedOrders).
	Refunds []Refund
	// FlashSaleID is the flash sale the order came from (0: an ordinary order).
	FlashSaleID int64
	// StockLost marks a paid order whose stock was gone when the payment arrived (the hold
	// had lapsed): it needs a refund.
	StockLost bool
	// RefundRejectedAt is when the merchant rejected the latest refund request; zero when
	// there is none to escalate (never rejected, asked again, or already escalated).
	RefundRejectedAt time.Time
	Items            []Item
	ExpiresAt        time.Time
	PaidAt           time.Time
	// ShippedAt and CompletedAt are zero until the order is shipped or completed; they
	// stay through a refund request (auto-completion and the after-sale window use them).
	ShippedAt   time.Time
	CompletedAt time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Item is one order line, priced at checkout.
type Item struct {
	SKUID, ProductID, MerchantID int64
	Title                        string
	Attrs                        map[string]string
	Price                        int64
	Quantity                     int64
	// CommissionRateBP is the platform's commission on the line in basis points, fixed at
	// placement. RefundedQuantity is how many units were refunded so far.
	CommissionRateBP int
	RefundedQuantity int64
}

// RefundItem is some units of one order line.
type RefundItem struct {
	SKUID    int64 `json:"sku_id,string"`
	Quantity int64 `json:"quantity"`
}

// Refund is one refund carried out: money back through the gateway (request number ID)
// and the units returned to stock. AfterCompletion: the order had completed before, so
// its settlement had been posted.
type Refund struct {
	ID, OrderID     int64
	Amount          int64
	Items           []RefundItem
	Reason          string
	AfterCompletion bool
	CreatedAt       time.Time
}

// Address is the shipping address snapshot taken at checkout.
type Address struct {
	Name     string `json:"name"`
	Phone    string `json:"phone"`
	Province string `json:"province"`
	City     string `json:"city"`
	District string `json:"district"`
	Detail   string `json:"detail"`
}

// Cursor is a position in a list ordered by (CreatedAt, ID) descending.
type Cursor struct {
	CreatedAt time.Time
	ID        int64
}

// ListQuery filters and pages a list; Status "" is every status, Before nil the first page.
type ListQuery struct {
	Status Status
	Limit  int
	Before *Cursor
}

// CartItem is one SKU in the buyer's cart with its current catalog data; OnSale false
// means the SKU cannot be ordered now (Price 0).
type CartItem struct {
	SKUID, ProductID, MerchantID int64
	Title                        string
	Attrs                        map[string]string
	Quantity                     int64
	Price                        int64
	OnSale                       bool
	UpdatedAt                    time.Time
}

// PaymentStatus is a payment's state.
type PaymentStatus string

// Payment statuses (API.md).
const (
	PaymentPending   PaymentStatus = "pending"
	PaymentSucceeded PaymentStatus = "succeeded"
	PaymentFailed    PaymentStatus = "failed"
	PaymentRefunded  PaymentStatus = "refunded"
)

// Payment pays one checkout; its ID is the gateway's out_trade_no.
type Payment struct {
	ID, CheckoutID, BuyerID int64
	Provider                string
	Amount                  int64
	Currency                string
	Status                  PaymentStatus
	PayURL                  string
	TradeNo                 string
	Refunded                int64
	PaidAt                  time.Time
	CreatedAt               time.Time
}

// Limits.
const (
	MaxLines    = 100
	MaxQuantity = 10_000
	// MaxCheckoutAmount is what one payment may carry (fen, the gateways' limit): a larger
	// checkout could never be paid.
	MaxCheckoutAmount = 100_000_000_00
	MaxCartItems      = 100
	MaxRefundReason   = 500
)

// Errors. Codes are stable (API.md).
var (
	ErrNotFound       = errs.New(errs.NotFound, "order.not_found")
	ErrStatusConflict = errs.New(errs.Conflict, "order.status_conflict")
	ErrCartFull       = errs.New(errs.Conflict, "order.cart_full")
	// ErrRefundRefused: the payment gateway refused an approved refund for a business
	// reason; it is parked for an operator's retry.
	ErrRefundRefused = errs.New(errs.Conflict, "order.refund_refused")
	// ErrRefundExceeds: a refund request for a SKU the order lacks or for more units than
	// are left to refund of a line.
	ErrRefundExceeds = errs.New(errs.Conflict, "order.refund_exceeds")
	// ErrNothingToRefund: every unit of the order was refunded already.
	ErrNothingToRefund = errs.New(errs.Conflict, "order.nothing_to_refund")
	// ErrNotRejected: an escalation without a rejected refund request to escalate.
	ErrNotRejected     = errs.New(errs.Conflict, "order.refund_not_rejected")
	ErrPaymentNotFound = errs.New(errs.NotFound, "payment.not_found")
	ErrProviderUnknown = errs.New(errs.Invalid, "payment.provider_unknown")
	ErrBadNotification = errs.New(errs.Invalid, "payment.bad_notification")
	ErrPaymentExists   = errs.New(errs.Conflict, "payment.exists")
	ErrNothingToPay    = errs.New(errs.Conflict, "payment.nothing_to_pay")
	ErrSandboxDisabled = errs.New(errs.NotFound, "payment.sandbox_disabled")
	ErrGatewayFailed   = errs.New(errs.Unavailable, "payment.gateway_unavailable")
	// ErrAfterSaleWindowOver: a refund of an order completed longer ago than
	// order.after_sale_window.
	ErrAfterSaleWindowOver = errs.New(errs.Conflict, "order.after_sale_window_over")
)

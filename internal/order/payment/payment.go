// Package payment is the order module's gateway abstraction: a Provider creates a payment
// at the gateway, verifies the gateway's asynchronous notification, queries, closes and
// refunds. Two providers: "sandbox" (a local gateway with HMAC-signed notifications, for
// development and tests) and "alipay" (RSA2-signed requests and notifications).
//
// Money is integer minor units (fen) in CNY. A payment's gateway reference
// (out_trade_no) is the payment's own ID in decimal.
package payment

import (
	"context"
	"errors"
	"net/url"
	"time"
)

// Provider is one payment gateway.
type Provider interface {
	// Name is the provider's name in the API ("sandbox", "alipay").
	Name() string
	// Create registers a payment with the gateway and returns what the buyer needs to pay
	// (a URL to redirect to, for Alipay's page pay).
	Create(ctx context.Context, p Payment) (Created, error)
	// VerifyNotification checks the signature of a notification delivered to
	// POST /api/v1/payments/notify/{provider} (form is the raw, undecoded-by-us form body)
	// and that it was addressed to us (app ID, seller), and returns its content. A forged,
	// tampered or foreign notification is ErrBadNotification. It does not look up the
	// payment: the caller checks PaymentID and Amount against what it created.
	VerifyNotification(ctx context.Context, form url.Values) (Notification, error)
	// Ack is the response body the gateway expects after a notification was processed
	// ("success" for Alipay); the HTTP status is 200.
	Ack() string
	// Query asks the gateway for the payment's state.
	Query(ctx context.Context, paymentID int64) (State, error)
	// Close tells the gateway not to accept a payment any more (before releasing stock of
	// an unpaid order). Closing an unknown or already closed payment is not an error.
	Close(ctx context.Context, paymentID int64) error
	// Refund returns amount of a succeeded payment. RefundID makes it idempotent at the
	// gateway: the same RefundID twice refunds once.
	Refund(ctx context.Context, r RefundRequest) (RefundResult, error)
}

// Payment is what the order module asks a provider to collect.
type Payment struct {
	ID        int64  // our payment ID; the gateway's out_trade_no
	Amount    int64  // fen
	Currency  string // "CNY"
	Subject   string // shown to the buyer
	ExpiresAt time.Time
}

// Created is the gateway's answer to Create.
type Created struct {
	PayURL string // empty when the provider needs no redirect
}

// Status is a payment's state at the gateway.
type Status string

// Statuses.
const (
	StatusPending   Status = "pending"
	StatusSucceeded Status = "succeeded"
	StatusClosed    Status = "closed"
)

// Notification is a verified asynchronous notification.
type Notification struct {
	PaymentID int64  // out_trade_no
	TradeNo   string // the gateway's transaction ID
	Amount    int64  // fen, as the gateway states it
	Status    Status // only StatusSucceeded means money was received
	// NotifyID identifies the notification at the gateway (replays carry the same).
	NotifyID string
	PaidAt   time.Time
}

// State is the answer to Query.
type State struct {
	Status  Status
	TradeNo string
	Amount  int64
}

// RefundRequest asks for money back.
type RefundRequest struct {
	PaymentID int64
	RefundID  int64 // our refund ID (idempotency at the gateway)
	Amount    int64 // fen, at most the payment's amount
	Reason    string
}

// RefundResult is the gateway's answer to Refund.
type RefundResult struct {
	Refunded int64 // fen refunded in total for the payment so far
}

// ErrBadNotification is a notification that fails verification; the notify endpoint
// answers 400 and changes nothing.
var ErrBadNotification = errors.New("payment: notification failed verification")

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
	"fmt"
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
	// Query asks the gateway for the payment's state. A payment the gateway does not know
	// yet (the buyer never opened the pay page) is StatusPending: it may still be paid
	// until it expires, so Close it before giving up on it.
	Query(ctx context.Context, paymentID int64) (State, error)
	// Close tells the gateway not to accept a payment any more (before releasing stock of
	// an unpaid order). Closing an unknown or already closed payment is not an error;
	// closing a payment the buyer already paid is ErrPaid (the order must not be cancelled:
	// the success notification is on its way, or Query shows it).
	Close(ctx context.Context, paymentID int64) error
	// Refund returns amount of a succeeded payment. RefundID makes it idempotent at the
	// gateway: the same RefundID twice refunds once, so after an error whose outcome is
	// unknown (transport, ErrBadResponse, a Temporary GatewayError) retry with the same
	// RefundID and amount. A business refusal is ErrRefundRefused.
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
	PaidAt   time.Time // zero when the gateway did not say
	// Refunded is the total refunded so far (fen) when the notification reports a refund
	// (Alipay notifies refunds too: TRADE_SUCCESS after a partial refund, TRADE_CLOSED
	// after a full one); 0 otherwise.
	Refunded int64
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

// Errors. Providers wrap them with the reason (errors.Is matches).
var (
	// ErrBadNotification is a notification that fails verification; the notify endpoint
	// answers 400 and changes nothing.
	ErrBadNotification = errors.New("payment: notification failed verification")
	// ErrBadResponse is a gateway response that is unsigned, wrongly signed or malformed:
	// nothing in it can be trusted, so the call's outcome is unknown (retry or query).
	ErrBadResponse = errors.New("payment: gateway response failed verification")
	// ErrPaid is Close of a payment that already succeeded at the gateway.
	ErrPaid = errors.New("payment: already paid at the gateway")
	// ErrInvalidRequest is a Create or Refund the provider refuses before calling the
	// gateway (non-positive IDs or amounts, an unsupported currency, an expiry in the past).
	ErrInvalidRequest = errors.New("payment: invalid request")
	// ErrRefundRefused is a Refund the gateway answered with a business refusal (trade
	// closed, balance too low, refund window over, amount exceeded, ...): the same request
	// gets the same answer, so it is not retried on its own; people decide. The
	// *GatewayError rides along (errors.As). Any other Refund error is transient or of
	// unknown outcome: retry with the same RefundID.
	ErrRefundRefused = errors.New("payment: refund refused by the gateway")
)

// refundError classifies a Refund's gateway error: a GatewayError that is not Temporary is
// a refusal (ErrRefundRefused wrapping it); anything else is returned as it is.
func refundError(err error) error {
	var ge *GatewayError
	if errors.As(err, &ge) && !ge.Temporary() {
		return fmt.Errorf("%w: %w", ErrRefundRefused, err)
	}
	return err
}

// GatewayError is the gateway's refusal of a call: it answered (signed, when the gateway
// signs its answers) with a business error code.
type GatewayError struct {
	Provider string
	Code     string // "40004" for Alipay; the sandbox uses its own codes
	Msg      string
	SubCode  string // "ACQ.TRADE_NOT_EXIST", ...
	SubMsg   string
}

func (e *GatewayError) Error() string {
	s := "payment: " + e.Provider + ": " + e.Code
	if e.Msg != "" {
		s += " " + e.Msg
	}
	if e.SubCode != "" {
		s += ": " + e.SubCode
	}
	if e.SubMsg != "" {
		s += " " + e.SubMsg
	}
	return s
}

// Temporary reports whether retrying the same call later may succeed.
func (e *GatewayError) Temporary() bool {
	return e.Code == "20000" || e.SubCode == "ACQ.SYSTEM_ERROR" || e.SubCode == "aop.ACQ.SYSTEM_ERROR"
}

package payment

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// SandboxConfig configures the sandbox gateway.
type SandboxConfig struct {
	// Secret is the HMAC-SHA256 key notifications are signed with; at least 16 bytes.
	Secret string
	// PayURLPrefix is what PayURL starts with: PayURL is PayURLPrefix + "/{id}/sandbox/complete".
	// Default "/api/v1/payments" (the buyer POSTs there, see API.md).
	PayURLPrefix string
	// MaxAge is how old a notification may be (its timestamp field) before it is stale.
	// Default 15 minutes.
	MaxAge time.Duration
}

// maxSkew is how far in the future a sandbox notification's timestamp may be.
const maxSkew = time.Minute

// Sandbox is a local gateway for development and tests: no network, notifications signed
// with HMAC-SHA256. Payments live in an in-memory map: the sandbox is single-process and
// forgets everything on restart (Complete recreates a payment it does not know; Query of
// an unknown payment answers pending). Safe for concurrent use.
type Sandbox struct {
	secret []byte
	prefix string
	maxAge time.Duration
	now    func() time.Time

	mu       sync.Mutex
	payments map[int64]*sandboxPayment
}

type sandboxPayment struct {
	amount   int64
	status   Status
	tradeNo  string
	notifyID string
	paidAt   time.Time
	refunded int64
	refunds  map[int64]int64 // refund ID -> amount
}

var _ Provider = (*Sandbox)(nil)

// Sandbox notification fields. Every one of them is signed; a form with any other field
// is rejected (nothing unsigned can ride along, and values never contain '&' or '=').
const (
	sbPaymentID = "payment_id"
	sbTradeNo   = "trade_no"
	sbAmount    = "amount" // fen
	sbStatus    = "status"
	sbNotifyID  = "notify_id"
	sbTimestamp = "timestamp" // unix seconds when signed
	sbPaidAt    = "paid_at"   // unix seconds, optional
	sbRefunded  = "refunded"  // fen, optional
	sbSign      = "sign"      // hex HMAC-SHA256 of the canonical string
)

var sandboxFields = map[string]bool{sbPaymentID: true, sbTradeNo: true, sbAmount: true, sbStatus: true,
	sbNotifyID: true, sbTimestamp: true, sbPaidAt: true, sbRefunded: true, sbSign: true}

// NewSandbox returns the sandbox gateway.
func NewSandbox(cfg SandboxConfig) (*Sandbox, error) {
	if len(cfg.Secret) < 16 {
		return nil, errors.New("payment: sandbox: secret must be at least 16 bytes")
	}
	if cfg.PayURLPrefix == "" {
		cfg.PayURLPrefix = "/api/v1/payments"
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 15 * time.Minute
	}
	return &Sandbox{
		secret:   []byte(cfg.Secret),
		prefix:   cfg.PayURLPrefix,
		maxAge:   cfg.MaxAge,
		now:      time.Now,
		payments: make(map[int64]*sandboxPayment),
	}, nil
}

// Name is "sandbox".
func (s *Sandbox) Name() string { return "sandbox" }

// Ack is "success".
func (s *Sandbox) Ack() string { return "success" }

func (s *Sandbox) refuse(code, msg string) error {
	return &GatewayError{Provider: "sandbox", Code: code, Msg: msg}
}

// Create records the payment as pending and returns the sandbox completion URL.
// Creating the same payment again with the same amount is fine.
func (s *Sandbox) Create(_ context.Context, p Payment) (Created, error) {
	if err := validatePayment(p, s.now()); err != nil {
		return Created{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec, ok := s.payments[p.ID]; ok {
		if rec.amount != p.Amount {
			return Created{}, fmt.Errorf("%w: payment %d exists with another amount", ErrInvalidRequest, p.ID)
		}
		if rec.status == StatusClosed {
			return Created{}, s.refuse("TRADE_CLOSED", "the payment is closed")
		}
	} else {
		s.payments[p.ID] = &sandboxPayment{amount: p.Amount, status: StatusPending}
	}
	return Created{PayURL: s.prefix + "/" + strconv.FormatInt(p.ID, 10) + "/sandbox/complete"}, nil
}

// Complete is the buyer paying at the sandbox gateway: the payment succeeds and Complete
// returns the signed notification form the gateway would deliver, for the caller to feed
// through the notify path. amount is the payment's amount (fen): a payment this process
// does not know (restart, another instance) is recreated from it. Completing again
// returns the same notification re-signed (a redelivery). Completing a closed payment is
// a GatewayError.
func (s *Sandbox) Complete(_ context.Context, paymentID, amount int64) (url.Values, error) {
	if paymentID <= 0 || amount <= 0 || amount > maxFen {
		return nil, fmt.Errorf("%w: payment %d amount %d", ErrInvalidRequest, paymentID, amount)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.payments[paymentID]
	if !ok {
		rec = &sandboxPayment{amount: amount, status: StatusPending}
		s.payments[paymentID] = rec
	}
	if rec.amount != amount {
		return nil, fmt.Errorf("%w: payment %d has another amount", ErrInvalidRequest, paymentID)
	}
	switch rec.status {
	case StatusClosed:
		if rec.tradeNo == "" {
			return nil, s.refuse("TRADE_CLOSED", "the payment is closed")
		}
	case StatusPending:
		rec.status = StatusSucceeded
		rec.tradeNo = "sandbox-" + rand.Text()
		rec.notifyID = rand.Text()
		rec.paidAt = s.now().Truncate(time.Second)
	}
	return s.Sign(Notification{
		PaymentID: paymentID,
		TradeNo:   rec.tradeNo,
		Amount:    rec.amount,
		Status:    StatusSucceeded,
		NotifyID:  rec.notifyID,
		PaidAt:    rec.paidAt,
	}), nil
}

// Pay is Complete for a Payment: the order module's sandbox completion route calls it.
func (s *Sandbox) Pay(ctx context.Context, p Payment) (url.Values, error) {
	return s.Complete(ctx, p.ID, p.Amount)
}

// Sign builds a notification form for n, timestamped now and signed with the secret.
// A missing NotifyID gets a random one. Fields that are zero are left out.
func (s *Sandbox) Sign(n Notification) url.Values {
	form := url.Values{}
	form.Set(sbPaymentID, strconv.FormatInt(n.PaymentID, 10))
	form.Set(sbTradeNo, n.TradeNo)
	form.Set(sbAmount, strconv.FormatInt(n.Amount, 10))
	form.Set(sbStatus, string(n.Status))
	if n.NotifyID == "" {
		n.NotifyID = rand.Text()
	}
	form.Set(sbNotifyID, n.NotifyID)
	form.Set(sbTimestamp, strconv.FormatInt(s.now().Unix(), 10))
	if !n.PaidAt.IsZero() {
		form.Set(sbPaidAt, strconv.FormatInt(n.PaidAt.Unix(), 10))
	}
	if n.Refunded > 0 {
		form.Set(sbRefunded, strconv.FormatInt(n.Refunded, 10))
	}
	for k, vs := range form {
		if vs[0] == "" {
			delete(form, k)
		}
	}
	msg, _ := canonical(form, sbSign) // Set never makes a field twice
	form.Set(sbSign, s.mac(msg))
	return form
}

func (s *Sandbox) mac(msg string) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

func badNotification(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadNotification}, args...)...)
}

// VerifyNotification checks a sandbox notification: only known fields, each once; the
// HMAC (constant-time compare); the timestamp no older than MaxAge and not in the future;
// then parses the fields strictly.
func (s *Sandbox) VerifyNotification(_ context.Context, form url.Values) (Notification, error) {
	for k := range form {
		if !sandboxFields[k] {
			return Notification{}, badNotification("unknown field %q", k)
		}
	}
	msg, err := canonical(form, sbSign)
	if err != nil {
		return Notification{}, badNotification("%v", err)
	}
	// Exactly the lowercase hex Sign writes: no second spelling of a signature.
	if !hmac.Equal([]byte(form.Get(sbSign)), []byte(s.mac(msg))) {
		return Notification{}, badNotification("missing or wrong signature")
	}

	ts, ok := parseID(form.Get(sbTimestamp))
	if !ok {
		return Notification{}, badNotification("missing or malformed timestamp")
	}
	now := s.now()
	signedAt := time.Unix(ts, 0)
	if now.Sub(signedAt) > s.maxAge {
		return Notification{}, badNotification("stale: signed at %s", signedAt.UTC().Format(time.RFC3339))
	}
	if signedAt.Sub(now) > maxSkew {
		return Notification{}, badNotification("timestamp in the future")
	}

	var n Notification
	if n.PaymentID, ok = parseID(form.Get(sbPaymentID)); !ok {
		return Notification{}, badNotification("malformed payment_id")
	}
	if n.Amount, ok = parseID(form.Get(sbAmount)); !ok || n.Amount > maxFen {
		return Notification{}, badNotification("malformed amount")
	}
	switch st := Status(form.Get(sbStatus)); st {
	case StatusPending, StatusSucceeded, StatusClosed:
		n.Status = st
	default:
		return Notification{}, badNotification("unknown status")
	}
	if n.TradeNo = form.Get(sbTradeNo); n.TradeNo == "" {
		return Notification{}, badNotification("missing trade_no")
	}
	if n.NotifyID = form.Get(sbNotifyID); n.NotifyID == "" {
		return Notification{}, badNotification("missing notify_id")
	}
	if v := form.Get(sbPaidAt); v != "" {
		sec, ok := parseID(v)
		if !ok {
			return Notification{}, badNotification("malformed paid_at")
		}
		n.PaidAt = time.Unix(sec, 0)
	}
	if v := form.Get(sbRefunded); v != "" {
		if n.Refunded, ok = parseID(v); !ok || n.Refunded > n.Amount {
			return Notification{}, badNotification("malformed refunded")
		}
	}
	return n, nil
}

// Query reports the payment's state; a payment this process does not know is pending.
func (s *Sandbox) Query(_ context.Context, paymentID int64) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.payments[paymentID]
	if !ok {
		return State{Status: StatusPending}, nil
	}
	return State{Status: rec.status, TradeNo: rec.tradeNo, Amount: rec.amount}, nil
}

// Close closes a pending payment: a later Complete fails. Closing an unknown or closed
// payment is fine (an unknown one is remembered as closed); a paid one is ErrPaid.
func (s *Sandbox) Close(_ context.Context, paymentID int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.payments[paymentID]
	if !ok {
		s.payments[paymentID] = &sandboxPayment{status: StatusClosed}
		return nil
	}
	switch rec.status {
	case StatusPending:
		rec.status = StatusClosed
	case StatusSucceeded:
		return ErrPaid
	}
	return nil
}

// Refund refunds part or all of a succeeded payment, once per RefundID (the same
// RefundID with the same amount again answers the current total; with another amount it
// is refused). A fully refunded payment is closed, as at Alipay. Refusals are
// ErrRefundRefused.
func (s *Sandbox) Refund(_ context.Context, r RefundRequest) (RefundResult, error) {
	if r.PaymentID <= 0 || r.RefundID <= 0 || r.Amount <= 0 || r.Amount > maxFen {
		return RefundResult{}, fmt.Errorf("%w: refund %d of payment %d amount %d", ErrInvalidRequest, r.RefundID, r.PaymentID, r.Amount)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.payments[r.PaymentID]
	if !ok {
		return RefundResult{}, refundError(s.refuse("TRADE_NOT_EXIST", "no such payment"))
	}
	if prev, ok := rec.refunds[r.RefundID]; ok {
		if prev != r.Amount {
			return RefundResult{}, refundError(s.refuse("REFUND_ID_REUSED", "the refund ID was used with another amount"))
		}
		return RefundResult{Refunded: rec.refunded}, nil
	}
	if rec.status != StatusSucceeded {
		return RefundResult{}, refundError(s.refuse("TRADE_STATUS_ERROR", "the payment is "+string(rec.status)))
	}
	if rec.refunded+r.Amount > rec.amount {
		return RefundResult{}, refundError(s.refuse("REFUND_AMOUNT_EXCEEDED", "refunds exceed the payment"))
	}
	if rec.refunds == nil {
		rec.refunds = make(map[int64]int64)
	}
	rec.refunds[r.RefundID] = r.Amount
	rec.refunded += r.Amount
	if rec.refunded == rec.amount {
		rec.status = StatusClosed
	}
	return RefundResult{Refunded: rec.refunded}, nil
}

// validatePayment checks what both providers need of a payment.
func validatePayment(p Payment, now time.Time) error {
	switch {
	case p.ID <= 0:
		return fmt.Errorf("%w: payment ID %d", ErrInvalidRequest, p.ID)
	case p.Amount <= 0 || p.Amount > maxFen:
		return fmt.Errorf("%w: amount %d fen", ErrInvalidRequest, p.Amount)
	case p.Currency != "" && p.Currency != "CNY":
		return fmt.Errorf("%w: currency %q (only CNY)", ErrInvalidRequest, p.Currency)
	case !p.ExpiresAt.IsZero() && !p.ExpiresAt.After(now):
		return fmt.Errorf("%w: expires at %s, in the past", ErrInvalidRequest, p.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

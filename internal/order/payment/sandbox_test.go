package payment

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSecret = "sandbox-test-secret-0123456789"

var sandboxNow = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func newTestSandbox(t testing.TB) *Sandbox {
	t.Helper()
	s, err := NewSandbox(SandboxConfig{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return sandboxNow }
	return s
}

func TestNewSandboxRejectsShortSecret(t *testing.T) {
	if _, err := NewSandbox(SandboxConfig{Secret: "short"}); err == nil {
		t.Fatal("want an error")
	}
}

func TestSandboxFlow(t *testing.T) {
	ctx := context.Background()
	s := newTestSandbox(t)
	c, err := s.Create(ctx, Payment{ID: 42, Amount: 12345, Currency: "CNY", Subject: "x", ExpiresAt: sandboxNow.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if c.PayURL != "/api/v1/payments/42/sandbox/complete" {
		t.Fatalf("PayURL = %q", c.PayURL)
	}
	if st, _ := s.Query(ctx, 42); st.Status != StatusPending {
		t.Fatalf("Query = %+v", st)
	}
	form, err := s.Complete(ctx, 42, 12345)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.VerifyNotification(ctx, form)
	if err != nil {
		t.Fatal(err)
	}
	if n.PaymentID != 42 || n.Amount != 12345 || n.Status != StatusSucceeded || n.TradeNo == "" || n.NotifyID == "" || !n.PaidAt.Equal(sandboxNow) {
		t.Fatalf("notification = %+v", n)
	}
	again, err := s.Complete(ctx, 42, 12345)
	if err != nil {
		t.Fatal(err)
	}
	n2, err := s.VerifyNotification(ctx, again)
	if err != nil || n2 != n {
		t.Fatalf("redelivery = %+v, %v; want %+v", n2, err, n)
	}
	if st, _ := s.Query(ctx, 42); st.Status != StatusSucceeded || st.Amount != 12345 || st.TradeNo != n.TradeNo {
		t.Fatalf("Query = %+v", st)
	}
	if err := s.Close(ctx, 42); !errors.Is(err, ErrPaid) {
		t.Fatalf("Close of a paid payment = %v, want ErrPaid", err)
	}
	if s.Ack() != "success" || s.Name() != "sandbox" {
		t.Fatal("Ack/Name")
	}
}

func TestSandboxCreateValidates(t *testing.T) {
	ctx := context.Background()
	s := newTestSandbox(t)
	tests := []Payment{
		{ID: 0, Amount: 1},
		{ID: 1, Amount: 0},
		{ID: 1, Amount: -5},
		{ID: 1, Amount: maxFen + 1},
		{ID: 1, Amount: 1, Currency: "USD"},
		{ID: 1, Amount: 1, ExpiresAt: sandboxNow.Add(-time.Second)},
	}
	for _, tt := range tests {
		if _, err := s.Create(ctx, tt); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("Create(%+v) = %v, want ErrInvalidRequest", tt, err)
		}
	}
	if _, err := s.Create(ctx, Payment{ID: 7, Amount: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, Payment{ID: 7, Amount: 100}); err != nil {
		t.Fatalf("same payment again: %v", err)
	}
	if _, err := s.Create(ctx, Payment{ID: 7, Amount: 101}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("other amount: %v", err)
	}
	if _, err := s.Complete(ctx, 7, 101); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("Complete with another amount: %v", err)
	}
}

func TestSandboxClose(t *testing.T) {
	ctx := context.Background()
	s := newTestSandbox(t)
	if err := s.Close(ctx, 9); err != nil {
		t.Fatalf("Close unknown: %v", err)
	}
	if _, err := s.Complete(ctx, 9, 100); err == nil {
		t.Fatal("Complete after Close succeeded")
	}
	if _, err := s.Create(ctx, Payment{ID: 10, Amount: 100}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Close(ctx, 10); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	var ge *GatewayError
	if _, err := s.Complete(ctx, 10, 100); !errors.As(err, &ge) || ge.Code != "TRADE_CLOSED" {
		t.Fatalf("Complete after Close = %v", err)
	}
	if st, _ := s.Query(ctx, 10); st.Status != StatusClosed {
		t.Fatalf("Query = %+v", st)
	}
}

func TestSandboxRefund(t *testing.T) {
	ctx := context.Background()
	s := newTestSandbox(t)
	code := func(err error) string {
		var ge *GatewayError
		if errors.As(err, &ge) {
			return ge.Code
		}
		return ""
	}
	if _, err := s.Refund(ctx, RefundRequest{PaymentID: 5, RefundID: 1, Amount: 1}); code(err) != "TRADE_NOT_EXIST" {
		t.Fatalf("refund unknown: %v", err)
	}
	if _, err := s.Create(ctx, Payment{ID: 5, Amount: 1000}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Refund(ctx, RefundRequest{PaymentID: 5, RefundID: 1, Amount: 1}); code(err) != "TRADE_STATUS_ERROR" {
		t.Fatalf("refund unpaid: %v", err)
	}
	if _, err := s.Complete(ctx, 5, 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Refund(ctx, RefundRequest{PaymentID: 5, RefundID: 1, Amount: 0}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("zero refund: %v", err)
	}
	for range 2 {
		r, err := s.Refund(ctx, RefundRequest{PaymentID: 5, RefundID: 1, Amount: 300})
		if err != nil || r.Refunded != 300 {
			t.Fatalf("refund 1 = %+v, %v", r, err)
		}
	}
	if _, err := s.Refund(ctx, RefundRequest{PaymentID: 5, RefundID: 1, Amount: 301}); code(err) != "REFUND_ID_REUSED" {
		t.Fatalf("refund ID reused: %v", err)
	}
	if _, err := s.Refund(ctx, RefundRequest{PaymentID: 5, RefundID: 2, Amount: 701}); code(err) != "REFUND_AMOUNT_EXCEEDED" {
		t.Fatalf("over-refund: %v", err)
	}
	r, err := s.Refund(ctx, RefundRequest{PaymentID: 5, RefundID: 2, Amount: 700})
	if err != nil || r.Refunded != 1000 {
		t.Fatalf("refund 2 = %+v, %v", r, err)
	}
	if st, _ := s.Query(ctx, 5); st.Status != StatusClosed {
		t.Fatalf("fully refunded: %+v", st)
	}
	if r, err := s.Refund(ctx, RefundRequest{PaymentID: 5, RefundID: 2, Amount: 700}); err != nil || r.Refunded != 1000 {
		t.Fatalf("retry after full refund = %+v, %v", r, err)
	}
	if err := s.Close(ctx, 5); err != nil {
		t.Fatalf("Close of a refunded payment: %v", err)
	}
}

// TestSandboxRefundConcurrent: N goroutines refund with distinct IDs; exactly as many as
// fit in the payment succeed, and the total never exceeds it.
func TestSandboxRefundConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newTestSandbox(t)
	if _, err := s.Complete(ctx, 1, 1000); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 50 {
		wg.Go(func() {
			if _, err := s.Refund(ctx, RefundRequest{PaymentID: 1, RefundID: int64(i + 1), Amount: 100}); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 10 {
		t.Fatalf("%d refunds succeeded, want 10", ok)
	}
}

// signedForm returns a valid notification form for payment 42.
func signedForm(s *Sandbox) url.Values {
	return s.Sign(Notification{PaymentID: 42, TradeNo: "sandbox-T", Amount: 100, Status: StatusSucceeded, NotifyID: "N1", PaidAt: sandboxNow})
}

// resign recomputes the HMAC the way an attacker who knows the secret would: the
// reference implementation of the canonical string.
func resign(form url.Values, secret string) {
	c, err := canonical(form, sbSign)
	if err != nil {
		panic(err)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(c))
	form.Set(sbSign, hex.EncodeToString(m.Sum(nil)))
}

func TestSandboxVerifyRejects(t *testing.T) {
	ctx := context.Background()
	s := newTestSandbox(t)
	tests := []struct {
		name string
		give func(url.Values)
	}{
		{"missing sign", func(f url.Values) { f.Del(sbSign) }},
		{"empty sign", func(f url.Values) { f.Set(sbSign, "") }},
		{"sign not hex", func(f url.Values) { f.Set(sbSign, "zz") }},
		{"short sign", func(f url.Values) { f.Set(sbSign, f.Get(sbSign)[:10]) }},
		{"uppercase sign", func(f url.Values) { f.Set(sbSign, strings.ToUpper(f.Get(sbSign))) }},
		{"tampered amount", func(f url.Values) { f.Set(sbAmount, "10000") }},
		{"tampered payment", func(f url.Values) { f.Set(sbPaymentID, "43") }},
		{"tampered status", func(f url.Values) { f.Set(sbStatus, "closed") }},
		{"removed field", func(f url.Values) { f.Del(sbPaidAt) }},
		{"extra field", func(f url.Values) { f.Set("extra", "1") }},
		{"extra empty field", func(f url.Values) { f.Set("extra", "") }},
		{"duplicate field", func(f url.Values) { f.Add(sbAmount, "100") }},
		{"other secret", func(f url.Values) { resign(f, "another-secret-0123456789") }},
		{"stale", func(f url.Values) {
			f.Set(sbTimestamp, strconv.FormatInt(sandboxNow.Add(-16*time.Minute).Unix(), 10))
			resign(f, testSecret)
		}},
		{"future", func(f url.Values) {
			f.Set(sbTimestamp, strconv.FormatInt(sandboxNow.Add(2*time.Minute).Unix(), 10))
			resign(f, testSecret)
		}},
		{"no timestamp", func(f url.Values) { f.Del(sbTimestamp); resign(f, testSecret) }},
		{"negative amount", func(f url.Values) { f.Set(sbAmount, "-100"); resign(f, testSecret) }},
		{"zero amount", func(f url.Values) { f.Set(sbAmount, "0"); resign(f, testSecret) }},
		{"padded amount", func(f url.Values) { f.Set(sbAmount, "0100"); resign(f, testSecret) }},
		{"bad status", func(f url.Values) { f.Set(sbStatus, "paid"); resign(f, testSecret) }},
		{"no trade_no", func(f url.Values) { f.Del(sbTradeNo); resign(f, testSecret) }},
		{"refund over amount", func(f url.Values) { f.Set(sbRefunded, "101"); resign(f, testSecret) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := signedForm(s)
			if _, err := s.VerifyNotification(ctx, f); err != nil {
				t.Fatalf("untampered form: %v", err)
			}
			tt.give(f)
			if n, err := s.VerifyNotification(ctx, f); !errors.Is(err, ErrBadNotification) {
				t.Fatalf("VerifyNotification = %+v, %v; want ErrBadNotification", n, err)
			}
		})
	}
}

func TestSandboxVerifyAcceptsWithinMaxAge(t *testing.T) {
	s := newTestSandbox(t)
	f := signedForm(s)
	s.now = func() time.Time { return sandboxNow.Add(14 * time.Minute) }
	if _, err := s.VerifyNotification(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	// Through the wire: the form survives encoding and parsing.
	parsed, err := url.ParseQuery(f.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.VerifyNotification(context.Background(), parsed); err != nil {
		t.Fatal(err)
	}
}

// TestSandboxRefundRefused: every refusal of the sandbox's Refund is ErrRefundRefused.
func TestSandboxRefundRefused(t *testing.T) {
	ctx := context.Background()
	s := newTestSandbox(t)
	if _, err := s.Refund(ctx, RefundRequest{PaymentID: 5, RefundID: 1, Amount: 1}); !errors.Is(err, ErrRefundRefused) {
		t.Fatalf("refund of an unknown payment: %v", err)
	}
	if _, err := s.Create(ctx, Payment{ID: 5, Amount: 1000}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Refund(ctx, RefundRequest{PaymentID: 5, RefundID: 1, Amount: 1}); !errors.Is(err, ErrRefundRefused) {
		t.Fatalf("refund of a pending payment: %v", err)
	}
}

package order_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/order/payment"
)

// TestSandboxNotifications drives payment notifications of the real sandbox gateway (the
// application wired as `mall serve` wires it) through POST /api/v1/payments/notify/sandbox.
func TestSandboxNotifications(t *testing.T) {
	h := newAppHarness(t)
	pay, err := order.PaymentsSection.From(h.Cfg)
	if err != nil {
		t.Fatal(err)
	}
	secret := pay.Sandbox.Secret
	// The gateway's side: the same secret signs what the application's sandbox verifies.
	gw, err := payment.NewSandbox(payment.SandboxConfig{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	m1, _ := h.merchant()
	m2, _ := h.merchant()
	s1, s2 := h.sku(m1, 1200, 50), h.sku(m2, 800, 50)

	// checkout places a two-merchant checkout and starts its sandbox payment.
	checkout := func(h *harness) (buyer, checkoutBody, paymentBody) {
		b := h.buyer()
		c := h.place(b, line{s1, 1}, line{s2, 2})
		var p paymentBody
		h.req(http.MethodPost, "/api/v1/payments", map[string]string{"checkout_id": c.CheckoutID, "provider": "sandbox"},
			b.token, "Idempotency-Key", newKey()).Want(h.t, http.StatusCreated, "").Decode(h.t, &p)
		if p.Amount != 2800 || len(c.Orders) != 2 {
			h.t.Fatalf("checkout %+v payment %+v", c, p)
		}
		return b, c, p
	}
	notify := func(f url.Values) (response, error) {
		return h.Do(http.MethodPost, "/api/v1/payments/notify/sandbox", []byte(f.Encode()),
			"Content-Type", "application/x-www-form-urlencoded")
	}
	statuses := func(h *harness, b buyer, c checkoutBody) []string {
		var out []string
		for _, o := range c.Orders {
			out = append(out, h.getOrder(b, o.ID).Status)
		}
		return out
	}

	// (a) One valid notification delivered 10 times at once: the checkout is paid once,
	// every delivery is acknowledged, one order.paid per order, one dedup row.
	t.Run("ConcurrentRedelivery", func(t *testing.T) {
		h := h.sub(t)
		b, c, p := checkout(h)
		form, err := gw.Complete(context.Background(), mustInt(t, p.ID), p.Amount)
		if err != nil {
			t.Fatal(err)
		}
		res, errs := atOnce(10, func(int) (response, error) { return notify(form) })
		for i, r := range res {
			if errs[i] != nil || r.Status != http.StatusOK || string(r.Body) != "success" {
				t.Fatalf("delivery %d: %s %v", i, r, errs[i])
			}
		}
		if st := statuses(h, b, c); !slices.Equal(st, []string{"paid", "paid"}) {
			t.Fatalf("orders %v", st)
		}
		for _, o := range c.Orders {
			if n := h.orderEvents(o.ID, order.EventPaid); n != 1 {
				t.Errorf("order %s: %d order.paid events", o.ID, n)
			}
		}
		if n := h.notificationRows(p.ID); n != 1 {
			t.Errorf("%d notification rows", n)
		}
		// Another notification of the settled payment (a new notify ID) is recorded and
		// changes nothing else.
		again := gw.Sign(payment.Notification{PaymentID: mustInt(t, p.ID), TradeNo: form.Get("trade_no"),
			Amount: p.Amount, Status: payment.StatusSucceeded})
		if r, err := notify(again); err != nil || r.Status != http.StatusOK {
			t.Fatalf("second notification: %s %v", r, err)
		}
		for _, o := range c.Orders {
			if n := h.orderEvents(o.ID, order.EventPaid); n != 1 {
				t.Errorf("order %s: %d order.paid events after a second notification", o.ID, n)
			}
		}
		if n := h.notificationRows(p.ID); n != 2 {
			t.Errorf("%d notification rows after a second notification", n)
		}
		h.eventually("the paid units sold", func() bool { return h.level(s1).Sold >= 1 && h.level(s2).Sold >= 2 })
	})

	// (b) Forged, tampered, stale and replayed notifications are refused or no-ops.
	t.Run("Refusals", func(t *testing.T) {
		h := h.sub(t)
		b, c, p := checkout(h)
		pid := mustInt(t, p.ID)
		good, err := gw.Complete(context.Background(), pid, p.Amount)
		if err != nil {
			t.Fatal(err)
		}
		refused := func(what string, f url.Values) {
			t.Helper()
			before := h.snapshot()
			r, err := notify(f)
			if err != nil || r.Status != http.StatusBadRequest || r.Code() != "payment.bad_notification" {
				t.Fatalf("%s: %s %v", what, r, err)
			}
			if after := h.snapshot(); after != before {
				t.Fatalf("%s changed the database:\n%s\n->\n%s", what, before, after)
			}
		}
		forged := clone(good)
		sig := []byte(forged.Get("sign"))
		if sig[0] == '0' { // another hex digit
			sig[0] = '1'
		} else {
			sig[0] = '0'
		}
		forged.Set("sign", string(sig))
		refused("a forged signature", forged)
		signedByOther := sandboxForm(t, "another-secret-0123456789", good, time.Now())
		refused("a notification signed with another key", signedByOther)
		tampered := clone(good)
		tampered.Set("amount", strconv.FormatInt(p.Amount/2, 10))
		refused("a tampered amount", tampered)
		extra := clone(good)
		extra.Set("buyer", "me")
		refused("an unsigned extra field", extra)
		refused("a stale notification", sandboxForm(t, secret, good, time.Now().Add(-16*time.Minute)))
		refused("a notification from the future", sandboxForm(t, secret, good, time.Now().Add(5*time.Minute)))
		unknown := gw.Sign(payment.Notification{PaymentID: pid + 4096, TradeNo: "T", Amount: p.Amount,
			Status: payment.StatusSucceeded})
		refused("a notification for an unknown payment", unknown)
		if st := statuses(h, b, c); !slices.Equal(st, []string{"pending_payment", "pending_payment"}) {
			t.Fatalf("orders after refusals %v", st)
		}

		if r, err := notify(good); err != nil || r.Status != http.StatusOK {
			t.Fatalf("genuine: %s %v", r, err)
		}
		if st := statuses(h, b, c); !slices.Equal(st, []string{"paid", "paid"}) {
			t.Fatalf("orders %v", st)
		}
		// Replays: the same form, and the same notification re-signed later (the gateway's
		// redelivery) are acknowledged and change nothing.
		before := h.snapshot()
		for _, f := range []url.Values{good, sandboxForm(t, secret, good, time.Now().Add(time.Second))} {
			if r, err := notify(f); err != nil || r.Status != http.StatusOK || string(r.Body) != "success" {
				t.Fatalf("replay: %s %v", r, err)
			}
		}
		if after := h.snapshot(); after != before {
			t.Fatalf("a replay changed the database:\n%s\n->\n%s", before, after)
		}
		for _, o := range c.Orders {
			if n := h.orderEvents(o.ID, order.EventPaid); n != 1 {
				t.Errorf("order %s: %d order.paid events", o.ID, n)
			}
		}
	})

	// (c) A correctly signed success notification stating another amount is never a
	// success: 400, the payment fails, the orders stay unpaid, and it is recorded once
	// (dedup row, order.payment_mismatch, metric) however often it is delivered. The buyer
	// can still pay with a new payment.
	t.Run("AmountMismatch", func(t *testing.T) {
		h := h.sub(t)
		b, c, p := checkout(h)
		pid := mustInt(t, p.ID)
		// The buyer paid at the application's gateway, and a correctly signed notification
		// states one fen less (a gateway bug, or its record and its notification disagree).
		app := h.sandbox()
		if _, err := app.Complete(context.Background(), pid, p.Amount); err != nil {
			t.Fatal(err)
		}
		wrong := gw.Sign(payment.Notification{PaymentID: pid, TradeNo: "sandbox-short", Amount: p.Amount - 1,
			Status: payment.StatusSucceeded, PaidAt: time.Now()})
		for range 3 {
			if r, err := notify(wrong); err != nil || r.Status != http.StatusBadRequest || r.Code() != "payment.bad_notification" {
				t.Fatalf("mismatch: %s %v", r, err)
			}
		}
		var got paymentBody
		h.req(http.MethodGet, "/api/v1/payments/"+p.ID, nil, b.token).Want(t, http.StatusOK, "").Decode(t, &got)
		if got.Status != "failed" && got.Status != "refunded" { // refunded: the compensation below was quick
			t.Errorf("payment after a mismatch: %+v", got)
		}
		if st := statuses(h, b, c); !slices.Equal(st, []string{"pending_payment", "pending_payment"}) {
			t.Fatalf("orders after a mismatch %v", st)
		}
		if n := h.orderEvents(p.ID, order.EventPaymentMismatch); n != 1 {
			t.Errorf("%d order.payment_mismatch events", n)
		}
		if n := h.notificationRows(p.ID); n != 1 {
			t.Errorf("%d notification rows", n)
		}
		r := h.req(http.MethodGet, "/metrics", nil, "").Want(t, http.StatusOK, "")
		if !strings.Contains(string(r.Body), "mall_order_payment_amount_mismatch_total 1") {
			t.Error("the mismatch metric is not 1")
		}
		// The compensation: what the gateway's own record says it holds goes back to the buyer.
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, err := app.Query(context.Background(), pid)
			if err != nil {
				t.Fatal(err)
			}
			if st.Status == payment.StatusClosed {
				break // fully refunded at the gateway
			}
			if time.Now().After(deadline) {
				t.Fatalf("the mismatched payment was not refunded: gateway state %+v", st)
			}
			time.Sleep(50 * time.Millisecond)
		}
		var refunded int64
		if err := h.shardOf(p.ID).GetContext(context.Background(), &refunded,
			"SELECT refunded FROM order_payments WHERE id = ?", pid); err != nil {
			t.Fatal(err)
		}
		if refunded != p.Amount {
			t.Errorf("payment refunded %d, want %d", refunded, p.Amount)
		}
		p2 := h.pay(b, c.CheckoutID)
		if p2.ID == p.ID {
			t.Fatal("the failed payment was reused")
		}
		if st := statuses(h, b, c); !slices.Equal(st, []string{"paid", "paid"}) {
			t.Fatalf("orders after paying again %v", st)
		}
	})

	// A mismatched notification for a payment already paid in full: refused and recorded,
	// but the payment stays succeeded, its orders stay paid, and no money goes back (the
	// compensation refunds whatever the gateway holds, which would refund orders that stay
	// paid).
	t.Run("AmountMismatchAfterSuccess", func(t *testing.T) {
		h := h.sub(t)
		b, c, p := checkout(h)
		pid := mustInt(t, p.ID)
		app := h.sandbox()
		if _, err := app.Complete(context.Background(), pid, p.Amount); err != nil {
			t.Fatal(err)
		}
		right := gw.Sign(payment.Notification{PaymentID: pid, TradeNo: "sandbox-right", Amount: p.Amount,
			Status: payment.StatusSucceeded, PaidAt: time.Now()})
		if r, err := notify(right); err != nil || r.Status != http.StatusOK {
			t.Fatalf("success: %s %v", r, err)
		}
		wrong := gw.Sign(payment.Notification{PaymentID: pid, TradeNo: "sandbox-right", Amount: p.Amount + 500,
			Status: payment.StatusSucceeded, PaidAt: time.Now()})
		for range 2 {
			if r, err := notify(wrong); err != nil || r.Status != http.StatusBadRequest || r.Code() != "payment.bad_notification" {
				t.Fatalf("mismatch after success: %s %v", r, err)
			}
		}
		if n := h.notificationRows(p.ID); n != 2 {
			t.Errorf("%d notification rows, want the success and the mismatch", n)
		}
		if n := h.orderEvents(p.ID, order.EventPaymentMismatch); n != 0 {
			t.Errorf("%d order.payment_mismatch events for a settled payment", n)
		}
		// Give a wrongly emitted compensation time to act before looking at the money.
		time.Sleep(2 * time.Second)
		var got paymentBody
		h.req(http.MethodGet, "/api/v1/payments/"+p.ID, nil, b.token).Want(t, http.StatusOK, "").Decode(t, &got)
		if got.Status != "succeeded" {
			t.Errorf("payment after a mismatch on a settled payment: %+v", got)
		}
		if st := statuses(h, b, c); !slices.Equal(st, []string{"paid", "paid"}) {
			t.Fatalf("orders after a mismatch on a settled payment %v", st)
		}
		st, err := app.Query(context.Background(), pid)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status != payment.StatusSucceeded {
			t.Fatalf("the gateway's record after a mismatch on a settled payment: %+v (money given back)", st)
		}
	})
}

// TestPaymentTimeoutRestoresStock: with a 3 s payment timeout an unpaid order is cancelled
// by the sweeper and its stock released through order.cancelled within 10 s.
func TestPaymentTimeoutRestoresStock(t *testing.T) {
	cfg := testConfig()
	cfg.PaymentTimeout = 3 * time.Second
	h := newHarness(t, cfg)
	m, _ := h.merchant()
	sku := h.sku(m, 100, 6)
	b := h.buyer()
	t0 := time.Now()
	c := h.place(b, line{sku, 4})
	if l := h.level(sku); l.Reserved != 4 || l.Available != 2 {
		t.Fatalf("level after checkout %+v", l)
	}
	for {
		l := h.level(sku)
		if h.getOrder(b, c.Orders[0].ID).Status == "cancelled" && l.Reserved == 0 && l.Available == 6 {
			break
		}
		if time.Since(t0) > 10*time.Second {
			t.Fatalf("not cancelled and restored within 10s: %+v", l)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("cancelled and restored %s after the checkout", time.Since(t0).Round(time.Millisecond))
	if time.Since(t0) < cfg.PaymentTimeout {
		t.Fatal("cancelled before the timeout")
	}
	if n := h.orderEvents(c.Orders[0].ID, order.EventCancelled); n != 1 {
		t.Errorf("%d order.cancelled events", n)
	}
	h.checkStock()
}

// notificationRows counts the dedup rows of a payment.
func (h *harness) notificationRows(paymentID string) int {
	h.t.Helper()
	var n int
	if err := h.shardOf(paymentID).GetContext(context.Background(), &n,
		`SELECT COUNT(*) FROM order_payment_notifications WHERE payment_id = ?`, paymentID); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func clone(f url.Values) url.Values {
	out := url.Values{}
	for k, v := range f {
		out[k] = slices.Clone(v)
	}
	return out
}

// sandboxForm re-signs a sandbox notification with secret as if signed at at: the
// canonical string is the fields but sign, sorted, as k=v joined with '&'.
func sandboxForm(t *testing.T, secret string, f url.Values, at time.Time) url.Values {
	t.Helper()
	out := clone(f)
	out.Del("sign")
	out.Set("timestamp", strconv.FormatInt(at.Unix(), 10))
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + out.Get(k)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strings.Join(parts, "&")))
	out.Set("sign", hex.EncodeToString(m.Sum(nil)))
	return out
}

package order_test

import (
	"net/http"
	"net/url"
	"testing"
)

// TestSandboxGatewayInTheApplication: with the application wired as `mall serve` wires it,
// the real sandbox gateway (payments.sandbox.*) takes a checkout from pending_payment to
// paid through its signed notification, the stock ends up sold, and a notification not
// signed with the configured secret is refused and changes nothing.
func TestSandboxGatewayInTheApplication(t *testing.T) {
	h := newAppHarness(t)
	mid, _ := h.merchant()
	sku := h.sku(mid, 1999, 5)
	b := h.buyer()
	c := h.place(b, line{sku: sku, qty: 2})

	before := h.snapshot()
	forged := url.Values{"out_trade_no": {c.CheckoutID}, "amount": {"3998"}, "status": {"succeeded"},
		"timestamp": {"1"}, "sign": {"00"}}
	h.req(http.MethodPost, "/api/v1/payments/notify/sandbox", []byte(forged.Encode()), "",
		"Content-Type", "application/x-www-form-urlencoded").Want(t, http.StatusBadRequest, "")
	if after := h.snapshot(); after != before {
		t.Fatal("a forged notification changed the database")
	}

	p := h.pay(b, c.CheckoutID)
	if p.Provider != "sandbox" || p.Amount != 3998 || p.PayURL == "" {
		t.Fatalf("payment %+v", p)
	}
	if o := h.getOrder(b, c.Orders[0].ID); o.Status != "paid" {
		t.Fatalf("after the sandbox paid: %+v", o)
	}
	h.eventually("the paid units sold", func() bool {
		l := h.level(sku)
		return l.Sold == 2 && l.Reserved == 0 && l.Available == 3
	})
	h.checkStock()
}

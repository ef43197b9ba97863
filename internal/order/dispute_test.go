package order_test

import (
	"net/http"
	"testing"
)

// TestDisputeApproved: a refund the merchant rejected is escalated by the buyer and
// approved by an operator: refunded exactly as a merchant's approval (money back at the
// gateway, stock returned). Escalating needs a rejection, once; only the buyer may, only
// an operator rules.
func TestDisputeApproved(t *testing.T) {
	h := newHarness(t, testConfig())
	m, tokA := h.merchant()
	sku := h.sku(m, 500, 10)
	b, other := h.buyer(), h.buyer()
	c := h.place(b, line{sku, 2})
	oid := c.Orders[0].ID
	p := h.pay(b, c.CheckoutID)
	h.eventually("stock sold", func() bool { return h.level(sku).Sold == 2 })
	escalate := "/api/v1/orders/" + oid + "/refund/escalate"
	approve, reject := "/api/v1/admin/orders/"+oid+"/refund/approve", "/api/v1/admin/orders/"+oid+"/refund/reject"

	// Nothing to escalate: never asked, then asked but not rejected yet.
	h.req(http.MethodPost, escalate, nil, b.token).Want(t, http.StatusConflict, "order.refund_not_rejected")
	h.req(http.MethodPost, "/api/v1/orders/"+oid+"/refund", map[string]string{"reason": "scratched"}, b.token).Want(t, 200, "")
	h.req(http.MethodPost, escalate, nil, b.token).Want(t, http.StatusConflict, "order.refund_not_rejected")
	var o orderBody
	h.req(http.MethodPost, "/api/v1/merchant/orders/"+oid+"/refund/reject", nil, tokA).Want(t, 200, "").Decode(t, &o)
	if o.Status != "paid" {
		t.Fatalf("merchant reject: %+v", o)
	}

	// Not disputed yet: an operator cannot rule; a merchant never can; another buyer sees nothing.
	h.req(http.MethodPost, approve, nil, h.admin).Want(t, http.StatusConflict, "order.status_conflict")
	h.req(http.MethodPost, reject, nil, h.admin).Want(t, http.StatusConflict, "order.status_conflict")
	before := h.snapshot()
	h.req(http.MethodPost, escalate, nil, other.token).Want(t, http.StatusNotFound, "order.not_found")
	h.req(http.MethodPost, approve, nil, tokA).Want(t, http.StatusForbidden, "")
	h.req(http.MethodPost, reject, nil, tokA).Want(t, http.StatusForbidden, "")
	h.req(http.MethodPost, approve, nil, b.token).Want(t, http.StatusForbidden, "")
	if after := h.snapshot(); after != before {
		t.Fatalf("refused calls changed the database:\n%s\n->\n%s", before, after)
	}

	h.req(http.MethodPost, escalate, nil, b.token).Want(t, 200, "").Decode(t, &o)
	if o.Status != "refund_disputed" {
		t.Fatalf("escalate: %+v", o)
	}
	if n := h.orderEvents(oid, "order.refund_disputed"); n != 1 {
		t.Errorf("%d order.refund_disputed events", n)
	}
	h.req(http.MethodPost, escalate, nil, b.token).Want(t, http.StatusConflict, "order.refund_not_rejected")
	h.req(http.MethodPost, "/api/v1/merchant/orders/"+oid+"/refund/approve", nil, tokA).
		Want(t, http.StatusConflict, "order.status_conflict")
	var listed struct {
		Items []orderBody `json:"items"`
	}
	h.req(http.MethodGet, "/api/v1/orders?status=refund_disputed", nil, b.token).Want(t, 200, "").Decode(t, &listed)
	if len(listed.Items) != 1 || listed.Items[0].ID != oid {
		t.Errorf("disputed orders %+v", listed.Items)
	}

	h.req(http.MethodPost, approve, nil, h.admin).Want(t, 200, "").Decode(t, &o)
	if o.Status != "refunded" {
		t.Fatalf("admin approve: %+v", o)
	}
	h.req(http.MethodPost, approve, nil, h.admin).Want(t, http.StatusConflict, "order.status_conflict")
	h.req(http.MethodPost, escalate, nil, b.token).Want(t, http.StatusConflict, "order.refund_not_rejected")
	if n := h.orderEvents(oid, "order.refunded"); n != 1 {
		t.Errorf("%d order.refunded events", n)
	}
	h.provider.mu.Lock()
	var refunded int64
	refunds := 0
	for _, r := range h.provider.refunds {
		if id(r.PaymentID) == p.ID {
			refunded += r.Amount
			refunds++
		}
	}
	h.provider.mu.Unlock()
	if refunds != 1 || refunded != 1000 {
		t.Errorf("gateway refunds: %d of %d fen in all, want 1 of 1000", refunds, refunded)
	}
	var got paymentBody
	h.req(http.MethodGet, "/api/v1/payments/"+p.ID, nil, b.token).Want(t, 200, "").Decode(t, &got)
	if got.Status != "refunded" {
		t.Errorf("payment after the ruling %+v", got)
	}
	h.eventually("refunded units back in stock", func() bool {
		l := h.level(sku)
		return l.Sold == 0 && l.Available == 10
	})
	h.checkStock()
}

// TestDisputeRejected: an operator's ruling for the merchant returns the order to the
// status the request came from, moves no money, and that request cannot be escalated
// again; a new request starts over.
func TestDisputeRejected(t *testing.T) {
	h := newHarness(t, testConfig())
	m, tokA := h.merchant()
	sku := h.sku(m, 700, 5)
	b := h.buyer()
	c := h.place(b, line{sku, 1})
	oid := c.Orders[0].ID
	h.pay(b, c.CheckoutID)
	h.eventually("stock sold", func() bool { return h.level(sku).Sold == 1 })
	var o orderBody
	h.req(http.MethodPost, "/api/v1/merchant/orders/"+oid+"/ship", map[string]string{"carrier": "SF", "tracking_no": "SF1"},
		tokA).Want(t, 200, "")
	dispute := func() {
		t.Helper()
		h.req(http.MethodPost, "/api/v1/orders/"+oid+"/refund", map[string]string{"reason": "broken"}, b.token).Want(t, 200, "")
		h.req(http.MethodPost, "/api/v1/merchant/orders/"+oid+"/refund/reject", nil, tokA).Want(t, 200, "")
		h.req(http.MethodPost, "/api/v1/orders/"+oid+"/refund/escalate", nil, b.token).Want(t, 200, "").Decode(t, &o)
		if o.Status != "refund_disputed" {
			t.Fatalf("escalate: %+v", o)
		}
	}
	dispute()
	h.req(http.MethodPost, "/api/v1/admin/orders/"+oid+"/refund/reject", nil, h.admin).Want(t, 200, "").Decode(t, &o)
	if o.Status != "shipped" {
		t.Fatalf("admin reject: %+v, want shipped", o)
	}
	if n := h.orderEvents(oid, "order.dispute_rejected"); n != 1 {
		t.Errorf("%d order.dispute_rejected events", n)
	}
	h.req(http.MethodPost, "/api/v1/orders/"+oid+"/refund/escalate", nil, b.token).
		Want(t, http.StatusConflict, "order.refund_not_rejected")
	h.req(http.MethodPost, "/api/v1/admin/orders/"+oid+"/refund/reject", nil, h.admin).
		Want(t, http.StatusConflict, "order.status_conflict")
	h.req(http.MethodPost, "/api/v1/admin/orders/"+oid+"/refund/approve", nil, h.admin).
		Want(t, http.StatusConflict, "order.status_conflict")

	// A new request, rejected again, is a new dispute.
	dispute()
	h.req(http.MethodPost, "/api/v1/admin/orders/"+oid+"/refund/reject", nil, h.admin).Want(t, 200, "").Decode(t, &o)
	if o.Status != "shipped" {
		t.Fatalf("second admin reject: %+v", o)
	}
	h.req(http.MethodPost, "/api/v1/orders/"+oid+"/confirm-receipt", nil, b.token).Want(t, 200, "")
	h.provider.mu.Lock()
	refunds := len(h.provider.refunds)
	h.provider.mu.Unlock()
	if refunds != 0 {
		t.Errorf("%d gateway refunds after rulings for the merchant", refunds)
	}
	if l := h.level(sku); l.Sold != 1 {
		t.Errorf("stock %+v, want 1 sold", l)
	}
	h.checkStock()
}

package order_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/order"
)

// paidOrder places an order of one unit of sku for b and pays it; it returns the order ID.
func (h *harness) paidOrder(b buyer, sku int64) string {
	h.t.Helper()
	c := h.place(b, line{sku, 1})
	h.pay(b, c.CheckoutID)
	return c.Orders[0].ID
}

// ship ships the merchant's paid order.
func (h *harness) ship(merchantToken, orderID string) {
	h.t.Helper()
	h.req(http.MethodPost, "/api/v1/merchant/orders/"+orderID+"/ship", map[string]string{"carrier": "SF",
		"tracking_no": "SF1"}, merchantToken).Want(h.t, http.StatusOK, "")
}

func TestShippedOrdersCompleteAutomatically(t *testing.T) {
	cfg := testConfig()
	cfg.AutoCompleteAfter = 2 * time.Second
	h := newHarness(t, cfg)
	m, tok := h.merchant()
	sku := h.sku(m, 100, 10)
	b := h.buyer()
	shipped, paid := h.paidOrder(b, sku), h.paidOrder(b, sku)
	h.ship(tok, shipped)
	if o := h.getOrder(b, shipped); o.Status != "shipped" {
		t.Fatalf("right after shipping: %+v", o)
	}

	h.eventually("the shipped order completed", func() bool { return h.getOrder(b, shipped).Status == "completed" })
	var o struct {
		orderBody
		ShippedAt   *time.Time `json:"shipped_at"`
		CompletedAt *time.Time `json:"completed_at"`
	}
	h.req(http.MethodGet, "/api/v1/orders/"+shipped, nil, b.token).Want(t, http.StatusOK, "").Decode(t, &o)
	if o.ShippedAt == nil || o.CompletedAt == nil || o.CompletedAt.Sub(*o.ShippedAt) < cfg.AutoCompleteAfter {
		t.Errorf("completed %v after shipping at %v, want at least %v later", o.CompletedAt, o.ShippedAt, cfg.AutoCompleteAfter)
	}
	// Several sweeps later: still one event, and the paid order was never touched.
	time.Sleep(3 * cfg.SweepInterval)
	if n := h.orderEvents(shipped, order.EventCompleted); n != 1 {
		t.Errorf("%d order.completed events, want 1", n)
	}
	if o := h.getOrder(b, paid); o.Status != "paid" {
		t.Errorf("the paid order is %s", o.Status)
	}
	if n := h.orderEvents(paid, order.EventCompleted); n != 0 {
		t.Errorf("%d order.completed events of the paid order", n)
	}
	// Completed: confirm-receipt has nothing left to do.
	h.req(http.MethodPost, "/api/v1/orders/"+shipped+"/confirm-receipt", nil, b.token).
		Want(t, http.StatusConflict, "order.status_conflict")
}

func TestRefundFromCompletedWithinAfterSaleWindow(t *testing.T) {
	h := newHarness(t, testConfig())
	m, tok := h.merchant()
	sku := h.sku(m, 100, 10)
	b := h.buyer()
	complete := func() string {
		id := h.paidOrder(b, sku)
		h.ship(tok, id)
		h.req(http.MethodPost, "/api/v1/orders/"+id+"/confirm-receipt", nil, b.token).Want(t, http.StatusOK, "")
		return id
	}
	refund := func(id string) response {
		return h.req(http.MethodPost, "/api/v1/orders/"+id+"/refund", map[string]string{"reason": "broke in a week"}, b.token)
	}

	// Inside the window (completed just now, 7 days): requested, and a rejection returns
	// it to completed.
	inside := complete()
	var o orderBody
	refund(inside).Want(t, http.StatusOK, "").Decode(t, &o)
	if o.Status != "refund_requested" {
		t.Fatalf("refund inside the window: %+v", o)
	}
	h.req(http.MethodPost, "/api/v1/merchant/orders/"+inside+"/refund/reject", nil, tok).Want(t, http.StatusOK, "").Decode(t, &o)
	if o.Status != "completed" {
		t.Fatalf("rejected: %+v", o)
	}

	// Completed a moment longer ago than the window: refused, nothing changed.
	outside := complete()
	if _, err := h.shardOf(outside).ExecContext(context.Background(),
		`UPDATE order_orders SET completed_at = ? WHERE id = ?`,
		time.Now().UTC().Add(-7*24*time.Hour-time.Second), outside); err != nil {
		t.Fatal(err)
	}
	before := h.snapshot()
	refund(outside).Want(t, http.StatusConflict, "order.after_sale_window_over")
	if after := h.snapshot(); after != before {
		t.Fatalf("a refused refund changed the database:\n%s\n->\n%s", before, after)
	}
	if n := h.orderEvents(outside, order.EventRefundRequested); n != 0 {
		t.Errorf("%d order.refund_requested events after the window", n)
	}
	// And just inside the window's end it is still allowed.
	if _, err := h.shardOf(outside).ExecContext(context.Background(),
		`UPDATE order_orders SET completed_at = ? WHERE id = ?`,
		time.Now().UTC().Add(-7*24*time.Hour+time.Minute), outside); err != nil {
		t.Fatal(err)
	}
	refund(outside).Want(t, http.StatusOK, "")
}

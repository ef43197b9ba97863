package order_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/order/payment"
	"github.com/mallhq/mall/internal/platform/kafkax"
)

// refundedBody is an order as the refund routes answer it.
type refundedBody struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	TotalAmount    int64  `json:"total_amount"`
	RefundedAmount int64  `json:"refunded_amount"`
	RefundItems    []struct {
		SKUID    string `json:"sku_id"`
		Quantity int64  `json:"quantity"`
	} `json:"refund_items"`
	Items []struct {
		SKUID            string `json:"sku_id"`
		Quantity         int64  `json:"quantity"`
		RefundedQuantity int64  `json:"refunded_quantity"`
	} `json:"items"`
	Refunds []struct {
		ID              string `json:"id"`
		Amount          int64  `json:"amount"`
		AfterCompletion bool   `json:"after_completion"`
		Items           []struct {
			SKUID    string `json:"sku_id"`
			Quantity int64  `json:"quantity"`
		} `json:"items"`
	} `json:"refunds"`
}

// orderPayloads is the payloads of the order's events of the given types in its shard's
// outbox, in the order they were written.
func (h *harness) orderPayloads(orderID string, types ...string) []json.RawMessage {
	h.t.Helper()
	var rows []struct {
		Type     string `db:"event_type"`
		Envelope []byte `db:"envelope"`
	}
	if err := h.shardOf(orderID).SelectContext(context.Background(), &rows, `SELECT event_type, envelope
		FROM platform_outbox WHERE topic = ? AND aggregate_id = ? ORDER BY id`, order.Topic, orderID); err != nil {
		h.t.Fatal(err)
	}
	var out []json.RawMessage
	for _, r := range rows {
		if !slices.Contains(types, r.Type) {
			continue
		}
		var env kafkax.Envelope
		if err := json.Unmarshal(r.Envelope, &env); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, env.Payload)
	}
	return out
}

func (o refundedBody) refunded(sku int64) int64 {
	for _, it := range o.Items {
		if it.SKUID == id(sku) {
			return it.RefundedQuantity
		}
	}
	return -1
}

// TestLineRefunds: 3 units of one SKU and 2 of another. Refund 1 unit, then 2 (with a
// concurrent second request refused), then the rest without items; an over-refund is
// refused and changes nothing. Money at the gateway, stock, refunded_amount and the
// order's refunds agree at every step; the operator sees the refunds.
func TestLineRefunds(t *testing.T) {
	h := newHarness(t, testConfig())
	m, tokM := h.merchant()
	skuA, skuB := h.sku(m, 700, 10), h.sku(m, 300, 10)
	b := h.buyer()
	c := h.place(b, line{skuA, 3}, line{skuB, 2})
	oid := c.Orders[0].ID
	if c.Orders[0].TotalAmount != 3*700+2*300 {
		t.Fatalf("total %d", c.Orders[0].TotalAmount)
	}
	p := h.pay(b, c.CheckoutID)
	h.eventually("stock sold", func() bool { return h.level(skuA).Sold == 3 && h.level(skuB).Sold == 2 })
	refund := "/api/v1/orders/" + oid + "/refund"
	approve := "/api/v1/merchant/orders/" + oid + "/refund/approve"
	ask := func(items ...map[string]any) response {
		body := map[string]any{"reason": "broken"}
		if items != nil {
			body["items"] = items
		}
		return h.req(http.MethodPost, refund, body, b.token)
	}
	unit := func(sku, n int64) map[string]any { return map[string]any{"sku_id": id(sku), "quantity": n} }
	gatewayRefunded := func() int64 {
		h.provider.mu.Lock()
		defer h.provider.mu.Unlock()
		var total int64
		for _, r := range h.provider.refunds {
			if r.PaymentID == mustInt(t, p.ID) {
				total += r.Amount
			}
		}
		return total
	}
	want := func(o refundedBody, status string, amount, refundedA, refundedB int64) {
		t.Helper()
		if o.Status != status || o.RefundedAmount != amount || o.refunded(skuA) != refundedA || o.refunded(skuB) != refundedB {
			t.Fatalf("want %s refunded %d (A %d, B %d), got %+v", status, amount, refundedA, refundedB, o)
		}
		if g := gatewayRefunded(); g != amount {
			t.Fatalf("gateway refunded %d, order says %d", g, amount)
		}
		h.eventually("stock returned", func() bool {
			return h.level(skuA).Sold == 3-refundedA && h.level(skuB).Sold == 2-refundedB
		})
		h.checkStock()
	}

	// Bad requests change nothing.
	before := h.snapshot()
	ask(unit(skuA, 0)).Want(t, http.StatusBadRequest, "")
	ask(unit(skuA, 1), unit(skuA, 1)).Want(t, http.StatusBadRequest, "")
	h.req(http.MethodPost, refund, map[string]any{"reason": "x", "items": []any{}}, b.token).
		Want(t, http.StatusBadRequest, "") // neither the whole order nor units
	ask(unit(skuA, 4)).Want(t, http.StatusConflict, "order.refund_exceeds")
	ask(unit(skuA+skuB+1000, 1)).Want(t, http.StatusConflict, "order.refund_exceeds")
	if after := h.snapshot(); after != before {
		t.Fatalf("refused requests changed the database:\n%s\n->\n%s", before, after)
	}

	// 1 unit of A.
	var o refundedBody
	ask(unit(skuA, 1)).Want(t, http.StatusOK, "").Decode(t, &o)
	if o.Status != "refund_requested" || len(o.RefundItems) != 1 || o.RefundItems[0].Quantity != 1 {
		t.Fatalf("request: %+v", o)
	}
	h.req(http.MethodPost, approve, nil, tokM).Want(t, http.StatusOK, "").Decode(t, &o)
	want(o, "paid", 700, 1, 0)

	// Two requests for the 2 units left of A at once: one opens, the other is refused.
	res, errs := atOnce(2, func(int) (response, error) {
		return h.Do(http.MethodPost, refund, map[string]any{"reason": "broken", "items": []any{unit(skuA, 2)}},
			"Authorization", "Bearer "+b.token)
	})
	codes := map[int]int{}
	for i, r := range res {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		codes[r.Status]++
	}
	if codes[http.StatusOK] != 1 || codes[http.StatusConflict] != 1 {
		t.Fatalf("concurrent requests: %v", codes)
	}
	// Two approvals at once: the money moves once.
	res, errs = atOnce(2, func(int) (response, error) {
		return h.Do(http.MethodPost, approve, nil, "Authorization", "Bearer "+tokM)
	})
	codes = map[int]int{}
	for i, r := range res {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		codes[r.Status]++
		if r.Status == http.StatusOK {
			if err := json.Unmarshal(r.Body, &o); err != nil {
				t.Fatal(err)
			}
		}
	}
	if codes[http.StatusOK] != 1 || codes[http.StatusConflict] != 1 {
		t.Fatalf("concurrent approvals: %v", codes)
	}
	want(o, "paid", 700*3, 3, 0)
	ask(unit(skuA, 1)).Want(t, http.StatusConflict, "order.refund_exceeds")

	// The rest (B's 2 units) without items: the order is refunded.
	ask().Want(t, http.StatusOK, "")
	h.req(http.MethodPost, approve, nil, tokM).Want(t, http.StatusOK, "").Decode(t, &o)
	want(o, "refunded", 3*700+2*300, 3, 2)
	h.req(http.MethodPost, refund, map[string]any{"reason": "again"}, b.token).
		Want(t, http.StatusConflict, "order.nothing_to_refund")

	var pay paymentBody
	h.req(http.MethodGet, "/api/v1/payments/"+p.ID, nil, b.token).Want(t, http.StatusOK, "").Decode(t, &pay)
	if pay.Status != "refunded" {
		t.Errorf("payment after every unit refunded: %+v", pay)
	}

	// One order.refunded per refund, each with its own refund number and units.
	if n := h.orderEvents(oid, order.EventRefunded); n != 3 {
		t.Fatalf("%d order.refunded events, want 3", n)
	}
	ids := map[int64]bool{}
	var sum int64
	for _, raw := range h.orderPayloads(oid, order.EventRefunded) {
		var ev order.OrderEvent
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Refund == nil || ev.Refund.AfterCompletion || ids[ev.Refund.RefundID] || len(ev.Items) != 2 {
			t.Fatalf("refund event: %s", raw)
		}
		ids[ev.Refund.RefundID] = true
		sum += ev.Refund.Amount
	}
	if sum != 3*700+2*300 {
		t.Fatalf("refund events sum to %d", sum)
	}

	// The operator's view: the refunds carried out; merchants and buyers are refused.
	h.req(http.MethodGet, "/api/v1/admin/orders/"+oid, nil, h.admin).Want(t, http.StatusOK, "").Decode(t, &o)
	if len(o.Refunds) != 3 || o.Refunds[0].Amount != 700 || o.Refunds[1].Amount != 1400 || o.Refunds[2].Amount != 600 {
		t.Fatalf("admin order refunds: %+v", o.Refunds)
	}
	var listed struct {
		Items []refundedBody `json:"items"`
	}
	h.req(http.MethodGet, "/api/v1/admin/orders?status=refunded", nil, h.admin).Want(t, http.StatusOK, "").Decode(t, &listed)
	if len(listed.Items) != 1 || listed.Items[0].ID != oid {
		t.Fatalf("admin list: %+v", listed)
	}
	h.req(http.MethodGet, "/api/v1/admin/orders/"+oid, nil, tokM).Want(t, http.StatusForbidden, "")
	h.req(http.MethodGet, "/api/v1/admin/orders", nil, b.token).Want(t, http.StatusForbidden, "")
	h.req(http.MethodGet, "/api/v1/admin/orders/12345", nil, h.admin).Want(t, http.StatusNotFound, "order.not_found")
}

// TestLineRefundAfterCompletion: a partial refund of a completed order (within the
// after-sale window) returns it to completed and says after_completion, which settlement
// reverses; the completed event carries the lines with their commission rates.
func TestLineRefundAfterCompletion(t *testing.T) {
	h := newHarness(t, testConfig())
	m, tokM := h.merchant()
	sku := h.sku(m, 1000, 10)
	b := h.buyer()
	c := h.place(b, line{sku, 3})
	oid := c.Orders[0].ID
	h.pay(b, c.CheckoutID)
	h.eventually("stock sold", func() bool { return h.level(sku).Sold == 3 })
	h.req(http.MethodPost, "/api/v1/merchant/orders/"+oid+"/ship", map[string]string{"carrier": "SF", "tracking_no": "1"},
		tokM).Want(t, http.StatusOK, "")
	h.req(http.MethodPost, "/api/v1/orders/"+oid+"/confirm-receipt", nil, b.token).Want(t, http.StatusOK, "")
	h.req(http.MethodPost, "/api/v1/orders/"+oid+"/refund", map[string]any{"reason": "one was broken",
		"items": []any{map[string]any{"sku_id": id(sku), "quantity": 1}}}, b.token).Want(t, http.StatusOK, "")
	var o refundedBody
	h.req(http.MethodPost, "/api/v1/merchant/orders/"+oid+"/refund/approve", nil, tokM).Want(t, http.StatusOK, "").Decode(t, &o)
	if o.Status != "completed" || o.RefundedAmount != 1000 || o.refunded(sku) != 1 {
		t.Fatalf("after a partial refund of a completed order: %+v", o)
	}
	h.eventually("stock returned", func() bool { return h.level(sku).Sold == 2 })

	raw := h.orderPayloads(oid, order.EventCompleted, order.EventRefunded)
	if len(raw) != 2 {
		t.Fatalf("events: %v", raw)
	}
	var done, refunded order.OrderEvent
	if err := json.Unmarshal(raw[0], &done); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw[1], &refunded); err != nil {
		t.Fatal(err)
	}
	if done.CompletedAt == nil || len(done.Items) != 1 || done.Items[0].Quantity != 3 || done.Items[0].RefundedQuantity != 0 {
		t.Fatalf("order.completed: %s", raw[0])
	}
	if refunded.Refund == nil || !refunded.Refund.AfterCompletion || refunded.Refund.Amount != 1000 ||
		refunded.Items[0].RefundedQuantity != 1 || refunded.Status != order.StatusCompleted || refunded.RefundedAmount != 1000 {
		t.Fatalf("order.refunded: %s", raw[1])
	}
}

// TestApprovedRefundParks: a merchant's approval the gateway refuses answers 409
// order.refund_refused and parks the refund (kind approved) with the order still
// refund_requested; an operator's retry carries it out once accepted. A transient failure
// answers 503 and the retry worker finishes the refund by itself.
func TestApprovedRefundParks(t *testing.T) {
	cfg := testConfig()
	cfg.RefundRetryInterval = 200 * time.Millisecond
	h := newHarness(t, cfg)
	m, tokM := h.merchant()
	sku := h.sku(m, 400, 10)
	b := h.buyer()
	cR, cT := h.place(b, line{sku, 2}), h.place(b, line{sku, 1})
	pR, pT := h.pay(b, cR.CheckoutID), h.pay(b, cT.CheckoutID)
	oR, oT := cR.Orders[0].ID, cT.Orders[0].ID
	h.eventually("stock sold", func() bool { return h.level(sku).Sold == 3 })

	refuse, transient := true, 1
	h.provider.mu.Lock()
	h.provider.refuseRefund = func(r payment.RefundRequest) error { // called with h.provider.mu held
		switch {
		case r.PaymentID == mustInt(t, pR.ID) && refuse:
			return fmt.Errorf("%w: ACQ.TRADE_HAS_CLOSE", payment.ErrRefundRefused)
		case r.PaymentID == mustInt(t, pT.ID) && transient > 0:
			transient--
			return errors.New("gateway timeout")
		}
		return nil
	}
	h.provider.mu.Unlock()

	h.req(http.MethodPost, "/api/v1/orders/"+oR+"/refund", map[string]any{"reason": "late",
		"items": []any{map[string]any{"sku_id": id(sku), "quantity": 1}}}, b.token).Want(t, http.StatusOK, "")
	h.req(http.MethodPost, "/api/v1/merchant/orders/"+oR+"/refund/approve", nil, tokM).
		Want(t, http.StatusConflict, "order.refund_refused")
	if o := h.getOrder(b, oR); o.Status != "refund_requested" {
		t.Fatalf("after a refused approval the order is %s", o.Status)
	}
	l := h.parked()
	if len(l.Items) != 1 || l.Items[0].Kind != "approved" || l.Items[0].OrderID != oR || l.Items[0].Amount != 400 ||
		l.Items[0].State != "refused" {
		t.Fatalf("parked: %+v", l.Items)
	}

	// A transient failure: 503, then the worker carries it out.
	h.req(http.MethodPost, "/api/v1/orders/"+oT+"/refund", map[string]any{"reason": "changed my mind"}, b.token).
		Want(t, http.StatusOK, "")
	h.req(http.MethodPost, "/api/v1/merchant/orders/"+oT+"/refund/approve", nil, tokM).
		Want(t, http.StatusServiceUnavailable, "payment.gateway_unavailable")
	h.eventually("the transiently failed approval refunded by the worker", func() bool {
		return h.getOrder(b, oT).Status == "refunded"
	})

	h.provider.mu.Lock()
	refuse = false
	h.provider.mu.Unlock()
	var got parkedBody
	h.req(http.MethodPost, "/api/v1/admin/refunds/"+oR+"/retry", nil, h.admin).Want(t, http.StatusOK, "").Decode(t, &got)
	if got.State != "done" {
		t.Fatalf("retry: %+v", got)
	}
	var o refundedBody
	h.req(http.MethodGet, "/api/v1/admin/orders/"+oR, nil, h.admin).Want(t, http.StatusOK, "").Decode(t, &o)
	if o.Status != "paid" || o.RefundedAmount != 400 || len(o.Refunds) != 1 {
		t.Fatalf("after the retry: %+v", o)
	}
	if l := h.parked(); len(l.Items) != 0 {
		t.Fatalf("still parked: %+v", l.Items)
	}
	h.eventually("stock returned", func() bool { return h.level(sku).Sold == 1 })
	h.checkStock()
}

// TestCommissionRateFixedAtPlacement: a line takes the merchant's override, else its
// category's rate, else the platform default, when the order is placed; later changes
// leave placed lines as they were.
func TestCommissionRateFixedAtPlacement(t *testing.T) {
	h := newHarness(t, testConfig(), fx.Supply(order.CommissionDefault(450)))
	m, _ := h.merchant()
	sku := h.sku(m, 1000, 10) // in a category without a rate
	b := h.buyer()
	rateOf := func(c checkoutBody) int {
		t.Helper()
		raw := h.orderPayloads(c.Orders[0].ID, order.EventCreated)
		var ev order.OrderEvent
		if len(raw) != 1 || json.Unmarshal(raw[0], &ev) != nil || len(ev.Items) != 1 {
			t.Fatalf("order.created: %s", raw)
		}
		return ev.Items[0].CommissionRateBP
	}
	first := h.place(b, line{sku, 1})
	if r := rateOf(first); r != 450 {
		t.Fatalf("the platform default: %d", r)
	}
	h.req(http.MethodPatch, "/api/v1/admin/merchants/"+id(m), map[string]any{"commission_rate_bp": 120}, h.admin).
		Want(t, http.StatusOK, "")
	second := h.place(b, line{sku, 1})
	if r := rateOf(second); r != 120 {
		t.Fatalf("the merchant's override: %d", r)
	}
	if r := rateOf(first); r != 450 {
		t.Fatalf("the first order's line changed: %d", r)
	}
	os := []order.Order{}
	for _, c := range []checkoutBody{first, second} {
		got, err := h.orders.AdminOrder(context.Background(), mustInt(t, c.Orders[0].ID))
		if err != nil {
			t.Fatal(err)
		}
		os = append(os, got)
	}
	if os[0].Items[0].CommissionRateBP != 450 || os[1].Items[0].CommissionRateBP != 120 {
		t.Fatalf("stored rates: %d, %d", os[0].Items[0].CommissionRateBP, os[1].Items[0].CommissionRateBP)
	}
}

package order_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/merchant"
	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/order/payment"
	"github.com/mallhq/mall/internal/stock"
	"github.com/mallhq/mall/internal/user"
)

type parkedBody struct {
	RefundID    string     `json:"refund_id"`
	Kind        string     `json:"kind"`
	OrderID     string     `json:"order_id"`
	PaymentID   string     `json:"payment_id"`
	Amount      int64      `json:"amount"`
	State       string     `json:"state"`
	Reason      string     `json:"reason"`
	Attempts    int        `json:"attempts"`
	FailedAt    *time.Time `json:"failed_at"`
	NextRetryAt *time.Time `json:"next_retry_at"`
}

type parkedList struct {
	Items      []parkedBody `json:"items"`
	NextCursor string       `json:"next_cursor"`
}

// newOnePartitionHarness is newHarness on a Kafka with one partition per topic: every order
// event shares one partition, so an event that blocked it would stall every later order.
func newOnePartitionHarness(t *testing.T, cfg order.Config, extra ...fx.Option) *harness {
	t.Helper()
	h := &harness{t: t, provider: newTestProvider()}
	acfg := apptest.Config(t)
	acfg.Kafka.Partitions = 1
	h.App = apptest.Start(t, acfg, apptest.Options{
		Modules: append([]fx.Option{user.Module, merchant.Module, stock.Module, catalog.Module, order.Module,
			fx.Replace(noReview(), cfg),
			fx.Provide(order.AsProvider(func() *testProvider { return h.provider }))}, extra...),
		Populate: []any{&h.catalog, &h.stock, &h.orders},
	})
	h.setUp()
	return h
}

func (h *harness) parked() parkedList {
	h.t.Helper()
	var l parkedList
	h.req(http.MethodGet, "/api/v1/admin/refunds/failed", nil, h.admin).Want(h.t, http.StatusOK, "").Decode(h.t, &l)
	return l
}

func (h *harness) metric(line string) bool {
	h.t.Helper()
	r := h.req(http.MethodGet, "/metrics", nil, "").Want(h.t, http.StatusOK, "")
	return strings.Contains(string(r.Body), line+"\n")
}

// TestRefusedRefundParks (issue 12, done-when 2): three paid orders lose their stock (their
// holds lapsed, others bought the units) on a one-partition topic. The gateway refuses the
// first one's refund: it is parked (metric, admin list), the order stays paid and
// stock-lost, and the partition moves on: the second one's refund fails transiently and is
// retried with backoff by the worker, the third one's is refunded at once, and a fourth
// order's stock is confirmed, each within seconds. Then an operator retries the parked
// refund: still refused (200, refused), accepted (200, done; the order refunded, the list
// empty), and once more (409).
func TestRefusedRefundParks(t *testing.T) {
	cfg := testConfig()
	cfg.PaymentTimeout, cfg.HoldGrace, cfg.SweepInterval = 3*time.Second, 0, 0
	cfg.RefundRetryInterval = 200 * time.Millisecond
	h := newOnePartitionHarness(t, cfg, fx.Replace(stock.Config{MaxHoldPerBuyer: 200, SweepInterval: 100 * time.Millisecond}))
	m, _ := h.merchant()
	skuA, skuT, skuC, skuB := h.sku(m, 450, 2), h.sku(m, 300, 2), h.sku(m, 200, 2), h.sku(m, 100, 5)
	lateA, lateT, lateC, quick, other := h.buyer(), h.buyer(), h.buyer(), h.buyer(), h.buyer()

	createPayment := func(b buyer, c checkoutBody) paymentBody {
		var p paymentBody
		h.req(http.MethodPost, "/api/v1/payments", map[string]string{"checkout_id": c.CheckoutID, "provider": "sandbox"},
			b.token, "Idempotency-Key", newKey()).Want(t, http.StatusCreated, "").Decode(t, &p)
		return p
	}
	cA, cT, cC := h.place(lateA, line{skuA, 2}), h.place(lateT, line{skuT, 2}), h.place(lateC, line{skuC, 2})
	pA, pT, pC := createPayment(lateA, cA), createPayment(lateT, cT), createPayment(lateC, cC)
	oA, oT, oC := cA.Orders[0].ID, cT.Orders[0].ID, cC.Orders[0].ID
	h.eventually("the lapsed holds released", func() bool {
		return h.level(skuA).Available == 2 && h.level(skuT).Available == 2 && h.level(skuC).Available == 2
	})
	h.pay(quick, h.place(quick, line{skuA, 2}, line{skuT, 2}, line{skuC, 2}).CheckoutID)

	refuseA, transientFails, transientCalls := true, 2, 0
	h.provider.mu.Lock()
	h.provider.refuseRefund = func(r payment.RefundRequest) error { // called with h.provider.mu held
		switch r.PaymentID {
		case mustInt(t, pA.ID):
			if refuseA {
				return fmt.Errorf("%w: ACQ.SELLER_BALANCE_NOT_ENOUGH", payment.ErrRefundRefused)
			}
		case mustInt(t, pT.ID):
			transientCalls++
			if transientCalls <= transientFails {
				return errors.New("gateway timeout")
			}
		}
		return nil
	}
	h.provider.mu.Unlock()
	complete := func(b buyer, p paymentBody) {
		h.req(http.MethodPost, "/api/v1/payments/"+p.ID+"/sandbox/complete", nil, b.token).Want(t, http.StatusOK, "")
	}
	within := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		start := time.Now()
		h.eventually(what, cond)
		if el := time.Since(start); el > d {
			t.Errorf("%s took %s, want under %s", what, el, d)
		}
	}

	// The refused refund parks.
	complete(lateA, pA)
	h.eventually("the refused refund parked", func() bool { return len(h.parked().Items) == 1 })
	l := h.parked()
	if got := l.Items[0]; got.OrderID != oA || got.PaymentID != pA.ID || got.Amount != 900 || got.State != "refused" ||
		got.Attempts != 1 || got.Kind != "stock_lost" || !strings.Contains(got.Reason, "SELLER_BALANCE_NOT_ENOUGH") ||
		got.FailedAt == nil || got.NextRetryAt != nil {
		t.Errorf("parked refund %+v", got)
	}
	if !h.metric("mall_order_refunds_parked_total 1") {
		t.Error("the parked-refunds metric is not 1")
	}
	if o := h.getOrder(lateA, oA); o.Status != "paid" {
		t.Errorf("the parked order is %s, want paid", o.Status)
	}

	// The partition moves on: a transient failure is retried with backoff, the next refund
	// and the next stock confirmation happen within seconds.
	complete(lateT, pT)
	within("the transiently failing refund retried and done", 10*time.Second, func() bool {
		return h.getOrder(lateT, oT).Status == "refunded"
	})
	h.provider.mu.Lock()
	if transientCalls != transientFails+1 {
		t.Errorf("%d refund calls for the transiently failing refund, want %d", transientCalls, transientFails+1)
	}
	h.provider.mu.Unlock()
	complete(lateC, pC)
	within("the next stock-lost order refunded", 5*time.Second, func() bool { return h.getOrder(lateC, oC).Status == "refunded" })
	h.pay(other, h.place(other, line{skuB, 1}).CheckoutID)
	within("the next order's stock confirmed", 5*time.Second, func() bool { return h.level(skuB).Sold == 1 })
	if l := h.parked(); len(l.Items) != 1 || l.Items[0].OrderID != oA {
		t.Fatalf("parked refunds %+v, want only order A's", l.Items)
	}

	// Operators only.
	h.req(http.MethodGet, "/api/v1/admin/refunds/failed", nil, other.token).Want(t, http.StatusForbidden, "")
	h.req(http.MethodPost, "/api/v1/admin/refunds/"+oA+"/retry", nil, other.token).Want(t, http.StatusForbidden, "")

	// Retry: still refused, then accepted, then nothing to retry.
	var got parkedBody
	h.req(http.MethodPost, "/api/v1/admin/refunds/"+oA+"/retry", nil, h.admin).Want(t, http.StatusOK, "").Decode(t, &got)
	if got.State != "refused" || got.Attempts != 2 {
		t.Errorf("retry while refused: %+v", got)
	}
	if !h.metric("mall_order_refunds_parked_total 1") {
		t.Error("a second refusal of the same refund counted again")
	}
	h.provider.mu.Lock()
	refuseA = false
	h.provider.mu.Unlock()
	h.req(http.MethodPost, "/api/v1/admin/refunds/"+oA+"/retry", nil, h.admin).Want(t, http.StatusOK, "").Decode(t, &got)
	if got.State != "done" || got.OrderID != oA || got.Amount != 900 {
		t.Errorf("retry once accepted: %+v", got)
	}
	if o := h.getOrder(lateA, oA); o.Status != "refunded" {
		t.Errorf("order A is %s after the retry, want refunded", o.Status)
	}
	if l := h.parked(); len(l.Items) != 0 {
		t.Errorf("parked refunds after the retry: %+v", l.Items)
	}
	h.req(http.MethodPost, "/api/v1/admin/refunds/"+oA+"/retry", nil, h.admin).Want(t, http.StatusConflict, "order.refund_not_parked")

	h.provider.mu.Lock()
	refunded := map[int64]int64{}
	for _, r := range h.provider.refunds {
		refunded[r.PaymentID] += r.Amount
	}
	h.provider.mu.Unlock()
	for _, w := range []struct {
		p    paymentBody
		want int64
	}{{pA, 900}, {pT, 600}, {pC, 400}} {
		if got := refunded[mustInt(t, w.p.ID)]; got != w.want {
			t.Errorf("payment %s refunded %d, want %d", w.p.ID, got, w.want)
		}
	}
	for _, sku := range []int64{skuA, skuT, skuC} {
		if l := h.level(sku); l.Available != 0 || l.Reserved != 0 || l.Sold != 2 {
			t.Errorf("sku %d level %+v", sku, l)
		}
	}
	h.checkStock()
}

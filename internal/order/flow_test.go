package order_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/stock"
)

// TestOversell: N buyers check out the last K units at once; exactly K succeed, the rest
// get 409 stock.insufficient, and the counters stay consistent.
func TestOversell(t *testing.T) {
	const n, k = 50, 10
	h := newHarness(t, testConfig())
	m, _ := h.merchant()
	sku := h.sku(m, 990, k)
	buyers := make([]buyer, n)
	for i := range buyers {
		buyers[i] = h.buyer()
	}
	var wg sync.WaitGroup
	statuses := make([]response, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i, b := range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses[i], errs[i] = h.Do(http.MethodPost, "/api/v1/orders", placeBody(b, line{sku, 1}),
				"Authorization", "Bearer "+b.token, "Idempotency-Key", newKey())
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d concurrent checkouts in %s", n, time.Since(t0))
	ok, insufficient := 0, 0
	for i, r := range statuses {
		if errs[i] != nil {
			t.Fatalf("buyer %d: %v", i, errs[i])
		}
		switch {
		case r.Status == http.StatusCreated:
			ok++
		case r.Status == http.StatusConflict && r.Code() == "stock.insufficient":
			insufficient++
		default:
			t.Errorf("buyer %d: %s", i, r)
		}
	}
	if ok != k || insufficient != n-k {
		t.Fatalf("%d succeeded and %d got stock.insufficient; want %d and %d", ok, insufficient, k, n-k)
	}
	l := h.level(sku)
	if l.Available != 0 || l.Reserved != k || l.Sold != 0 || l.OnHand != l.Available+l.Reserved+l.Sold {
		t.Errorf("level %+v", l)
	}
	h.checkStock()
	// Exactly K orders exist over both shards.
	total := 0
	seen := map[any]bool{}
	for _, db := range h.Cluster.Shards() {
		if seen[db] {
			continue
		}
		seen[db] = true
		var c int
		if err := db.GetContext(context.Background(), &c, `SELECT COUNT(*) FROM order_orders`); err != nil {
			t.Fatal(err)
		}
		total += c
	}
	if total != k {
		t.Errorf("%d orders stored, want %d", total, k)
	}
}

func TestCancelReleasesStock(t *testing.T) {
	h := newHarness(t, testConfig())
	m, _ := h.merchant()
	sku := h.sku(m, 700, 5)
	b, other := h.buyer(), h.buyer()
	c := h.place(b, line{sku, 2})
	oid := c.Orders[0].ID

	// Another buyer sees and cancels nothing.
	h.req(http.MethodGet, "/api/v1/orders/"+oid, nil, other.token).Want(t, http.StatusNotFound, "order.not_found")
	before := h.snapshot()
	h.req(http.MethodPost, "/api/v1/orders/"+oid+"/cancel", nil, other.token).Want(t, http.StatusNotFound, "order.not_found")
	h.req(http.MethodPost, "/api/v1/orders/"+oid+"/refund", map[string]string{"reason": "x"}, other.token).Want(t, http.StatusNotFound, "")
	if after := h.snapshot(); after != before {
		t.Fatalf("another buyer changed the database:\n%s\n->\n%s", before, after)
	}

	var o orderBody
	h.req(http.MethodPost, "/api/v1/orders/"+oid+"/cancel", nil, b.token).Want(t, http.StatusOK, "").Decode(t, &o)
	if o.Status != "cancelled" {
		t.Fatalf("cancel: %+v", o)
	}
	h.req(http.MethodPost, "/api/v1/orders/"+oid+"/cancel", nil, b.token).Want(t, http.StatusConflict, "order.status_conflict")
	h.eventually("stock released through order.cancelled", func() bool {
		l := h.level(sku)
		return l.Reserved == 0 && l.Available == 5
	})
	h.checkStock()
	if n := h.orderEvents(oid, order.EventCancelled); n != 1 {
		t.Errorf("%d order.cancelled events", n)
	}
}

// TestPaymentShipRefund walks an order through payment, shipment, receipt, and a second
// order through refund request, rejection and approval, with the notification's
// refusals and replays.
func TestPaymentShipRefund(t *testing.T) {
	h := newHarness(t, testConfig())
	mA, tokA := h.merchant()
	_, tokB := h.merchant()
	sku := h.sku(mA, 1500, 10)
	b := h.buyer()
	c := h.place(b, line{sku, 2})
	oid := c.Orders[0].ID

	var p paymentBody
	h.req(http.MethodPost, "/api/v1/payments", map[string]string{"checkout_id": c.CheckoutID, "provider": "sandbox"},
		b.token, "Idempotency-Key", newKey()).Want(t, http.StatusCreated, "").Decode(t, &p)
	if p.Status != "pending" || p.Amount != 3000 || p.Currency != "CNY" || p.PayURL == "" || p.CheckoutID != c.CheckoutID {
		t.Fatalf("payment %+v", p)
	}
	h.req(http.MethodPost, "/api/v1/payments", map[string]string{"checkout_id": c.CheckoutID, "provider": "nope"},
		b.token, "Idempotency-Key", newKey()).Want(t, http.StatusBadRequest, "payment.provider_unknown")
	other := h.buyer()
	h.req(http.MethodGet, "/api/v1/payments/"+p.ID, nil, other.token).Want(t, http.StatusNotFound, "payment.not_found")
	h.req(http.MethodPost, "/api/v1/payments/"+p.ID+"/sandbox/complete", nil, other.token).Want(t, http.StatusNotFound, "")

	notify := func(f url.Values) response {
		return h.req(http.MethodPost, "/api/v1/payments/notify/sandbox", []byte(f.Encode()), "",
			"Content-Type", "application/x-www-form-urlencoded")
	}
	pid := mustInt(t, p.ID)
	// Forged: bad signature, tampered amount, an unknown payment. Nothing changes. (A wrong
	// amount correctly signed is recorded for reconciliation: TestNotificationAmountMismatch.)
	before := h.snapshot()
	bad := h.provider.notification(pid, 3000, "n1")
	bad.Set("sign", strings.Repeat("0", 64))
	notify(bad).Want(t, http.StatusBadRequest, "payment.bad_notification")
	tampered := h.provider.notification(pid, 3000, "n1")
	tampered.Set("amount", "1")
	notify(tampered).Want(t, http.StatusBadRequest, "payment.bad_notification")
	notify(h.provider.notification(pid+1024, 3000, "n1")).Want(t, http.StatusBadRequest, "payment.bad_notification")
	if after := h.snapshot(); after != before {
		t.Fatalf("a refused notification changed the database:\n%s\n->\n%s", before, after)
	}

	// A genuine notification pays; its replay changes nothing.
	h.provider.mu.Lock()
	h.provider.paid[pid] = true
	h.provider.mu.Unlock()
	good := h.provider.notification(pid, 3000, "n1")
	if r := notify(good).Want(t, http.StatusOK, ""); string(r.Body) != "success" {
		t.Errorf("ack %q", r.Body)
	}
	if o := h.getOrder(b, oid); o.Status != "paid" {
		t.Fatalf("after notify: %+v", o)
	}
	afterPay := h.snapshot()
	notify(good).Want(t, http.StatusOK, "")
	if again := h.snapshot(); again != afterPay {
		t.Fatalf("a replayed notification changed the database:\n%s\n->\n%s", afterPay, again)
	}
	if n := h.orderEvents(oid, order.EventPaid); n != 1 {
		t.Errorf("%d order.paid events", n)
	}
	var got paymentBody
	h.req(http.MethodGet, "/api/v1/payments/"+p.ID, nil, b.token).Want(t, 200, "").Decode(t, &got)
	if got.Status != "succeeded" {
		t.Errorf("payment %+v", got)
	}
	h.eventually("stock sold through order.paid", func() bool {
		l := h.level(sku)
		return l.Sold == 2 && l.Reserved == 0
	})

	// Merchant B cannot see or ship A's order.
	before = h.snapshot()
	h.req(http.MethodGet, "/api/v1/merchant/orders/"+oid, nil, tokB).Want(t, http.StatusNotFound, "order.not_found")
	h.req(http.MethodPost, "/api/v1/merchant/orders/"+oid+"/ship", map[string]string{"carrier": "SF", "tracking_no": "X"},
		tokB).Want(t, http.StatusNotFound, "order.not_found")
	if after := h.snapshot(); after != before {
		t.Fatalf("merchant B changed the database:\n%s\n->\n%s", before, after)
	}

	// Refund requested from paid, rejected back to paid.
	var o orderBody
	h.req(http.MethodPost, "/api/v1/orders/"+oid+"/refund", map[string]string{"reason": "changed my mind"}, b.token).
		Want(t, http.StatusOK, "").Decode(t, &o)
	if o.Status != "refund_requested" {
		t.Fatalf("refund: %+v", o)
	}
	h.req(http.MethodPost, "/api/v1/merchant/orders/"+oid+"/refund/reject", nil, tokA).Want(t, 200, "").Decode(t, &o)
	if o.Status != "paid" {
		t.Fatalf("reject: %+v", o)
	}

	// Ship, then a refund from shipped is rejected back to shipped; confirm receipt.
	h.req(http.MethodPost, "/api/v1/orders/"+oid+"/confirm-receipt", nil, b.token).Want(t, http.StatusConflict, "order.status_conflict")
	h.req(http.MethodPost, "/api/v1/merchant/orders/"+oid+"/ship", map[string]string{"carrier": "SF", "tracking_no": "SF123"},
		tokA).Want(t, 200, "").Decode(t, &o)
	if o.Status != "shipped" || o.TrackingNo != "SF123" {
		t.Fatalf("ship: %+v", o)
	}
	h.req(http.MethodPost, "/api/v1/orders/"+oid+"/refund", map[string]string{"reason": "broken"}, b.token).Want(t, 200, "")
	h.req(http.MethodPost, "/api/v1/merchant/orders/"+oid+"/refund/reject", nil, tokA).Want(t, 200, "").Decode(t, &o)
	if o.Status != "shipped" {
		t.Fatalf("reject from shipped: %+v", o)
	}
	h.req(http.MethodPost, "/api/v1/orders/"+oid+"/confirm-receipt", nil, b.token).Want(t, 200, "").Decode(t, &o)
	if o.Status != "completed" {
		t.Fatalf("confirm: %+v", o)
	}

	// A second order: paid through the sandbox route, refund approved: money back, stock returned.
	c2 := h.place(b, line{sku, 3})
	oid2 := c2.Orders[0].ID
	p2 := h.pay(b, c2.CheckoutID)
	h.eventually("second order's stock sold", func() bool { return h.level(sku).Sold == 5 })
	h.req(http.MethodPost, "/api/v1/orders/"+oid2+"/refund", map[string]string{"reason": "late"}, b.token).Want(t, 200, "")
	h.req(http.MethodPost, "/api/v1/merchant/orders/"+oid2+"/refund/approve", nil, tokB).Want(t, http.StatusNotFound, "")
	h.req(http.MethodPost, "/api/v1/merchant/orders/"+oid2+"/refund/approve", nil, tokA).Want(t, 200, "").Decode(t, &o)
	if o.Status != "refunded" {
		t.Fatalf("approve: %+v", o)
	}
	h.req(http.MethodPost, "/api/v1/merchant/orders/"+oid2+"/refund/approve", nil, tokA).Want(t, http.StatusConflict, "order.status_conflict")
	h.provider.mu.Lock()
	refunds := len(h.provider.refunds)
	h.provider.mu.Unlock()
	if refunds != 1 {
		t.Errorf("%d gateway refunds, want 1", refunds)
	}
	h.req(http.MethodGet, "/api/v1/payments/"+p2.ID, nil, b.token).Want(t, 200, "").Decode(t, &got)
	if got.Status != "refunded" {
		t.Errorf("payment after refund %+v", got)
	}
	h.eventually("refunded units back in stock", func() bool {
		l := h.level(sku)
		return l.Sold == 2 && l.Available == 8
	})
	h.checkStock()
}

func TestPaymentTimeoutCancels(t *testing.T) {
	cfg := testConfig()
	cfg.PaymentTimeout = 2 * time.Second // room to create the payment first on a loaded machine
	h := newHarness(t, cfg)
	m, _ := h.merchant()
	sku := h.sku(m, 100, 4)
	b := h.buyer()
	c := h.place(b, line{sku, 3})
	var p paymentBody
	h.req(http.MethodPost, "/api/v1/payments", map[string]string{"checkout_id": c.CheckoutID, "provider": "sandbox"},
		b.token, "Idempotency-Key", newKey()).Want(t, http.StatusCreated, "").Decode(t, &p)
	h.eventually("the unpaid order cancelled", func() bool { return h.getOrder(b, c.Orders[0].ID).Status == "cancelled" })
	h.req(http.MethodPost, "/api/v1/payments", map[string]string{"checkout_id": c.CheckoutID, "provider": "sandbox"},
		b.token, "Idempotency-Key", newKey()).Want(t, http.StatusConflict, "payment.nothing_to_pay")
	h.eventually("its stock released", func() bool {
		l := h.level(sku)
		return l.Reserved == 0 && l.Available == 4
	})
	h.provider.mu.Lock()
	closed := h.provider.closed[mustInt(t, p.ID)]
	h.provider.mu.Unlock()
	if !closed {
		t.Error("the gateway payment was not closed before cancelling")
	}
	h.checkStock()

	// The money arrives anyway: the order is revived as paid and its units re-taken.
	h.req(http.MethodPost, "/api/v1/payments/"+p.ID+"/sandbox/complete", nil, b.token).Want(t, http.StatusOK, "")
	if o := h.getOrder(b, c.Orders[0].ID); o.Status != "paid" {
		t.Fatalf("after a late payment: %+v", o)
	}
	h.eventually("the late-paid order's units re-taken", func() bool {
		l := h.level(sku)
		return l.Sold == 3 && l.Available == 1
	})
	if n := h.orderEvents(c.Orders[0].ID, order.EventPaidAfterCancel); n != 1 {
		t.Errorf("%d order.paid_after_cancel events", n)
	}
	h.checkStock()
}

// TestPaidAfterHoldLapsed: the hold lapses (the stock sweeper releases it), another buyer
// takes the units, then the first buyer's payment arrives. The order is paid, the stock
// cannot be confirmed, so the order is flagged, announced (order.stock_lost) and refunded
// automatically; no counter goes wrong.
func TestPaidAfterHoldLapsed(t *testing.T) {
	cfg := testConfig()
	// 2 s: the payment must be created before the checkout expires, also on a loaded machine.
	cfg.PaymentTimeout, cfg.HoldGrace, cfg.SweepInterval = 2*time.Second, 0, 0 // no order timeout sweeper
	h := newHarness(t, cfg, fx.Replace(stock.Config{MaxHoldPerBuyer: 200, SweepInterval: 100 * time.Millisecond}))
	m, _ := h.merchant()
	sku := h.sku(m, 450, 2)
	late, quick := h.buyer(), h.buyer()
	c := h.place(late, line{sku, 2})
	oid := c.Orders[0].ID
	var p paymentBody
	h.req(http.MethodPost, "/api/v1/payments", map[string]string{"checkout_id": c.CheckoutID, "provider": "sandbox"},
		late.token, "Idempotency-Key", newKey()).Want(t, http.StatusCreated, "").Decode(t, &p)
	h.eventually("the lapsed hold released", func() bool { return h.level(sku).Available == 2 })
	c2 := h.place(quick, line{sku, 2})
	h.pay(quick, c2.CheckoutID)
	h.req(http.MethodPost, "/api/v1/payments/"+p.ID+"/sandbox/complete", nil, late.token).Want(t, http.StatusOK, "")

	h.eventually("the late order refunded", func() bool { return h.getOrder(late, oid).Status == "refunded" })
	h.eventually("the quick order's units sold", func() bool { return h.level(sku).Sold == 2 })
	if n := h.orderEvents(oid, order.EventStockLost); n != 1 {
		t.Errorf("%d order.stock_lost events", n)
	}
	h.provider.mu.Lock()
	var refunded int64
	for _, r := range h.provider.refunds {
		if r.PaymentID == mustInt(t, p.ID) {
			refunded += r.Amount
		}
	}
	h.provider.mu.Unlock()
	if refunded != 900 {
		t.Errorf("refunded %d, want 900", refunded)
	}
	if l := h.level(sku); l.Available != 0 || l.Reserved != 0 || l.Sold != 2 {
		t.Errorf("level %+v", l)
	}
	h.checkStock()
}

// TestConcurrentTransitions: many concurrent cancels of one order and concurrent
// shipments of another — exactly one of each wins, with exactly one event.
func TestConcurrentTransitions(t *testing.T) {
	const n = 20
	h := newHarness(t, testConfig())
	m, tok := h.merchant()
	sku := h.sku(m, 100, 10)
	b := h.buyer()
	c1 := h.place(b, line{sku, 1})
	c2 := h.place(b, line{sku, 1})
	h.pay(b, c2.CheckoutID)
	cancelID, shipID := c1.Orders[0].ID, c2.Orders[0].ID

	race := func(method, path string, body any, token string) (won, conflicts int) {
		var wg sync.WaitGroup
		res := make([]response, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := h.Do(method, path, body, "Authorization", "Bearer "+token)
				if err != nil {
					t.Error(err)
				}
				res[i] = r
			}()
		}
		wg.Wait()
		for _, r := range res {
			switch {
			case r.Status == http.StatusOK:
				won++
			case r.Status == http.StatusConflict && r.Code() == "order.status_conflict":
				conflicts++
			default:
				t.Errorf("%s %s: %s", method, path, r)
			}
		}
		return won, conflicts
	}
	if won, lost := race(http.MethodPost, "/api/v1/orders/"+cancelID+"/cancel", nil, b.token); won != 1 || lost != n-1 {
		t.Errorf("cancel: %d won, %d conflicts", won, lost)
	}
	if won, lost := race(http.MethodPost, "/api/v1/merchant/orders/"+shipID+"/ship",
		map[string]string{"carrier": "SF", "tracking_no": "1"}, tok); won != 1 || lost != n-1 {
		t.Errorf("ship: %d won, %d conflicts", won, lost)
	}
	if e := h.orderEvents(cancelID, order.EventCancelled); e != 1 {
		t.Errorf("%d order.cancelled events", e)
	}
	if e := h.orderEvents(shipID, order.EventShipped); e != 1 {
		t.Errorf("%d order.shipped events", e)
	}
	h.eventually("the cancelled unit released and the paid one sold", func() bool {
		l := h.level(sku)
		return l.Available == 9 && l.Sold == 1 && l.Reserved == 0
	})
	h.checkStock()
}

// TestSandboxDisabled: without payments.sandbox.enabled the sandbox route answers 404 and
// pays nothing.
func TestSandboxDisabled(t *testing.T) {
	pay := order.PaymentsSection.Default()
	pay.Sandbox.Enabled = false
	h := newHarness(t, testConfig(), fx.Replace(pay))
	m, _ := h.merchant()
	sku := h.sku(m, 100, 5)
	b := h.buyer()
	c := h.place(b, line{sku, 1})
	var p paymentBody
	h.req(http.MethodPost, "/api/v1/payments", map[string]string{"checkout_id": c.CheckoutID, "provider": "sandbox"},
		b.token, "Idempotency-Key", newKey()).Want(t, http.StatusCreated, "").Decode(t, &p)
	h.req(http.MethodPost, "/api/v1/payments/"+p.ID+"/sandbox/complete", nil, b.token).Want(t, http.StatusNotFound, "payment.sandbox_disabled")
	if o := h.getOrder(b, c.Orders[0].ID); o.Status != "pending_payment" {
		t.Errorf("order %+v", o)
	}
}

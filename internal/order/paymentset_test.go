package order_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/mallhq/mall/internal/order"
)

// TestPaymentPaysOnlyItsOrders is the money bug of issue 12 through HTTP: a checkout of
// two merchants' orders, A for 100,000 fen and B for 1 fen; the buyer cancels A, creates a
// payment (1 fen: only B is pending) and completes it. A stays cancelled with its stock
// released and never re-taken, B is paid, and nothing is refunded.
func TestPaymentPaysOnlyItsOrders(t *testing.T) {
	h := newHarness(t, testConfig())
	mA, _ := h.merchant()
	mB, _ := h.merchant()
	skuA, skuB := h.sku(mA, 100_000, 5), h.sku(mB, 1, 5)

	// checkout places the two-order checkout and returns it with A and B.
	checkout := func(b buyer) (c checkoutBody, a, bo orderBody) {
		c = h.place(b, line{skuA, 1}, line{skuB, 1})
		if len(c.Orders) != 2 || c.TotalAmount != 100_001 {
			t.Fatalf("checkout %+v", c)
		}
		for _, o := range c.Orders {
			if o.MerchantID == id(mA) {
				a = o
			} else {
				bo = o
			}
		}
		if a.TotalAmount != 100_000 || bo.TotalAmount != 1 {
			t.Fatalf("orders %+v", c.Orders)
		}
		return c, a, bo
	}
	createPayment := func(b buyer, checkoutID string) paymentBody {
		var p paymentBody
		h.req(http.MethodPost, "/api/v1/payments", map[string]string{"checkout_id": checkoutID, "provider": "sandbox"},
			b.token, "Idempotency-Key", newKey()).Want(t, http.StatusCreated, "").Decode(t, &p)
		return p
	}

	t.Run("CancelledBeforeThePayment", func(t *testing.T) {
		h := h.sub(t)
		b := h.buyer()
		c, a, bo := checkout(b)
		h.req(http.MethodPost, "/api/v1/orders/"+a.ID+"/cancel", nil, b.token).Want(t, http.StatusOK, "")
		p := createPayment(b, c.CheckoutID)
		if p.Amount != 1 {
			t.Fatalf("payment %+v, want 1 fen", p)
		}
		if got := h.paymentSet(p.ID); len(got) != 1 || got[mustInt(t, bo.ID)] != 1 {
			t.Fatalf("payment covers %v, want only B for 1 fen", got)
		}
		h.req(http.MethodPost, "/api/v1/payments/"+p.ID+"/sandbox/complete", nil, b.token).Want(t, http.StatusOK, "")

		if o := h.getOrder(b, a.ID); o.Status != "cancelled" {
			t.Fatalf("order A after a 1 fen payment: %+v", o)
		}
		if o := h.getOrder(b, bo.ID); o.Status != "paid" {
			t.Fatalf("order B: %+v", o)
		}
		h.req(http.MethodPost, "/api/v1/payments", map[string]string{"checkout_id": c.CheckoutID, "provider": "sandbox"},
			b.token, "Idempotency-Key", newKey()).Want(t, http.StatusConflict, "payment.nothing_to_pay")
		h.eventually("A released and B sold", func() bool {
			la, lb := h.level(skuA), h.level(skuB)
			return la.Available == 5 && la.Reserved == 0 && la.Sold == 0 && lb.Sold == 1 && lb.Reserved == 0
		})
		for _, typ := range []string{order.EventPaid, order.EventPaidAfterCancel, order.EventStockLost, order.EventRefunded} {
			if n := h.orderEvents(a.ID, typ); n != 0 {
				t.Errorf("order A: %d %s events", n, typ)
			}
		}
		if n := h.orderEvents(bo.ID, order.EventPaid); n != 1 {
			t.Errorf("order B: %d order.paid events", n)
		}
		h.provider.mu.Lock()
		refunds := len(h.provider.refunds)
		h.provider.mu.Unlock()
		if refunds != 0 {
			t.Errorf("%d refunds attempted", refunds)
		}
		if l := h.level(skuA); l.Sold != 0 || l.Available != 5 {
			t.Errorf("A's stock re-taken: %+v", l)
		}
		h.checkStock()
	})

	// The other order of the rules (ADR 0017, "Payment sets"): the payment is created while
	// both are pending, then A is cancelled. The payment covers A (its amount includes A's):
	// when it is paid, A is revived as paid and its units re-taken, as before.
	t.Run("CancelledAfterThePayment", func(t *testing.T) {
		h := h.sub(t)
		b := h.buyer()
		c, a, bo := checkout(b)
		p := createPayment(b, c.CheckoutID)
		if p.Amount != 100_001 {
			t.Fatalf("payment %+v", p)
		}
		h.req(http.MethodPost, "/api/v1/orders/"+a.ID+"/cancel", nil, b.token).Want(t, http.StatusOK, "")
		// Asking again returns the same pending payment, its set unchanged.
		if again := createPayment(b, c.CheckoutID); again.ID != p.ID || again.Amount != 100_001 {
			t.Fatalf("second request %+v, want %+v", again, p)
		}
		sold := h.level(skuA).Sold
		h.req(http.MethodPost, "/api/v1/payments/"+p.ID+"/sandbox/complete", nil, b.token).Want(t, http.StatusOK, "")
		for _, o := range []orderBody{a, bo} {
			if got := h.getOrder(b, o.ID); got.Status != "paid" {
				t.Fatalf("order %s: %+v", o.ID, got)
			}
		}
		if n := h.orderEvents(a.ID, order.EventPaidAfterCancel); n != 1 {
			t.Errorf("order A: %d order.paid_after_cancel events", n)
		}
		h.eventually("A's unit re-taken", func() bool {
			l := h.level(skuA)
			return l.Sold == sold+1 && l.Reserved == 0
		})
		h.checkStock()
	})
}

// paymentSet reads the orders a payment covers and the amount for each.
func (h *harness) paymentSet(paymentID string) map[int64]int64 {
	h.t.Helper()
	var rows []struct {
		OrderID int64 `db:"order_id"`
		Amount  int64 `db:"amount"`
	}
	if err := h.shardOf(paymentID).SelectContext(context.Background(), &rows,
		`SELECT order_id, amount FROM order_payment_orders WHERE payment_id = ?`, paymentID); err != nil {
		h.t.Fatal(err)
	}
	out := map[int64]int64{}
	for _, r := range rows {
		out[r.OrderID] = r.Amount
	}
	return out
}

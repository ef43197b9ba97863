package order_test

import (
	"context"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/order"
)

// cartLines is the buyer's cart through GET /api/v1/cart: SKU ID -> quantity.
func (h *harness) cartLines(b buyer) map[string]int64 {
	h.t.Helper()
	var c struct {
		Items []struct {
			SKUID    string `json:"sku_id"`
			Quantity int64  `json:"quantity"`
		} `json:"items"`
	}
	h.req(http.MethodGet, "/api/v1/cart", nil, b.token).Want(h.t, http.StatusOK, "").Decode(h.t, &c)
	out := map[string]int64{}
	for _, it := range c.Items {
		out[it.SKUID] = it.Quantity
	}
	return out
}

func (h *harness) putCart(b buyer, sku, qty int64) response {
	h.t.Helper()
	return h.req(http.MethodPut, "/api/v1/cart/items/"+id(sku), map[string]int64{"quantity": qty}, b.token)
}

func wantCart(t *testing.T, what string, got, want map[string]int64) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("cart %s: %v, want %v", what, got, want)
	}
}

// TestPlaceTakesOrderedUnitsFromCart: an order takes its quantities out of the cart (API.md,
// cart row) in the checkout's transaction: a line reaching 0 leaves, lines not ordered stay,
// ordered SKUs not in the cart are fine; a refused or rolled-back checkout leaves the cart as
// it was; a replayed Idempotency-Key (stored response, taken-over key, forgotten key) does
// not subtract again.
func TestPlaceTakesOrderedUnitsFromCart(t *testing.T) {
	h := newHarness(t, testConfig())
	m1, _ := h.merchant()
	m2, _ := h.merchant()
	x, y, z := h.sku(m1, 100, 20), h.sku(m2, 200, 20), h.sku(m1, 300, 20)
	w, scarce := h.sku(m2, 400, 20), h.sku(m1, 500, 1)
	b := h.buyer()
	h.putCart(b, x, 3).Want(t, http.StatusOK, "")
	h.putCart(b, y, 2).Want(t, http.StatusOK, "")
	h.putCart(b, z, 1).Want(t, http.StatusOK, "")
	h.putCart(b, scarce, 1).Want(t, http.StatusOK, "")
	full := map[string]int64{id(x): 3, id(y): 2, id(z): 1, id(scarce): 1}

	// Refused: stock is insufficient for one line; nothing leaves the cart.
	h.req(http.MethodPost, "/api/v1/orders", placeBody(b, line{x, 1}, line{scarce, 2}), b.token, "Idempotency-Key", newKey()).
		Want(t, http.StatusConflict, "stock.insufficient")
	wantCart(t, "after a refused checkout", h.cartLines(b), full)

	// Rolled back: the buyer-shard transaction fails after the cart lines were taken.
	svc, err := order.New(order.Params{DB: h.Cluster, IDs: h.IDs, Catalog: h.catalog, Stock: h.stock, Users: h.Users,
		Outbox: failingOutbox{}, Config: order.Config{PaymentTimeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Place(context.Background(), order.PlaceOrder{BuyerID: b.id, AddressID: mustInt(t, b.address),
		Items: []order.LineInput{{SKUID: x, Quantity: 1}, {SKUID: y, Quantity: 2}}}); err == nil {
		t.Fatal("Place succeeded with a failing outbox")
	}
	wantCart(t, "after a rolled-back checkout", h.cartLines(b), full)

	// Two merchants' orders, one SKU (w) not in the cart.
	key := newKey()
	body := placeBody(b, line{x, 1}, line{y, 2}, line{w, 1})
	var c checkoutBody
	h.req(http.MethodPost, "/api/v1/orders", body, b.token, "Idempotency-Key", key).
		Want(t, http.StatusCreated, "").Decode(t, &c)
	if len(c.Orders) != 2 {
		t.Fatalf("checkout %+v", c)
	}
	after := map[string]int64{id(x): 2, id(z): 1, id(scarce): 1}
	wantCart(t, "after the order", h.cartLines(b), after)

	// The same key again: the stored response is replayed, Place does not run.
	r := h.req(http.MethodPost, "/api/v1/orders", body, b.token, "Idempotency-Key", key).Want(t, http.StatusCreated, "")
	if r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the retry was not replayed: %v", r.Header)
	}
	wantCart(t, "after a replay", h.cartLines(b), after)

	// The response was lost after the commit (TestCheckoutTwoMerchants' crash cases): a
	// taken-over key finds the checkout before anything runs, a forgotten one runs again and
	// its transaction rolls back on the checkout's unique key. The cart is taken once.
	db := h.Cluster.Main()
	for _, q := range []string{
		`UPDATE platform_idempotency_keys SET state = 0, lock_token = X'00', response_status = NULL,
			response_headers = NULL, response_body = NULL, locked_until = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND
			WHERE user_id = ? AND idem_key = ?`,
		`DELETE FROM platform_idempotency_keys WHERE user_id = ? AND idem_key = ?`,
	} {
		if _, err := db.ExecContext(context.Background(), q, b.id, key); err != nil {
			t.Fatal(err)
		}
		var retried checkoutBody
		h.req(http.MethodPost, "/api/v1/orders", body, b.token, "Idempotency-Key", key).
			Want(t, http.StatusCreated, "").Decode(t, &retried)
		if retried.CheckoutID != c.CheckoutID {
			t.Errorf("retry gave checkout %s, want %s", retried.CheckoutID, c.CheckoutID)
		}
		wantCart(t, "after a retry of a lost response", h.cartLines(b), after)
	}

	// More than the cart holds of a line: the line leaves.
	h.place(b, line{x, 5})
	wantCart(t, "after ordering more than the line", h.cartLines(b), map[string]int64{id(z): 1, id(scarce): 1})
	h.checkStock()
}

// TestCartLimit: a returning buyer whose every order went through the cart can still add
// after more orders than the cart holds (the ordered lines left it), and concurrent adds of
// distinct SKUs never take the cart past MaxCartItems.
func TestCartLimit(t *testing.T) {
	h := newHarness(t, testConfig())
	m, _ := h.merchant()
	const adders = 20
	skus := make([]int64, order.MaxCartItems+adders)
	for i := range skus {
		skus[i] = h.sku(m, 100, 5)
	}

	t.Run("orders empty the cart", func(t *testing.T) {
		b := h.buyer()
		for _, sku := range skus[:order.MaxCartItems+1] {
			h.putCart(b, sku, 1).Want(t, http.StatusOK, "")
			h.place(b, line{sku, 1})
		}
		wantCart(t, "after the orders", h.cartLines(b), map[string]int64{})
		h.putCart(b, skus[0], 2).Want(t, http.StatusOK, "")
		wantCart(t, "after an add", h.cartLines(b), map[string]int64{id(skus[0]): 2})
	})

	t.Run("concurrent adds stop at the limit", func(t *testing.T) {
		// The adders' SKUs (the last ones) are none of the prefilled lines.
		const prefilled = order.MaxCartItems - 5
		for round := range 3 {
			b := h.buyer()
			for i := range prefilled {
				h.putCart(b, skus[i], 1).Want(t, http.StatusOK, "")
			}
			res, errs := atOnce(adders, func(i int) (response, error) {
				sku := skus[len(skus)-adders+i]
				return h.Do(http.MethodPut, "/api/v1/cart/items/"+id(sku), map[string]int{"quantity": 1},
					"Authorization", "Bearer "+b.token)
			})
			added := 0
			for i, r := range res {
				switch {
				case errs[i] != nil:
					t.Fatalf("add %d: %v", i, errs[i])
				case r.Status == http.StatusOK:
					added++
				case r.Status != http.StatusConflict || r.Code() != "order.cart_full":
					t.Fatalf("add %d: %s", i, r)
				}
			}
			if n := len(h.cartLines(b)); added != order.MaxCartItems-prefilled || n != order.MaxCartItems {
				t.Fatalf("round %d: %d adds succeeded, cart has %d lines (limit %d)", round, added, n, order.MaxCartItems)
			}
			// At the limit, a line already in the cart still changes; a new one does not go in.
			h.putCart(b, skus[0], 3).Want(t, http.StatusOK, "")
			h.putCart(b, skus[prefilled], 1).Want(t, http.StatusConflict, "order.cart_full")
		}
	})
}

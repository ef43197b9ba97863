package order_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/mallhq/mall/internal/app/apptest"
)

// FuzzCheckoutBodies feeds arbitrary bodies to the checkout (POST /api/v1/orders, with a
// fresh Idempotency-Key each time) and to the cart (PUT /api/v1/cart/items/{sku}) through
// the real server on two shards: the answer is the route's success status or a 4xx
// problem with a code, never a panic or a 5xx. In a body "$SKU1" and "$SKU2" become SKUs of
// two merchants and "$ADDR" the buyer's address, so seeds reach the stock module and the
// shards. Seeds live in testdata/fuzz/FuzzCheckoutBodies/.
func FuzzCheckoutBodies(f *testing.F) {
	h := newHarness(f, testConfig())
	m1, _ := h.merchant()
	m2, _ := h.merchant()
	sku1, sku2 := h.sku(m1, 1999, 100_000), h.sku(m2, 500, 100_000)
	b := h.buyer()
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, body []byte) {
		body = bytes.ReplaceAll(body, []byte("$SKU1"), []byte(strconv.FormatInt(sku1, 10)))
		body = bytes.ReplaceAll(body, []byte("$SKU2"), []byte(strconv.FormatInt(sku2, 10)))
		body = bytes.ReplaceAll(body, []byte("$ADDR"), []byte(b.address))
		key := "fuzz-" + strconv.FormatInt(n.Add(1), 10) + "-" + apptest.RandomIP()
		apptest.CheckOutcome(t, serve(h, http.MethodPost, "/api/v1/orders", body, b.token, key), body, http.StatusCreated)
		apptest.CheckOutcome(t, serve(h, http.MethodPut, "/api/v1/cart/items/"+strconv.FormatInt(sku1, 10), body,
			b.token, ""), body, http.StatusOK)
	})
}

// serve runs one JSON request through the whole handler chain in process.
func serve(h *harness, method, path string, body []byte, token, key string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Forwarded-For", h.IP)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	rec := httptest.NewRecorder()
	h.Server.Handler().ServeHTTP(rec, req)
	return rec
}

// FuzzRefundBodies feeds arbitrary bodies to a refund request (POST
// /api/v1/orders/{id}/refund) of a paid two-line order: the answer is 200 or a 4xx problem
// with a code, never a panic or a 5xx; an accepted request is rejected by the merchant so
// the next input meets a paid order again. "$SKU1"/"$SKU2" become the order's SKUs. Seeds
// live in testdata/fuzz/FuzzRefundBodies/.
func FuzzRefundBodies(f *testing.F) {
	h := newHarness(f, testConfig())
	m, tokM := h.merchant()
	sku1, sku2 := h.sku(m, 1999, 100), h.sku(m, 500, 100)
	b := h.buyer()
	c := h.place(b, line{sku1, 3}, line{sku2, 1})
	h.pay(b, c.CheckoutID)
	oid := c.Orders[0].ID
	f.Fuzz(func(t *testing.T, body []byte) {
		body = bytes.ReplaceAll(body, []byte("$SKU1"), []byte(strconv.FormatInt(sku1, 10)))
		body = bytes.ReplaceAll(body, []byte("$SKU2"), []byte(strconv.FormatInt(sku2, 10)))
		rec := serve(h, http.MethodPost, "/api/v1/orders/"+oid+"/refund", body, b.token, "")
		apptest.CheckOutcome(t, rec, body, http.StatusOK)
		if rec.Code == http.StatusOK {
			rej := serve(h, http.MethodPost, "/api/v1/merchant/orders/"+oid+"/refund/reject", nil, tokM, "")
			if rej.Code != http.StatusOK {
				t.Fatalf("reject after an accepted request: %d %s", rej.Code, rej.Body)
			}
		}
	})
}

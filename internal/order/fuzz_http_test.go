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

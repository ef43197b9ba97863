package flashsale_test

import (
	"bytes"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/app/apptest"
)

// FuzzFlashSaleBodies feeds arbitrary bodies to the sale creation and to an attempt (with a
// fresh Idempotency-Key each time): the success status or a 4xx problem with a code, never
// a panic or a 5xx. "$SKU", "$ADDR", "$START" and "$END" become the merchant's SKU, the
// buyer's address and a window around now. Seeds live in testdata/fuzz/FuzzFlashSaleBodies/.
func FuzzFlashSaleBodies(f *testing.F) {
	a := newApp(f)
	_, _, owner := a.Merchant(a.admin)
	sku := a.product(owner, 1999, 1_000_000)
	s := a.sale(owner, sku, 100_000, 100, time.Now().Add(-time.Second), time.Now().Add(time.Hour))
	_, tk := a.NewUser("fuzz")
	addr := a.Address(tk.AccessToken)
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, body []byte) {
		body = bytes.ReplaceAll(body, []byte("$SKU"), []byte(sku))
		body = bytes.ReplaceAll(body, []byte("$ADDR"), []byte(addr))
		body = bytes.ReplaceAll(body, []byte("$START"), []byte(time.Now().UTC().Format(time.RFC3339)))
		body = bytes.ReplaceAll(body, []byte("$END"), []byte(time.Now().Add(time.Hour).UTC().Format(time.RFC3339)))
		apptest.CheckOutcome(t, a.Serve(http.MethodPost, "/api/v1/merchant/flash-sales", body, owner), body,
			http.StatusCreated)
		keyed := a.ServeWith(http.MethodPost, "/api/v1/flash-sales/"+s.ID+"/attempts", body, tk.AccessToken,
			"Idempotency-Key", "fuzz-"+strconv.FormatInt(n.Add(1), 10))
		apptest.CheckOutcome(t, keyed, body, http.StatusAccepted)
	})
}

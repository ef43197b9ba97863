package catalog_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mallhq/mall/internal/app/apptest"
)

// The fuzz targets feed arbitrary JSON bodies to the product create and update routes
// through the real server (global middleware, authentication, permissions, the handler,
// the database and the stock module): the answer must be the route's success status or a
// 4xx problem with a code, never a panic or a 5xx. "$CAT" in a body is replaced by a real
// category (sale attribute color: red|blue|green) so seeds reach the database. Seeds live
// in testdata/fuzz/<Target>/.

type fuzzer struct {
	h     *harness
	token string
	cat   string
}

func newFuzzer(f *testing.F) *fuzzer {
	h := newHarness(f)
	z := &fuzzer{h: h, cat: h.colorCategory()}
	_, z.token = h.merchant()
	return z
}

func (z *fuzzer) serve(method, path string, body []byte) *httptest.ResponseRecorder {
	body = bytes.ReplaceAll(body, []byte("$CAT"), []byte(z.cat))
	return z.h.Serve(method, path, body, z.token)
}

func FuzzCreateProduct(f *testing.F) {
	z := newFuzzer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := z.serve(http.MethodPost, "/api/v1/merchant/products", body)
		apptest.CheckOutcome(t, rec, body, http.StatusCreated)
		if rec.Code == http.StatusCreated {
			var p struct {
				Status string `json:"status"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != "draft" {
				t.Fatalf("created %s: %v", rec.Body, err)
			}
		}
	})
}

// FuzzUpdateProduct sends each body as a change to a draft product.
func FuzzUpdateProduct(f *testing.F) {
	z := newFuzzer(f)
	id := z.h.product(z.token, z.cat).ID
	f.Fuzz(func(t *testing.T, body []byte) {
		apptest.CheckOutcome(t, z.serve(http.MethodPatch, "/api/v1/merchant/products/"+id, body), body, http.StatusOK)
		// Whatever was stored, the description holds no script.
		if d := rowOf(t, z.h, id).Description; bytes.Contains(bytes.ToLower([]byte(d)), []byte("<script")) {
			t.Fatalf("unsanitized description stored: %q", d)
		}
	})
}

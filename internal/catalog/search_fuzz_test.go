package catalog_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/platform/httpx"
)

// FuzzSearchHTTP sends arbitrary query strings to GET /api/v1/search through the real
// server over an index with a few products: the answer must be 200 with a well-formed page
// or a 400 problem with a code, never a panic or a 5xx. "$CAT", "$BRAND" and "$MER" in a
// query are replaced by a real category, brand and merchant so seeds reach the filters.
// Seeds live in testdata/fuzz/FuzzSearchHTTP/.
func FuzzSearchHTTP(f *testing.F) {
	h := newSearchHarness(f, "bleve")
	cat, brand := h.colorCategory(), h.brand("Fuzz brand")
	mid, tok := h.merchant()
	cup := productRequest(cat)
	cup["title"], cup["brand_id"] = "不锈钢保温杯 Thermos cup", brand
	h.onSaleWith(tok, cup)
	plain := productRequest(cat)
	plain["title"] = "Stainless steel bottle 水壶"
	h.onSaleWith(tok, plain)
	h.eventually(f, "seed products searchable", func(b searchBody) bool { return b.Total == 2 })
	repl := strings.NewReplacer("$CAT", cat, "$BRAND", brand, "$MER", itoa(mid))

	f.Fuzz(func(t *testing.T, rawQuery string) {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/search", nil)
		req.URL.RawQuery = repl.Replace(rawQuery)
		rec := httptest.NewRecorder()
		h.Server.Handler().ServeHTTP(rec, req)
		apptest.CheckOutcome(t, rec, []byte(rawQuery), http.StatusOK)
		if rec.Code != http.StatusOK {
			return
		}
		var b struct {
			Items []struct {
				ID         httpx.ID `json:"id"`
				MerchantID httpx.ID `json:"merchant_id"`
				PriceMin   int64    `json:"price_min"`
			} `json:"items"`
			Total  *int `json:"total"`
			Facets *struct {
				Category []struct{ ID httpx.ID } `json:"category"`
				Brand    []struct{ ID httpx.ID } `json:"brand"`
			} `json:"facets"`
			NextCursor *string `json:"next_cursor"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || b.Total == nil || b.Facets == nil || b.NextCursor == nil {
			t.Fatalf("query %q: malformed page %s: %v", rawQuery, rec.Body, err)
		}
		if len(b.Items) > *b.Total || *b.Total > 2 || len(b.Items) > 100 {
			t.Fatalf("query %q: %d items of total %d", rawQuery, len(b.Items), *b.Total)
		}
		for _, it := range b.Items {
			if it.MerchantID.Int64() != mid || it.PriceMin != 1999 || it.ID <= 0 {
				t.Fatalf("query %q: item %+v", rawQuery, it)
			}
		}
	})
}

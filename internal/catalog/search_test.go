package catalog_test

import (
	"bytes"
	"cmp"
	"context"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/catalog/search"
	"github.com/mallhq/mall/internal/catalog/search/estest"
	"github.com/mallhq/mall/internal/stock"
)

// End-to-end search tests: the whole application over HTTP, events through the outbox, the
// embedded Kafka broker and the indexer consumer, on both engines.

// searchWait bounds how long an indexed change may take to show (the "within 5 s").
const searchWait = 5 * time.Second

// newSearchHarness starts the application with the given search engine: bleve (a fresh
// index directory) or elasticsearch (the estest stand-in).
func newSearchHarness(t testing.TB, engine string, populate ...any) *harness {
	t.Helper()
	cfg := apptest.Config(t)
	if engine == "elasticsearch" {
		srv := estest.New(estest.RequireAnalyzer("cjk"))
		t.Cleanup(srv.Close) // runs after the app stops (cleanups are LIFO)
		cfg.Search.Engine = "elasticsearch"
		cfg.Search.Elasticsearch.URLs = []string{srv.URL}
	}
	h := &harness{t: t}
	h.App = apptest.Start(t, cfg, apptest.Options{Populate: append([]any{&h.stock}, populate...)})
	_, tk := h.Admin()
	h.admin = tk.AccessToken
	return h
}

type searchBody struct {
	Items []struct {
		ID         string `json:"id"`
		Title      string `json:"title"`
		PriceMin   int64  `json:"price_min"`
		MerchantID string `json:"merchant_id"`
	} `json:"items"`
	Total  int `json:"total"`
	Facets struct {
		Category []facetBody `json:"category"`
		Brand    []facetBody `json:"brand"`
	} `json:"facets"`
	NextCursor string `json:"next_cursor"`
}

type facetBody struct {
	ID    string `json:"id"`
	Count int    `json:"count"`
}

func (b searchBody) ids() []string {
	out := make([]string, len(b.Items))
	for i, it := range b.Items {
		out[i] = it.ID
	}
	return out
}

// search runs GET /api/v1/search with the parameters (name, value pairs), expecting 200.
func (h *harness) search(t testing.TB, params ...string) searchBody {
	t.Helper()
	v := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		v.Set(params[i], params[i+1])
	}
	var b searchBody
	h.req(http.MethodGet, "/api/v1/search?"+v.Encode(), nil, "").Want(t, http.StatusOK, "").Decode(t, &b)
	return b
}

// eventually polls the search until ok holds, failing after searchWait.
func (h *harness) eventually(t testing.TB, what string, ok func(searchBody) bool, params ...string) searchBody {
	t.Helper()
	deadline := time.Now().Add(searchWait)
	for {
		b := h.search(t, params...)
		if ok(b) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last search %v: %+v", what, searchWait, params, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func has(id string) func(searchBody) bool {
	return func(b searchBody) bool { return slices.Contains(b.ids(), id) }
}

func hasNot(id string) func(searchBody) bool {
	return func(b searchBody) bool { return !slices.Contains(b.ids(), id) }
}

// onSaleWith creates a product from body, submits it and approves it as the admin.
func (h *harness) onSaleWith(token string, body map[string]any) productBody {
	h.t.Helper()
	var p productBody
	h.req(http.MethodPost, "/api/v1/merchant/products", body, token).Want(h.t, http.StatusCreated, "").Decode(h.t, &p)
	h.putOnSale(token, p.ID)
	return p
}

// putOnSale submits the merchant's product and approves it as the admin.
func (h *harness) putOnSale(token, productID string) {
	h.t.Helper()
	h.req(http.MethodPost, productPath(productID, "/submit"), nil, token).Want(h.t, http.StatusOK, "")
	h.req(http.MethodPost, "/api/v1/admin/products/"+productID+"/approve", nil, h.admin).Want(h.t, http.StatusOK, "")
}

func (h *harness) brand(name string) string {
	h.t.Helper()
	var b idBody
	h.req(http.MethodPost, "/api/v1/admin/brands", map[string]any{"name": name}, h.admin).
		Want(h.t, http.StatusCreated, "").Decode(h.t, &b)
	return b.ID
}

func TestSearchEventPath(t *testing.T) {
	for _, engine := range []string{"bleve", "elasticsearch"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			testSearchEventPath(t, engine)
		})
	}
}

func testSearchEventPath(t *testing.T, engine string) {
	h := newSearchHarness(t, engine)
	parent := h.colorCategory()
	var child idBody
	h.req(http.MethodPost, "/api/v1/admin/categories", map[string]any{"name": "bottles", "parent_id": parent}, h.admin).
		Want(t, http.StatusCreated, "").Decode(t, &child)
	h.req(http.MethodPut, "/api/v1/admin/categories/"+child.ID+"/attributes",
		map[string]any{"spec": []any{}, "sale": []map[string]any{{"name": "color"}}}, h.admin).Want(t, http.StatusOK, "")
	brand := h.brand("Zojirushi " + t.Name())
	mid, tok := h.merchant()

	// A Chinese title, found by a bigram query: created, submitted, approved.
	start := time.Now()
	cup := productRequest(parent)
	cup["title"], cup["subtitle"], cup["brand_id"] = "不锈钢保温杯", "真空 500ml", brand
	p1 := h.onSaleWith(tok, cup)
	b := h.eventually(t, "approved product searchable", has(p1.ID), "q", "保温杯")
	t.Logf("%s: approved product searchable after %s", engine, time.Since(start).Round(time.Millisecond))
	if it := b.Items[slices.Index(b.ids(), p1.ID)]; it.PriceMin != 1999 || it.MerchantID != itoa(mid) || it.Title != "不锈钢保温杯" {
		t.Fatalf("hit %+v, want price_min 1999 merchant %d", it, mid)
	}

	// An English title in the child category, no brand.
	bottle := productRequest(child.ID)
	bottle["title"], bottle["subtitle"] = "Stainless Steel Thermos Bottle", "keeps drinks hot"
	delete(bottle, "specs")
	bottle["skus"] = []map[string]any{{"code": "s", "attrs": map[string]string{"color": "silver"}, "price": 5900, "stock": 3}}
	p2 := h.onSaleWith(tok, bottle)
	h.eventually(t, "English product searchable", has(p2.ID), "q", "thermos")
	if ids := h.search(t, "q", "THERMOS bottle").ids(); !slices.Equal(ids, []string{p2.ID}) {
		t.Fatalf("q=THERMOS bottle: %v, want [%s]", ids, p2.ID)
	}
	if ids := h.search(t, "q", "保温杯").ids(); !slices.Equal(ids, []string{p1.ID}) {
		t.Fatalf("q=保温杯: %v, want [%s]", ids, p1.ID)
	}
	// A draft never shows.
	draft := h.product(tok, parent)

	// Filters and facets.
	all := h.search(t)
	if all.Total != 2 || !slices.Contains(all.ids(), p1.ID) || !slices.Contains(all.ids(), p2.ID) || slices.Contains(all.ids(), draft.ID) {
		t.Fatalf("all: %+v", all)
	}
	if got := h.search(t, "category_id", parent); got.Total != 2 {
		t.Fatalf("parent category covers its child: %+v", got)
	}
	if got := h.search(t, "category_id", child.ID).ids(); !slices.Equal(got, []string{p2.ID}) {
		t.Fatalf("child category: %v", got)
	}
	if got := h.search(t, "brand_id", brand).ids(); !slices.Equal(got, []string{p1.ID}) {
		t.Fatalf("brand: %v", got)
	}
	if got := h.search(t, "merchant_id", itoa(mid)); got.Total != 2 {
		t.Fatalf("merchant: %+v", got)
	}
	if got := h.search(t, "merchant_id", "1"); got.Total != 0 || len(got.Items) != 0 {
		t.Fatalf("other merchant: %+v", got)
	}
	if got := h.search(t, "price_min", "2000", "price_max", "6000").ids(); !slices.Equal(got, []string{p2.ID}) {
		t.Fatalf("price range: %v", got)
	}
	if got := h.search(t, "sort", "price_desc").ids(); !slices.Equal(got, []string{p2.ID, p1.ID}) {
		t.Fatalf("price_desc: %v", got)
	}
	if got := h.search(t, "sort", "price_asc").ids(); !slices.Equal(got, []string{p1.ID, p2.ID}) {
		t.Fatalf("price_asc: %v", got)
	}
	wantCats := []facetBody{{ID: parent, Count: 1}, {ID: child.ID, Count: 1}}
	slices.SortFunc(wantCats, func(a, b facetBody) int { return cmpID(a.ID, b.ID) })
	if !slices.Equal(all.Facets.Category, wantCats) || !slices.Equal(all.Facets.Brand, []facetBody{{ID: brand, Count: 1}}) {
		t.Fatalf("facets %+v, want category %v brand %s:1", all.Facets, wantCats, brand)
	}
	// Pagination by cursor.
	page1 := h.search(t, "sort", "price_asc", "limit", "1")
	if len(page1.Items) != 1 || page1.Items[0].ID != p1.ID || page1.NextCursor == "" || page1.Total != 2 {
		t.Fatalf("page 1: %+v", page1)
	}
	page2 := h.search(t, "sort", "price_asc", "limit", "1", "cursor", page1.NextCursor)
	if len(page2.Items) != 1 || page2.Items[0].ID != p2.ID || page2.NextCursor != "" {
		t.Fatalf("page 2: %+v", page2)
	}
	// Bad parameters are 400 problems.
	for _, q := range []string{"limit=0", "limit=101", "sort=cheapest", "price_min=9&price_max=1", "category_id=abc",
		"cursor=garbage", "cursor=" + page1.NextCursor, "price_min=-1", "q=" + url.QueryEscape(string(make([]byte, 300)))} {
		r := h.req(http.MethodGet, "/api/v1/search?"+q, nil, "")
		r.Want(t, http.StatusBadRequest, "search.invalid_query")
		if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("%s: content type %q", q, ct)
		}
	}

	// A price change reaches the index (prices may change in any status).
	start = time.Now()
	red := p1.SKUs[slices.IndexFunc(p1.SKUs, func(k skuBody) bool { return k.Code == "red" })]
	h.req(http.MethodPatch, productPath(p1.ID, ""), map[string]any{"skus": []map[string]any{{"id": red.ID, "price": 999}}}, tok).
		Want(t, http.StatusOK, "")
	h.eventually(t, "new price_min", func(b searchBody) bool {
		return len(b.Items) == 1 && b.Items[0].PriceMin == 999
	}, "q", "保温杯")
	t.Logf("%s: price change searchable after %s", engine, time.Since(start).Round(time.Millisecond))
	if got := h.search(t, "price_max", "1000").ids(); !slices.Equal(got, []string{p1.ID}) {
		t.Fatalf("price_max 1000 after the change: %v", got)
	}

	// Off shelf: gone.
	start = time.Now()
	h.req(http.MethodPost, productPath(p1.ID, "/off-shelf"), nil, tok).Want(t, http.StatusOK, "")
	h.eventually(t, "off-shelf product gone", hasNot(p1.ID), "q", "保温杯")
	t.Logf("%s: off-shelf product gone after %s", engine, time.Since(start).Round(time.Millisecond))
	if got := h.search(t); got.Total != 1 || got.Items[0].ID != p2.ID {
		t.Fatalf("after off shelf: %+v", got)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// cmpID orders decimal IDs numerically.
func cmpID(a, b string) int {
	x, _ := strconv.ParseInt(a, 10, 64)
	y, _ := strconv.ParseInt(b, 10, 64)
	return cmp.Compare(x, y)
}

// TestAdminSearchReindex: the operator route rebuilds this replica's index from MySQL in
// the background (202); buyers are refused.
func TestAdminSearchReindex(t *testing.T) {
	var idx search.Searcher
	h := newSearchHarness(t, "bleve", &idx)
	cat := h.colorCategory()
	_, tok := h.merchant()
	p := h.onSaleWith(tok, productRequest(cat))
	h.eventually(t, "product searchable", has(p.ID), "q", "保温杯")

	// Garble the live index behind the indexer's back: a ghost product, the real one gone
	// (an event still in flight for it may index it again: only the ghost is certain).
	ctx := t.Context()
	ghost := search.Product{ID: 1, MerchantID: 1, CategoryID: 1, Title: "ghost 保温杯", PriceMin: 1, PriceMax: 1, CreatedAt: time.Now()}
	if err := idx.Index(ctx, ghost); err != nil {
		t.Fatal(err)
	}
	if err := idx.Delete(ctx, mustInt(t, p.ID)); err != nil {
		t.Fatal(err)
	}
	if ids := h.search(t, "q", "保温杯").ids(); !slices.Contains(ids, "1") {
		t.Fatalf("garbled index: %v", ids)
	}

	_, buyer := h.NewUser("buyer")
	h.req(http.MethodPost, "/api/v1/admin/search/reindex", nil, buyer.AccessToken).Want(t, http.StatusForbidden, "")
	h.req(http.MethodPost, "/api/v1/admin/search/reindex", nil, "").Want(t, http.StatusUnauthorized, "")
	var out struct{ Status, Engine string }
	h.req(http.MethodPost, "/api/v1/admin/search/reindex", nil, h.admin).Want(t, http.StatusAccepted, "").Decode(t, &out)
	if out.Engine != "bleve" || (out.Status != "started" && out.Status != "running") {
		t.Fatalf("reindex answer %+v", out)
	}
	h.eventually(t, "index rebuilt from MySQL", func(b searchBody) bool {
		return slices.Equal(b.ids(), []string{p.ID})
	}, "q", "保温杯")
}

// TestSearchEmptyIndexRebuiltAtStartup: a replica whose bleve index is gone (a new replica,
// a lost volume) fills it from MySQL at startup, without any event to replay.
func TestSearchEmptyIndexRebuiltAtStartup(t *testing.T) {
	cfg := apptest.Config(t)
	h := &harness{t: t}
	h.App = apptest.Start(t, cfg, apptest.Options{Populate: []any{&h.stock}})
	_, tk := h.Admin()
	h.admin = tk.AccessToken
	cat := h.colorCategory()
	_, tok := h.merchant()
	on := h.onSaleWith(tok, productRequest(cat))
	off := h.onSaleWith(tok, productRequest(cat))
	h.req(http.MethodPost, productPath(off.ID, "/off-shelf"), nil, tok).Want(t, http.StatusOK, "")
	h.product(tok, cat) // a draft
	h.eventually(t, "indexed", func(b searchBody) bool { return slices.Equal(b.ids(), []string{on.ID}) })
	h.Stop()

	if err := os.RemoveAll(cfg.Search.Bleve.Path); err != nil {
		t.Fatal(err)
	}
	// Same databases, a fresh embedded broker: no event will ever refill the index.
	h2 := &harness{t: t}
	h2.App = apptest.Start(t, cfg, apptest.Options{})
	h2.eventually(t, "rebuilt at startup", func(b searchBody) bool { return slices.Equal(b.ids(), []string{on.ID}) })
}

// TestSearchFollowsUnitsSold: search documents carry the units sold, so the indexer rewrites
// a product when a sale (or refund) moves them, and passes over the stock events that cannot
// (a hold, a release) without touching the index.
func TestSearchFollowsUnitsSold(t *testing.T) {
	cfg := apptest.Config(t)
	srv := estest.New(estest.RequireAnalyzer("cjk"))
	t.Cleanup(srv.Close)
	cfg.Search.Engine = "elasticsearch"
	cfg.Search.Elasticsearch.URLs = []string{srv.URL}
	h := &harness{t: t}
	h.App = apptest.Start(t, cfg, apptest.Options{Populate: []any{&h.stock}})
	_, tk := h.Admin()
	h.admin = tk.AccessToken
	group, err := catalog.SearchConsumerGroup(cfg.Search)
	if err != nil {
		t.Fatal(err)
	}
	_, tok := h.merchant()
	p := h.onSaleWith(tok, productRequest(h.colorCategory()))
	h.eventually(t, "product searchable", has(p.ID), "q", "thermos")
	sku := p.SKUs[slices.IndexFunc(p.SKUs, func(k skuBody) bool { return k.Code == "red" })]
	skuID, _ := strconv.ParseInt(sku.ID, 10, 64)
	writes := func() (n int, sold []string) { // index writes of the product since the reset
		for _, r := range srv.Requests() {
			if r.Method != http.MethodGet && bytes.Contains(r.Body, []byte(p.ID)) {
				n++
				if _, rest, ok := bytes.Cut(r.Body, []byte(`"sales":`)); ok {
					sold = append(sold, string(rest[:bytes.IndexAny(rest, ",}")]))
				}
			}
		}
		return n, sold
	}
	ignored := func() float64 { // 0 until the group passes its first event over
		v, _ := h.MetricIfAny(t, `mall_kafka_consumer_ignored_total{group="`+group+`"}`)
		return v
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(searchWait); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	ctx := context.Background()
	// The product's two SKUs got their stock set (two events, passed over).
	waitFor("the stock set passed over", func() bool { return ignored() >= 2 })
	srv.ResetRequests()
	ignoredBefore := ignored()

	// A hold and its release: two stock events passed over, nothing written.
	hold := stock.Hold{OrderID: 9001, BuyerID: 77, ExpiresAt: time.Now().Add(time.Hour), Lines: []stock.Line{{SKUID: skuID, Quantity: 2}}}
	if err := h.stock.Reserve(ctx, hold); err != nil {
		t.Fatal(err)
	}
	if err := h.stock.Release(ctx, hold.OrderID); err != nil {
		t.Fatal(err)
	}
	waitFor("the hold and the release passed over", func() bool { return ignored()-ignoredBefore >= 2 })
	// A sale: the document is rewritten with the units sold.
	hold.OrderID = 9002
	if err := h.stock.Reserve(ctx, hold); err != nil {
		t.Fatal(err)
	}
	if err := h.stock.Confirm(ctx, hold.OrderID); err != nil {
		t.Fatal(err)
	}
	waitFor("the sale indexed", func() bool { _, sold := writes(); return slices.Contains(sold, "2") })
	if n, sold := writes(); slices.ContainsFunc(sold, func(s string) bool { return s != "0" && s != "2" }) || n == 0 {
		t.Fatalf("%d index writes, sales %v", n, sold)
	}
	if got := ignored() - ignoredBefore; got != 3 {
		t.Fatalf("%v stock events passed over, want 3 (hold, release, hold)", got)
	}
}

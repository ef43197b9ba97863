package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/catalog/search"
	"github.com/mallhq/mall/internal/catalog/search/estest"
	"github.com/mallhq/mall/internal/platform/config"
)

// shop is a merchant made over HTTP with its owner's token.
type shop struct {
	id, token string
}

type fixture struct {
	t     *testing.T
	a     *apptest.App
	admin string
	cat   string
}

func (f *fixture) req(method, path string, body any, token string, want int) apptest.Response {
	f.t.Helper()
	return f.a.Req(method, path, body, apptest.Bearer(token)...).Want(f.t, want, "")
}

func (f *fixture) shop() shop {
	f.t.Helper()
	id, _, tok := f.a.Merchant(f.admin)
	return shop{id: strconv.FormatInt(id, 10), token: tok}
}

// product creates a product; onSale submits and approves it.
func (f *fixture) product(s shop, title string, onSale bool) string {
	f.t.Helper()
	var p struct{ ID string }
	f.req("POST", "/api/v1/merchant/products", map[string]any{"title": title, "category_id": f.cat,
		"skus": []map[string]any{{"code": "a", "attrs": map[string]string{}, "price": 1000, "stock": 1}}},
		s.token, http.StatusCreated).Decode(f.t, &p)
	if onSale {
		f.req("POST", "/api/v1/merchant/products/"+p.ID+"/submit", nil, s.token, http.StatusOK)
		f.req("POST", "/api/v1/admin/products/"+p.ID+"/approve", nil, f.admin, http.StatusOK)
	}
	return p.ID
}

// indexed lists every product ID in the index of cfg (opened directly), sorted.
func indexed(t *testing.T, cfg config.Search) []string {
	t.Helper()
	idx, err := search.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	res, err := idx.Search(context.Background(), search.Query{Limit: search.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range res.Items {
		ids = append(ids, strconv.FormatInt(h.ID, 10))
	}
	slices.Sort(ids)
	return ids
}

// onSaleInMySQL is what the index should hold: on-sale products of active merchants.
func onSaleInMySQL(t *testing.T, a *apptest.App) []string {
	t.Helper()
	rows, err := a.Cluster.Main().QueryContext(context.Background(), `SELECT CAST(p.id AS CHAR) FROM catalog_products p
		JOIN merchant_merchants m ON m.id = p.merchant_id WHERE p.status = 'on_sale' AND m.status = 'active'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// TestSearchReindex runs `mall search reindex` (its function, in process): it refuses while
// a server holds the bleve index, and rebuilds an index that matches MySQL from a garbled
// one, a missing one, and on Elasticsearch.
func TestSearchReindex(t *testing.T) {
	cfg := apptest.Config(t)
	a := apptest.Start(t, cfg, apptest.Options{})
	_, admin := a.Admin()
	f := &fixture{t: t, a: a, admin: admin.AccessToken}
	var cat struct{ ID string }
	f.req("POST", "/api/v1/admin/categories", map[string]any{"name": "tea"}, f.admin, http.StatusCreated).Decode(t, &cat)
	f.cat = cat.ID

	s1, s2 := f.shop(), f.shop()
	want := []string{f.product(s1, "green tea 绿茶", true), f.product(s1, "black tea 红茶", true), f.product(s2, "white tea", true)}
	f.product(s1, "draft tea", false)
	suspended := f.shop()
	f.product(suspended, "suspended tea", true)
	f.req("POST", "/api/v1/admin/merchants/"+suspended.id+"/suspend", nil, f.admin, http.StatusOK)
	slices.Sort(want)
	if got := onSaleInMySQL(t, a); !slices.Equal(got, want) {
		t.Fatalf("MySQL on sale %v, want %v", got, want)
	}

	// While the server holds the bleve index: a prompt, clear refusal, in process and from
	// the binary.
	start := time.Now()
	_, err := reindex(context.Background(), cfg)
	var ee *exitError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "open by a running mall server") {
		t.Fatalf("reindex while served: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("refusal took %s", d)
	}
	environ := append(os.Environ(), "MALL_DB_MAIN="+cfg.DB.Main, "MALL_DB_SHARDS="+strings.Join(cfg.DB.Shards, ","),
		"MALL_REDIS_ADDR="+cfg.Redis.Addr, "MALL_SEARCH_BLEVE_PATH="+cfg.Search.Bleve.Path)
	stdout, stderr, code := run(t, environ, "search", "reindex")
	if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "open by a running mall server") {
		t.Fatalf("binary while served: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	a.Stop()

	// A garbled index: products that do not exist, a real one missing, a stale title.
	idx, err := search.New(context.Background(), cfg.Search)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	garbage := []search.Product{
		{ID: 1, MerchantID: 1, CategoryID: 1, Title: "ghost", PriceMin: 1, PriceMax: 1, CreatedAt: time.Now()},
		{ID: 2, MerchantID: 1, CategoryID: 1, Title: "ghost", PriceMin: 1, PriceMax: 1, CreatedAt: time.Now()},
	}
	if err := idx.Index(ctx, garbage...); err != nil {
		t.Fatal(err)
	}
	if err := idx.Delete(ctx, mustID(t, want[0])); err != nil {
		t.Fatal(err)
	}
	if err := idx.Close(); err != nil {
		t.Fatal(err)
	}
	if got := indexed(t, cfg.Search); slices.Equal(got, want) {
		t.Fatalf("garbling the index changed nothing: %v", got)
	}
	n, err := reindex(ctx, cfg)
	if err != nil || n != len(want) {
		t.Fatalf("reindex: %d, %v; want %d", n, err, len(want))
	}
	if got := indexed(t, cfg.Search); !slices.Equal(got, want) {
		t.Fatalf("after reindex the index holds %v, want %v", got, want)
	}

	// No index at all.
	if err := os.RemoveAll(cfg.Search.Bleve.Path); err != nil {
		t.Fatal(err)
	}
	if n, err := reindex(ctx, cfg); err != nil || n != len(want) {
		t.Fatalf("reindex of a missing index: %d, %v", n, err)
	}
	if got := indexed(t, cfg.Search); !slices.Equal(got, want) {
		t.Fatalf("rebuilt missing index holds %v, want %v", got, want)
	}

	// Elasticsearch (the estest stand-in) from the same databases.
	srv := estest.New(estest.RequireAnalyzer("cjk"))
	defer srv.Close()
	es := cfg
	es.Search.Engine, es.Search.Elasticsearch.URLs = "elasticsearch", []string{srv.URL}
	if n, err := reindex(ctx, es); err != nil || n != len(want) {
		t.Fatalf("elasticsearch reindex: %d, %v", n, err)
	}
	if got := indexed(t, es.Search); !slices.Equal(got, want) {
		t.Fatalf("elasticsearch index holds %v, want %v", got, want)
	}
}

func mustID(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

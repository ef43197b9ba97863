package catalog_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/merchant"
	"github.com/mallhq/mall/internal/stock"
	"github.com/mallhq/mall/internal/user"
)

type response = apptest.Response

type harness struct {
	*apptest.App
	t     testing.TB
	stock stock.Service
	svc   catalog.Service
	admin string
}

// newHarness starts the whole application until the test ends, with an admin token.
func newHarness(t testing.TB) *harness {
	t.Helper()
	h := &harness{t: t}
	h.App = apptest.New(t, apptest.Options{Populate: []any{&h.stock, &h.svc}})
	_, tk := h.Admin()
	h.admin = tk.AccessToken
	return h
}

// newHarnessNoReview runs user, stock and catalog with product review switched off.
func newHarnessNoReview(t testing.TB) *harness {
	t.Helper()
	h := &harness{t: t}
	cfg := catalog.ConfigSection.Default()
	cfg.ReviewRequired = false
	h.App = apptest.New(t, apptest.Options{
		Modules:  []fx.Option{user.Module, merchant.Module, stock.Module, catalog.Module, fx.Replace(cfg)},
		Populate: []any{&h.stock, &h.svc},
	})
	_, tk := h.Admin()
	h.admin = tk.AccessToken
	return h
}

func (h *harness) do(method, path string, body any, token string) (response, error) {
	return h.Do(method, path, body, apptest.Bearer(token)...)
}

func (h *harness) req(method, path string, body any, token string) response {
	h.t.Helper()
	return h.Req(method, path, body, apptest.Bearer(token)...)
}

// merchant returns a fresh approved merchant (applied for and approved over HTTP) and its
// owner's token.
func (h *harness) merchant() (int64, string) {
	h.t.Helper()
	id, _, tok := h.Merchant(h.admin)
	return id, tok
}

type idBody struct {
	ID string `json:"id"`
}

// category creates a category with the given sale attributes (name -> allowed values,
// nil for free text) and returns its ID.
func (h *harness) category(name string, sale map[string][]string) string {
	h.t.Helper()
	var c idBody
	h.req(http.MethodPost, "/api/v1/admin/categories", map[string]any{"name": name}, h.admin).
		Want(h.t, http.StatusCreated, "").Decode(h.t, &c)
	var attrs []map[string]any
	for n, v := range sale {
		a := map[string]any{"name": n}
		if v != nil {
			a["values"] = v
		}
		attrs = append(attrs, a)
	}
	if attrs == nil {
		attrs = []map[string]any{}
	}
	h.req(http.MethodPut, "/api/v1/admin/categories/"+c.ID+"/attributes",
		map[string]any{"spec": []map[string]any{{"name": "material"}}, "sale": attrs}, h.admin).
		Want(h.t, http.StatusOK, "")
	return c.ID
}

type skuBody struct {
	ID        string            `json:"id"`
	Code      string            `json:"code"`
	Attrs     map[string]string `json:"attrs"`
	Price     int64             `json:"price"`
	Available int64             `json:"available"`
}

type productBody struct {
	ID           string            `json:"id"`
	MerchantID   string            `json:"merchant_id"`
	CategoryID   string            `json:"category_id"`
	BrandID      *string           `json:"brand_id"`
	Title        string            `json:"title"`
	Subtitle     string            `json:"subtitle"`
	Description  string            `json:"description"`
	Images       []string          `json:"images"`
	Specs        map[string]string `json:"specs"`
	Status       string            `json:"status"`
	RejectReason string            `json:"reject_reason"`
	PriceMin     int64             `json:"price_min"`
	PriceMax     int64             `json:"price_max"`
	SKUs         []skuBody         `json:"skus"`
}

// productRequest is a valid create body for a category with sale attribute "color".
func productRequest(categoryID string) map[string]any {
	return map[string]any{
		"title":       "Thermos 保温杯",
		"subtitle":    "keeps warm",
		"description": `<p>Great <b>cup</b></p><script>alert(1)</script><a href="javascript:alert(1)" onclick="x()">x</a>`,
		"category_id": categoryID,
		"images":      []string{"https://img.example.com/1.jpg"},
		"specs":       map[string]string{"material": "steel"},
		"skus": []map[string]any{
			{"code": "red", "attrs": map[string]string{"color": "red"}, "price": 1999, "stock": 5},
			{"code": "blue", "attrs": map[string]string{"color": "blue"}, "price": 2599, "stock": 0},
		},
	}
}

// product creates a draft product for the merchant and returns the response.
func (h *harness) product(token, categoryID string) productBody {
	h.t.Helper()
	var p productBody
	h.req(http.MethodPost, "/api/v1/merchant/products", productRequest(categoryID), token).
		Want(h.t, http.StatusCreated, "").Decode(h.t, &p)
	return p
}

// colorCategory is a category whose SKUs vary by color (red, blue or green).
func (h *harness) colorCategory() string {
	return h.category("cups", map[string][]string{"color": {"red", "blue", "green"}})
}

func productPath(id string, suffix string) string { return "/api/v1/merchant/products/" + id + suffix }

// dbProduct is a product's row as stored.
type dbProduct struct {
	Status, Title, Description, Reason string
	PriceMin, PriceMax                 int64
	UpdatedAt                          string
}

func (h *harness) row(id string) dbProduct {
	h.t.Helper()
	return rowOf(h.t, h, id)
}

// rowOf is row for another test (fuzz iterations must not use the F).
func rowOf(t testing.TB, h *harness, id string) dbProduct {
	t.Helper()
	var r dbProduct
	err := h.Cluster.Main().QueryRowContext(context.Background(),
		`SELECT status, title, description, reject_reason, price_min, price_max, CAST(updated_at AS CHAR)
		FROM catalog_products WHERE id = ?`, id).
		Scan(&r.Status, &r.Title, &r.Description, &r.Reason, &r.PriceMin, &r.PriceMax, &r.UpdatedAt)
	if err != nil {
		t.Fatalf("read product %s: %v", id, err)
	}
	return r
}

// events returns the product's catalog.product_changed payloads in ID order.
func (h *harness) events(id string) []catalog.ProductChanged {
	h.t.Helper()
	return apptest.Events[catalog.ProductChanged](h.App, catalog.Topic, catalog.EventProductChanged, id)
}

func statuses(evs []catalog.ProductChanged) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = string(e.Status)
	}
	return out
}

func mustInt(t testing.TB, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func hasField(t testing.TB, r response, field string) bool {
	t.Helper()
	var p struct {
		Errors []struct{ Field, Message string } `json:"errors"`
	}
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("problem %s: %v", r, err)
	}
	for _, e := range p.Errors {
		if e.Field == field {
			return true
		}
	}
	return false
}

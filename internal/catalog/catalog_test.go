package catalog_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/merchant"
)

func TestCategoriesBrandsAndTemplates(t *testing.T) {
	h := newHarness(t)
	var root, child idBody
	h.req(http.MethodPost, "/api/v1/admin/categories", map[string]any{"name": "Home", "commission_rate_bp": 500}, h.admin).
		Want(t, http.StatusCreated, "").Decode(t, &root)
	h.req(http.MethodPost, "/api/v1/admin/categories", map[string]any{"name": "Cups", "parent_id": root.ID}, h.admin).
		Want(t, http.StatusCreated, "").Decode(t, &child)

	var tree []struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		Children []struct {
			ID       string `json:"id"`
			Name     string `json:"name"`
			Children []any  `json:"children"`
		} `json:"children"`
	}
	h.req(http.MethodGet, "/api/v1/categories", nil, "").Want(t, http.StatusOK, "").Decode(t, &tree)
	if len(tree) != 1 || tree[0].ID != root.ID || len(tree[0].Children) != 1 || tree[0].Children[0].ID != child.ID ||
		tree[0].Children[0].Children == nil {
		t.Fatalf("tree = %+v", tree)
	}

	tests := []struct {
		name  string
		give  map[string]any
		field string
	}{
		{"empty name", map[string]any{"name": " "}, "name"},
		{"unknown parent", map[string]any{"name": "x", "parent_id": "12345"}, "parent_id"},
		{"commission too high", map[string]any{"name": "x", "commission_rate_bp": 10001}, "commission_rate_bp"},
		{"negative commission", map[string]any{"name": "x", "commission_rate_bp": -1}, "commission_rate_bp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.req(http.MethodPost, "/api/v1/admin/categories", tt.give, h.admin).Want(t, http.StatusBadRequest, "request.validation")
			if !hasField(t, r, tt.field) {
				t.Fatalf("no field error %q: %s", tt.field, r)
			}
		})
	}
	h.req(http.MethodPost, "/api/v1/admin/categories", map[string]any{"name": "x", "id": "1"}, h.admin).
		Want(t, http.StatusBadRequest, "request.invalid")

	var b idBody
	h.req(http.MethodPost, "/api/v1/admin/brands", map[string]any{"name": "Zojirushi"}, h.admin).
		Want(t, http.StatusCreated, "").Decode(t, &b)
	if b.ID == "" {
		t.Fatal("no brand id")
	}
	h.req(http.MethodPost, "/api/v1/admin/brands", map[string]any{"name": "Zojirushi"}, h.admin).
		Want(t, http.StatusConflict, "catalog.brand_exists")
	h.req(http.MethodPost, "/api/v1/admin/brands", map[string]any{"name": ""}, h.admin).
		Want(t, http.StatusBadRequest, "request.validation")

	tmpl := map[string]any{"spec": []map[string]any{{"name": "material"}},
		"sale": []map[string]any{{"name": "color", "values": []string{"red", "blue"}}, {"name": "size"}}}
	h.req(http.MethodPut, "/api/v1/admin/categories/"+child.ID+"/attributes", tmpl, h.admin).Want(t, http.StatusOK, "")
	var got struct {
		Spec []struct{ Name string } `json:"spec"`
		Sale []struct {
			Name   string   `json:"name"`
			Values []string `json:"values"`
		} `json:"sale"`
	}
	h.req(http.MethodGet, "/api/v1/categories/"+child.ID+"/attributes", nil, "").Want(t, http.StatusOK, "").Decode(t, &got)
	if len(got.Spec) != 1 || len(got.Sale) != 2 || got.Sale[0].Name != "color" || len(got.Sale[0].Values) != 2 {
		t.Fatalf("template = %+v", got)
	}
	h.req(http.MethodPut, "/api/v1/admin/categories/999/attributes", tmpl, h.admin).
		Want(t, http.StatusNotFound, "catalog.category_not_found")
	dup := map[string]any{"spec": []map[string]any{}, "sale": []map[string]any{{"name": "a"}, {"name": "a"}}}
	h.req(http.MethodPut, "/api/v1/admin/categories/"+child.ID+"/attributes", dup, h.admin).
		Want(t, http.StatusBadRequest, "request.validation")

	// Access: no token 401; a merchant or buyer 403.
	h.req(http.MethodPost, "/api/v1/admin/categories", map[string]any{"name": "x"}, "").Want(t, http.StatusUnauthorized, "")
	_, mt := h.merchant()
	h.req(http.MethodPost, "/api/v1/admin/categories", map[string]any{"name": "x"}, mt).Want(t, http.StatusForbidden, "")
	h.req(http.MethodPost, "/api/v1/admin/brands", map[string]any{"name": "x"}, mt).Want(t, http.StatusForbidden, "")
	h.req(http.MethodPut, "/api/v1/admin/categories/"+child.ID+"/attributes", tmpl, mt).Want(t, http.StatusForbidden, "")
}

func TestCreateProductValidation(t *testing.T) {
	h := newHarness(t)
	cat := h.colorCategory()
	_, mt := h.merchant()
	var brand idBody
	h.req(http.MethodPost, "/api/v1/admin/brands", map[string]any{"name": "B1"}, h.admin).Decode(t, &brand)

	mod := func(f func(m map[string]any)) map[string]any {
		m := productRequest(cat)
		f(m)
		return m
	}
	sku := func(code string, attrs map[string]string, price any) map[string]any {
		return map[string]any{"code": code, "attrs": attrs, "price": price, "stock": 1}
	}
	red := map[string]string{"color": "red"}
	tests := []struct {
		name  string
		give  map[string]any
		field string
	}{
		{"no title", mod(func(m map[string]any) { m["title"] = "" }), "title"},
		{"long title", mod(func(m map[string]any) { m["title"] = strings.Repeat("x", 201) }), "title"},
		{"no category", mod(func(m map[string]any) { delete(m, "category_id") }), "category_id"},
		{"unknown category", mod(func(m map[string]any) { m["category_id"] = "424242" }), "category_id"},
		{"unknown brand", mod(func(m map[string]any) { m["brand_id"] = "424242" }), "brand_id"},
		{"no skus", mod(func(m map[string]any) { m["skus"] = []any{} }), "skus"},
		{"zero price", mod(func(m map[string]any) { m["skus"] = []any{sku("a", red, 0)} }), "skus[0].price"},
		{"negative price", mod(func(m map[string]any) { m["skus"] = []any{sku("a", red, -5)} }), "skus[0].price"},
		{"missing sale attr", mod(func(m map[string]any) { m["skus"] = []any{sku("a", map[string]string{}, 100)} }), "skus[0].attrs.color"},
		{"extra attr", mod(func(m map[string]any) {
			m["skus"] = []any{sku("a", map[string]string{"color": "red", "size": "L"}, 100)}
		}), "skus[0].attrs"},
		{"wrong attr", mod(func(m map[string]any) { m["skus"] = []any{sku("a", map[string]string{"size": "L"}, 100)} }), "skus[0].attrs.color"},
		{"value not allowed", mod(func(m map[string]any) {
			m["skus"] = []any{sku("a", map[string]string{"color": "pink"}, 100)}
		}), "skus[0].attrs.color"},
		{"duplicate combination", mod(func(m map[string]any) { m["skus"] = []any{sku("a", red, 100), sku("b", red, 200)} }), "skus[1].attrs"},
		{"duplicate code", mod(func(m map[string]any) {
			m["skus"] = []any{sku("a", red, 100), sku("a", map[string]string{"color": "blue"}, 200)}
		}), "skus[1].code"},
		{"empty code", mod(func(m map[string]any) { m["skus"] = []any{sku("", red, 100)} }), "skus[0].code"},
		{"negative stock", mod(func(m map[string]any) {
			m["skus"] = []any{map[string]any{"code": "a", "attrs": red, "price": 100, "stock": -1}}
		}), "skus[0].stock"},
		{"bad image", mod(func(m map[string]any) { m["images"] = []string{"javascript:alert(1)"} }), "images[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.req(http.MethodPost, "/api/v1/merchant/products", tt.give, mt).Want(t, http.StatusBadRequest, "request.validation")
			if !hasField(t, r, tt.field) {
				t.Fatalf("no field error %q: %s", tt.field, r)
			}
		})
	}
	// Wrong JSON types and server-owned fields are 400 request.invalid.
	for name, body := range map[string]map[string]any{
		"fractional price": mod(func(m map[string]any) { m["skus"] = []any{sku("a", red, 19.99)} }),
		"string price":     mod(func(m map[string]any) { m["skus"] = []any{sku("a", red, "100")} }),
		"status field":     mod(func(m map[string]any) { m["status"] = "on_sale" }),
		"price_min field":  mod(func(m map[string]any) { m["price_min"] = 1 }),
		"numeric id":       mod(func(m map[string]any) { m["category_id"] = 5 }),
	} {
		t.Run(name, func(t *testing.T) {
			h.req(http.MethodPost, "/api/v1/merchant/products", body, mt).Want(t, http.StatusBadRequest, "request.invalid")
		})
	}
	var n int
	if err := h.Cluster.Main().QueryRowContext(context.Background(), `SELECT COUNT(*) FROM catalog_products`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("products after invalid requests: %d %v", n, err)
	}
	// Access.
	h.req(http.MethodPost, "/api/v1/merchant/products", productRequest(cat), "").Want(t, http.StatusUnauthorized, "")
	_, buyer := h.NewUser("buyer")
	h.req(http.MethodPost, "/api/v1/merchant/products", productRequest(cat), buyer.AccessToken).Want(t, http.StatusForbidden, "")

	// A category without sale attributes takes one SKU with empty attrs.
	plain := h.category("plain", nil)
	ok := productRequest(plain)
	ok["brand_id"] = brand.ID
	ok["specs"] = map[string]string{}
	ok["skus"] = []any{map[string]any{"code": "only", "attrs": map[string]string{}, "price": 1, "stock": 0}}
	h.req(http.MethodPost, "/api/v1/merchant/products", ok, mt).Want(t, http.StatusCreated, "")

	// A category without any template (API.md's example: create a category, then a 2-SKU
	// product with attrs): the merchant names the attributes, the same on every SKU.
	var free idBody
	h.req(http.MethodPost, "/api/v1/admin/categories", map[string]any{"name": "free"}, h.admin).
		Want(t, http.StatusCreated, "").Decode(t, &free)
	body := func(skus ...map[string]any) map[string]any {
		return map[string]any{"title": "Mug", "category_id": free.ID, "skus": skus}
	}
	freeSKU := func(code string, attrs map[string]string) map[string]any {
		return map[string]any{"code": code, "attrs": attrs, "price": 990, "stock": 3}
	}
	var p productBody
	h.req(http.MethodPost, "/api/v1/merchant/products", body(freeSKU("red", map[string]string{"color": "red", "size": "L"}),
		freeSKU("blue", map[string]string{"color": "blue", "size": "L"})), mt).Want(t, http.StatusCreated, "").Decode(t, &p)
	if len(p.SKUs) != 2 || p.SKUs[0].Attrs["color"] != "red" || p.SKUs[1].Attrs["size"] != "L" {
		t.Fatalf("free attributes: %+v", p.SKUs)
	}
	long := strings.Repeat("x", 65)
	for name, b := range map[string]map[string]any{
		"other names":   body(freeSKU("a", map[string]string{"color": "red"}), freeSKU("b", map[string]string{"size": "L"})),
		"fewer names":   body(freeSKU("a", map[string]string{"color": "red", "size": "L"}), freeSKU("b", map[string]string{"color": "blue"})),
		"same combo":    body(freeSKU("a", map[string]string{"color": "red"}), freeSKU("b", map[string]string{"color": "red"})),
		"empty value":   body(freeSKU("a", map[string]string{"color": " "})),
		"long name":     body(freeSKU("a", map[string]string{long: "red"})),
		"long value":    body(freeSKU("a", map[string]string{"color": long})),
		"no attributes": body(freeSKU("a", map[string]string{}), freeSKU("b", map[string]string{})),
	} {
		t.Run("free attributes: "+name, func(t *testing.T) {
			h.req(http.MethodPost, "/api/v1/merchant/products", b, mt).Want(t, http.StatusBadRequest, "request.validation")
		})
	}
}

func TestProductLifecycle(t *testing.T) {
	h := newHarness(t)
	cat := h.colorCategory()
	mid, mt := h.merchant()
	p := h.product(mt, cat)
	if p.Status != "draft" || len(p.SKUs) != 2 || p.SKUs[0].Code != "red" || p.SKUs[0].Price != 1999 ||
		p.SKUs[0].Attrs["color"] != "red" || p.SKUs[0].ID == "" {
		t.Fatalf("created = %+v", p)
	}
	// Stock was initialized for each SKU, owned by the merchant.
	for i, want := range []int64{5, 0} {
		l, err := h.stock.Get(context.Background(), mid, mustInt(t, p.SKUs[i].ID))
		if err != nil || l.Available != want {
			t.Fatalf("stock of SKU %d: %+v %v", i, l, err)
		}
	}
	row := h.row(p.ID)
	if row.Status != "draft" || row.PriceMin != 1999 || row.PriceMax != 2599 {
		t.Fatalf("row = %+v", row)
	}
	for _, bad := range []string{"<script", "onclick", "javascript:"} {
		if strings.Contains(strings.ToLower(row.Description), bad) {
			t.Fatalf("description not sanitized: %q", row.Description)
		}
	}
	if !strings.Contains(row.Description, "<b>cup</b>") {
		t.Fatalf("description lost safe HTML: %q", row.Description)
	}

	var got productBody
	h.req(http.MethodGet, productPath(p.ID, ""), nil, mt).Want(t, http.StatusOK, "").Decode(t, &got)
	if got.Status != "draft" || got.Description != row.Description || len(got.SKUs) != 2 || got.MerchantID == "" {
		t.Fatalf("merchant view = %+v", got)
	}
	// Not public yet.
	h.req(http.MethodGet, "/api/v1/products/"+p.ID, nil, "").Want(t, http.StatusNotFound, "catalog.product_not_found")

	// Edit a draft.
	h.req(http.MethodPatch, productPath(p.ID, ""), map[string]any{"title": "New title",
		"description": `<img src=x onerror="alert(1)">ok`}, mt).Want(t, http.StatusOK, "").Decode(t, &got)
	if got.Title != "New title" || strings.Contains(got.Description, "onerror") || got.Subtitle != "keeps warm" {
		t.Fatalf("patched = %+v", got)
	}
	h.req(http.MethodPatch, productPath(p.ID, ""), map[string]any{"title": ""}, mt).Want(t, http.StatusBadRequest, "request.validation")
	h.req(http.MethodPatch, productPath(p.ID, ""), map[string]any{"status": "on_sale"}, mt).Want(t, http.StatusBadRequest, "request.invalid")

	// Submit -> pending_review; editing is refused while in review; off-shelf of a draft is refused.
	h.req(http.MethodPost, productPath(p.ID, "/submit"), nil, mt).Want(t, http.StatusOK, "").Decode(t, &got)
	if got.Status != "pending_review" {
		t.Fatalf("submitted = %+v", got)
	}
	h.req(http.MethodPost, productPath(p.ID, "/submit"), nil, mt).Want(t, http.StatusConflict, "catalog.status_conflict")
	h.req(http.MethodPatch, productPath(p.ID, ""), map[string]any{"title": "x"}, mt).Want(t, http.StatusConflict, "catalog.product_not_editable")

	// Review queue.
	var list struct {
		Items []productBody `json:"items"`
	}
	h.req(http.MethodGet, "/api/v1/admin/products?status=pending_review", nil, h.admin).Want(t, http.StatusOK, "").Decode(t, &list)
	if !slices.ContainsFunc(list.Items, func(x productBody) bool { return x.ID == p.ID }) {
		t.Fatalf("review queue = %+v", list)
	}
	h.req(http.MethodGet, "/api/v1/admin/products", nil, mt).Want(t, http.StatusForbidden, "")
	h.req(http.MethodPost, "/api/v1/admin/products/"+p.ID+"/approve", nil, mt).Want(t, http.StatusForbidden, "")

	// Reject needs a reason; then rejected, resubmit, approve.
	h.req(http.MethodPost, "/api/v1/admin/products/"+p.ID+"/reject", map[string]any{"reason": ""}, h.admin).
		Want(t, http.StatusBadRequest, "request.validation")
	h.req(http.MethodPost, "/api/v1/admin/products/"+p.ID+"/reject", map[string]any{"reason": "blurry photos"}, h.admin).
		Want(t, http.StatusOK, "").Decode(t, &got)
	if got.Status != "rejected" || got.RejectReason != "blurry photos" {
		t.Fatalf("rejected = %+v", got)
	}
	h.req(http.MethodPost, "/api/v1/admin/products/"+p.ID+"/approve", nil, h.admin).Want(t, http.StatusConflict, "catalog.status_conflict")
	h.req(http.MethodPost, productPath(p.ID, "/submit"), nil, mt).Want(t, http.StatusOK, "")
	h.req(http.MethodPost, "/api/v1/admin/products/"+p.ID+"/approve", nil, h.admin).Want(t, http.StatusOK, "").Decode(t, &got)
	if got.Status != "on_sale" || got.RejectReason != "" {
		t.Fatalf("approved = %+v", got)
	}

	// Public detail with availability.
	var pub struct {
		productBody
		SKUs []skuBody `json:"skus"`
	}
	h.req(http.MethodGet, "/api/v1/products/"+p.ID, nil, "").Want(t, http.StatusOK, "").Decode(t, &pub)
	if pub.Title != "New title" || pub.MerchantID == "" || pub.PriceMin != 1999 ||
		pub.PriceMax != 2599 || pub.CategoryID != cat || len(pub.SKUs) != 2 {
		t.Fatalf("public = %+v", pub)
	}
	avail := map[string]int64{}
	for _, k := range pub.SKUs {
		avail[k.Attrs["color"]] = k.Available
	}
	if avail["red"] != 5 || avail["blue"] != 0 {
		t.Fatalf("available = %v", avail)
	}
	if _, err := h.stock.Set(context.Background(), mid, mustInt(t, p.SKUs[1].ID), 7); err != nil {
		t.Fatal(err)
	}
	// The detail is cached; the stock event invalidates it within seconds.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		h.req(http.MethodGet, "/api/v1/products/"+p.ID, nil, "").Want(t, http.StatusOK, "").Decode(t, &pub)
		if pub.SKUs[1].Available == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("available after set = %+v", pub.SKUs)
		}
	}

	// Off shelf hides it again.
	h.req(http.MethodPost, productPath(p.ID, "/off-shelf"), nil, mt).Want(t, http.StatusOK, "").Decode(t, &got)
	if got.Status != "off_shelf" {
		t.Fatalf("off shelf = %+v", got)
	}
	h.req(http.MethodGet, "/api/v1/products/"+p.ID, nil, "").Want(t, http.StatusNotFound, "catalog.product_not_found")
	h.req(http.MethodGet, "/api/v1/products/999999", nil, "").Want(t, http.StatusNotFound, "catalog.product_not_found")
	h.req(http.MethodGet, "/api/v1/products/abc", nil, "").Want(t, http.StatusBadRequest, "")

	// Every change wrote an event in its transaction, with the product's state.
	evs := h.events(p.ID)
	want := []string{"draft", "draft", "pending_review", "rejected", "pending_review", "on_sale", "off_shelf"}
	if !slices.Equal(statuses(evs), want) {
		t.Fatalf("events = %v, want %v", statuses(evs), want)
	}
	for _, e := range evs {
		if e.ID != mustInt(t, p.ID) || e.MerchantID != mid || e.PriceMin != 1999 || e.PriceMax != 2599 {
			t.Fatalf("event = %+v", e)
		}
	}
}

func TestMerchantProductsList(t *testing.T) {
	h := newHarness(t)
	cat := h.colorCategory()
	_, mt := h.merchant()
	_, other := h.merchant()
	h.product(other, cat)
	var ids []string
	for range 5 {
		ids = append(ids, h.product(mt, cat).ID)
	}
	h.req(http.MethodPost, productPath(ids[0], "/submit"), nil, mt).Want(t, http.StatusOK, "")

	type page struct {
		Items      []productBody `json:"items"`
		NextCursor string        `json:"next_cursor"`
	}
	var seen []string
	cursor := ""
	for i := 0; ; i++ {
		var pg page
		h.req(http.MethodGet, "/api/v1/merchant/products?limit=2&cursor="+cursor, nil, mt).Want(t, http.StatusOK, "").Decode(t, &pg)
		for _, it := range pg.Items {
			seen = append(seen, it.ID)
			if it.Description != "" || it.SKUs != nil {
				t.Fatalf("list item carries detail: %+v", it)
			}
		}
		if pg.NextCursor == "" {
			break
		}
		if i > 5 {
			t.Fatal("too many pages")
		}
		cursor = pg.NextCursor
	}
	slices.Reverse(seen)
	if !slices.Equal(seen, ids) {
		t.Fatalf("listed %v, want %v (newest first)", seen, ids)
	}
	var pg page
	h.req(http.MethodGet, "/api/v1/merchant/products?status=pending_review", nil, mt).Want(t, http.StatusOK, "").Decode(t, &pg)
	if len(pg.Items) != 1 || pg.Items[0].ID != ids[0] || pg.Items[0].Status != "pending_review" {
		t.Fatalf("pending = %+v", pg)
	}
	h.req(http.MethodGet, "/api/v1/merchant/products?status=bogus", nil, mt).Want(t, http.StatusBadRequest, "request.validation")
	h.req(http.MethodGet, "/api/v1/merchant/products?limit=0", nil, mt).Want(t, http.StatusBadRequest, "")
	h.req(http.MethodGet, "/api/v1/merchant/products?cursor=!!", nil, mt).Want(t, http.StatusBadRequest, "")
	h.req(http.MethodGet, "/api/v1/merchant/products?cursor=YWJj", nil, mt).Want(t, http.StatusBadRequest, "")
}

// TestMerchantIsolation calls every merchant product route with another merchant's product:
// 404 and the product unchanged.
func TestMerchantIsolation(t *testing.T) {
	h := newHarness(t)
	cat := h.colorCategory()
	_, owner := h.merchant()
	_, intruder := h.merchant()
	draft := h.product(owner, cat)
	onSale := h.product(owner, cat)
	h.req(http.MethodPost, productPath(onSale.ID, "/submit"), nil, owner).Want(t, http.StatusOK, "")
	h.req(http.MethodPost, "/api/v1/admin/products/"+onSale.ID+"/approve", nil, h.admin).Want(t, http.StatusOK, "")

	for _, p := range []productBody{draft, onSale} {
		before := h.row(p.ID)
		evs := len(h.events(p.ID))
		for _, tt := range []struct {
			method, suffix string
			body           any
		}{
			{http.MethodGet, "", nil},
			{http.MethodPatch, "", map[string]any{"title": "pwned"}},
			{http.MethodPost, "/submit", nil},
			{http.MethodPost, "/off-shelf", nil},
		} {
			h.req(tt.method, productPath(p.ID, tt.suffix), tt.body, intruder).Want(t, http.StatusNotFound, "catalog.product_not_found")
		}
		if after := h.row(p.ID); after != before {
			t.Fatalf("product changed by another merchant: %+v -> %+v", before, after)
		}
		if n := len(h.events(p.ID)); n != evs {
			t.Fatalf("events %d -> %d", evs, n)
		}
	}
	var pg struct {
		Items []productBody `json:"items"`
	}
	h.req(http.MethodGet, "/api/v1/merchant/products", nil, intruder).Want(t, http.StatusOK, "").Decode(t, &pg)
	if len(pg.Items) != 0 {
		t.Fatalf("intruder lists %+v", pg.Items)
	}
}

func TestConcurrentApprove(t *testing.T) {
	h := newHarness(t)
	cat := h.colorCategory()
	_, mt := h.merchant()
	p := h.product(mt, cat)
	h.req(http.MethodPost, productPath(p.ID, "/submit"), nil, mt).Want(t, http.StatusOK, "")

	const n = 16
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			path := "/api/v1/admin/products/" + p.ID + "/approve"
			if i%2 == 1 {
				r, err := h.do(http.MethodPost, "/api/v1/admin/products/"+p.ID+"/reject", map[string]any{"reason": "no"}, h.admin)
				if err != nil {
					t.Error(err)
					return
				}
				codes[i] = r.Status
				return
			}
			r, err := h.do(http.MethodPost, path, nil, h.admin)
			if err != nil {
				t.Error(err)
				return
			}
			codes[i] = r.Status
		})
	}
	wg.Wait()
	ok, conflict := 0, 0
	for _, c := range codes {
		switch c {
		case http.StatusOK:
			ok++
		case http.StatusConflict:
			conflict++
		}
	}
	if ok != 1 || conflict != n-1 {
		t.Fatalf("codes = %v: want exactly one success", codes)
	}
	evs := statuses(h.events(p.ID))
	if len(evs) != 3 || evs[0] != "draft" || evs[1] != "pending_review" {
		t.Fatalf("events = %v", evs)
	}
	if st := h.row(p.ID).Status; st != evs[2] {
		t.Fatalf("status %s, last event %s", st, evs[2])
	}
}

func TestSubmitWithoutReview(t *testing.T) {
	h := newHarnessNoReview(t)
	cat := h.colorCategory()
	_, mt := h.merchant()
	p := h.product(mt, cat)
	var got productBody
	h.req(http.MethodPost, productPath(p.ID, "/submit"), nil, mt).Want(t, http.StatusOK, "").Decode(t, &got)
	if got.Status != string(catalog.StatusOnSale) {
		t.Fatalf("submitted = %+v", got)
	}
	h.req(http.MethodGet, "/api/v1/products/"+p.ID, nil, "").Want(t, http.StatusOK, "")
}

// TestSuspendedMerchantHidden: a suspended merchant's on-sale product leaves the public
// detail within the merchant status cache's TTL although its detail is cached, and comes
// back when the merchant is reinstated.
func TestSuspendedMerchantHidden(t *testing.T) {
	h := newHarness(t)
	cat := h.colorCategory()
	mid, mt := h.merchant()
	p := h.product(mt, cat)
	h.req(http.MethodPost, productPath(p.ID, "/submit"), nil, mt).Want(t, http.StatusOK, "")
	h.req(http.MethodPost, "/api/v1/admin/products/"+p.ID+"/approve", nil, h.admin).Want(t, http.StatusOK, "")
	h.req(http.MethodGet, "/api/v1/products/"+p.ID, nil, "").Want(t, http.StatusOK, "")

	h.req(http.MethodPost, "/api/v1/admin/merchants/"+strconv.FormatInt(mid, 10)+"/suspend", nil, h.admin).
		Want(t, http.StatusOK, "")
	deadline := time.Now().Add(merchant.StatusCacheTTL + 5*time.Second)
	for {
		r := h.req(http.MethodGet, "/api/v1/products/"+p.ID, nil, "")
		if r.Status == http.StatusNotFound && r.Code() == "catalog.product_not_found" {
			break
		}
		if r.Status != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("detail after suspension: %s", r)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Reinstated: the product is back, from the same cached detail (no reload needed).
	h.req(http.MethodPost, "/api/v1/admin/merchants/"+strconv.FormatInt(mid, 10)+"/unsuspend", nil, h.admin).
		Want(t, http.StatusOK, "")
	deadline = time.Now().Add(merchant.StatusCacheTTL + 5*time.Second)
	for {
		r := h.req(http.MethodGet, "/api/v1/products/"+p.ID, nil, "")
		if r.Status == http.StatusOK {
			break
		}
		if r.Status != http.StatusNotFound || time.Now().After(deadline) {
			t.Fatalf("detail after unsuspension: %s", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestUpdatePrices(t *testing.T) {
	h := newHarness(t)
	cat := h.colorCategory()
	mid, mt := h.merchant()
	p := h.product(mt, cat)
	other := h.product(mt, cat)
	h.req(http.MethodPost, productPath(p.ID, "/submit"), nil, mt).Want(t, http.StatusOK, "")
	h.req(http.MethodPost, "/api/v1/admin/products/"+p.ID+"/approve", nil, h.admin).Want(t, http.StatusOK, "")

	// Content of an on-sale product is frozen; prices are not.
	h.req(http.MethodPatch, productPath(p.ID, ""), map[string]any{"title": "x"}, mt).
		Want(t, http.StatusConflict, "catalog.product_not_editable")
	var got productBody
	h.req(http.MethodPatch, productPath(p.ID, ""), map[string]any{"skus": []map[string]any{
		{"id": p.SKUs[0].ID, "price": 3000}}}, mt).Want(t, http.StatusOK, "").Decode(t, &got)
	if got.Status != "on_sale" || got.PriceMin != 2599 || got.PriceMax != 3000 || got.SKUs[0].Price != 3000 {
		t.Fatalf("patched = %+v", got)
	}
	var pub productBody
	h.req(http.MethodGet, "/api/v1/products/"+p.ID, nil, "").Want(t, http.StatusOK, "").Decode(t, &pub)
	if pub.PriceMin != 2599 || pub.PriceMax != 3000 || pub.SKUs[0].Price != 3000 {
		t.Fatalf("public = %+v", pub)
	}
	evs := h.events(p.ID)
	last := evs[len(evs)-1]
	if last.Status != catalog.StatusOnSale || last.PriceMin != 2599 || last.PriceMax != 3000 || last.MerchantID != mid {
		t.Fatalf("last event = %+v", last)
	}

	for name, tt := range map[string]struct {
		skus  []map[string]any
		field string
	}{
		"other product's SKU": {[]map[string]any{{"id": other.SKUs[0].ID, "price": 1}}, "skus[0].id"},
		"unknown SKU":         {[]map[string]any{{"id": "1", "price": 1}}, "skus[0].id"},
		"zero price":          {[]map[string]any{{"id": p.SKUs[0].ID, "price": 0}}, "skus[0].price"},
		"duplicate": {[]map[string]any{{"id": p.SKUs[0].ID, "price": 5}, {"id": p.SKUs[0].ID, "price": 6}},
			"skus[1].id"},
	} {
		t.Run(name, func(t *testing.T) {
			r := h.req(http.MethodPatch, productPath(p.ID, ""), map[string]any{"skus": tt.skus}, mt).
				Want(t, http.StatusBadRequest, "request.validation")
			if !hasField(t, r, tt.field) {
				t.Fatalf("no field error %q: %s", tt.field, r)
			}
		})
	}
	if r := h.row(other.ID); r.PriceMin != 1999 {
		t.Fatalf("other product changed: %+v", r)
	}
	if r := h.row(p.ID); r.PriceMin != 2599 || r.PriceMax != 3000 {
		t.Fatalf("product after rejected patches: %+v", r)
	}
	// Another merchant cannot reprice it.
	_, intruder := h.merchant()
	h.req(http.MethodPatch, productPath(p.ID, ""), map[string]any{"skus": []map[string]any{
		{"id": p.SKUs[0].ID, "price": 1}}}, intruder).Want(t, http.StatusNotFound, "catalog.product_not_found")
	if r := h.row(p.ID); r.PriceMin != 2599 {
		t.Fatalf("repriced by another merchant: %+v", r)
	}
}

package catalog_test

import (
	"context"
	"database/sql"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/catalog"
)

// rateCategory creates a category under parent ("" for a root) with rate (nil: none) and
// the sale attribute color, and returns its ID.
func (h *harness) rateCategory(name, parent string, rate *int) string {
	h.t.Helper()
	body := map[string]any{"name": name}
	if parent != "" {
		body["parent_id"] = parent
	}
	if rate != nil {
		body["commission_rate_bp"] = *rate
	}
	var c idBody
	h.req(http.MethodPost, "/api/v1/admin/categories", body, h.admin).Want(h.t, http.StatusCreated, "").Decode(h.t, &c)
	return h.withColors(c.ID)
}

// saleSKUIn puts a product of the merchant on sale in the category and returns its first SKU.
func (h *harness) saleSKUIn(token, category string) int64 {
	h.t.Helper()
	p := h.product(token, category)
	h.putOnSale(token, p.ID)
	return mustInt(h.t, p.SKUs[0].ID)
}

// TestSaleSKUCommissionRates: SaleSKUs resolves each SKU's commission rate from the
// merchant's override, else its category or the nearest ancestor with a rate (an explicit
// 0 counts and stops the walk), else catalog.NoCommissionRate; the category tree shows
// each category's own rate only.
func TestSaleSKUCommissionRates(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	rate := func(n int) *int { return &n }

	parent800 := h.rateCategory("Kitchen", "", rate(800))
	leafInherits := h.rateCategory("Cups", parent800, nil)
	zeroChild := h.rateCategory("Free cups", parent800, rate(0))
	under0 := h.rateCategory("Free mugs", zeroChild, nil)
	grand300 := h.rateCategory("Home", "", rate(300))
	mid := h.rateCategory("Living", grand300, nil)
	grandLeaf := h.rateCategory("Lamps", mid, nil)
	ownRate := h.rateCategory("Rugs", mid, rate(450))
	noRoot := h.rateCategory("Misc", "", nil)
	noLeaf := h.rateCategory("Odds", noRoot, nil)

	merchantID, mt := h.merchant()
	_, plainTok := h.merchant()
	cases := []struct {
		name     string
		category string
		token    string
		want     int
	}{
		{"category's own rate", parent800, plainTok, 800},
		{"leaf without rate under a parent with one", leafInherits, plainTok, 800},
		{"explicit 0 under a parent with 800", zeroChild, plainTok, 0},
		{"child of an explicit 0", under0, plainTok, 0},
		{"grandparent only", grandLeaf, plainTok, 300},
		{"own rate under an ancestor's", ownRate, plainTok, 450},
		{"no rate anywhere", noLeaf, plainTok, catalog.NoCommissionRate},
		{"no rate at a root", noRoot, plainTok, catalog.NoCommissionRate},
	}
	skus := make([]int64, len(cases))
	for i, c := range cases {
		skus[i] = h.saleSKUIn(c.token, c.category)
	}
	overridden := map[string]int64{} // category -> SKU of the merchant with an override
	for _, c := range []string{parent800, zeroChild, noLeaf} {
		overridden[c] = h.saleSKUIn(mt, c)
	}
	all := append([]int64{}, skus...)
	for _, k := range overridden {
		all = append(all, k)
	}
	saleRates := func() map[int64]int {
		t.Helper()
		got, err := h.svc.SaleSKUs(ctx, all)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int64]int{}
		for id, k := range got {
			out[id] = k.CommissionRateBP
		}
		if len(out) != len(all) {
			t.Fatalf("SaleSKUs returned %d of %d SKUs", len(out), len(all))
		}
		return out
	}
	check := func(step string, overrideWant func(category string) int) {
		t.Helper()
		got := saleRates()
		for i, c := range cases {
			if got[skus[i]] != c.want {
				t.Errorf("%s: %s: rate %d, want %d", step, c.name, got[skus[i]], c.want)
			}
		}
		for cat, k := range overridden {
			if want := overrideWant(cat); got[k] != want {
				t.Errorf("%s: overridden merchant's SKU in %s: rate %d, want %d", step, cat, got[k], want)
			}
		}
	}
	byCategory := map[string]int{parent800: 800, zeroChild: 0, noLeaf: catalog.NoCommissionRate}
	check("no override", func(c string) int { return byCategory[c] })

	// The override beats every category rate, an explicit 0 % category and none at all.
	mpath := "/api/v1/admin/merchants/" + strconv.FormatInt(merchantID, 10)
	h.req(http.MethodPatch, mpath, map[string]any{"commission_rate_bp": 150}, h.admin).Want(t, http.StatusOK, "")
	check("override 150", func(string) int { return 150 })
	h.req(http.MethodPatch, mpath, map[string]any{"commission_rate_bp": 0}, h.admin).Want(t, http.StatusOK, "")
	check("override 0", func(string) int { return 0 })
	// Cleared: the categories' rates again.
	h.req(http.MethodPatch, mpath, map[string]any{"commission_rate_bp": nil}, h.admin).Want(t, http.StatusOK, "")
	check("override cleared", func(c string) int { return byCategory[c] })

	// The tree shows each category's own rate: absent when it has none, 0 when 0.
	type node struct {
		ID               string `json:"id"`
		CommissionRateBP *int   `json:"commission_rate_bp"`
		Children         []node `json:"children"`
	}
	var tree []node
	h.req(http.MethodGet, "/api/v1/categories", nil, "").Want(t, http.StatusOK, "").Decode(t, &tree)
	own := map[string]*int{}
	var walk func([]node)
	walk = func(ns []node) {
		for _, n := range ns {
			own[n.ID] = n.CommissionRateBP
			walk(n.Children)
		}
	}
	walk(tree)
	for id, want := range map[string]*int{parent800: rate(800), leafInherits: nil, zeroChild: rate(0), under0: nil,
		grand300: rate(300), grandLeaf: nil, noRoot: nil} {
		got, ok := own[id]
		if !ok || (got == nil) != (want == nil) || (got != nil && *got != *want) {
			t.Errorf("category %s in the tree: rate %v, want %v", id, got, want)
		}
	}
	cs, err := h.svc.Categories(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if strconv.FormatInt(c.ID, 10) == noRoot && c.CommissionRateBP != nil {
			t.Errorf("Categories: %s has rate %d, want none", noRoot, *c.CommissionRateBP)
		}
	}
	for id, want := range map[string]sql.NullInt32{leafInherits: {}, zeroChild: {Valid: true}, parent800: {Int32: 800, Valid: true}} {
		var got sql.NullInt32
		if err := h.Cluster.Main().GetContext(ctx, &got, `SELECT commission_rate_bp FROM catalog_categories WHERE id = ?`, id); err != nil || got != want {
			t.Errorf("stored rate of %s = %v, %v; want %v", id, got, err, want)
		}
	}
}

// TestSaleSKUsNewCategory: a category created after the rates were loaded is resolved on
// its first checkout (the snapshot reloads for a category it does not know).
func TestSaleSKUsNewCategory(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	_, mt := h.merchant()
	first := h.saleSKUIn(mt, h.rateCategory("Old", "", nil))
	if _, err := h.svc.SaleSKUs(ctx, []int64{first}); err != nil { // loads the rates
		t.Fatal(err)
	}
	// Created through the Service, as on this replica (which drops the rates at once).
	r := 700
	id, err := h.svc.CreateCategory(ctx, catalog.NewCategory{Name: "New", CommissionRateBP: &r})
	if err != nil {
		t.Fatal(err)
	}
	sku := h.saleSKUIn(mt, h.withColors(strconv.FormatInt(id, 10)))
	got, err := h.svc.SaleSKUs(ctx, []int64{first, sku})
	if err != nil || got[sku].CommissionRateBP != 700 || got[first].CommissionRateBP != catalog.NoCommissionRate {
		t.Fatalf("SaleSKUs = %+v, %v", got, err)
	}

	// Created behind this replica's back, as by another one: its first SaleSKUs within
	// categoryMissReload (1 s) of the last load may miss it, a later one must not.
	other := h.IDs.Next(0)
	if _, err := h.Cluster.Main().ExecContext(ctx, `INSERT INTO catalog_categories
		(id, parent_id, name, commission_rate_bp, sort, created_at) VALUES (?, ?, 'Elsewhere', NULL, 0, NOW(6))`,
		other, id); err != nil {
		t.Fatal(err)
	}
	sku = h.saleSKUIn(mt, h.withColors(strconv.FormatInt(other, 10)))
	deadline := time.Now().Add(3 * time.Second)
	for {
		got, err := h.svc.SaleSKUs(ctx, []int64{sku})
		if err != nil {
			t.Fatal(err)
		}
		if got[sku].CommissionRateBP == 700 { // inherited from "New"
			break
		}
		if got[sku].CommissionRateBP != catalog.NoCommissionRate || time.Now().After(deadline) {
			t.Fatalf("SaleSKUs of a category created elsewhere = %+v", got[sku])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// withColors gives the category the sale attribute color and returns its ID.
func (h *harness) withColors(category string) string {
	h.t.Helper()
	h.req(http.MethodPut, "/api/v1/admin/categories/"+category+"/attributes", map[string]any{"spec": []map[string]any{},
		"sale": []map[string]any{{"name": "color", "values": []string{"red", "blue"}}}}, h.admin).Want(h.t, http.StatusOK, "")
	return category
}

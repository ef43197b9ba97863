package merchant_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/merchant"
)

type rateView struct {
	ID               string `json:"id"`
	Status           string `json:"status"`
	CommissionRateBP *int   `json:"commission_rate_bp"`
}

// TestCommissionRate: an operator sets, changes and clears (null) a merchant's commission
// override; the merchant's views show it (absent when unset), CommissionRate follows at
// once on this replica, each change publishes merchant.commission_changed, and bad
// requests, unknown merchants and non-operators change nothing.
func TestCommissionRate(t *testing.T) {
	h := newHarness(t)
	adm := h.admin()
	owner, mid := h.newMerchant(adm, "rates")
	ctx := context.Background()
	path := "/api/v1/admin/merchants/" + mid
	rate := func() (int, bool) {
		t.Helper()
		bp, ok, err := h.svc.CommissionRate(ctx, mustID(t, mid))
		if err != nil {
			t.Fatal(err)
		}
		return bp, ok
	}

	var v rateView
	h.req(owner.tok.AccessToken, "GET", "/api/v1/merchant/profile", nil).want(t, 200, "").decode(t, &v)
	if v.CommissionRateBP != nil {
		t.Fatalf("new merchant's rate = %d, want none", *v.CommissionRateBP)
	}
	if bp, ok := rate(); ok {
		t.Fatalf("CommissionRate of a new merchant = %d, want none", bp)
	}

	// Set (read first, so the cache holds "none": the change must replace it at once).
	for _, give := range []int{250, 0, merchant.MaxCommissionBP} {
		v = rateView{}
		h.req(adm.tok.AccessToken, "PATCH", path, map[string]any{"commission_rate_bp": give}).want(t, 200, "").decode(t, &v)
		if v.ID != mid || v.Status != "active" || v.CommissionRateBP == nil || *v.CommissionRateBP != give {
			t.Fatalf("PATCH %d = %+v", give, v)
		}
		if bp, ok := rate(); !ok || bp != give {
			t.Fatalf("CommissionRate after PATCH %d = %d, %v", give, bp, ok)
		}
	}
	m, err := h.svc.Get(ctx, mustID(t, mid))
	if err != nil || m.CommissionRateBP == nil || *m.CommissionRateBP != merchant.MaxCommissionBP {
		t.Fatalf("Get = %+v, %v", m, err)
	}
	h.req(owner.tok.AccessToken, "GET", "/api/v1/merchant/profile", nil).want(t, 200, "").decode(t, &v)
	if v.CommissionRateBP == nil || *v.CommissionRateBP != merchant.MaxCommissionBP {
		t.Fatalf("profile rate = %v", v.CommissionRateBP)
	}
	// The same rate again changes nothing (no event).
	h.req(adm.tok.AccessToken, "PATCH", path, map[string]any{"commission_rate_bp": merchant.MaxCommissionBP}).want(t, 200, "")

	// Refused requests change nothing.
	buyer := h.newUser("buyer")
	before := h.snapshot()
	for _, tt := range []struct {
		name string
		tok  string
		path string
		give any
		want int
		code string
	}{
		{"too high", adm.tok.AccessToken, path, map[string]any{"commission_rate_bp": 10001}, 400, "request.validation"},
		{"negative", adm.tok.AccessToken, path, map[string]any{"commission_rate_bp": -1}, 400, "request.validation"},
		{"missing", adm.tok.AccessToken, path, map[string]any{}, 400, "request.validation"},
		{"string", adm.tok.AccessToken, path, map[string]any{"commission_rate_bp": "300"}, 400, "request.validation"},
		{"fraction", adm.tok.AccessToken, path, map[string]any{"commission_rate_bp": 2.5}, 400, "request.validation"},
		{"huge", adm.tok.AccessToken, path, json.RawMessage(`{"commission_rate_bp": 1e30}`), 400, "request.validation"},
		{"unknown field", adm.tok.AccessToken, path, map[string]any{"rate": 300}, 400, "request.invalid"},
		{"no body", adm.tok.AccessToken, path, nil, 415, ""},
		{"bad id", adm.tok.AccessToken, "/api/v1/admin/merchants/x", map[string]any{"commission_rate_bp": 1}, 400, ""},
		{"unknown merchant", adm.tok.AccessToken, "/api/v1/admin/merchants/999", map[string]any{"commission_rate_bp": 1}, 404, "merchant.not_found"},
		{"its owner", owner.tok.AccessToken, path, map[string]any{"commission_rate_bp": 1}, 403, "auth.forbidden"},
		{"a buyer", buyer.tok.AccessToken, path, map[string]any{"commission_rate_bp": 1}, 403, "auth.forbidden"},
		{"anonymous", "", path, map[string]any{"commission_rate_bp": 1}, 401, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := h.req(tt.tok, "PATCH", tt.path, tt.give).want(t, tt.want, tt.code)
			if tt.want == 400 && tt.code == "request.validation" && !hasFieldError(t, r, "commission_rate_bp") {
				t.Fatalf("no field error: %s", r)
			}
		})
	}
	if after := h.snapshot(); after != before {
		t.Fatalf("refused requests changed the database:\n%s\n%s", before, after)
	}
	if bp, ok := rate(); !ok || bp != merchant.MaxCommissionBP {
		t.Fatalf("CommissionRate after refused requests = %d, %v", bp, ok)
	}

	// null clears the override.
	v = rateView{}
	r := h.req(adm.tok.AccessToken, "PATCH", path, map[string]any{"commission_rate_bp": nil}).want(t, 200, "")
	r.decode(t, &v)
	var raw map[string]any
	r.decode(t, &raw)
	if _, has := raw["commission_rate_bp"]; has || v.ID != mid {
		t.Fatalf("PATCH null = %s", r)
	}
	if bp, ok := rate(); ok {
		t.Fatalf("CommissionRate after clearing = %d", bp)
	}
	if n := h.count(`SELECT COUNT(*) FROM merchant_merchants WHERE id = ? AND commission_rate_bp IS NULL`, mid); n != 1 {
		t.Fatalf("column not NULL after clearing")
	}

	want := []string{merchant.EventApproved, merchant.EventCommissionChanged, merchant.EventCommissionChanged,
		merchant.EventCommissionChanged, merchant.EventCommissionChanged}
	if ev := h.events(mid); !slices.Equal(ev, want) {
		t.Fatalf("events = %v, want %v", ev, want)
	}
	evs := apptest.Events[merchant.CommissionChanged](h.App, merchant.Topic, merchant.EventCommissionChanged, mid)
	if len(evs) != 4 || evs[0].CommissionRateBP == nil || *evs[0].CommissionRateBP != 250 ||
		evs[1].CommissionRateBP == nil || *evs[1].CommissionRateBP != 0 || evs[3].CommissionRateBP != nil ||
		evs[3].MerchantID != mustID(t, mid) || evs[3].By != mustID(t, adm.ID) {
		t.Fatalf("commission events = %+v", evs)
	}

	// An unknown merchant has no override.
	if bp, ok, err := h.svc.CommissionRate(ctx, 999); ok || err != nil {
		t.Fatalf("CommissionRate(unknown) = %d, %v, %v", bp, ok, err)
	}
}

func hasFieldError(t testing.TB, r response, field string) bool {
	t.Helper()
	var p struct {
		Errors []struct{ Field string } `json:"errors"`
	}
	r.decode(t, &p)
	return slices.ContainsFunc(p.Errors, func(e struct{ Field string }) bool { return e.Field == field })
}

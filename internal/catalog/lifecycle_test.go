package catalog_test

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestMerchantLifecycle is the merchant's whole life over HTTP: apply, approval by an
// operator, products managed by the new owner, reviewed and published (detail and search);
// a rejected application; suspension hiding the merchant's products and closing its API;
// reinstatement bringing them back.
func TestMerchantLifecycle(t *testing.T) {
	h := newSearchHarness(t, "bleve")
	cat := h.colorCategory()

	// An operator (not the admin) reviews applications and products.
	opAcc, _ := h.NewUser("operator")
	h.req(http.MethodPost, "/api/v1/admin/users/"+opAcc.ID+"/roles", map[string]string{"role": "platform_operator"}, h.admin).
		Want(t, http.StatusNoContent, "")
	op := h.Login(opAcc.Email).AccessToken

	apply := func(tok, shop string) string {
		t.Helper()
		var app struct{ ID, Status string }
		h.req(http.MethodPost, "/api/v1/merchant-applications", map[string]string{"shop_name": shop,
			"company_name": shop + " Ltd", "license_no": "91310000" + shop, "contact_name": "Han Meimei",
			"contact_phone": "13912345678"}, tok).Want(t, http.StatusCreated, "").Decode(t, &app)
		if app.Status != "pending" {
			t.Fatalf("application %+v", app)
		}
		return app.ID
	}
	suffix := strconv.FormatInt(h.IDs.Next(0), 10)

	// Apply and approve.
	ownerAcc, ownerTk := h.NewUser("owner")
	appID := apply(ownerTk.AccessToken, "teashop"+suffix)
	var pending struct {
		Items []struct{ ID string } `json:"items"`
	}
	h.req(http.MethodGet, "/api/v1/admin/merchant-applications?status=pending", nil, op).Want(t, http.StatusOK, "").Decode(t, &pending)
	if !slices.ContainsFunc(pending.Items, func(a struct{ ID string }) bool { return a.ID == appID }) {
		t.Fatalf("pending applications %+v lack %s", pending, appID)
	}
	var approved struct {
		MerchantID string `json:"merchant_id"`
	}
	h.req(http.MethodPost, "/api/v1/admin/merchant-applications/"+appID+"/approve", nil, op).
		Want(t, http.StatusOK, "").Decode(t, &approved)
	// The old token predates the role; logging in again carries it.
	h.req(http.MethodPost, "/api/v1/merchant/products", productRequest(cat), ownerTk.AccessToken).Want(t, http.StatusForbidden, "")
	owner := h.Login(ownerAcc.Email).AccessToken
	if me := h.Me(owner); !slices.Contains(me.Roles, "merchant_owner") || me.MerchantID != approved.MerchantID {
		t.Fatalf("owner /me %+v, want merchant_owner of %s", me, approved.MerchantID)
	}

	// The owner manages products; the operator approves; the product is public and searchable.
	var p productBody
	h.req(http.MethodPost, "/api/v1/merchant/products", productRequest(cat), owner).Want(t, http.StatusCreated, "").Decode(t, &p)
	h.req(http.MethodPatch, productPath(p.ID, ""), map[string]any{"title": "Oolong tea cup 乌龙茶杯"}, owner).Want(t, http.StatusOK, "")
	h.req(http.MethodPost, productPath(p.ID, "/submit"), nil, owner).Want(t, http.StatusOK, "")
	h.req(http.MethodGet, "/api/v1/products/"+p.ID, nil, "").Want(t, http.StatusNotFound, "catalog.product_not_found")
	h.req(http.MethodPost, "/api/v1/admin/products/"+p.ID+"/approve", nil, op).Want(t, http.StatusOK, "")
	var detail productBody
	h.req(http.MethodGet, "/api/v1/products/"+p.ID, nil, "").Want(t, http.StatusOK, "").Decode(t, &detail)
	if detail.Title != "Oolong tea cup 乌龙茶杯" || detail.MerchantID != approved.MerchantID {
		t.Fatalf("detail %+v", detail)
	}
	h.eventually(t, "approved product searchable", has(p.ID), "q", "乌龙茶")
	var mine struct {
		Items []productBody `json:"items"`
	}
	h.req(http.MethodGet, "/api/v1/merchant/products?status=on_sale", nil, owner).Want(t, http.StatusOK, "").Decode(t, &mine)
	if len(mine.Items) != 1 || mine.Items[0].ID != p.ID {
		t.Fatalf("merchant's on-sale products %+v", mine)
	}

	// Another application is rejected with a reason: no merchant role comes of it.
	rejAcc, rejTk := h.NewUser("rejected")
	rejID := apply(rejTk.AccessToken, "fakeshop"+suffix)
	h.req(http.MethodPost, "/api/v1/admin/merchant-applications/"+rejID+"/reject", map[string]string{"reason": "license does not match the company"}, op).
		Want(t, http.StatusOK, "")
	var rejMine struct {
		Items []struct{ ID, Status, Reason string } `json:"items"`
	}
	h.req(http.MethodGet, "/api/v1/merchant-applications/mine", nil, rejTk.AccessToken).Want(t, http.StatusOK, "").Decode(t, &rejMine)
	if len(rejMine.Items) != 1 || rejMine.Items[0].Status != "rejected" || rejMine.Items[0].Reason != "license does not match the company" {
		t.Fatalf("rejected applicant's applications %+v", rejMine)
	}
	rej := h.Login(rejAcc.Email).AccessToken
	if me := h.Me(rej); slices.Contains(me.Roles, "merchant_owner") || me.MerchantID != "" {
		t.Fatalf("rejected applicant /me %+v", me)
	}
	h.req(http.MethodPost, "/api/v1/merchant/products", productRequest(cat), rej).Want(t, http.StatusForbidden, "")

	// Suspension: the product leaves the detail at once and the search within seconds; the
	// merchant API answers 403 merchant.suspended.
	start := time.Now()
	h.req(http.MethodPost, "/api/v1/admin/merchants/"+approved.MerchantID+"/suspend", nil, op).Want(t, http.StatusOK, "")
	h.req(http.MethodGet, "/api/v1/products/"+p.ID, nil, "").Want(t, http.StatusNotFound, "catalog.product_not_found")
	h.eventually(t, "suspended merchant's product gone", hasNot(p.ID), "q", "乌龙茶")
	t.Logf("suspended merchant's product left search after %s", time.Since(start).Round(time.Millisecond))
	h.req(http.MethodGet, "/api/v1/merchant/products", nil, owner).Want(t, http.StatusForbidden, "merchant.suspended")
	h.req(http.MethodPatch, productPath(p.ID, ""), map[string]any{"title": "x"}, owner).Want(t, http.StatusForbidden, "merchant.suspended")
	// A stock change of the suspended merchant's SKU (an event of another module) does not
	// bring the product back.
	if _, err := h.stock.Set(t.Context(), mustInt(t, approved.MerchantID), mustInt(t, p.SKUs[0].ID), 42); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if got := h.search(t, "q", "乌龙茶"); got.Total != 0 {
		t.Fatalf("suspended merchant's product is back in search: %+v", got)
	}

	// Reinstatement brings everything back.
	start = time.Now()
	h.req(http.MethodPost, "/api/v1/admin/merchants/"+approved.MerchantID+"/unsuspend", nil, op).Want(t, http.StatusOK, "")
	h.req(http.MethodGet, "/api/v1/products/"+p.ID, nil, "").Want(t, http.StatusOK, "")
	h.eventually(t, "reinstated merchant's product back", has(p.ID), "q", "乌龙茶")
	t.Logf("reinstated merchant's product back in search after %s", time.Since(start).Round(time.Millisecond))
	h.req(http.MethodGet, "/api/v1/merchant/products", nil, owner).Want(t, http.StatusOK, "")
}

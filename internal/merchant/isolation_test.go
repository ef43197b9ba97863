package merchant_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/user"
)

// otherModuleRoute stands in for another module's merchant route: the suspension check
// applies to it too.
func otherModuleRoute() httpx.Route {
	return httpx.Route{Method: http.MethodGet, Path: "/api/v1/merchant/other-module", Summary: "test only", Auth: true,
		Middleware: []echo.MiddlewareFunc{user.RequirePermission(user.PermMerchantProducts)},
		Handler:    func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{}) }}
}

// snapshot is every row of the module's tables, for "nothing changed" checks.
func (h *harness) snapshot() string {
	h.t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT CONCAT_WS('|', id, status, reason, COALESCE(merchant_id, ''), updated_at) FROM merchant_applications ORDER BY id`,
		`SELECT CONCAT_WS('|', id, shop_name, description, logo_url, contact_name, contact_phone, status, COALESCE(commission_rate_bp, 'none'), updated_at) FROM merchant_merchants ORDER BY id`,
		`SELECT CONCAT_WS('|', merchant_id, user_id, role) FROM merchant_staff ORDER BY merchant_id, user_id`,
		`SELECT CONCAT_WS('|', COUNT(*), COALESCE(MAX(id), 0)) FROM platform_outbox`,
	} {
		var rows []string
		if err := h.Cluster.Main().SelectContext(context.Background(), &rows, q); err != nil {
			h.t.Fatal(err)
		}
		fmt.Fprintln(&b, rows)
	}
	return b.String()
}

// TestMerchantRoutesIsolation is generated from the route table: every route under
// /api/v1/merchant/ is called by merchant A's owner. Routes with path parameters get
// merchant B's object IDs (B's staff user IDs) and must answer 404 with the database
// unchanged; routes without them act on A's own merchant only, so they must never show B's
// data nor change B's rows.
func TestMerchantRoutesIsolation(t *testing.T) {
	h := newHarness(t)
	adm := h.admin()
	ownerA, midA := h.newMerchant(adm, "alpha")
	ownerB, midB := h.newMerchant(adm, "bravo")
	staffB := h.addStaff(ownerB, "operator")
	h.addStaff(ownerA, "customer_service")
	bSecrets := []string{midB, staffB.ID, staffB.Email, "bravo", ownerB.ID}

	param := regexp.MustCompile(`:[A-Za-z_]+`)
	var withIDs, withoutIDs []string
	for _, r := range h.Server.Echo().Routes() {
		if !strings.HasPrefix(r.Path, "/api/v1/merchant/") || r.Method == echo.RouteNotFound {
			continue
		}
		var body any
		if r.Method != http.MethodGet && r.Method != http.MethodDelete {
			// A valid body, so only the ownership check can refuse it.
			body = map[string]string{"shop_name": "hijack", "email": staffB.Email, "role": "operator"}
			if r.Path == "/api/v1/merchant/profile" {
				body = map[string]string{"shop_name": "hijack"}
			}
		}
		if param.MatchString(r.Path) {
			withIDs = append(withIDs, r.Method+" "+r.Path)
			path := param.ReplaceAllString(r.Path, staffB.ID)
			before := h.snapshot()
			got := h.req(ownerA.tok.AccessToken, r.Method, path, body)
			if got.status != http.StatusNotFound {
				t.Errorf("%s %s with B's ID: %s, want 404", r.Method, r.Path, got)
			}
			if after := h.snapshot(); after != before {
				t.Errorf("%s %s with B's ID changed the database:\n%s\n->\n%s", r.Method, r.Path, before, after)
			}
			continue
		}
		withoutIDs = append(withoutIDs, r.Method+" "+r.Path)
		bBefore := h.merchantRows(midB)
		got := h.req(ownerA.tok.AccessToken, r.Method, r.Path, body)
		for _, s := range bSecrets {
			if strings.Contains(string(got.body), s) {
				t.Errorf("%s %s as A shows B's %q: %s", r.Method, r.Path, s, got)
			}
		}
		if got.status >= 500 {
			t.Errorf("%s %s: %s", r.Method, r.Path, got)
		}
		if bAfter := h.merchantRows(midB); bAfter != bBefore {
			t.Errorf("%s %s as A changed B's rows:\n%s\n->\n%s", r.Method, r.Path, bBefore, bAfter)
		}
	}
	for _, want := range []string{"GET /api/v1/merchant/staff/:user_id"} {
		if !slices.Contains(withIDs, want) {
			t.Errorf("routes with IDs %v lack %s", withIDs, want)
		}
	}
	for _, want := range []string{"GET /api/v1/merchant/profile", "PATCH /api/v1/merchant/profile",
		"POST /api/v1/merchant/staff", "GET /api/v1/merchant/staff"} {
		if !slices.Contains(withoutIDs, want) {
			t.Errorf("routes without IDs %v lack %s", withoutIDs, want)
		}
	}
	// A's own data is what A's routes show.
	var p profile
	h.req(ownerA.tok.AccessToken, "GET", "/api/v1/merchant/profile", nil).want(t, 200, "").decode(t, &p)
	if p.ID != midA {
		t.Errorf("A's profile is %s, want %s", p.ID, midA)
	}
	t.Logf("checked %d routes with IDs %v and %d without %v", len(withIDs), withIDs, len(withoutIDs), withoutIDs)
}

// merchantRows is merchant id's row and its staff.
func (h *harness) merchantRows(id string) string {
	h.t.Helper()
	var rows []string
	for _, q := range []string{
		`SELECT CONCAT_WS('|', id, shop_name, description, status, updated_at) FROM merchant_merchants WHERE id = ?`,
		`SELECT CONCAT_WS('|', merchant_id, user_id, role) FROM merchant_staff WHERE merchant_id = ? ORDER BY user_id`,
	} {
		var part []string
		if err := h.Cluster.Main().SelectContext(context.Background(), &part, q, id); err != nil {
			h.t.Fatal(err)
		}
		rows = append(rows, part...)
	}
	return strings.Join(rows, "\n")
}

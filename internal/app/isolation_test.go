package app_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/settlement"
)

type idBody struct {
	ID string `json:"id"`
}

// merchantObjects gives merchant the objects of every kind a merchant route names: a staff
// member, a product on sale with a SKU, a buyer's order. It returns them by the route segment after
// /api/v1/merchant/.
func merchantObjects(t *testing.T, a *apptest.App, adm, owner, category string) map[string]string {
	t.Helper()
	staff, staffTok := a.NewUser("staff")
	var st struct {
		UserID string `json:"user_id"`
	}
	a.Req(http.MethodPost, "/api/v1/merchant/staff", map[string]string{"email": staff.Email, "role": "operator"},
		apptest.Bearer(owner)...).Want(t, http.StatusCreated, "").Decode(t, &st)
	a.AcceptStaffInvitation(staffTok.AccessToken)
	var p struct {
		ID   string   `json:"id"`
		SKUs []idBody `json:"skus"`
	}
	a.Req(http.MethodPost, "/api/v1/merchant/products", map[string]any{
		"title": "Thermos 保温杯", "category_id": category,
		"skus": []map[string]any{{"code": "red", "attrs": map[string]string{"color": "red"}, "price": 1999, "stock": 5}},
	}, apptest.Bearer(owner)...).Want(t, http.StatusCreated, "").Decode(t, &p)
	a.Req(http.MethodPost, "/api/v1/merchant/products/"+p.ID+"/submit", nil, apptest.Bearer(owner)...).Want(t, http.StatusOK, "")
	a.Req(http.MethodPost, "/api/v1/admin/products/"+p.ID+"/approve", nil, apptest.Bearer(adm)...).Want(t, http.StatusOK, "")

	// A buyer's order of that product.
	_, buyer := a.NewUser("buyer")
	var c struct {
		Orders []idBody `json:"orders"`
	}
	a.Req(http.MethodPost, "/api/v1/orders", map[string]any{"address_id": a.Address(buyer.AccessToken),
		"items": []map[string]any{{"sku_id": p.SKUs[0].ID, "quantity": 1}}},
		append(apptest.Bearer(buyer.AccessToken), "Idempotency-Key", "iso-"+p.ID)...).
		Want(t, http.StatusCreated, "").Decode(t, &c)
	var room idBody
	a.Req(http.MethodPost, "/api/v1/merchant/live-rooms", map[string]any{"title": "Spring sale"},
		apptest.Bearer(owner)...).Want(t, http.StatusCreated, "").Decode(t, &room)
	var sale idBody
	a.Req(http.MethodPost, "/api/v1/merchant/flash-sales", map[string]any{"sku_id": p.SKUs[0].ID, "price": 999,
		"quantity": 1, "per_user_limit": 1, "starts_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		"ends_at": time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)}, apptest.Bearer(owner)...).
		Want(t, http.StatusCreated, "").Decode(t, &sale)
	return map[string]string{"staff": st.UserID, "products": p.ID, "skus": p.SKUs[0].ID, "orders": c.Orders[0].ID,
		"flash-sales": sale.ID, "live-rooms": room.ID, "settlement": settlementStatement(t, a, adm, owner, buyer.AccessToken, p.SKUs[0].ID)}
}

// settlementStatement completes an order of the merchant's SKU (paid through the sandbox,
// shipped, received) and returns the merchant's statement of it: the test runs with no
// settlement hold period, so the money is available as soon as the ledger posts it.
func settlementStatement(t *testing.T, a *apptest.App, adm, owner, buyer, sku string) string {
	t.Helper()
	var c struct {
		CheckoutID string   `json:"checkout_id"`
		Orders     []idBody `json:"orders"`
	}
	a.Req(http.MethodPost, "/api/v1/orders", map[string]any{"address_id": a.Address(buyer),
		"items": []map[string]any{{"sku_id": sku, "quantity": 1}}},
		append(apptest.Bearer(buyer), "Idempotency-Key", "iso-settle-"+sku)...).
		Want(t, http.StatusCreated, "").Decode(t, &c)
	var pay idBody
	a.Req(http.MethodPost, "/api/v1/payments", map[string]string{"checkout_id": c.CheckoutID, "provider": "sandbox"},
		append(apptest.Bearer(buyer), "Idempotency-Key", "iso-pay-"+sku)...).Want(t, http.StatusCreated, "").Decode(t, &pay)
	a.Req(http.MethodPost, "/api/v1/payments/"+pay.ID+"/sandbox/complete", nil, apptest.Bearer(buyer)...).Want(t, http.StatusOK, "")
	id := c.Orders[0].ID
	a.Req(http.MethodPost, "/api/v1/merchant/orders/"+id+"/ship", map[string]string{"carrier": "SF", "tracking_no": "SF1"},
		apptest.Bearer(owner)...).Want(t, http.StatusOK, "")
	a.Req(http.MethodPost, "/api/v1/orders/"+id+"/confirm-receipt", nil, apptest.Bearer(buyer)...).Want(t, http.StatusOK, "")
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var sts struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		a.Req(http.MethodPost, "/api/v1/admin/settlement/statements", map[string]any{"period_end": time.Now().Add(time.Minute)},
			apptest.Bearer(adm)...).Want(t, http.StatusCreated, "").Decode(t, &sts)
		a.Req(http.MethodGet, "/api/v1/merchant/settlement/statements", nil, apptest.Bearer(owner)...).
			Want(t, http.StatusOK, "").Decode(t, &sts)
		if len(sts.Items) > 0 {
			return sts.Items[0].ID
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no settlement statement for the merchant's completed order within 30s")
	return ""
}

// validBodies are bodies that pass validation, so only the ownership check can refuse the
// request. Every mutating merchant route must have one (the test fails on a 400).
var validBodies = map[string]any{
	"PATCH /api/v1/merchant/products/:id":     map[string]any{"title": "hijacked"},
	"PUT /api/v1/merchant/skus/:sku_id/stock": map[string]any{"available": 1},
	"PATCH /api/v1/merchant/profile":          map[string]any{"shop_name": "hijacked"},
	"POST /api/v1/merchant/staff":             map[string]any{"email": "nobody-isolation@example.com", "role": "operator"},
	"POST /api/v1/merchant/orders/:id/ship":   map[string]any{"carrier": "SF", "tracking_no": "SF123"},
	// A's own on_sale product would pass every check but ownership of the room; the test
	// fills in the ID (merchantObjects of A).
	"POST /api/v1/merchant/live-rooms/:id/pin": map[string]any{"product_id": "0"},
	"POST /api/v1/merchant/live-rooms":         map[string]any{"title": "A's room"},
	"POST /api/v1/merchant/products": map[string]any{"title": "A's product", "category_id": "0",
		"skus": []map[string]any{{"code": "x", "attrs": map[string]string{"color": "red"}, "price": 1, "stock": 1}}},
}

// snapshot checksums every table of every database, so any write shows.
func snapshot(t *testing.T, a *apptest.App) string {
	t.Helper()
	var b strings.Builder
	for _, db := range a.Cluster.All() {
		var tables []string
		if err := db.SelectContext(context.Background(), &tables, `SHOW TABLES`); err != nil {
			t.Fatal(err)
		}
		slices.Sort(tables)
		// The relay and the consumers keep working in the background: the outbox counts by
		// rows (a request's event adds one), the inbox not at all (no request writes it).
		var events int
		if err := db.GetContext(context.Background(), &events, `SELECT COUNT(*) FROM platform_outbox`); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s.events=%d\n", db.Name, events)
		for _, tb := range tables {
			if tb == "platform_outbox" || tb == "platform_inbox" {
				continue
			}
			var name string
			var sum *int64
			if err := db.QueryRowContext(context.Background(), "CHECKSUM TABLE `"+tb+"`").Scan(&name, &sum); err != nil {
				t.Fatal(err)
			}
			if sum != nil {
				fmt.Fprintf(&b, "%s.%s=%d\n", db.Name, tb, *sum)
			}
		}
	}
	return b.String()
}

// TestMerchantRoutesIsolationAcrossModules is generated from the route table of the whole
// application: every /api/v1/merchant/ route with an object ID in its path is called by
// merchant A's owner with merchant B's object of that kind (its product, its SKU, its staff
// member, ...) and must answer 404 with no database changed; a route whose object kind
// has no B object here fails the test, so a new module's merchant routes must be added.
// Routes without IDs act on A's own merchant: they must not show B's objects.
func TestMerchantRoutesIsolationAcrossModules(t *testing.T) {
	// No settlement hold period: a completed order's money is available at once, so each
	// merchant gets a statement for the settlement routes.
	a := apptest.Start(t, settlement.ConfigSection.With(apptest.Config(t), func(c *settlement.Config) { c.HoldPeriod = 0 }),
		apptest.Options{})
	_, adminTok := a.Admin()
	adm := adminTok.AccessToken
	var cat idBody
	a.Req(http.MethodPost, "/api/v1/admin/categories", map[string]any{"name": "cups"}, apptest.Bearer(adm)...).
		Want(t, http.StatusCreated, "").Decode(t, &cat)
	a.Req(http.MethodPut, "/api/v1/admin/categories/"+cat.ID+"/attributes", map[string]any{
		"spec": []map[string]any{}, "sale": []map[string]any{{"name": "color", "values": []string{"red", "blue"}}},
	}, apptest.Bearer(adm)...).Want(t, http.StatusOK, "")
	validBodies["POST /api/v1/merchant/products"].(map[string]any)["category_id"] = cat.ID

	midA, _, ownerA := a.Merchant(adm)
	mid, _, ownerB := a.Merchant(adm)
	midB := strconv.FormatInt(mid, 10)
	objA := merchantObjects(t, a, adm, ownerA, cat.ID)
	validBodies["POST /api/v1/merchant/live-rooms/:id/pin"].(map[string]any)["product_id"] = objA["products"]
	objB := merchantObjects(t, a, adm, ownerB, cat.ID)
	time.Sleep(500 * time.Millisecond) // let the post-commit work (stock init, events) settle

	param := regexp.MustCompile(`:[A-Za-z_]+`)
	checked := map[string]bool{}
	for _, r := range a.Server.Echo().Routes() {
		if !strings.HasPrefix(r.Path, "/api/v1/merchant/") || r.Method == echo.RouteNotFound {
			continue
		}
		key := r.Method + " " + r.Path
		body := validBodies[key]
		if body == nil && r.Method != http.MethodGet && r.Method != http.MethodDelete {
			body = map[string]any{}
		}
		kind := strings.SplitN(strings.TrimPrefix(r.Path, "/api/v1/merchant/"), "/", 2)[0]
		if !param.MatchString(r.Path) {
			got := a.Req(r.Method, r.Path, body, apptest.Bearer(ownerA)...)
			if got.Status >= 500 {
				t.Errorf("%s: %s", key, got)
			}
			for k, id := range objB {
				if strings.Contains(string(got.Body), id) {
					t.Errorf("%s as A shows B's %s %s: %s", key, k, id, got)
				}
			}
			if strings.Contains(string(got.Body), midB) {
				t.Errorf("%s as A shows B's merchant ID: %s", key, got)
			}
			checked[key] = true
			continue
		}
		id, ok := objB[kind]
		if !ok {
			t.Errorf("%s: no object of merchant B for kind %q; add one to merchantObjects", key, kind)
			continue
		}
		path := param.ReplaceAllString(r.Path, id)
		before := snapshot(t, a)
		got := a.Req(r.Method, path, body, apptest.Bearer(ownerA)...)
		if got.Status != http.StatusNotFound {
			t.Errorf("%s with B's %s %s: %s, want 404", key, kind, id, got)
		}
		if after := snapshot(t, a); after != before {
			t.Errorf("%s with B's %s changed the database", key, kind)
		}
		checked[key] = true
	}
	// The operators' merchant route is no merchant's: A's owner can set neither its own
	// commission rate nor B's.
	for _, id := range []string{strconv.FormatInt(midA, 10), midB} {
		before := snapshot(t, a)
		got := a.Req(http.MethodPatch, "/api/v1/admin/merchants/"+id, map[string]any{"commission_rate_bp": 0},
			apptest.Bearer(ownerA)...)
		if got.Status != http.StatusForbidden {
			t.Errorf("PATCH /api/v1/admin/merchants/%s as A's owner: %s, want 403", id, got)
		}
		if after := snapshot(t, a); after != before {
			t.Errorf("PATCH /api/v1/admin/merchants/%s as A's owner changed the database", id)
		}
	}
	for _, want := range []string{
		"PATCH /api/v1/merchant/products/:id", "POST /api/v1/merchant/products/:id/submit",
		"POST /api/v1/merchant/products/:id/off-shelf", "GET /api/v1/merchant/products/:id",
		"PUT /api/v1/merchant/skus/:sku_id/stock", "GET /api/v1/merchant/skus/:sku_id/stock",
		"GET /api/v1/merchant/staff/:user_id", "DELETE /api/v1/merchant/staff/:user_id",
		"GET /api/v1/merchant/products", "GET /api/v1/merchant/staff", "GET /api/v1/merchant/profile",
		"GET /api/v1/merchant/orders/:id", "POST /api/v1/merchant/orders/:id/ship",
		"POST /api/v1/merchant/orders/:id/refund/approve", "POST /api/v1/merchant/orders/:id/refund/reject",
		"GET /api/v1/merchant/orders",
		"GET /api/v1/merchant/live-rooms/:id", "POST /api/v1/merchant/live-rooms/:id/pin",
		"DELETE /api/v1/merchant/live-rooms/:id/pin", "POST /api/v1/merchant/live-rooms/:id/end",
		"POST /api/v1/merchant/live-rooms/:id/stream-key", "GET /api/v1/merchant/live-rooms",
		"GET /api/v1/merchant/settlement/balance", "GET /api/v1/merchant/settlement/entries",
		"GET /api/v1/merchant/settlement/statements", "GET /api/v1/merchant/settlement/statements/:id",
		"GET /api/v1/merchant/settlement/statements/:id/lines.csv",
	} {
		if !checked[want] {
			t.Errorf("%s was not checked", want)
		}
	}
	t.Logf("checked %d merchant routes", len(checked))
}

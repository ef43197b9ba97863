package user_test

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/user"
)

// TestEveryAdminRouteRefusesBuyers walks the route table of the whole application (every
// module wired into app.Options) and calls each /api/v1/admin/ route as a buyer: 403, and
// 401 without a token. A module that forgets RequirePermission on an admin route fails here.
func TestEveryAdminRouteRefusesBuyers(t *testing.T) {
	h := newHarness(t, harnessOptions{full: true})
	_, buyer := h.NewUser("buyer")
	param := regexp.MustCompile(`:[A-Za-z_]+`)
	var checked []string
	for _, r := range h.srv.Echo().Routes() {
		if !strings.HasPrefix(r.Path, "/api/v1/admin/") {
			continue
		}
		path := param.ReplaceAllString(r.Path, "1")
		checked = append(checked, r.Method+" "+r.Path)
		var body any
		if r.Method != http.MethodGet && r.Method != http.MethodDelete {
			body = map[string]any{}
		}
		if got := h.Req(r.Method, path, body, apptest.Bearer(buyer.AccessToken)...); got.Status != http.StatusForbidden || got.Code() != "auth.forbidden" {
			t.Errorf("%s %s as a buyer: %s, want 403 auth.forbidden", r.Method, r.Path, got)
		}
		if got := h.Req(r.Method, path, body); got.Status != http.StatusUnauthorized {
			t.Errorf("%s %s anonymously: %s, want 401", r.Method, r.Path, got)
		}
	}
	for _, want := range []string{"GET /api/v1/admin/users", "POST /api/v1/admin/users/:id/roles"} {
		if !slices.Contains(checked, want) {
			t.Errorf("route table has no %s (checked %v)", want, checked)
		}
	}
	t.Logf("checked %d admin routes: %v", len(checked), checked)
}

// merchantObjects is a stand-in for another module's merchant-owned rows: the route below is
// written the way every merchant route must be (permission middleware, then queries scoped by
// the caller's merchant, 404 for another merchant's object).
func merchantObjects(owner map[int64]int64) httpx.Route {
	return httpx.Route{
		Method: http.MethodGet, Path: "/api/v1/merchant/test-objects/:id", Summary: "test only", Auth: true,
		Middleware: []echo.MiddlewareFunc{user.RequirePermission(user.PermMerchantProducts)},
		Handler: func(c echo.Context) error {
			id, err := httpx.ParamID(c, "id")
			if err != nil {
				return err
			}
			mid, err := user.MerchantFrom(c.Request().Context())
			if err != nil {
				return err
			}
			if owner[id.Int64()] != mid {
				return errs.New(errs.NotFound, "test.not_found")
			}
			return c.JSON(http.StatusOK, map[string]string{"merchant_id": strconv.FormatInt(mid, 10)})
		},
	}
}

func TestRolesAndMerchantScope(t *testing.T) {
	const merchantA, merchantB = 7001, 7002
	h := newHarness(t, harnessOptions{routes: []httpx.Route{merchantObjects(map[int64]int64{1: merchantA, 2: merchantB})}})
	_, admin := h.Admin()
	alice, aliceTok := h.NewUser("alice")
	bob, _ := h.NewUser("bob")
	grant := func(userID string, body map[string]any, tok string) response {
		return h.Req("POST", "/api/v1/admin/users/"+userID+"/roles", body, apptest.Bearer(tok)...)
	}

	t.Run("admin finds users by email", func(t *testing.T) {
		var list struct {
			Items []struct {
				ID    string `json:"id"`
				Email string `json:"email"`
				Roles []struct {
					Role string `json:"role"`
				} `json:"roles"`
			} `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		h.Req("GET", "/api/v1/admin/users?email="+strings.ToUpper(alice.Email), nil, apptest.Bearer(admin.AccessToken)...).
			Want(t, http.StatusOK, "").Decode(t, &list)
		if len(list.Items) != 1 || list.Items[0].ID != alice.ID || list.Items[0].Roles[0].Role != "buyer" {
			t.Fatalf("search by email: %+v", list)
		}
		h.Req("GET", "/api/v1/admin/users?limit=2", nil, apptest.Bearer(admin.AccessToken)...).Want(t, http.StatusOK, "").Decode(t, &list)
		if len(list.Items) != 2 || list.NextCursor == "" {
			t.Fatalf("first page: %+v", list)
		}
		h.Req("GET", "/api/v1/admin/users?limit=2&cursor="+list.NextCursor, nil, apptest.Bearer(admin.AccessToken)...).
			Want(t, http.StatusOK, "").Decode(t, &list)
		if len(list.Items) != 1 || list.NextCursor != "" {
			t.Fatalf("last page: %+v", list)
		}
	})

	t.Run("grant validation", func(t *testing.T) {
		grant(alice.ID, map[string]any{"role": "merchant_owner"}, admin.AccessToken).Want(t, http.StatusBadRequest, "user.merchant_required")
		grant(alice.ID, map[string]any{"role": "platform_operator", "merchant_id": "5"}, admin.AccessToken).
			Want(t, http.StatusBadRequest, "user.merchant_not_allowed")
		grant(alice.ID, map[string]any{"role": "emperor"}, admin.AccessToken).Want(t, http.StatusBadRequest, "user.unknown_role")
		grant("123", map[string]any{"role": "platform_operator"}, admin.AccessToken).Want(t, http.StatusNotFound, "user.not_found")
		grant(alice.ID, map[string]any{"role": "merchant_owner", "merchant_id": 7001}, admin.AccessToken).Want(t, http.StatusBadRequest, "request.invalid")
		grant(bob.ID, map[string]any{"role": "platform_operator"}, aliceTok.AccessToken).Want(t, http.StatusForbidden, "auth.forbidden")
	})

	// Alice becomes the owner of merchant A; granting twice is fine; a second merchant is not.
	grant(alice.ID, map[string]any{"role": "merchant_owner", "merchant_id": strconv.Itoa(merchantA)}, admin.AccessToken).
		Want(t, http.StatusNoContent, "")
	grant(alice.ID, map[string]any{"role": "merchant_owner", "merchant_id": strconv.Itoa(merchantA)}, admin.AccessToken).
		Want(t, http.StatusNoContent, "")
	grant(alice.ID, map[string]any{"role": "merchant_staff", "merchant_id": strconv.Itoa(merchantB)}, admin.AccessToken).
		Want(t, http.StatusConflict, "user.merchant_conflict")
	// Bob works for merchant B, granted through the Service as the merchant module will.
	bobID, _ := strconv.ParseInt(bob.ID, 10, 64)
	if err := h.svc.GrantRole(context.Background(), bobID, user.RoleMerchantStaff, merchantB); err != nil {
		t.Fatal(err)
	}

	t.Run("audit events in the outbox", func(t *testing.T) {
		var n int
		err := h.cl.Main().GetContext(context.Background(), &n,
			`SELECT COUNT(*) FROM platform_outbox WHERE event_type = 'user.role_granted' AND topic = 'mall.user.v1'`)
		if err != nil {
			t.Fatal(err)
		}
		if n != 3 { // admin's platform_admin, alice's merchant_owner (once), bob's merchant_staff
			t.Fatalf("%d user.role_granted events, want 3", n)
		}
	})

	// The old token has no merchant role yet; a refresh picks it up (API.md: visible after refresh).
	if m := h.Me(aliceTok.AccessToken); m.MerchantID != "" || len(m.Roles) != 1 {
		t.Fatalf("before refresh: %+v", m)
	}
	h.Req("GET", "/api/v1/merchant/test-objects/1", nil, apptest.Bearer(aliceTok.AccessToken)...).Want(t, http.StatusForbidden, "auth.forbidden")
	var owner tokens
	h.refresh(aliceTok.RefreshToken).Want(t, http.StatusOK, "").Decode(t, &owner)
	if m := h.Me(owner.AccessToken); m.MerchantID != strconv.Itoa(merchantA) || !slices.Equal(m.Roles, []string{"buyer", "merchant_owner"}) {
		t.Fatalf("after refresh: %+v", m)
	}
	bobTok := h.Login(bob.Email)

	tests := []struct {
		name   string
		token  string
		object string
		want   int
	}{
		{"owner of A, A's object", owner.AccessToken, "1", http.StatusOK},
		{"owner of A, B's object", owner.AccessToken, "2", http.StatusNotFound},
		{"staff of B, B's object", bobTok.AccessToken, "2", http.StatusOK},
		{"staff of B, A's object", bobTok.AccessToken, "1", http.StatusNotFound},
		{"platform admin holds no merchant permission", admin.AccessToken, "1", http.StatusForbidden},
		{"anonymous", "", "1", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.token != "" {
				hdr = apptest.Bearer(tt.token)
			}
			h.Req("GET", "/api/v1/merchant/test-objects/"+tt.object, nil, hdr...).Want(t, tt.want, "")
		})
	}
	t.Run("merchant roles give nothing on the platform", func(t *testing.T) {
		h.Req("GET", "/api/v1/admin/users", nil, apptest.Bearer(owner.AccessToken)...).Want(t, http.StatusForbidden, "auth.forbidden")
	})

	// Revoking ends every session at once: the access token and the refresh token stop
	// working, and a new login carries no merchant role.
	t.Run("revoke", func(t *testing.T) {
		revoke := func(userID string, body map[string]any, tok string) response {
			return h.Req("POST", "/api/v1/admin/users/"+userID+"/roles/revoke", body, apptest.Bearer(tok)...)
		}
		body := map[string]any{"role": "merchant_owner", "merchant_id": strconv.Itoa(merchantA)}
		revoke(alice.ID, body, owner.AccessToken).Want(t, http.StatusForbidden, "auth.forbidden")
		revoke(alice.ID, map[string]any{"role": "buyer"}, admin.AccessToken).Want(t, http.StatusBadRequest, "user.merchant_not_allowed")
		revoke(alice.ID, body, admin.AccessToken).Want(t, http.StatusNoContent, "")
		h.Req("GET", "/api/v1/merchant/test-objects/1", nil, apptest.Bearer(owner.AccessToken)...).Want(t, http.StatusUnauthorized, "")
		h.refresh(owner.RefreshToken).Want(t, http.StatusUnauthorized, "")
		again := h.Login(alice.Email)
		if m := h.Me(again.AccessToken); m.MerchantID != "" || !slices.Equal(m.Roles, []string{"buyer"}) {
			t.Fatalf("after revoke and login: %+v", m)
		}
		h.Req("GET", "/api/v1/merchant/test-objects/1", nil, apptest.Bearer(again.AccessToken)...).Want(t, http.StatusForbidden, "auth.forbidden")
		revoke(alice.ID, body, admin.AccessToken).Want(t, http.StatusNoContent, "") // absent: nothing to do
		var n int
		if err := h.cl.Main().GetContext(context.Background(), &n,
			`SELECT COUNT(*) FROM platform_outbox WHERE event_type = 'user.role_revoked'`); err != nil || n != 1 {
			t.Fatalf("%d user.role_revoked events (%v), want 1", n, err)
		}
		// Bob, untouched, keeps working.
		h.Req("GET", "/api/v1/merchant/test-objects/2", nil, apptest.Bearer(bobTok.AccessToken)...).Want(t, http.StatusOK, "")
	})
}

func TestSeededRolesGrantKnownPermissions(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	var rows []struct {
		Role       string `db:"role"`
		Scope      string `db:"scope"`
		Permission string `db:"permission"`
	}
	err := h.cl.Main().SelectContext(context.Background(), &rows,
		`SELECT p.role, r.scope, p.permission FROM user_role_permissions p JOIN user_roles r ON r.name = p.role`)
	if err != nil {
		t.Fatal(err)
	}
	granted := map[user.Permission]bool{}
	for _, r := range rows {
		p := user.Permission(r.Permission)
		if !p.Known() {
			t.Errorf("role %s grants unknown permission %s", r.Role, p)
		}
		if p.MerchantScoped() != (r.Scope == "merchant") {
			t.Errorf("role %s (%s) grants %s outside its scope", r.Role, r.Scope, p)
		}
		granted[p] = true
	}
	for _, p := range user.Permissions {
		if !granted[p] {
			t.Errorf("no seeded role grants %s", p)
		}
	}
	var roles []string
	if err := h.cl.Main().SelectContext(context.Background(), &roles, `SELECT name FROM user_roles ORDER BY name`); err != nil {
		t.Fatal(err)
	}
	if want := []string{"merchant_owner", "merchant_staff", "platform_admin", "platform_operator"}; !slices.Equal(roles, want) {
		t.Errorf("roles %v, want %v (buyer is implicit)", roles, want)
	}
}

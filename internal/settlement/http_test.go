package settlement_test

import (
	"net/http"
	"testing"

	"github.com/mallhq/mall/internal/app/apptest"
)

// TestBadInputIs4xx: malformed requests to the settlement routes are 400 (or 404 for IDs
// that name nothing), never 500; the routes need their permissions.
func TestBadInputIs4xx(t *testing.T) {
	a := newApp(t)
	_, _, owner := a.Merchant(a.admin)
	_, buyer := a.NewUser("buyer")
	adm := apptest.Bearer(a.admin)
	tests := []struct {
		method, path string
		body         any
		token        string
		want         int
	}{
		{http.MethodPost, "/api/v1/admin/settlement/statements", map[string]any{}, a.admin, 400},
		{http.MethodPost, "/api/v1/admin/settlement/statements", map[string]any{"period_end": "yesterday"}, a.admin, 400},
		{http.MethodPost, "/api/v1/admin/settlement/statements", map[string]any{"period_end": 12}, a.admin, 400},
		{http.MethodPost, "/api/v1/admin/settlement/statements", map[string]any{"period_end": "0001-01-01T00:00:00Z"}, a.admin, 400},
		{http.MethodPost, "/api/v1/admin/settlement/statements", []byte("{"), a.admin, 400},
		{http.MethodPost, "/api/v1/admin/settlement/statements/123/mark-paid", map[string]any{}, a.admin, 400},
		{http.MethodPost, "/api/v1/admin/settlement/statements/123/mark-paid", map[string]any{"reference": "x"}, a.admin, 404},
		{http.MethodPost, "/api/v1/admin/settlement/statements/abc/mark-paid", map[string]any{"reference": "x"}, a.admin, 400},
		{http.MethodPost, "/api/v1/admin/settlement/statements/-1/mark-paid", map[string]any{"reference": "x"}, a.admin, 400},
		{http.MethodGet, "/api/v1/admin/settlement/statements?status=bogus", nil, a.admin, 400},
		{http.MethodGet, "/api/v1/admin/settlement/statements?limit=0", nil, a.admin, 400},
		{http.MethodGet, "/api/v1/admin/settlement/statements?cursor=!!!", nil, a.admin, 400},
		{http.MethodGet, "/api/v1/admin/settlement/statements?cursor=AAAA", nil, a.admin, 400},
		{http.MethodGet, "/api/v1/admin/settlement/statements?status=paid", nil, a.admin, 200},
		{http.MethodGet, "/api/v1/admin/settlement/summary", nil, a.admin, 200},
		{http.MethodGet, "/api/v1/merchant/settlement/entries?limit=1000", nil, owner, 400},
		{http.MethodGet, "/api/v1/merchant/settlement/entries", nil, owner, 200},
		{http.MethodGet, "/api/v1/merchant/settlement/statements", nil, owner, 200},
		{http.MethodGet, "/api/v1/merchant/settlement/statements/99999999999999999999", nil, owner, 400},
		{http.MethodGet, "/api/v1/merchant/settlement/statements/5", nil, owner, 404},
		{http.MethodGet, "/api/v1/merchant/settlement/statements/5/lines.csv", nil, owner, 404},
		{http.MethodGet, "/api/v1/merchant/settlement/balance", nil, owner, 200},
		// Permissions: a buyer is neither merchant nor operator, a merchant no operator.
		{http.MethodGet, "/api/v1/merchant/settlement/balance", nil, buyer.AccessToken, 403},
		{http.MethodGet, "/api/v1/admin/settlement/summary", nil, owner, 403},
		{http.MethodGet, "/api/v1/admin/settlement/summary", nil, "", 401},
	}
	for _, tt := range tests {
		var got apptest.Response
		if tt.token == "" {
			got = a.Req(tt.method, tt.path, tt.body)
		} else {
			got = a.Req(tt.method, tt.path, tt.body, apptest.Bearer(tt.token)...)
		}
		if got.Status != tt.want {
			t.Errorf("%s %s %v: %s, want %d", tt.method, tt.path, tt.body, got, tt.want)
		}
	}
	// The empty ledger's summary and a merchant's empty balance.
	var sum map[string]any
	a.Req(http.MethodGet, "/api/v1/admin/settlement/summary", nil, adm...).Want(t, http.StatusOK, "").Decode(t, &sum)
	if sum["currency"] != "CNY" || sum["commission_earned"] != float64(0) {
		t.Fatalf("summary %v", sum)
	}
}

package merchant_test

import (
	"net/http"
	"testing"

	"github.com/mallhq/mall/internal/app/apptest"
)

// FuzzCommissionBody feeds arbitrary bodies to PATCH /api/v1/admin/merchants/{id} (the
// commission override): 200 or a 4xx problem with a code, never a panic or a 5xx. Seeds
// live in testdata/fuzz/FuzzCommissionBody/.
func FuzzCommissionBody(f *testing.F) {
	h := newHarness(f)
	adm := h.admin()
	_, mid := h.newMerchant(adm, "fuzz")
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := h.Serve(http.MethodPatch, "/api/v1/admin/merchants/"+mid, body, adm.tok.AccessToken)
		apptest.CheckOutcome(t, rec, body, http.StatusOK)
	})
}

package settlement_test

import (
	"net/http"
	"testing"

	"github.com/mallhq/mall/internal/app/apptest"
)

// FuzzSettlementBodies feeds arbitrary bodies to the operator's statement run and to
// mark-paid (of a statement that does not exist, so every input meets the same state):
// the success status or a 4xx problem with a code, never a panic or a 5xx. Seeds live in
// testdata/fuzz/FuzzSettlementBodies/.
func FuzzSettlementBodies(f *testing.F) {
	a := newApp(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		apptest.CheckOutcome(t, a.Serve(http.MethodPost, "/api/v1/admin/settlement/statements", body, a.admin),
			body, http.StatusCreated)
		apptest.CheckOutcome(t, a.Serve(http.MethodPost, "/api/v1/admin/settlement/statements/12345/mark-paid", body,
			a.admin), body, http.StatusOK)
	})
}

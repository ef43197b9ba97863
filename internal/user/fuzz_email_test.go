package user_test

import (
	"net/http"
	"testing"

	"github.com/mallhq/mall/internal/app/apptest"
)

// Fuzz targets of the e-mail bodies (ADR 0029); seeds in testdata/fuzz/<Target>/.

func FuzzVerifyEmail(f *testing.F) {
	z := newFuzzer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		apptest.CheckOutcome(t, z.serve(http.MethodPost, "/api/v1/auth/verify-email", body, ""), body, http.StatusNoContent)
	})
}

func FuzzForgotPassword(f *testing.F) {
	z := newFuzzer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		apptest.CheckOutcome(t, z.serve(http.MethodPost, "/api/v1/auth/password/forgot", body, ""), body, http.StatusAccepted)
		apptest.CheckOutcome(t, z.serve(http.MethodPost, "/api/v1/auth/verify-email/resend", body, ""), body, http.StatusAccepted)
	})
}

func FuzzResetPassword(f *testing.F) {
	z := newFuzzer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		apptest.CheckOutcome(t, z.serve(http.MethodPost, "/api/v1/auth/password/reset", body, ""), body, http.StatusNoContent)
	})
}

package user_test

import (
	"net/http"
	"testing"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/user"
)

// FuzzBlocks sends each body as a new block. The server's own address (192.0.2.1, the
// in-process requests' RemoteAddr) and the fuzz admin cannot be blocked (access.block_self),
// so no run locks the next ones out.
func FuzzBlocks(f *testing.F) {
	z := newFuzzer(f)
	admin := z.token(string(user.RolePlatformAdmin))
	f.Fuzz(func(t *testing.T, body []byte) {
		apptest.CheckOutcome(t, z.serve(http.MethodPost, "/api/v1/admin/blocks", body, admin), body, http.StatusCreated)
	})
}

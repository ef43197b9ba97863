package user_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/platform/redisx/redisxtest"
	"github.com/mallhq/mall/internal/user"
)

func (h *harness) loginAs(email, password, ip string) response {
	h.t.Helper()
	return h.Req("POST", "/api/v1/auth/login", map[string]string{"email": email, "password": password}, "X-Forwarded-For", ip)
}

func wantTooMany(t *testing.T, r response) {
	t.Helper()
	r.Want(t, http.StatusTooManyRequests, "auth.too_many_attempts")
	ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 3600 {
		t.Fatalf("Retry-After = %q, want 1..3600 seconds", r.Header.Get("Retry-After"))
	}
}

// TestBruteForceLimits: failures are limited per account and per client IP; the refusal
// comes before the password is checked (the right password is refused too); a success
// resets the account's count but not the IP's.
func TestBruteForceLimits(t *testing.T) {
	cfg := withAuth(testConfig(t), func(c *user.Config) {
		c.Login.MaxFailuresPerAccount = 5
		c.Login.MaxFailuresPerIP = 8
	})
	h := start(t, cfg, harnessOptions{password: cheapPassword})

	t.Run("per account", func(t *testing.T) {
		victim := h.Register(apptest.UniqueEmail("victim")).Email
		for i := range 5 {
			// From different addresses: the account limit holds whoever tries.
			h.loginAs(victim, "guess"+strconv.Itoa(i), apptest.RandomIP()).Want(t, http.StatusUnauthorized, "auth.invalid_credentials")
		}
		wantTooMany(t, h.loginAs(victim, goodPassword, apptest.RandomIP()))
		// Unknown emails are limited the same way (no hint which emails exist).
		ghost := apptest.UniqueEmail("ghost")
		for range 5 {
			h.loginAs(ghost, "guess", apptest.RandomIP()).Want(t, http.StatusUnauthorized, "auth.invalid_credentials")
		}
		wantTooMany(t, h.loginAs(ghost, "guess", apptest.RandomIP()))
	})

	t.Run("per IP", func(t *testing.T) {
		ip := apptest.RandomIP()
		good := h.Register(apptest.UniqueEmail("good")).Email
		for i := range 8 {
			h.loginAs(apptest.UniqueEmail("spray"+strconv.Itoa(i)), "guess", ip).Want(t, http.StatusUnauthorized, "auth.invalid_credentials")
		}
		wantTooMany(t, h.loginAs(good, goodPassword, ip))
		h.loginAs(good, goodPassword, apptest.RandomIP()).Want(t, http.StatusOK, "") // other addresses are fine
	})

	t.Run("success resets the account, not the IP", func(t *testing.T) {
		ip := apptest.RandomIP()
		acct := h.Register(apptest.UniqueEmail("fumble")).Email
		for range 4 {
			h.loginAs(acct, "typo", ip).Want(t, http.StatusUnauthorized, "auth.invalid_credentials")
		}
		h.loginAs(acct, goodPassword, ip).Want(t, http.StatusOK, "")
		for range 4 { // 4 more on the account would be 8 without the reset
			h.loginAs(acct, "typo", ip).Want(t, http.StatusUnauthorized, "auth.invalid_credentials")
		}
		// The IP has 8 failures: the success did not reset them.
		wantTooMany(t, h.loginAs(acct, goodPassword, ip))
	})
}

// TestWithoutRedis: with Redis gone, login limits still hold (counted in process),
// authenticated requests still work (the deny-list lookup fails open), and a logout still
// rejects its token on this replica.
func TestWithoutRedis(t *testing.T) {
	rs := redisxtest.StartServer(t)
	cfg := testConfig(t)
	cfg.Redis.Addr = rs.Addr
	cfg = withAuth(cfg, func(c *user.Config) { c.Login.MaxFailuresPerAccount = 3 })
	h := start(t, cfg, harnessOptions{password: cheapPassword})
	victim := h.Register(apptest.UniqueEmail("offline")).Email
	_, keep := h.NewUser("keep")
	_, leave := h.NewUser("leave")

	rs.Stop()
	for range 3 {
		h.loginAs(victim, "guess", apptest.RandomIP()).Want(t, http.StatusUnauthorized, "auth.invalid_credentials")
	}
	wantTooMany(t, h.loginAs(victim, goodPassword, apptest.RandomIP()))

	h.Me(keep.AccessToken)
	h.Req("POST", "/api/v1/auth/logout", nil, apptest.Bearer(leave.AccessToken)...).Want(t, http.StatusNoContent, "")
	h.Req("GET", "/api/v1/me", nil, apptest.Bearer(leave.AccessToken)...).Want(t, http.StatusUnauthorized, "auth.invalid_token")
	h.Me(keep.AccessToken)
}

package user_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/user"
)

// TestEmailVerification: registration mails a token over SMTP; until it is used the account
// shops but receives no role; the token works once.
func TestEmailVerification(t *testing.T) {
	h := newHarness(t, harnessOptions{password: cheapPassword})
	_, admin := h.Admin()
	email := apptest.UniqueEmail("vera")
	acc := h.RegisterUnverified(email)
	tok := h.Login(email) // unverified accounts may sign in (auth.email.unverified_can_shop)
	if m := h.Me(tok.AccessToken); m.EmailVerified {
		t.Fatalf("/me before verification: %+v", m)
	}
	grant := func() response {
		return h.Req("POST", "/api/v1/admin/users/"+acc.ID+"/roles", map[string]any{"role": "platform_operator"}, apptest.Bearer(admin.AccessToken)...)
	}
	// Issue 14: a role went to whoever registered the address first.
	grant().Want(t, http.StatusConflict, "user.email_unverified")

	m := h.Mail.Wait(t, email, 1)
	if m.Subject == "" || m.From == "" || apptest.TokenIn(m.Text) == "" {
		t.Fatalf("verification mail: %+v", m)
	}
	verify := func(token string) response {
		return h.Req("POST", "/api/v1/auth/verify-email", map[string]string{"token": token})
	}
	verify("not-a-token").Want(t, http.StatusBadRequest, "auth.email_token_invalid")
	verify(apptest.TokenIn(m.Text)).Want(t, http.StatusNoContent, "")
	verify(apptest.TokenIn(m.Text)).Want(t, http.StatusBadRequest, "auth.email_token_invalid") // single use
	if m := h.Me(tok.AccessToken); !m.EmailVerified {
		t.Fatalf("/me after verification: %+v", m)
	}
	grant().Want(t, http.StatusNoContent, "")

	// Only the hash is stored.
	var n int
	if err := h.cl.Main().GetContext(context.Background(), &n,
		`SELECT COUNT(*) FROM user_email_tokens WHERE token_hash = ?`, apptest.TokenIn(m.Text)); err != nil || n != 0 {
		t.Fatalf("a token stored in clear: %d %v", n, err)
	}
	// Resending to a verified address, or to nobody, answers 202 and sends nothing.
	h.Req("POST", "/api/v1/auth/verify-email/resend", map[string]string{"email": email}).Want(t, http.StatusAccepted, "")
	h.Req("POST", "/api/v1/auth/verify-email/resend", map[string]string{"email": "nobody-" + email}).Want(t, http.StatusAccepted, "")
}

// TestPasswordReset: forgot answers 202 whoever asks; the mailed token sets a new password
// once, and every session of the account ends.
func TestPasswordReset(t *testing.T) {
	h := newHarness(t, harnessOptions{password: cheapPassword})
	email := apptest.UniqueEmail("rita")
	h.Register(email) // mail 1: verification
	s1, s2 := h.Login(email), h.Login(email)

	forgot := func(e string) {
		h.Req("POST", "/api/v1/auth/password/forgot", map[string]string{"email": e}).Want(t, http.StatusAccepted, "")
	}
	forgot("nobody-" + email) // no enumeration: the same answer
	forgot(email)
	token := h.MailToken(email, 2)
	if len(h.Mail.Messages("nobody-"+email)) != 0 {
		t.Fatal("a mail went to an address without an account")
	}
	reset := func(token, password string) response {
		return h.Req("POST", "/api/v1/auth/password/reset", map[string]string{"token": token, "password": password})
	}
	reset(token, "short").Want(t, http.StatusBadRequest, "")
	reset("Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV", "a brand new password").Want(t, http.StatusBadRequest, "auth.email_token_invalid")
	reset(token, "a brand new password").Want(t, http.StatusNoContent, "")
	reset(token, "yet another password").Want(t, http.StatusBadRequest, "auth.email_token_invalid") // single use

	for _, s := range []tokens{s1, s2} {
		h.Req("GET", "/api/v1/me", nil, apptest.Bearer(s.AccessToken)...).Want(t, http.StatusUnauthorized, "")
		h.Req("POST", "/api/v1/auth/refresh", map[string]string{"refresh_token": s.RefreshToken}).Want(t, http.StatusUnauthorized, "")
	}
	h.Req("POST", "/api/v1/auth/login", map[string]string{"email": email, "password": goodPassword}).Want(t, http.StatusUnauthorized, "")
	h.Req("POST", "/api/v1/auth/login", map[string]string{"email": email, "password": "a brand new password"}).Want(t, http.StatusOK, "")

	// An expired token does not work.
	forgot(email)
	late := h.MailToken(email, 3)
	if _, err := h.cl.Main().ExecContext(context.Background(),
		`UPDATE user_email_tokens SET expires_at = NOW(6) - INTERVAL 1 SECOND WHERE purpose = 'reset'`); err != nil {
		t.Fatal(err)
	}
	reset(late, "a brand new password").Want(t, http.StatusBadRequest, "auth.email_token_invalid")
}

// TestResetMailsAreLimitedPerAddress: auth.email.mails_per_hour (3) reset mails per address,
// however often someone asks; the answer stays 202.
func TestResetMailsAreLimitedPerAddress(t *testing.T) {
	h := newHarness(t, harnessOptions{password: cheapPassword})
	acc := h.Register(apptest.UniqueEmail("lim"))
	for range 6 {
		h.Req("POST", "/api/v1/auth/password/forgot", map[string]string{"email": acc.Email}).Want(t, http.StatusAccepted, "")
	}
	var n int
	if err := h.cl.Main().GetContext(context.Background(), &n,
		`SELECT COUNT(*) FROM user_mail_queue WHERE kind = 'reset' AND email = ?`, acc.Email); err != nil {
		t.Fatal(err)
	}
	if want := authOf(t, h.cfg).Email.MailsPerHour; n != want {
		t.Fatalf("%d reset mails queued for one address, want %d", n, want)
	}
}

// TestUnverifiedCannotSignInWhenConfigured: with auth.email.unverified_can_shop off, an
// account signs in only once its address is verified.
func TestUnverifiedCannotSignInWhenConfigured(t *testing.T) {
	cfg := withAuth(testConfig(t), func(c *user.Config) { c.Email.UnverifiedCanShop = false })
	h := start(t, cfg, harnessOptions{password: cheapPassword})
	email := apptest.UniqueEmail("strict")
	h.RegisterUnverified(email)
	h.Req("POST", "/api/v1/auth/login", map[string]string{"email": email, "password": goodPassword}).
		Want(t, http.StatusForbidden, "auth.email_unverified")
	h.VerifyEmail(email)
	h.Login(email)
}

package user

import (
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/ratelimit"
	"github.com/mallhq/mall/internal/user/oidc"
)

// Routes of e-mail verification, password reset and explicit identity linking (ADR 0029).

type verifyEmailRequest struct {
	Token string `json:"token" validate:"required,max=64"`
}

type emailRequest struct {
	Email string `json:"email" validate:"required,max=254"`
}

type resetPasswordRequest struct {
	Token    string `json:"token" validate:"required,max=64"`
	Password string `json:"password" validate:"required,max=128"`
}

type linkResponse struct {
	// AuthorizeURL is where to send the browser; the provider comes back to the callback,
	// which links the identity to the caller and answers tokens.
	AuthorizeURL string `json:"authorize_url"`
}

func (h *handler) emailRoutes() []httpx.Route {
	auth, me := []string{"auth"}, []string{"account"}
	return []httpx.Route{
		{Method: http.MethodPost, Path: "/api/v1/auth/verify-email", Handler: h.verifyEmail,
			Summary: "Confirm the account's e-mail address with the token mailed at registration",
			Tags:    auth, Request: verifyEmailRequest{}, Status: http.StatusNoContent, RateLimit: ratelimit.ClassAuth},
		{Method: http.MethodPost, Path: "/api/v1/auth/verify-email/resend", Handler: h.resendVerification,
			Summary: "Mail another verification token (202 whether or not the address has an unverified account)",
			Tags:    auth, Request: emailRequest{}, Status: http.StatusAccepted, RateLimit: ratelimit.ClassAuth},
		{Method: http.MethodPost, Path: "/api/v1/auth/password/forgot", Handler: h.forgotPassword,
			Summary: "Mail a password reset token (202 whether or not the address has an account)",
			Tags:    auth, Request: emailRequest{}, Status: http.StatusAccepted, RateLimit: ratelimit.ClassAuth},
		{Method: http.MethodPost, Path: "/api/v1/auth/password/reset", Handler: h.resetPassword,
			Summary: "Set a new password with a mailed reset token; every session of the account ends",
			Tags:    auth, Request: resetPasswordRequest{}, Status: http.StatusNoContent, RateLimit: ratelimit.ClassAuth},
		{Method: http.MethodPost, Path: "/api/v1/me/identities/:provider/link", Handler: h.linkStart,
			Summary: "Start linking a third-party identity to the caller's account (answers the provider URL to open)",
			Tags:    me, Response: linkResponse{}, Auth: true, RateLimit: ratelimit.ClassAuth},
	}
}

func (h *handler) verifyEmail(c echo.Context) error {
	var in verifyEmailRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	if err := h.svc.VerifyEmail(c.Request().Context(), in.Token); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handler) resendVerification(c echo.Context) error {
	var in emailRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	if err := h.svc.ResendVerification(c.Request().Context(), in.Email); err != nil {
		return err
	}
	return c.NoContent(http.StatusAccepted)
}

func (h *handler) forgotPassword(c echo.Context) error {
	var in emailRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	if err := h.svc.ForgotPassword(c.Request().Context(), in.Email); err != nil {
		return err
	}
	return c.NoContent(http.StatusAccepted)
}

func (h *handler) resetPassword(c echo.Context) error {
	var in resetPasswordRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	if err := h.svc.ResetPassword(c.Request().Context(), in.Token, in.Password); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// linkStart records a link state for the caller and sets the same state cookie as a login,
// so only this browser can finish it.
func (h *handler) linkStart(c echo.Context) error {
	ctx := c.Request().Context()
	target, err := h.oauth.AuthorizeLinkURL(ctx, c.Param("provider"), authn.UserID(ctx))
	if err != nil {
		return err
	}
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{
		Name: oauthStateCookie, Value: u.Query().Get("state"), Path: "/api/v1/auth/oauth/",
		MaxAge: int(oidc.StateTTL / time.Second), HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: c.Scheme() == "https",
	})
	noStore(c)
	return c.JSON(http.StatusOK, linkResponse{AuthorizeURL: target})
}

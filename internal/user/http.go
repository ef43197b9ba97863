package user

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/ratelimit"
	"github.com/mallhq/mall/internal/platform/text"
	"github.com/mallhq/mall/internal/user/oidc"
)

// oauthClient is the part of *oidc.Client the handlers use.
type oauthClient interface {
	AuthorizeURL(ctx context.Context, provider string) (string, error)
	AuthorizeLinkURL(ctx context.Context, provider string, userID int64) (string, error)
	Exchange(ctx context.Context, provider, code, state string) (oidc.Identity, error)
	Providers() []string
}

type handler struct {
	svc   *service
	oauth oauthClient
}

func newHandler(s *service, oc *oidc.Client) httpx.Routes {
	return &handler{svc: s, oauth: oc}
}

// DTOs.

type registerRequest struct {
	Email    string `json:"email" validate:"required,max=254"`
	Password string `json:"password" validate:"required,min=8,max=128"`
	Nickname string `json:"nickname,omitempty" validate:"max=64"`
}

type userResponse struct {
	ID       httpx.ID `json:"id"`
	Email    string   `json:"email"`
	Nickname string   `json:"nickname"`
}

type loginRequest struct {
	Email    string `json:"email" validate:"required,max=254"`
	Password string `json:"password" validate:"required,max=128"`
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	// ExpiresIn is the access token's lifetime in seconds.
	ExpiresIn int `json:"expires_in"`
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token" validate:"required,max=512"`
}

type logoutRequest struct {
	RefreshToken string `json:"refresh_token,omitempty" validate:"max=512"`
}

type meResponse struct {
	ID    httpx.ID `json:"id"`
	Email string   `json:"email"`
	// EmailVerified: the address is confirmed (roles and staff invitations need it).
	EmailVerified bool      `json:"email_verified"`
	Nickname      string    `json:"nickname"`
	Roles         []string  `json:"roles"`
	MerchantID    *httpx.ID `json:"merchant_id,omitempty"`
}

type addressRequest struct {
	Name     string `json:"name" validate:"required,max=64"`
	Phone    string `json:"phone" validate:"required,max=32"`
	Province string `json:"province" validate:"required,max=64"`
	City     string `json:"city" validate:"required,max=64"`
	District string `json:"district" validate:"required,max=64"`
	Detail   string `json:"detail" validate:"required,max=255"`
}

type addressPatch struct {
	Name     *string `json:"name,omitempty" validate:"omitempty,max=64"`
	Phone    *string `json:"phone,omitempty" validate:"omitempty,max=32"`
	Province *string `json:"province,omitempty" validate:"omitempty,max=64"`
	City     *string `json:"city,omitempty" validate:"omitempty,max=64"`
	District *string `json:"district,omitempty" validate:"omitempty,max=64"`
	Detail   *string `json:"detail,omitempty" validate:"omitempty,max=255"`
}

type addressResponse struct {
	ID   httpx.ID `json:"id"`
	Name string   `json:"name"`
	// Phone is masked: 138****5678.
	Phone     string    `json:"phone"`
	Province  string    `json:"province"`
	City      string    `json:"city"`
	District  string    `json:"district"`
	Detail    string    `json:"detail"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type adminUserQuery struct {
	Email string `query:"email" validate:"omitempty,max=254"`
}

type roleBindingResponse struct {
	Role       string    `json:"role"`
	MerchantID *httpx.ID `json:"merchant_id,omitempty"`
}

type adminUserResponse struct {
	ID        httpx.ID              `json:"id"`
	Email     string                `json:"email"`
	Nickname  string                `json:"nickname"`
	Roles     []roleBindingResponse `json:"roles"`
	CreatedAt time.Time             `json:"created_at"`
}

type grantRoleRequest struct {
	Role string `json:"role" validate:"required,max=64"`
	// MerchantID is required for merchant roles and must be absent for platform roles.
	MerchantID *httpx.ID `json:"merchant_id,omitempty"`
}

type oauthCallbackQuery struct {
	Code  string `query:"code" validate:"max=2048"`
	State string `query:"state" validate:"max=256"`
	// Error is set when the provider refused (RFC 6749 4.1.2.1).
	Error string `query:"error" validate:"max=256"`
}

// Routes implements httpx.Routes.
func (h *handler) Routes() []httpx.Route {
	auth, admin := []string{"auth"}, []string{"admin"}
	me := []string{"account"}
	adminOnly := []echo.MiddlewareFunc{RequirePermission(PermAdminUsers)}
	return append(h.emailRoutes(), []httpx.Route{
		{Method: http.MethodPost, Path: "/api/v1/auth/register", Handler: h.register, Summary: "Create an account",
			Tags: auth, Request: registerRequest{}, Response: userResponse{}, Status: http.StatusCreated, RateLimit: ratelimit.ClassAuth},
		{Method: http.MethodPost, Path: "/api/v1/auth/login", Handler: h.login, Summary: "Log in with email and password",
			Tags: auth, Request: loginRequest{}, Response: tokenResponse{}, RateLimit: ratelimit.ClassAuth},
		// Refreshes are limited per session (auth.refresh_per_minute) rather than by the auth
		// class: a NAT's users refresh all day and must not spend its logins.
		{Method: http.MethodPost, Path: "/api/v1/auth/refresh", Handler: h.refresh, Summary: "Exchange a refresh token for new tokens",
			Tags: auth, Request: refreshRequest{}, Response: tokenResponse{}, RateLimit: ratelimit.ClassDefault},
		{Method: http.MethodPost, Path: "/api/v1/auth/logout", Handler: h.logout,
			Summary: "Log out: the access token and the session's refresh tokens stop working",
			Tags:    auth, Request: logoutRequest{}, Status: http.StatusNoContent, Auth: true, RateLimit: ratelimit.ClassAuth},
		{Method: http.MethodGet, Path: "/api/v1/auth/oauth/:provider/authorize", Handler: h.oauthAuthorize,
			Summary: "Start a third-party login (302 to the provider; authorization code + PKCE + state + nonce)",
			Tags:    auth, Status: http.StatusFound, RateLimit: ratelimit.ClassAuth},
		{Method: http.MethodGet, Path: "/api/v1/auth/oauth/:provider/callback", Handler: h.oauthCallback,
			Summary: "Finish a third-party login: the provider redirects here with code and state",
			Tags:    auth, Query: oauthCallbackQuery{}, Response: tokenResponse{}, RateLimit: ratelimit.ClassAuth},

		{Method: http.MethodGet, Path: "/api/v1/me", Handler: h.me, Summary: "The caller's account, roles and merchant",
			Tags: me, Response: meResponse{}, Auth: true},
		{Method: http.MethodGet, Path: "/api/v1/me/addresses", Handler: h.listAddresses, Summary: "The caller's addresses, newest first",
			Tags: me, Response: httpx.List[addressResponse]{}, Auth: true},
		{Method: http.MethodPost, Path: "/api/v1/me/addresses", Handler: h.addAddress, Summary: "Add an address",
			Tags: me, Request: addressRequest{}, Response: addressResponse{}, Status: http.StatusCreated, Auth: true},
		{Method: http.MethodGet, Path: "/api/v1/me/addresses/:id", Handler: h.getAddress, Summary: "One of the caller's addresses",
			Tags: me, Response: addressResponse{}, Auth: true},
		{Method: http.MethodPatch, Path: "/api/v1/me/addresses/:id", Handler: h.updateAddress, Summary: "Change an address",
			Tags: me, Request: addressPatch{}, Response: addressResponse{}, Auth: true},
		{Method: http.MethodDelete, Path: "/api/v1/me/addresses/:id", Handler: h.deleteAddress, Summary: "Delete an address",
			Tags: me, Status: http.StatusNoContent, Auth: true},

		{Method: http.MethodGet, Path: "/api/v1/admin/users", Handler: h.adminListUsers,
			Summary: "Find users by email, or list them newest first (platform admin)",
			Tags:    admin, Query: adminUserQuery{}, Response: httpx.List[adminUserResponse]{}, Auth: true, Middleware: adminOnly},
		{Method: http.MethodPost, Path: "/api/v1/admin/users/:id/roles", Handler: h.adminGrantRole,
			Summary: "Grant a role (merchant roles need merchant_id) (platform admin)",
			Tags:    admin, Request: grantRoleRequest{}, Status: http.StatusNoContent, Auth: true, Middleware: adminOnly},
		{Method: http.MethodPost, Path: "/api/v1/admin/users/:id/roles/revoke", Handler: h.adminRevokeRole,
			Summary: "Revoke a role and end the user's sessions (platform admin)",
			Tags:    admin, Request: grantRoleRequest{}, Status: http.StatusNoContent, Auth: true, Middleware: adminOnly},
	}...)
}

func toTokenResponse(t Tokens) tokenResponse {
	return tokenResponse{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, TokenType: "Bearer",
		ExpiresIn: int(t.ExpiresIn / time.Second)}
}

// noStore: responses carrying tokens must not be cached (RFC 6749 5.1).
func noStore(c echo.Context) {
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	c.Response().Header().Set("Pragma", "no-cache")
}

func (h *handler) register(c echo.Context) error {
	var in registerRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	u, err := h.svc.Register(c.Request().Context(), in.Email, in.Password, in.Nickname)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, userResponse{ID: httpx.ID(u.ID), Email: u.Email, Nickname: u.Nickname})
}

func (h *handler) login(c echo.Context) error {
	var in loginRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	t, err := h.svc.Login(c.Request().Context(), in.Email, in.Password, c.RealIP())
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusOK, toTokenResponse(t))
}

func (h *handler) refresh(c echo.Context) error {
	var in refreshRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	t, err := h.svc.Refresh(c.Request().Context(), in.RefreshToken)
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusOK, toTokenResponse(t))
}

func (h *handler) logout(c echo.Context) error {
	var in logoutRequest
	// The body is optional: without one, logout ends the access token's session only.
	req := c.Request()
	hasBody := req.ContentLength > 0 || (req.ContentLength < 0 && req.Header.Get(echo.HeaderContentType) != "")
	if hasBody {
		if err := httpx.Bind(c, &in); err != nil {
			return err
		}
	}
	if err := h.svc.Logout(req.Context(), in.RefreshToken); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// oauthStateCookie binds a login's state to the browser that started it, so a callback URL
// sent to someone else cannot log them into the sender's account (login CSRF).
const oauthStateCookie = "mall_oauth_state"

func (h *handler) oauthAuthorize(c echo.Context) error {
	target, err := h.oauth.AuthorizeURL(c.Request().Context(), c.Param("provider"))
	if err != nil {
		return err
	}
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("user: authorize URL: %w", err)
	}
	c.SetCookie(&http.Cookie{
		Name: oauthStateCookie, Value: u.Query().Get("state"), Path: "/api/v1/auth/oauth/",
		MaxAge: int(oidc.StateTTL / time.Second), HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: c.Scheme() == "https",
	})
	noStore(c)
	return c.Redirect(http.StatusFound, target)
}

func (h *handler) oauthCallback(c echo.Context) error {
	var q oauthCallbackQuery
	if err := httpx.BindQuery(c, &q); err != nil {
		return err
	}
	if q.Error != "" {
		return ErrOAuthFailed.WithDetail("the provider refused the login (%s)", text.Ellipsis(q.Error, 64))
	}
	if !slices.Contains(h.oauth.Providers(), c.Param("provider")) {
		return oidc.ErrUnknownProvider
	}
	if ck, err := c.Cookie(oauthStateCookie); err != nil || q.State == "" ||
		subtle.ConstantTimeCompare([]byte(ck.Value), []byte(q.State)) != 1 {
		return oidc.ErrInvalidState.WithDetail("the login was not started in this browser")
	}
	c.SetCookie(&http.Cookie{Name: oauthStateCookie, Path: "/api/v1/auth/oauth/", MaxAge: -1, HttpOnly: true})
	ctx := c.Request().Context()
	id, err := h.oauth.Exchange(ctx, c.Param("provider"), q.Code, q.State)
	if err != nil {
		return err
	}
	ext := ExternalIdentity{Provider: id.Provider, Subject: id.Subject, Email: id.Email, EmailVerified: id.EmailVerified, Name: id.Name}
	var t Tokens
	if id.LinkUserID != 0 { // started by POST /api/v1/me/identities/{provider}/link
		t, err = h.svc.linkIdentity(ctx, id.LinkUserID, ext)
	} else {
		t, err = h.svc.LoginWithIdentity(ctx, ext)
	}
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusOK, toTokenResponse(t))
}

func (h *handler) me(c echo.Context) error {
	ctx := c.Request().Context()
	p, _ := authn.From(ctx)
	u, err := h.svc.profile(ctx, p.UserID)
	if err != nil {
		return err
	}
	out := meResponse{ID: httpx.ID(u.ID), Email: u.Email, EmailVerified: u.EmailVerified, Nickname: u.Nickname, Roles: p.Roles}
	if out.Roles == nil {
		out.Roles = []string{string(RoleBuyer)}
	}
	if p.MerchantID != 0 {
		mid := httpx.ID(p.MerchantID)
		out.MerchantID = &mid
	}
	return c.JSON(http.StatusOK, out)
}

func toAddressResponse(a Address) addressResponse {
	return addressResponse{ID: httpx.ID(a.ID), Name: a.Name, Phone: a.MaskedPhone(), Province: a.Province,
		City: a.City, District: a.District, Detail: a.Detail, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

func (h *handler) listAddresses(c echo.Context) error {
	ctx := c.Request().Context()
	return httpx.ListByID(c, func(before int64, limit int) ([]Address, error) {
		return h.svc.ListAddresses(ctx, authn.UserID(ctx), before, limit)
	}, toAddressResponse, func(r addressResponse) int64 { return r.ID.Int64() })
}

func (h *handler) addAddress(c echo.Context) error {
	var in addressRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	a, err := h.svc.AddAddress(ctx, authn.UserID(ctx), addressInput{Name: &in.Name, Phone: &in.Phone,
		Province: &in.Province, City: &in.City, District: &in.District, Detail: &in.Detail})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toAddressResponse(a))
}

func (h *handler) getAddress(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	a, err := h.svc.Address(ctx, authn.UserID(ctx), id.Int64())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toAddressResponse(a))
}

func (h *handler) updateAddress(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	var in addressPatch
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	a, err := h.svc.UpdateAddress(ctx, authn.UserID(ctx), id.Int64(), addressInput(in))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toAddressResponse(a))
}

func (h *handler) deleteAddress(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := h.svc.DeleteAddress(ctx, authn.UserID(ctx), id.Int64()); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handler) adminListUsers(c echo.Context) error {
	var q adminUserQuery
	if err := httpx.BindQuery(c, &q); err != nil {
		return err
	}
	p, before, err := httpx.IDPageFrom(c)
	if err != nil {
		return err
	}
	us, err := h.svc.listUsers(c.Request().Context(), q.Email, before, p.Fetch())
	if err != nil {
		return err
	}
	out := make([]adminUserResponse, len(us))
	for i, u := range us {
		roles := make([]roleBindingResponse, len(u.Roles))
		for j, b := range u.Roles {
			roles[j] = roleBindingResponse{Role: string(b.Role)}
			if b.MerchantID != 0 {
				mid := httpx.ID(b.MerchantID)
				roles[j].MerchantID = &mid
			}
		}
		out[i] = adminUserResponse{ID: httpx.ID(u.ID), Email: u.Email, Nickname: u.Nickname, Roles: roles, CreatedAt: u.CreatedAt}
	}
	return c.JSON(http.StatusOK, httpx.PageOf(out, p, func(last adminUserResponse) []byte { return httpx.IDCursor(last.ID.Int64()) }))
}

func (h *handler) adminGrantRole(c echo.Context) error {
	return h.changeRole(c, h.svc.GrantRole)
}

func (h *handler) adminRevokeRole(c echo.Context) error {
	return h.changeRole(c, h.svc.RevokeRole)
}

// changeRole binds {role, merchant_id} for the user in the path and applies change.
func (h *handler) changeRole(c echo.Context, change func(ctx context.Context, userID int64, role Role, merchantID int64) error) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	var in grantRoleRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	var mid int64 // absent or "0": platform-wide
	if in.MerchantID != nil {
		mid = in.MerchantID.Int64()
	}
	if err := change(c.Request().Context(), id.Int64(), Role(in.Role), mid); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

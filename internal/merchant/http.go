package merchant

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/user"
)

type handler struct {
	svc *service
}

func newHandler(s *service) httpx.Routes { return &handler{svc: s} }

// DTOs.

type applicationRequest struct {
	ShopName     string `json:"shop_name" validate:"required,max=64"`
	CompanyName  string `json:"company_name" validate:"required,max=128"`
	LicenseNo    string `json:"license_no" validate:"required,max=64"`
	ContactName  string `json:"contact_name" validate:"required,max=64"`
	ContactPhone string `json:"contact_phone" validate:"required,max=32"`
}

type applicationCreated struct {
	ID     httpx.ID `json:"id"`
	Status string   `json:"status"`
}

type applicationResponse struct {
	ID           httpx.ID   `json:"id"`
	ApplicantID  httpx.ID   `json:"applicant_id"`
	ShopName     string     `json:"shop_name"`
	CompanyName  string     `json:"company_name"`
	LicenseNo    string     `json:"license_no"`
	ContactName  string     `json:"contact_name"`
	ContactPhone string     `json:"contact_phone"`
	Status       string     `json:"status"`
	Reason       string     `json:"reason,omitempty"`
	MerchantID   *httpx.ID  `json:"merchant_id,omitempty"`
	ReviewedAt   *time.Time `json:"reviewed_at,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
}

type applicationQuery struct {
	Status string `query:"status" validate:"omitempty,oneof=pending approved rejected"`
}

type approveResponse struct {
	MerchantID httpx.ID `json:"merchant_id"`
}

type rejectRequest struct {
	Reason string `json:"reason" validate:"required,max=500"`
}

type rejectResponse struct {
	ID     httpx.ID `json:"id"`
	Status string   `json:"status"`
	Reason string   `json:"reason"`
}

type profileResponse struct {
	ID           httpx.ID  `json:"id"`
	ShopName     string    `json:"shop_name"`
	CompanyName  string    `json:"company_name"`
	Description  string    `json:"description"`
	LogoURL      string    `json:"logo_url"`
	ContactName  string    `json:"contact_name"`
	ContactPhone string    `json:"contact_phone"`
	Status       string    `json:"status"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`

	// CommissionRateBP is the operator's override, absent without one.
	CommissionRateBP *int `json:"commission_rate_bp,omitempty"`
}

// commissionRequest documents PATCH /api/v1/admin/merchants/:id: commission_rate_bp is
// required, 0..MaxCommissionBP sets the override and null clears it. The handler decodes
// commissionBody instead, since a *int cannot tell null from absent.
type commissionRequest struct {
	CommissionRateBP *int `json:"commission_rate_bp" validate:"omitempty,min=0,max=10000"`
}

type commissionBody struct {
	CommissionRateBP json.RawMessage `json:"commission_rate_bp"`
}

type profilePatch struct {
	ShopName     *string `json:"shop_name,omitempty" validate:"omitempty,min=1,max=64"`
	Description  *string `json:"description,omitempty" validate:"omitempty,max=1000"`
	LogoURL      *string `json:"logo_url,omitempty" validate:"omitempty,max=512,http_url"` // shown as a link and an image: no javascript: or data:
	ContactName  *string `json:"contact_name,omitempty" validate:"omitempty,min=1,max=64"`
	ContactPhone *string `json:"contact_phone,omitempty" validate:"omitempty,min=1,max=32"`
}

type staffRequest struct {
	Email string `json:"email" validate:"required,max=254"`
	Role  string `json:"role" validate:"required,oneof=operator customer_service"`
}

type staffResponse struct {
	UserID httpx.ID `json:"user_id"`
	Email  string   `json:"email"`
	Role   string   `json:"role"`
	// Status is "invited" until the invitee accepts, then "active".
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is when an invitation lapses.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

type statusResponse struct {
	ID     httpx.ID `json:"id"`
	Status string   `json:"status"`
}

// Routes implements httpx.Routes.
func (h *handler) Routes() []httpx.Route {
	apps, admin, mer := []string{"merchant-applications"}, []string{"admin"}, []string{"merchant"}
	review := []echo.MiddlewareFunc{user.RequirePermission(user.PermMerchantApplicationsReview)}
	manage := []echo.MiddlewareFunc{user.RequirePermission(user.PermMerchantsManage)}
	perm := func(p user.Permission) []echo.MiddlewareFunc { return []echo.MiddlewareFunc{user.RequirePermission(p)} }
	return append(h.invitationRoutes(), []httpx.Route{
		{Method: http.MethodPost, Path: "/api/v1/merchant-applications", Handler: h.apply, Summary: "Apply to open a merchant",
			Tags: apps, Request: applicationRequest{}, Response: applicationCreated{}, Status: http.StatusCreated, Auth: true},
		{Method: http.MethodGet, Path: "/api/v1/merchant-applications/mine", Handler: h.mine, Summary: "The caller's applications, newest first",
			Tags: apps, Response: httpx.List[applicationResponse]{}, Auth: true},

		{Method: http.MethodGet, Path: "/api/v1/admin/merchant-applications", Handler: h.adminList,
			Summary: "Merchant applications, newest first, by status (operator)",
			Tags:    admin, Query: applicationQuery{}, Response: httpx.List[applicationResponse]{}, Auth: true, Middleware: review},
		{Method: http.MethodPost, Path: "/api/v1/admin/merchant-applications/:id/approve", Handler: h.approve,
			Summary: "Approve an application: creates the merchant and makes the applicant its owner (idempotent)",
			Tags:    admin, Response: approveResponse{}, Auth: true, Middleware: review},
		{Method: http.MethodPost, Path: "/api/v1/admin/merchant-applications/:id/reject", Handler: h.reject,
			Summary: "Reject an application with a reason", Tags: admin, Request: rejectRequest{}, Response: rejectResponse{},
			Auth: true, Middleware: review},
		{Method: http.MethodPost, Path: "/api/v1/admin/merchants/:id/suspend", Handler: h.suspend,
			Summary: "Suspend a merchant: its products leave sale and its merchant API answers 403 merchant.suspended",
			Tags:    admin, Response: statusResponse{}, Auth: true, Middleware: manage},
		{Method: http.MethodPost, Path: "/api/v1/admin/merchants/:id/unsuspend", Handler: h.unsuspend,
			Summary: "Reinstate a suspended merchant", Tags: admin, Response: statusResponse{}, Auth: true, Middleware: manage},
		{Method: http.MethodPatch, Path: "/api/v1/admin/merchants/:id", Handler: h.setCommission,
			Summary: "Set (0..10000 basis points) or clear (null) the merchant's commission rate, overriding its categories' rates",
			Tags:    admin, Request: commissionRequest{}, Response: profileResponse{}, Auth: true, Middleware: manage},

		{Method: http.MethodGet, Path: "/api/v1/merchant/profile", Handler: h.profile, Summary: "The caller's merchant",
			Tags: mer, Response: profileResponse{}, Auth: true, Middleware: perm(user.PermMerchantProfileView)},
		{Method: http.MethodPatch, Path: "/api/v1/merchant/profile", Handler: h.updateProfile, Summary: "Change the caller's merchant profile",
			Tags: mer, Request: profilePatch{}, Response: profileResponse{}, Auth: true, Middleware: perm(user.PermMerchantProfileEdit)},
		{Method: http.MethodPost, Path: "/api/v1/merchant/staff", Handler: h.addStaff,
			Summary: "Invite a staff member by email (operator or customer_service); they become staff when they accept",
			Tags:    mer, Request: staffRequest{}, Response: staffResponse{}, Status: http.StatusCreated, Auth: true,
			Middleware: perm(user.PermMerchantStaff)},
		{Method: http.MethodGet, Path: "/api/v1/merchant/staff", Handler: h.listStaff, Summary: "The merchant's staff",
			Tags: mer, Response: httpx.List[staffResponse]{}, Auth: true, Middleware: perm(user.PermMerchantStaff)},
		{Method: http.MethodGet, Path: "/api/v1/merchant/staff/:user_id", Handler: h.getStaff, Summary: "One staff member",
			Tags: mer, Response: staffResponse{}, Auth: true, Middleware: perm(user.PermMerchantStaff)},
		{Method: http.MethodDelete, Path: "/api/v1/merchant/staff/:user_id", Handler: h.removeStaff,
			Summary: "Remove a staff member: their merchant role is revoked and their sessions end",
			Tags:    mer, Status: http.StatusNoContent, Auth: true, Middleware: perm(user.PermMerchantStaff)},
	}...)
}

func toApplicationResponse(a Application) applicationResponse {
	out := applicationResponse{ID: httpx.ID(a.ID), ApplicantID: httpx.ID(a.ApplicantID), ShopName: a.ShopName,
		CompanyName: a.CompanyName, LicenseNo: a.LicenseNo, ContactName: a.ContactName, ContactPhone: a.ContactPhone,
		Status: string(a.Status), Reason: a.Reason, CreatedAt: a.CreatedAt}
	if a.MerchantID != 0 {
		mid := httpx.ID(a.MerchantID)
		out.MerchantID = &mid
	}
	if !a.ReviewedAt.IsZero() {
		t := a.ReviewedAt
		out.ReviewedAt = &t
	}
	return out
}

func toProfileResponse(m Merchant) profileResponse {
	return profileResponse{ID: httpx.ID(m.ID), ShopName: m.ShopName, CompanyName: m.CompanyName, Description: m.Description,
		LogoURL: m.LogoURL, ContactName: m.ContactName, ContactPhone: m.ContactPhone, Status: string(m.Status),
		CommissionRateBP: m.CommissionRateBP, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt}
}

func toStaffResponse(s Staff) staffResponse {
	out := staffResponse{UserID: httpx.ID(s.UserID), Email: s.Email, Role: string(s.Role), Status: string(s.Status), CreatedAt: s.CreatedAt}
	if !s.ExpiresAt.IsZero() {
		out.ExpiresAt = &s.ExpiresAt
	}
	return out
}

func (h *handler) apply(c echo.Context) error {
	var in applicationRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	a, err := h.svc.Apply(ctx, authn.UserID(ctx), ApplicationInput(in))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, applicationCreated{ID: httpx.ID(a.ID), Status: string(a.Status)})
}

func (h *handler) listApplications(c echo.Context, applicantID int64, status ApplicationStatus) error {
	return httpx.ListByID(c, func(before int64, limit int) ([]Application, error) {
		return h.svc.Applications(c.Request().Context(), applicantID, status, before, limit)
	}, toApplicationResponse, func(r applicationResponse) int64 { return r.ID.Int64() })
}

func (h *handler) mine(c echo.Context) error {
	return h.listApplications(c, authn.UserID(c.Request().Context()), "")
}

func (h *handler) adminList(c echo.Context) error {
	var q applicationQuery
	if err := httpx.BindQuery(c, &q); err != nil {
		return err
	}
	return h.listApplications(c, 0, ApplicationStatus(q.Status))
}

func (h *handler) approve(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	mid, err := h.svc.Approve(ctx, id.Int64(), authn.UserID(ctx))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, approveResponse{MerchantID: httpx.ID(mid)})
}

func (h *handler) reject(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	var in rejectRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := h.svc.Reject(ctx, id.Int64(), authn.UserID(ctx), in.Reason); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rejectResponse{ID: id, Status: string(ApplicationRejected), Reason: in.Reason})
}

func (h *handler) setStatus(c echo.Context, st Status) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := h.svc.SetStatus(ctx, id.Int64(), authn.UserID(ctx), st); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, statusResponse{ID: id, Status: string(st)})
}

func (h *handler) suspend(c echo.Context) error   { return h.setStatus(c, StatusSuspended) }
func (h *handler) unsuspend(c echo.Context) error { return h.setStatus(c, StatusActive) }

func (h *handler) setCommission(c echo.Context) error {
	id, err := httpx.ParamID(c, "id")
	if err != nil {
		return err
	}
	var in commissionBody
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	bp, err := commissionRate(in.CommissionRateBP)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	m, err := h.svc.SetCommissionRate(ctx, id.Int64(), authn.UserID(ctx), bp)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toProfileResponse(m))
}

// commissionRate reads commission_rate_bp: absent is an error, null is nil (clear), else
// an integer (SetCommissionRate checks its range).
func commissionRate(raw json.RawMessage) (*int, error) {
	invalid := func(msg string) error {
		return errs.ErrValidation.WithDetail("commission_rate_bp %s", msg).
			WithFields(errs.FieldError{Field: "commission_rate_bp", Message: msg})
	}
	if len(raw) == 0 {
		return nil, invalid("is required (null clears the override)")
	}
	if string(raw) == "null" {
		return nil, nil
	}
	var bp int
	if err := json.Unmarshal(raw, &bp); err != nil {
		return nil, invalid(fmt.Sprintf("must be an integer from 0 to %d or null", MaxCommissionBP))
	}
	return &bp, nil
}

func (h *handler) profile(c echo.Context) error {
	ctx := c.Request().Context()
	mid, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	m, err := h.svc.Get(ctx, mid)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toProfileResponse(m))
}

func (h *handler) updateProfile(c echo.Context) error {
	ctx := c.Request().Context()
	mid, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	var in profilePatch
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	m, err := h.svc.UpdateProfile(ctx, mid, profileInput(in))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toProfileResponse(m))
}

func (h *handler) addStaff(c echo.Context) error {
	ctx := c.Request().Context()
	mid, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	var in staffRequest
	if err := httpx.Bind(c, &in); err != nil {
		return err
	}
	s, err := h.svc.AddStaff(ctx, mid, authn.UserID(ctx), in.Email, StaffRole(in.Role))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toStaffResponse(s))
}

func (h *handler) listStaff(c echo.Context) error {
	ctx := c.Request().Context()
	mid, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	return httpx.ListByID(c, func(after int64, limit int) ([]Staff, error) {
		return h.svc.StaffList(ctx, mid, after, limit)
	}, toStaffResponse, func(r staffResponse) int64 { return r.UserID.Int64() })
}

func (h *handler) removeStaff(c echo.Context) error {
	ctx := c.Request().Context()
	mid, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	uid, err := httpx.ParamID(c, "user_id")
	if err != nil {
		return err
	}
	if err := h.svc.RemoveStaff(ctx, mid, authn.UserID(ctx), uid.Int64()); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handler) getStaff(c echo.Context) error {
	ctx := c.Request().Context()
	mid, err := user.MerchantFrom(ctx)
	if err != nil {
		return err
	}
	uid, err := httpx.ParamID(c, "user_id")
	if err != nil {
		return err
	}
	s, err := h.svc.StaffMember(ctx, mid, uid.Int64())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toStaffResponse(s))
}

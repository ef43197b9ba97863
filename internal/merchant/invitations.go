package merchant

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/user"
)

// Staff invitations (ADR 0029). Adding a staff member used to grant the role to whoever had
// registered the e-mail, without their knowing. Now it invites a verified account, and the
// invitee accepts, signed in as themselves: the staff row, its staff_added event and the
// merchant_staff role come with the acceptance.

type invitationRow struct {
	MerchantID int64     `db:"merchant_id"`
	UserID     int64     `db:"user_id"`
	Role       string    `db:"role"`
	InvitedBy  int64     `db:"invited_by"`
	CreatedAt  time.Time `db:"created_at"`
	ExpiresAt  time.Time `db:"expires_at"`
}

func (r invitationRow) staff() Staff {
	return Staff{MerchantID: r.MerchantID, UserID: r.UserID, Role: StaffRole(r.Role), Status: StaffInvited,
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt}
}

const (
	invitationColumns = `merchant_id, user_id, role, invited_by, created_at, expires_at`
	qUpsertInvitation = `INSERT INTO merchant_staff_invitations (` + invitationColumns + `) VALUES (?, ?, ?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE role = VALUES(role), invited_by = VALUES(invited_by), created_at = VALUES(created_at), expires_at = VALUES(expires_at)`
	qInvitationForUpdate = `SELECT ` + invitationColumns + ` FROM merchant_staff_invitations WHERE merchant_id = ? AND user_id = ? FOR UPDATE`
	qInvitationsOf       = `SELECT ` + invitationColumns + ` FROM merchant_staff_invitations WHERE user_id = ? AND expires_at > ?
		ORDER BY created_at DESC LIMIT 100`
	qDeleteInvitation = `DELETE FROM merchant_staff_invitations WHERE merchant_id = ? AND user_id = ?`
)

func (s *store) upsertInvitation(ctx context.Context, r invitationRow) error {
	_, err := s.ext(ctx).ExecContext(ctx, qUpsertInvitation, r.MerchantID, r.UserID, r.Role, r.InvitedBy, r.CreatedAt, r.ExpiresAt)
	return err
}

func (s *store) invitationForUpdate(ctx context.Context, merchantID, userID int64) (invitationRow, error) {
	var r invitationRow
	err := sqlx.GetContext(ctx, s.ext(ctx), &r, qInvitationForUpdate, merchantID, userID)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrInvitationNotFound
	}
	return r, err
}

func (s *store) invitationsOf(ctx context.Context, userID int64, now time.Time) ([]invitationRow, error) {
	var rows []invitationRow
	err := sqlx.SelectContext(ctx, s.ext(ctx), &rows, qInvitationsOf, userID, now)
	return rows, err
}

func (s *store) deleteInvitation(ctx context.Context, merchantID, userID int64) (bool, error) {
	res, err := s.ext(ctx).ExecContext(ctx, qDeleteInvitation, merchantID, userID)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// AddStaff implements Service: it invites; nobody receives a role here.
func (s *service) AddStaff(ctx context.Context, merchantID, by int64, email string, role StaffRole) (Staff, error) {
	u, err := s.users.FindByEmail(ctx, email)
	if errors.Is(err, user.ErrNotFound) {
		return Staff{}, ErrUserNotFound
	}
	if err != nil {
		return Staff{}, err
	}
	if !u.EmailVerified {
		return Staff{}, ErrUserUnverified.WithDetail("the account's e-mail address is not verified: it cannot be invited")
	}
	if err := s.checkNotStaff(ctx, u.ID); err != nil {
		return Staff{}, err
	}
	now := s.clock()
	r := invitationRow{MerchantID: merchantID, UserID: u.ID, Role: string(role), InvitedBy: by, CreatedAt: now, ExpiresAt: now.Add(InvitationTTL)}
	err = s.db.WithinTx(ctx, func(ctx context.Context) error {
		if _, err := s.st.merchant(ctx, merchantID, true); err != nil {
			return err
		}
		return s.st.upsertInvitation(ctx, r)
	})
	if err != nil {
		return Staff{}, err
	}
	st := r.staff()
	st.Email = u.Email
	return st, nil
}

func (s *service) checkNotStaff(ctx context.Context, userID int64) error {
	bindings, err := s.users.Roles(ctx, userID)
	if err != nil {
		return err
	}
	for _, b := range bindings {
		if b.MerchantID != 0 {
			return ErrStaffConflict.WithDetail("the user already works for a merchant")
		}
	}
	return nil
}

// AcceptInvitation implements Service. Saga: the staff row, its staff_added event and the
// invitation's deletion commit first; when the grant then fails (the user works for another
// merchant meanwhile, or lost their verified address), a compensating transaction removes
// the row with a staff_removed event.
func (s *service) AcceptInvitation(ctx context.Context, userID, merchantID int64) (Staff, error) {
	if err := s.checkNotStaff(ctx, userID); err != nil {
		return Staff{}, err
	}
	now := s.clock()
	var r staffRow
	var ev StaffChanged
	err := s.db.WithinTx(ctx, func(ctx context.Context) error {
		inv, err := s.st.invitationForUpdate(ctx, merchantID, userID)
		if err != nil {
			return err
		}
		if !now.Before(inv.ExpiresAt) {
			return ErrInvitationNotFound.WithDetail("the invitation has expired: ask for a new one")
		}
		if _, err := s.st.merchant(ctx, merchantID, true); err != nil {
			return err
		}
		if _, err := s.st.deleteInvitation(ctx, merchantID, userID); err != nil {
			return err
		}
		r = staffRow{MerchantID: merchantID, UserID: userID, Role: inv.Role, CreatedAt: now}
		ev = StaffChanged{MerchantID: merchantID, UserID: userID, Role: StaffRole(inv.Role), By: inv.InvitedBy, OccurredAt: now}
		if err := s.st.insertStaff(ctx, r); err != nil {
			return err
		}
		return s.emit(ctx, merchantID, EventStaffAdded, ev)
	})
	if err != nil {
		return Staff{}, err
	}
	if err := s.users.GrantRole(ctx, userID, user.RoleMerchantStaff, merchantID); err != nil {
		cerr := s.db.WithinTx(context.WithoutCancel(ctx), func(ctx context.Context) error {
			if _, err := s.st.deleteStaff(ctx, merchantID, userID); err != nil {
				return err
			}
			ev.OccurredAt = s.clock()
			return s.emit(ctx, merchantID, EventStaffRemoved, ev)
		})
		if cerr != nil {
			s.log.Error("merchant: staff row left without its role", "merchant_id", merchantID, "user_id", userID, "error", cerr.Error())
		}
		if errors.Is(err, user.ErrMerchantConflict) {
			return Staff{}, ErrStaffConflict.WithDetail("the user already works for a merchant")
		}
		return Staff{}, err
	}
	return s.withEmail(ctx, r.staff()), nil
}

// DeclineInvitation drops userID's invitation from merchantID.
func (s *service) DeclineInvitation(ctx context.Context, userID, merchantID int64) error {
	removed, err := s.st.deleteInvitation(ctx, merchantID, userID)
	if err != nil {
		return err
	}
	if !removed {
		return ErrInvitationNotFound
	}
	return nil
}

// Invitations lists userID's pending invitations, newest first.
func (s *service) Invitations(ctx context.Context, userID int64) ([]Staff, error) {
	rows, err := s.st.invitationsOf(ctx, userID, s.clock())
	if err != nil {
		return nil, err
	}
	out := make([]Staff, len(rows))
	for i, r := range rows {
		out[i] = s.withEmail(ctx, r.staff())
	}
	return out, nil
}

// Routes: the invitee's side, under /api/v1/me.

type invitationResponse struct {
	MerchantID httpx.ID  `json:"merchant_id"`
	ShopName   string    `json:"shop_name"`
	Role       string    `json:"role"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

func (h *handler) invitationRoutes() []httpx.Route {
	me := []string{"account"}
	return []httpx.Route{
		{Method: http.MethodGet, Path: "/api/v1/me/staff-invitations", Handler: h.listInvitations,
			Summary: "The caller's pending staff invitations", Tags: me, Response: httpx.List[invitationResponse]{}, Auth: true},
		{Method: http.MethodPost, Path: "/api/v1/me/staff-invitations/:merchant_id/accept", Handler: h.acceptInvitation,
			Summary: "Accept a staff invitation: the caller becomes the merchant's staff (sign in again for a token with the role)",
			Tags:    me, Response: staffResponse{}, Auth: true},
		{Method: http.MethodPost, Path: "/api/v1/me/staff-invitations/:merchant_id/decline", Handler: h.declineInvitation,
			Summary: "Decline a staff invitation", Tags: me, Status: http.StatusNoContent, Auth: true},
	}
}

func (h *handler) listInvitations(c echo.Context) error {
	ctx := c.Request().Context()
	ss, err := h.svc.Invitations(ctx, authn.UserID(ctx))
	if err != nil {
		return err
	}
	out := make([]invitationResponse, 0, len(ss))
	for _, s := range ss {
		ir := invitationResponse{MerchantID: httpx.ID(s.MerchantID), Role: string(s.Role), Status: string(s.Status),
			CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt}
		if m, err := h.svc.Get(ctx, s.MerchantID); err == nil {
			ir.ShopName = m.ShopName
		}
		out = append(out, ir)
	}
	return c.JSON(http.StatusOK, httpx.List[invitationResponse]{Items: out})
}

func (h *handler) acceptInvitation(c echo.Context) error {
	mid, err := httpx.ParamID(c, "merchant_id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	s, err := h.svc.AcceptInvitation(ctx, authn.UserID(ctx), mid.Int64())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toStaffResponse(s))
}

func (h *handler) declineInvitation(c echo.Context) error {
	mid, err := httpx.ParamID(c, "merchant_id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := h.svc.DeclineInvitation(ctx, authn.UserID(ctx), mid.Int64()); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

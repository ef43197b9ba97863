package merchant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/user"
)

// StatusCacheTTL bounds how long a replica may keep treating a merchant with its previous
// status after a suspension or reinstatement made elsewhere (the replica that made the
// change forgets its entry at once).
const StatusCacheTTL = 3 * time.Second

type service struct {
	log    *slog.Logger
	db     *sqldb.DB
	st     *store
	ids    *idgen.Generator
	outbox outbox.Writer
	users  user.Service
	status *statusCache
	// rates caches commission overrides (nil: none) for StatusCacheTTL, the same
	// staleness bound as statuses: checkout reads them for every order.
	rates *ttlCache[*int]
	now   func() time.Time
}

var _ Service = (*service)(nil)

func (s *service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func (s *service) emit(ctx context.Context, aggregate int64, typ string, payload any) error {
	return s.outbox.Add(ctx, outbox.Event{Topic: Topic, AggregateID: strconv.FormatInt(aggregate, 10), Type: typ, Payload: payload})
}

// Get implements Service.
func (s *service) Get(ctx context.Context, merchantID int64) (Merchant, error) {
	r, err := s.st.merchant(ctx, merchantID, false)
	if err != nil {
		return Merchant{}, err
	}
	return r.merchant(), nil
}

// IsActive implements Service.
func (s *service) IsActive(ctx context.Context, merchantID int64) (bool, error) {
	st, err := s.status.get(ctx, merchantID, s.st.status)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return st == StatusActive, err
}

// CommissionRate implements Service.
func (s *service) CommissionRate(ctx context.Context, merchantID int64) (int, bool, error) {
	bp, err := s.rates.get(ctx, merchantID, s.st.commissionRate)
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	if err != nil || bp == nil {
		return 0, false, err
	}
	return *bp, true, nil
}

// SetCommissionRate sets the merchant's commission override (0..MaxCommissionBP basis
// points) or clears it (nil), with a merchant.commission_changed event; setting the rate
// it has changes nothing. Orders placed later use the new rate (this replica at once,
// others within StatusCacheTTL); placed orders keep theirs.
func (s *service) SetCommissionRate(ctx context.Context, merchantID, by int64, bp *int) (Merchant, error) {
	if bp != nil && (*bp < 0 || *bp > MaxCommissionBP) {
		return Merchant{}, errs.ErrValidation.WithDetail("commission_rate_bp must be from 0 to %d", MaxCommissionBP).
			WithFields(errs.FieldError{Field: "commission_rate_bp", Message: fmt.Sprintf("must be from 0 to %d or null", MaxCommissionBP)})
	}
	var m merchantRow
	err := s.db.WithinTx(ctx, func(ctx context.Context) error {
		var err error
		if m, err = s.st.merchant(ctx, merchantID, true); err != nil {
			return err
		}
		if m.CommissionRateBP == nullRate(bp) {
			return nil
		}
		now := s.clock()
		if err := s.st.setCommissionRate(ctx, merchantID, bp, now); err != nil {
			return err
		}
		m.CommissionRateBP, m.UpdatedAt = nullRate(bp), now
		return s.emit(ctx, merchantID, EventCommissionChanged,
			CommissionChanged{MerchantID: merchantID, CommissionRateBP: bp, By: by, OccurredAt: now})
	})
	s.rates.forget(merchantID)
	if err != nil {
		return Merchant{}, err
	}
	return m.merchant(), nil
}

// Apply implements Service.
func (s *service) Apply(ctx context.Context, applicantID int64, in ApplicationInput) (Application, error) {
	// The owner role needs a verified address: refuse now rather than at the review.
	if u, err := s.users.Get(ctx, applicantID); err != nil {
		return Application{}, err
	} else if !u.EmailVerified {
		return Application{}, ErrUserUnverified.WithDetail("confirm your e-mail address before applying")
	}
	if err := s.checkUnbound(ctx, applicantID, 0); err != nil {
		return Application{}, err
	}
	now := s.clock()
	r := applicationRow{ID: s.ids.Next(0), ApplicantID: applicantID, ShopName: in.ShopName, CompanyName: in.CompanyName,
		LicenseNo: in.LicenseNo, ContactName: in.ContactName, ContactPhone: in.ContactPhone,
		Status: string(ApplicationPending), CreatedAt: now, UpdatedAt: now}
	err := s.db.WithinTx(ctx, func(ctx context.Context) error {
		if err := s.st.insertApplication(ctx, r); err != nil {
			return err
		}
		return s.emit(ctx, r.ID, EventApplicationSubmitted, ApplicationSubmitted{ApplicationID: r.ID,
			ApplicantID: applicantID, ShopName: in.ShopName, OccurredAt: now})
	})
	if err != nil {
		return Application{}, err
	}
	return r.application(), nil
}

// Applications lists applications newest first (see store.applications).
func (s *service) Applications(ctx context.Context, applicantID int64, status ApplicationStatus, before int64, limit int) ([]Application, error) {
	rows, err := s.st.applications(ctx, applicantID, string(status), before, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Application, len(rows))
	for i, r := range rows {
		out[i] = r.application()
	}
	return out, nil
}

// Approve creates the application's merchant and makes the applicant its owner. It is a
// saga: the merchant row, the application's new status and the event commit together in
// this module's transaction; the role grant (user module, its own transaction) follows.
// Approving an approved application returns its merchant and grants the role again (a
// no-op when it is there), so a retry after a failed grant converges. Concurrent approvals
// serialize on the application's row lock: one merchant only.
func (s *service) Approve(ctx context.Context, applicationID, reviewerID int64) (int64, error) {
	var app applicationRow
	// Refuse an applicant who joined a merchant since applying before creating a merchant
	// its grant could never bind (the grant below still decides in a race).
	pre, err := s.st.application(ctx, applicationID)
	if err != nil {
		return 0, err
	}
	if ApplicationStatus(pre.Status) == ApplicationPending {
		if err := s.checkUnbound(ctx, pre.ApplicantID, 0); err != nil {
			// A concurrent approval of this very application may have bound the applicant
			// in between: then the transaction below returns its merchant.
			now, rerr := s.st.application(ctx, applicationID)
			if rerr != nil || ApplicationStatus(now.Status) != ApplicationApproved {
				return 0, err
			}
		}
	}
	err = s.db.WithinTx(ctx, func(ctx context.Context) error {
		var err error
		app, err = s.st.lockApplication(ctx, applicationID)
		if err != nil {
			return err
		}
		switch ApplicationStatus(app.Status) {
		case ApplicationApproved:
			return nil
		case ApplicationRejected:
			return ErrApplicationReviewed.WithDetail("the application was rejected")
		}
		now := s.clock()
		mid := s.ids.Next(0)
		m := merchantRow{ID: mid, ApplicationID: app.ID, OwnerID: app.ApplicantID, ShopName: app.ShopName,
			CompanyName: app.CompanyName, ContactName: app.ContactName, ContactPhone: app.ContactPhone,
			Status: string(StatusActive), CreatedAt: now, UpdatedAt: now}
		if err := s.st.insertMerchant(ctx, m); err != nil {
			return err
		}
		if err := s.st.reviewApplication(ctx, app.ID, ApplicationApproved, "", mid, reviewerID, now); err != nil {
			return err
		}
		app.MerchantID.Int64, app.MerchantID.Valid = mid, true
		return s.emit(ctx, mid, EventApproved, Approved{ApplicationID: app.ID, MerchantID: mid, OwnerID: app.ApplicantID,
			ShopName: app.ShopName, ReviewedBy: reviewerID, OccurredAt: now})
	})
	if err != nil {
		return 0, err
	}
	mid := app.MerchantID.Int64
	if err := s.users.GrantRole(ctx, app.ApplicantID, user.RoleMerchantOwner, mid); err != nil {
		// The merchant stays; approving again retries the grant.
		return 0, fmt.Errorf("merchant: granting merchant_owner of %d to user %d (approve again to retry): %w", mid, app.ApplicantID, err)
	}
	return mid, nil
}

// checkUnbound returns ErrApplicantBound when userID holds a role of a merchant other
// than except.
func (s *service) checkUnbound(ctx context.Context, userID, except int64) error {
	bindings, err := s.users.Roles(ctx, userID)
	if err != nil {
		return err
	}
	for _, b := range bindings {
		if b.MerchantID != 0 && b.MerchantID != except {
			return ErrApplicantBound.WithDetail("the user already works for a merchant")
		}
	}
	return nil
}

// Reject closes a pending application with a reason. Rejecting a rejected application
// again changes nothing.
func (s *service) Reject(ctx context.Context, applicationID, reviewerID int64, reason string) error {
	return s.db.WithinTx(ctx, func(ctx context.Context) error {
		app, err := s.st.lockApplication(ctx, applicationID)
		if err != nil {
			return err
		}
		switch ApplicationStatus(app.Status) {
		case ApplicationRejected:
			return nil
		case ApplicationApproved:
			return ErrApplicationReviewed.WithDetail("the application was approved")
		}
		now := s.clock()
		if err := s.st.reviewApplication(ctx, app.ID, ApplicationRejected, reason, 0, reviewerID, now); err != nil {
			return err
		}
		return s.emit(ctx, app.ID, EventRejected, Rejected{ApplicationID: app.ID, ApplicantID: app.ApplicantID,
			Reason: reason, ReviewedBy: reviewerID, OccurredAt: now})
	})
}

// SetStatus suspends or reinstates a merchant; setting the status it has changes nothing.
func (s *service) SetStatus(ctx context.Context, merchantID, by int64, st Status) error {
	err := s.db.WithinTx(ctx, func(ctx context.Context) error {
		m, err := s.st.merchant(ctx, merchantID, true)
		if err != nil {
			return err
		}
		if Status(m.Status) == st {
			return nil
		}
		now := s.clock()
		if err := s.st.setStatus(ctx, merchantID, st, now); err != nil {
			return err
		}
		typ := EventSuspended
		if st == StatusActive {
			typ = EventUnsuspended
		}
		return s.emit(ctx, merchantID, typ, StatusChanged{MerchantID: merchantID, Status: st, By: by, OccurredAt: now})
	})
	s.status.forget(merchantID)
	return err
}

// profileInput changes the profile fields that are set.
type profileInput struct {
	ShopName, Description, LogoURL, ContactName, ContactPhone *string
}

// UpdateProfile changes the merchant's profile.
func (s *service) UpdateProfile(ctx context.Context, merchantID int64, in profileInput) (Merchant, error) {
	var m merchantRow
	err := s.db.WithinTx(ctx, func(ctx context.Context) error {
		var err error
		m, err = s.st.merchant(ctx, merchantID, true)
		if err != nil {
			return err
		}
		set := func(dst *string, v *string) {
			if v != nil {
				*dst = *v
			}
		}
		set(&m.ShopName, in.ShopName)
		set(&m.Description, in.Description)
		set(&m.LogoURL, in.LogoURL)
		set(&m.ContactName, in.ContactName)
		set(&m.ContactPhone, in.ContactPhone)
		m.UpdatedAt = s.clock()
		return s.st.updateProfile(ctx, m)
	})
	if err != nil {
		return Merchant{}, err
	}
	return m.merchant(), nil
}

// RemoveStaff takes a staff member away from merchantID: their merchant role is revoked
// first (which ends their sessions, so no token of theirs still acts for the merchant),
// then the staff row goes with a staff_removed event. Another merchant's staff member, or
// the owner, is ErrStaffNotFound. After a failure a retry completes the removal.
func (s *service) RemoveStaff(ctx context.Context, merchantID, by, userID int64) error {
	r, err := s.st.staffMember(ctx, merchantID, userID)
	if err != nil {
		return err
	}
	if err := s.users.RevokeRole(ctx, userID, user.RoleMerchantStaff, merchantID); err != nil {
		return err
	}
	return s.db.WithinTx(ctx, func(ctx context.Context) error {
		removed, err := s.st.deleteStaff(ctx, merchantID, userID)
		if err != nil || !removed {
			return err
		}
		return s.emit(ctx, merchantID, EventStaffRemoved,
			StaffChanged{MerchantID: merchantID, UserID: userID, Role: StaffRole(r.Role), By: by, OccurredAt: s.clock()})
	})
}

// StaffMember returns one of merchantID's staff; another merchant's is ErrStaffNotFound.
func (s *service) StaffMember(ctx context.Context, merchantID, userID int64) (Staff, error) {
	r, err := s.st.staffMember(ctx, merchantID, userID)
	if err != nil {
		return Staff{}, err
	}
	return s.withEmail(ctx, r.staff()), nil
}

// StaffList lists merchantID's staff by user ID, after the ID after.
func (s *service) StaffList(ctx context.Context, merchantID, after int64, limit int) ([]Staff, error) {
	rows, err := s.st.staffList(ctx, merchantID, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Staff, len(rows))
	for i, r := range rows {
		out[i] = s.withEmail(ctx, r.staff())
	}
	return out, nil
}

func (s *service) withEmail(ctx context.Context, st Staff) Staff {
	if u, err := s.users.Get(ctx, st.UserID); err == nil {
		st.Email = u.Email
	}
	return st
}

// checkActive answers ErrSuspended for a suspended merchant. An unknown merchant passes:
// the handlers answer 404 for it.
func (s *service) checkActive(ctx context.Context, merchantID int64) error {
	st, err := s.status.get(ctx, merchantID, s.st.status)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return err
	case st == StatusSuspended:
		return ErrSuspended
	}
	return nil
}

// ttlCache keeps one value per merchant in process for a TTL: merchant statuses
// (statusCache) and commission overrides.
type ttlCache[V any] struct {
	ttl time.Duration
	now func() time.Time
	mu  sync.Mutex
	m   map[int64]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v       V
	expires time.Time
}

// statusCache keeps merchant statuses in process for StatusCacheTTL.
type statusCache = ttlCache[Status]

func newStatusCache(ttl time.Duration, now func() time.Time) *statusCache {
	return newTTLCache[Status](ttl, now)
}

func newTTLCache[V any](ttl time.Duration, now func() time.Time) *ttlCache[V] {
	return &ttlCache[V]{ttl: ttl, now: now, m: map[int64]ttlEntry[V]{}}
}

func (c *ttlCache[V]) get(ctx context.Context, id int64, load func(context.Context, int64) (V, error)) (V, error) {
	var zero V
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.v, nil
	}
	v, err := load(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return zero, err
	}
	if errs.KindOf(err) == errs.NotFound {
		return zero, ErrNotFound
	}
	c.mu.Lock()
	if len(c.m) > 100_000 { // bound memory: drop everything rather than track ages
		clear(c.m)
	}
	c.m[id] = ttlEntry[V]{v: v, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return v, nil
}

func (c *ttlCache[V]) forget(id int64) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

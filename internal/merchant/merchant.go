// Package merchant is Mall's merchant module: applications and their platform review,
// merchants and their profiles, staff with merchant-scoped roles, and suspension.
//
// Other modules import this package only: the Service interface, the domain types, the
// errors, the events and SuspensionMiddleware's behavior (wired by Module).
package merchant

import (
	"context"
	"time"

	"github.com/mallhq/mall/internal/platform/errs"
)

// Service is what other modules may ask of the merchant module.
type Service interface {
	// Get returns a merchant by ID (ErrNotFound).
	Get(ctx context.Context, merchantID int64) (Merchant, error)
	// IsActive reports whether the merchant exists and is not suspended. It reads a short
	// in-process cache (StatusCacheTTL), so it is cheap enough for every request; a
	// suspension reaches other replicas within that TTL.
	IsActive(ctx context.Context, merchantID int64) (bool, error)
	// CommissionRate returns the merchant's commission override in basis points; ok is
	// false when it has none, or when the merchant does not exist. Like IsActive it reads
	// an in-process cache (StatusCacheTTL): cheap enough for every checkout, and an
	// operator's change reaches other replicas within that TTL.
	CommissionRate(ctx context.Context, merchantID int64) (bp int, ok bool, err error)

	// Apply files an application for applicantID; one may be pending per user, and a user
	// who already works for a merchant is ErrApplicantBound. The HTTP API and `mall seed`
	// call it.
	Apply(ctx context.Context, applicantID int64, in ApplicationInput) (Application, error)
	// Applications lists applications newest first: the applicant's (every status) when
	// applicantID is set, else those in status ("" = all); before is an application ID
	// cursor (0 = from the newest).
	Applications(ctx context.Context, applicantID int64, status ApplicationStatus, before int64, limit int) ([]Application, error)
	// Approve creates the application's merchant and makes the applicant its owner;
	// approving an approved application again returns its merchant (and retries the grant).
	Approve(ctx context.Context, applicationID, reviewerID int64) (merchantID int64, err error)
	// AddStaff invites the user with email to be a staff member of merchantID (ErrUserNotFound,
	// ErrUserUnverified for an account whose address is not verified, ErrStaffConflict when
	// they already work for a merchant); the Staff returned is StaffInvited. Inviting again
	// renews the invitation. They become staff when they accept it (AcceptInvitation).
	AddStaff(ctx context.Context, merchantID, by int64, email string, role StaffRole) (Staff, error)
	// AcceptInvitation makes userID, who was invited by merchantID, its staff member
	// (ErrInvitationNotFound; ErrStaffConflict when they work for a merchant meanwhile).
	AcceptInvitation(ctx context.Context, userID, merchantID int64) (Staff, error)
}

// ApplicationInput is a new application.
type ApplicationInput struct {
	ShopName, CompanyName, LicenseNo, ContactName, ContactPhone string
}

// Status of a merchant.
type Status string

// Merchant statuses.
const (
	StatusActive    Status = "active"
	StatusSuspended Status = "suspended"
)

// ApplicationStatus is where an application is in its review.
type ApplicationStatus string

// Application statuses.
const (
	ApplicationPending  ApplicationStatus = "pending"
	ApplicationApproved ApplicationStatus = "approved"
	ApplicationRejected ApplicationStatus = "rejected"
)

// StaffRole is a staff member's job inside a merchant. Both hold user.RoleMerchantStaff.
type StaffRole string

// Staff roles.
const (
	StaffOperator        StaffRole = "operator"
	StaffCustomerService StaffRole = "customer_service"
)

// Merchant is a shop on the platform.
type Merchant struct {
	ID            int64
	ApplicationID int64
	OwnerID       int64
	ShopName      string
	CompanyName   string
	Description   string
	LogoURL       string
	ContactName   string
	ContactPhone  string
	Status        Status
	// CommissionRateBP is the platform's commission on the merchant's sales in basis
	// points, overriding the categories' rates; nil: no override.
	CommissionRateBP *int
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// MaxCommissionBP is the highest commission rate: 10000 basis points, 100 %.
const MaxCommissionBP = 10000

// Application is a user's request to open a merchant.
type Application struct {
	ID           int64
	ApplicantID  int64
	ShopName     string
	CompanyName  string
	LicenseNo    string
	ContactName  string
	ContactPhone string
	Status       ApplicationStatus
	Reason       string
	// MerchantID is set once approved.
	MerchantID int64
	ReviewedBy int64
	ReviewedAt time.Time
	CreatedAt  time.Time
}

// Staff is a user working for a merchant.
type Staff struct {
	MerchantID int64
	UserID     int64
	Email      string
	Role       StaffRole
	// Status is StaffActive for staff, StaffInvited for an invitation not yet accepted.
	Status    StaffStatus
	CreatedAt time.Time
	// ExpiresAt is when an invitation lapses (zero for staff).
	ExpiresAt time.Time
}

// StaffStatus is where a staff member is: invited, or working for the merchant.
type StaffStatus string

// Staff statuses.
const (
	StaffInvited StaffStatus = "invited"
	StaffActive  StaffStatus = "active"
)

// InvitationTTL is how long a staff invitation waits for its acceptance.
const InvitationTTL = 14 * 24 * time.Hour

// Errors. Codes are stable (API.md).
var (
	ErrNotFound            = errs.New(errs.NotFound, "merchant.not_found")
	ErrSuspended           = errs.New(errs.Forbidden, "merchant.suspended")
	ErrApplicationNotFound = errs.New(errs.NotFound, "merchant.application_not_found")
	ErrApplicationPending  = errs.New(errs.Conflict, "merchant.application_pending")
	// ErrApplicationReviewed: approving a rejected application or rejecting an approved one.
	ErrApplicationReviewed = errs.New(errs.Conflict, "merchant.application_reviewed")
	ErrStaffNotFound       = errs.New(errs.NotFound, "merchant.staff_not_found")
	// ErrUserNotFound: no account has the email given for a new staff member.
	ErrUserNotFound = errs.New(errs.NotFound, "merchant.user_not_found")
	// ErrApplicantBound: the applicant already works for a merchant (owner or staff), and a
	// user belongs to one merchant at most.
	ErrApplicantBound = errs.New(errs.Conflict, "merchant.applicant_bound")
	// ErrStaffConflict: the user already works for a merchant (this one or another).
	ErrStaffConflict = errs.New(errs.Conflict, "merchant.staff_conflict")
	// ErrUserUnverified: the account's e-mail address is not verified; it can neither be
	// invited as staff nor apply for a merchant.
	ErrUserUnverified = errs.New(errs.Conflict, "merchant.user_unverified")
	// ErrInvitationNotFound: no pending, unexpired invitation of this merchant for the caller.
	ErrInvitationNotFound = errs.New(errs.NotFound, "merchant.invitation_not_found")
)

// Package user is Mall's accounts and access-control module: registration and password
// login, JWT access tokens with rotating refresh tokens, third-party (OIDC) login, roles and
// permissions scoped to merchants, and buyers' addresses.
//
// Other modules import this package only: the Service interface, the domain types, the
// permission constants and RequirePermission for their routes.
package user

import (
	"context"
	"time"

	"github.com/mallhq/mall/internal/platform/errs"
)

// Service is what other modules may ask of the user module.
type Service interface {
	// Get returns a user by ID (ErrNotFound).
	Get(ctx context.Context, id int64) (User, error)
	// Register creates a password account (ErrEmailTaken); the HTTP API and `mall seed`
	// call it. The account is a buyer until roles are granted.
	Register(ctx context.Context, email, password, nickname string) (User, error)
	// FindByEmail returns the user with this email, compared after normalization
	// (trimmed, lower-cased) (ErrNotFound).
	FindByEmail(ctx context.Context, email string) (User, error)
	// Roles returns the user's role bindings, buyer included.
	Roles(ctx context.Context, userID int64) ([]RoleBinding, error)
	// GrantRole binds a role to a user; merchant roles need merchantID > 0, platform roles
	// need 0. Granting a binding the user already has does nothing. A user belongs to at
	// most one merchant (ErrMerchantConflict). The merchant module calls it when it approves
	// an application or adds staff. New roles reach the user's tokens at the next refresh.
	GrantRole(ctx context.Context, userID int64, role Role, merchantID int64) error
	// RevokeRole removes a role binding (a binding the user does not have is not an error)
	// and ends every session of the user, so no access token still carrying the role is
	// accepted: the user signs in again and gets tokens without it. The merchant module
	// calls it when staff are removed.
	RevokeRole(ctx context.Context, userID int64, role Role, merchantID int64) error
	// Address returns one of the user's addresses; another user's address is ErrAddressNotFound.
	Address(ctx context.Context, userID, addressID int64) (Address, error)
	// LatestAddress returns the user's most recently added address (ErrAddressNotFound when none).
	LatestAddress(ctx context.Context, userID int64) (Address, error)
	// LoginWithIdentity signs in a user verified by an external identity provider: the
	// account linked to (provider, subject), else the account with the same verified email
	// (then linked), else a new account. An unverified email never links.
	LoginWithIdentity(ctx context.Context, id ExternalIdentity) (Tokens, error)
}

// User is an account.
type User struct {
	ID int64
	// Email is normalized (trimmed, lower-case); empty for an account created by a
	// third-party login that gave no verified email.
	Email string
	// EmailVerified: the account's owner proved Email is theirs. Only verified accounts
	// receive roles, staff invitations and OIDC links by e-mail.
	EmailVerified bool
	Nickname      string
	CreatedAt     time.Time
}

// Role names a set of permissions. Roles are data (table user_roles, seeded with the ones
// below); permissions are constants in code.
type Role string

// Roles from API.md.
const (
	// RoleBuyer is everyone's; it is implicit and never stored.
	RoleBuyer            Role = "buyer"
	RolePlatformAdmin    Role = "platform_admin"
	RolePlatformOperator Role = "platform_operator"
	RoleMerchantOwner    Role = "merchant_owner"
	RoleMerchantStaff    Role = "merchant_staff"
)

// RoleBinding is a role held by a user, scoped to one merchant for merchant roles
// (MerchantID 0 = platform-wide).
type RoleBinding struct {
	Role       Role
	MerchantID int64
}

// Tokens are what a successful login or refresh returns.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	// ExpiresIn is the access token's lifetime.
	ExpiresIn time.Duration
}

// ExternalIdentity is a user as a third-party identity provider vouches for them.
type ExternalIdentity struct {
	Provider      string
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
}

// Address is a buyer's shipping address. Phone is the plain number (decrypted); show
// MaskedPhone to anyone but the order that ships to it.
type Address struct {
	ID        int64
	UserID    int64
	Name      string
	Phone     string
	Province  string
	City      string
	District  string
	Detail    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// MaskedPhone hides the middle of the phone number: 13812345678 -> 138****5678.
func (a Address) MaskedPhone() string { return MaskPhone(a.Phone) }

// MaskPhone keeps the last four characters and everything before the four hidden ones;
// numbers of eight characters or fewer keep only their last two.
func MaskPhone(p string) string {
	n := len(p)
	switch {
	case n == 0:
		return ""
	case n <= 2:
		return stars(n)
	case n <= 8:
		return stars(n-2) + p[n-2:]
	default:
		return p[:n-8] + "****" + p[n-4:]
	}
}

func stars(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = '*'
	}
	return string(b)
}

// Errors. Codes are stable (API.md).
var (
	ErrNotFound            = errs.New(errs.NotFound, "user.not_found")
	ErrEmailTaken          = errs.New(errs.Conflict, "user.email_taken")
	ErrInvalidCredentials  = errs.New(errs.Unauthenticated, "auth.invalid_credentials")
	ErrInvalidToken        = errs.New(errs.Unauthenticated, "auth.invalid_token")
	ErrInvalidRefreshToken = errs.New(errs.Unauthenticated, "auth.invalid_refresh_token")
	ErrRefreshReused       = errs.New(errs.Unauthenticated, "auth.refresh_reused")
	ErrTooManyAttempts     = errs.New(errs.TooManyRequests, "auth.too_many_attempts")
	// ErrBusy means every password-hashing slot stayed taken for too long.
	ErrBusy = errs.New(errs.Unavailable, "auth.busy")

	ErrUnknownRole        = errs.New(errs.Invalid, "user.unknown_role")
	ErrMerchantRequired   = errs.New(errs.Invalid, "user.merchant_required")
	ErrMerchantNotAllowed = errs.New(errs.Invalid, "user.merchant_not_allowed")
	ErrMerchantConflict   = errs.New(errs.Conflict, "user.merchant_conflict")
	ErrAddressNotFound    = errs.New(errs.NotFound, "user.address_not_found")
	ErrAddressLimit       = errs.New(errs.Conflict, "user.address_limit")
	// ErrOAuthFailed: a third-party login did not complete (the provider refused, or its
	// answer did not verify). Unknown providers (404) and bad states (400) answer with the
	// oidc package's codes.
	ErrOAuthFailed = errs.New(errs.Unauthenticated, "auth.oauth_failed")

	// ErrEmailUnverified: the account's e-mail address is not verified, and what was asked
	// (a role, a staff invitation) needs it.
	ErrEmailUnverified = errs.New(errs.Conflict, "user.email_unverified")
	// ErrLoginUnverified: signing in needs a verified address (auth.email.unverified_can_shop
	// is off); the mailed token verifies it, POST /api/v1/auth/verify-email/resend sends another.
	ErrLoginUnverified = errs.New(errs.Forbidden, "auth.email_unverified")
	// ErrEmailTokenInvalid: a verification or reset token that is unknown, used, expired or
	// for an address the account no longer has.
	ErrEmailTokenInvalid = errs.New(errs.Invalid, "auth.email_token_invalid")
	// ErrLinkRequired: a third-party login's verified e-mail belongs to an account that has a
	// password (or an unverified address): it is not linked by e-mail. Its owner signs in and
	// links the provider at POST /api/v1/me/identities/{provider}/link.
	ErrLinkRequired = errs.New(errs.Conflict, "auth.oauth_link_required")
	// ErrIdentityTaken: the third-party identity is linked to another account.
	ErrIdentityTaken = errs.New(errs.Conflict, "user.identity_taken")
	// ErrAdminTakeover: `mall admin create` found an account it did not create (a password,
	// or an unverified address) and was not told to take it over (--reset-password).
	ErrAdminTakeover = errs.New(errs.Conflict, "user.admin_takeover_refused")
)

// MaxAddresses bounds the addresses one user keeps.
const MaxAddresses = 50

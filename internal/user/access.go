package user

import (
	"context"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/errs"
)

// Permission is one thing a caller may do. Permissions are constants in code; roles (data,
// table user_role_permissions) grant them. A permission whose name starts with "merchant."
// is merchant-scoped: it only ever applies to the merchant the caller's merchant role is
// bound to (authn.Principal.MerchantID), and each module's queries must filter by that ID
// so another merchant's object answers 404.
type Permission string

// Platform-wide permissions (routes under /api/v1/admin/).
const (
	// PermAdminUsers: look up users and grant roles.
	PermAdminUsers Permission = "admin.users"
	// PermMerchantApplicationsReview: list, approve and reject merchant applications.
	PermMerchantApplicationsReview Permission = "admin.merchant_applications.review"
	// PermMerchantsManage: suspend and reinstate merchants.
	PermMerchantsManage Permission = "admin.merchants.manage"
	// PermCatalogManage: categories and brands.
	PermCatalogManage Permission = "admin.catalog.manage"
	// PermProductsReview: the product review queue, approve and reject.
	PermProductsReview Permission = "admin.products.review"
	// PermOrdersView: read any order (support).
	PermOrdersView Permission = "admin.orders.view"
	// PermLiveModerate: end live rooms and remove chat.
	PermLiveModerate Permission = "admin.live.moderate"
	// PermAuctionsModerate: cancel auctions.
	PermAuctionsModerate Permission = "admin.auctions.moderate"
	// PermSettlementManage: generate statements and record payouts.
	PermSettlementManage Permission = "admin.settlement.manage"
)

// Merchant-scoped permissions (routes under /api/v1/merchant/).
const (
	// PermMerchantProfileView: read the merchant's profile.
	PermMerchantProfileView Permission = "merchant.profile.view"
	// PermMerchantProfileEdit: change the merchant's profile.
	PermMerchantProfileEdit Permission = "merchant.profile.edit"
	// PermMerchantStaff: add and remove the merchant's staff.
	PermMerchantStaff Permission = "merchant.staff"
	// PermMerchantProducts: create, edit, submit and take products off shelf.
	PermMerchantProducts Permission = "merchant.products"
	// PermMerchantStock: read and set stock levels.
	PermMerchantStock Permission = "merchant.stock"
	// PermMerchantOrders: read and ship the merchant's orders.
	PermMerchantOrders Permission = "merchant.orders"
	// PermMerchantRefunds: approve and reject refund requests.
	PermMerchantRefunds Permission = "merchant.refunds"
	// PermMerchantLive: live rooms and pinned products.
	PermMerchantLive Permission = "merchant.live"
	// PermMerchantAuctions: create and manage auctions.
	PermMerchantAuctions Permission = "merchant.auctions"
	// PermMerchantSettlement: the merchant's balance and ledger.
	PermMerchantSettlement Permission = "merchant.settlement"
)

// Permissions lists every permission constant.
var Permissions = []Permission{
	PermAdminUsers, PermMerchantApplicationsReview, PermMerchantsManage, PermCatalogManage,
	PermProductsReview, PermOrdersView, PermLiveModerate, PermAuctionsModerate, PermSettlementManage,
	PermMerchantProfileView, PermMerchantProfileEdit, PermMerchantStaff, PermMerchantProducts,
	PermMerchantStock, PermMerchantOrders, PermMerchantRefunds, PermMerchantLive,
	PermMerchantAuctions, PermMerchantSettlement,
}

// MerchantScoped reports whether p applies to one merchant only.
func (p Permission) MerchantScoped() bool { return strings.HasPrefix(string(p), "merchant.") }

// Known reports whether p is one of Permissions.
func (p Permission) Known() bool { return slices.Contains(Permissions, p) }

// Grants is what a caller may do: the permissions of the roles in its verified token.
// The authentication middleware attaches them to the request context.
type Grants struct {
	perms      map[Permission]struct{}
	merchantID int64
}

// NewGrants returns grants of perms for a caller bound to merchantID (0 = none). A
// merchant-scoped permission without a merchant is dropped. The authentication middleware
// builds them; tests of other modules may too.
func NewGrants(merchantID int64, perms ...Permission) Grants {
	g := Grants{perms: make(map[Permission]struct{}, len(perms)), merchantID: merchantID}
	for _, p := range perms {
		if p.MerchantScoped() && merchantID == 0 {
			continue
		}
		g.perms[p] = struct{}{}
	}
	return g
}

// Has reports whether every one of perms is granted.
func (g Grants) Has(perms ...Permission) bool {
	for _, p := range perms {
		if _, ok := g.perms[p]; !ok {
			return false
		}
		if p.MerchantScoped() && g.merchantID == 0 {
			return false
		}
	}
	return true
}

// MerchantID is the merchant that merchant-scoped grants apply to (0 = none).
func (g Grants) MerchantID() int64 { return g.merchantID }

// List returns the granted permissions, sorted.
func (g Grants) List() []Permission {
	out := make([]Permission, 0, len(g.perms))
	for p := range g.perms {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

type grantsKey struct{}

// WithGrants stores g in ctx (the authentication middleware does; so may tests).
func WithGrants(ctx context.Context, g Grants) context.Context {
	return context.WithValue(ctx, grantsKey{}, g)
}

// GrantsFrom returns the grants in ctx.
func GrantsFrom(ctx context.Context) (Grants, bool) {
	g, ok := ctx.Value(grantsKey{}).(Grants)
	return g, ok
}

// Authorize checks that the caller in ctx holds every one of perms: errs.ErrUnauthenticated
// (401 auth.unauthenticated) without a caller, errs.ErrForbidden (403 auth.forbidden) when
// a permission is missing. Use it where a route middleware does not fit (GraphQL
// resolvers, WebSocket messages).
func Authorize(ctx context.Context, perms ...Permission) error {
	if _, ok := authn.From(ctx); !ok {
		return errs.ErrUnauthenticated
	}
	g, ok := GrantsFrom(ctx)
	if !ok || !g.Has(perms...) {
		return errs.ErrForbidden
	}
	return nil
}

// RequirePermission is route middleware that lets the request through only when the
// caller holds every one of perms (see Authorize). Merchant-scoped permissions hold only
// for the merchant in the caller's token: read it with authn.From(ctx).MerchantID (or
// MerchantFrom) and scope every query by it.
//
//	{Method: "POST", Path: "/api/v1/merchant/products", Auth: true,
//	 Middleware: []echo.MiddlewareFunc{user.RequirePermission(user.PermMerchantProducts)}, ...}
func RequirePermission(perms ...Permission) echo.MiddlewareFunc {
	perms = slices.Clone(perms)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if err := Authorize(c.Request().Context(), perms...); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// MerchantFrom returns the merchant the caller acts for, or errs.ErrForbidden when the
// caller holds no merchant role.
func MerchantFrom(ctx context.Context) (int64, error) {
	p, ok := authn.From(ctx)
	if !ok {
		return 0, errs.ErrUnauthenticated
	}
	if p.MerchantID == 0 {
		return 0, errs.ErrForbidden
	}
	return p.MerchantID, nil
}

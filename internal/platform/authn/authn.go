// Package authn carries the verified caller through the request context. The user module
// verifies tokens and stores the Principal; everything else only reads it.
package authn

import (
	"context"
	"time"
)

// Principal is the verified caller.
type Principal struct {
	UserID int64
	// TokenID is the access token's jti (for logout deny-listing).
	TokenID string
	Roles   []string
	// MerchantID is the merchant the caller's merchant role is bound to, 0 when none.
	MerchantID int64
	// SessionID is the session (refresh-token family) the access token belongs to, and
	// ExpiresAt its expiry: long-lived connections (WebSockets) end with them.
	SessionID string
	ExpiresAt time.Time
}

type ctxKey struct{}

// With stores p in ctx.
func With(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// From returns the principal in ctx.
func From(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// UserID returns the caller's user ID, 0 when anonymous.
func UserID(ctx context.Context) int64 {
	p, _ := From(ctx)
	return p.UserID
}

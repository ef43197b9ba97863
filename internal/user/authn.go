package user

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/httpx"
)

// Request authentication: every request with an Authorization header has its bearer token
// verified (signature, claims, deny-list: one Redis round trip); the caller's principal and
// grants go into the request context. Routes marked Auth refuse anonymous callers.

// MiddlewareOrder places authentication first among the global middleware contributed by
// modules, so everything after it (rate limits per user, idempotency keys per user) sees the
// caller.
const MiddlewareOrder = -100

// RouteOrder runs the "login required" check before rate limiting (ratelimit.RouteOrder 10):
// an anonymous request to an Auth route is refused without spending a token.
const RouteOrder = 5

func (s *service) authMiddleware() httpx.Middleware {
	return httpx.Middleware{Name: "user.authenticate", Order: MiddlewareOrder, Func: func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Request().Header.Get(echo.HeaderAuthorization)
			if h == "" {
				return next(c)
			}
			req := c.Request()
			ctx, err := s.authenticate(req.Context(), h)
			if err != nil {
				if errs.KindOf(err) == errs.Unauthenticated {
					c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer error="invalid_token"`)
				}
				return err
			}
			c.SetRequest(req.WithContext(ctx))
			return next(c)
		}
	}}
}

func requireLogin() httpx.RouteMiddleware {
	mw := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if _, ok := authn.From(c.Request().Context()); !ok {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, "Bearer")
				return errs.ErrUnauthenticated.WithDetail("this route needs a bearer access token")
			}
			return next(c)
		}
	}
	return httpx.RouteMiddleware{Name: "user.require_login", Order: RouteOrder, For: func(r httpx.Route) echo.MiddlewareFunc {
		if !r.Auth {
			return nil
		}
		return mw
	}}
}

// authenticate verifies an Authorization header value and returns ctx carrying the
// principal, its grants and the session.
func (s *service) authenticate(ctx context.Context, header string) (context.Context, error) {
	scheme, tok, ok := strings.Cut(header, " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return nil, ErrInvalidToken.WithDetail("the Authorization header must be \"Bearer <access token>\"")
	}
	vt, err := s.tokens.verify(tok)
	if err != nil {
		return nil, ErrInvalidToken.WithDetail("the access token is invalid or expired")
	}
	if err := s.blocks.checkUser(vt.UserID); err != nil {
		return nil, err
	}
	denied, err := s.deny.denied(ctx, vt.UserID, vt.TokenID, vt.SessionID)
	if err != nil {
		return nil, err
	}
	if denied {
		return nil, ErrInvalidToken.WithDetail("the access token has been revoked")
	}
	snap, err := s.roles.get(ctx)
	if err != nil {
		return nil, err
	}
	ctx = authn.With(ctx, authn.Principal{UserID: vt.UserID, TokenID: vt.TokenID, Roles: vt.Roles, MerchantID: vt.MerchantID,
		SessionID: vt.SessionID, ExpiresAt: vt.ExpiresAt})
	ctx = WithGrants(ctx, snap.grants(vt.Roles, vt.MerchantID))
	return withSession(ctx, session{ID: vt.SessionID, ExpiresAt: vt.ExpiresAt}), nil
}

// roleCache holds user_roles and user_role_permissions in memory. A snapshot older than
// roleCacheTTL is served while one refresh runs in the background, so permission checks
// never wait for the database after the first load.
const roleCacheTTL = time.Minute

type roleDef struct {
	scope string
	perms []Permission
}

type roleSnapshot struct {
	roles  map[Role]roleDef
	loaded time.Time
}

type roleCache struct {
	st  *store
	log *slog.Logger

	mu         sync.Mutex // serializes the first load
	cur        atomic.Pointer[roleSnapshot]
	refreshing atomic.Bool
}

func (c *roleCache) get(ctx context.Context) (*roleSnapshot, error) {
	snap := c.cur.Load()
	if snap != nil {
		if time.Since(snap.loaded) > roleCacheTTL && c.refreshing.CompareAndSwap(false, true) {
			go func() {
				defer c.refreshing.Store(false)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := c.load(ctx); err != nil {
					c.log.Warn("user: roles not refreshed; using the previous ones", "error", err.Error())
				}
			}()
		}
		return snap, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if snap := c.cur.Load(); snap != nil {
		return snap, nil
	}
	return c.load(ctx)
}

func (c *roleCache) load(ctx context.Context) (*roleSnapshot, error) {
	rows, err := c.st.rolePermissions(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("user: loading roles failed", "error", err.Error())
		}
		return nil, errors.Join(errs.ErrUnavailable.WithDetail("roles are not available"), err)
	}
	snap := &roleSnapshot{roles: map[Role]roleDef{}, loaded: time.Now()}
	for _, r := range rows {
		def := snap.roles[Role(r.Name)]
		def.scope = r.Scope
		if r.Permission != "" {
			p := Permission(r.Permission)
			switch {
			case !p.Known():
				c.log.Warn("user: role grants an unknown permission; ignored", "role", r.Name, "permission", r.Permission)
			case p.MerchantScoped() != (r.Scope == scopeMerchant):
				// A platform role must not reach into merchants, nor a merchant role into the platform.
				c.log.Warn("user: role grants a permission outside its scope; ignored", "role", r.Name, "scope", r.Scope, "permission", r.Permission)
			default:
				def.perms = append(def.perms, p)
			}
		}
		snap.roles[Role(r.Name)] = def
	}
	c.cur.Store(snap)
	return snap, nil
}

// grants are the permissions of roles; merchant roles count only with a merchant.
func (s *roleSnapshot) grants(roles []string, merchantID int64) Grants {
	var perms []Permission
	for _, name := range roles {
		def, ok := s.roles[Role(name)]
		if !ok || (def.scope == scopeMerchant && merchantID == 0) {
			continue
		}
		perms = append(perms, def.perms...)
	}
	return NewGrants(merchantID, perms...)
}

// profileCache keeps recently read users for profileTTL, at most profileMax of them.
const (
	profileTTL = time.Minute
	profileMax = 50_000
)

type profileCache struct {
	mu sync.Mutex
	m  map[int64]profileEntry
}

type profileEntry struct {
	u   User
	exp time.Time
}

func (c *profileCache) get(id int64) (User, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || time.Now().After(e.exp) {
		return User{}, false
	}
	return e.u, true
}

func (c *profileCache) put(u User) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[int64]profileEntry{}
	}
	if len(c.m) >= profileMax {
		for k := range c.m { // evict an arbitrary tenth
			delete(c.m, k)
			if len(c.m) < profileMax*9/10 {
				break
			}
		}
	}
	c.m[u.ID] = profileEntry{u: u, exp: time.Now().Add(profileTTL)}
}

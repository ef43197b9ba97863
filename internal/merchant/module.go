package merchant

import (
	"embed"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/idgen"
	mlog "github.com/mallhq/mall/internal/platform/log"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/user"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations of the module: applications, merchants and staff on db.main.
var Migrations = sqldb.Embedded("merchant", migrationFiles, "migrations", sqldb.OnMain)

// Module provides Service, the HTTP routes and the suspension check of every
// /api/v1/merchant/ route (of every module).
var Module = fx.Module("merchant",
	fx.Provide(
		newService,
		func(s *service) Service { return s },
		httpx.AsRoutes(newHandler),
		httpx.AsRouteMiddleware(func(s *service) httpx.RouteMiddleware { return SuspensionMiddleware(s) }),
	),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("module", "merchant") }),
	// The module's own database handles: no other module's call joins its transactions.
	fx.Decorate(func(c *sqldb.Cluster) *sqldb.Cluster { return c.For("merchant") }),
)

// Params is what New needs.
type Params struct {
	fx.In

	DB     *sqldb.Cluster
	IDs    *idgen.Generator
	Users  user.Service
	Outbox outbox.Writer `optional:"true"`
	Log    *slog.Logger  `optional:"true"`
}

// New returns the Service.
func New(p Params) (Service, error) {
	return newService(p)
}

func newService(p Params) (*service, error) {
	if p.DB == nil || p.IDs == nil || p.Users == nil {
		return nil, errors.New("merchant: DB, IDs and Users are required")
	}
	p.DB = p.DB.For("merchant") // the module's own handles, also without fx
	log, ob := mlog.OrDiscard(p.Log), outbox.WriterOr(p.Outbox)
	db := p.DB.Main()
	return &service{log: log, db: db, st: &store{db: db}, ids: p.IDs, outbox: ob, users: p.Users,
		status: newStatusCache(StatusCacheTTL, time.Now), rates: newTTLCache[*int](StatusCacheTTL, time.Now),
		now: time.Now}, nil
}

// RouteOrder runs the suspension check after the login check (user.RouteOrder 5) and
// before rate limiting (10).
const RouteOrder = 7

// MerchantPathPrefix is where the merchant admin API lives; every route under it is
// refused for a suspended merchant.
const MerchantPathPrefix = "/api/v1/merchant/"

// SuspensionMiddleware answers 403 merchant.suspended on every route under
// MerchantPathPrefix when the caller's merchant (from the verified token) is suspended.
// It reads the status through an in-process cache: a suspension made on another replica
// takes effect there within StatusCacheTTL (a few seconds) — that is the staleness bound.
// Callers without a merchant pass; the route's RequirePermission refuses them.
func SuspensionMiddleware(svc Service) httpx.RouteMiddleware {
	s, _ := svc.(*service)
	mw := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ctx := c.Request().Context()
			p, ok := authn.From(ctx)
			if !ok || p.MerchantID == 0 {
				return next(c)
			}
			if s != nil {
				if err := s.checkActive(ctx, p.MerchantID); err != nil {
					return err
				}
			} else if active, err := svc.IsActive(ctx, p.MerchantID); err != nil {
				return err
			} else if !active {
				return ErrSuspended
			}
			return next(c)
		}
	}
	return httpx.RouteMiddleware{Name: "merchant.suspension", Order: RouteOrder, For: func(r httpx.Route) echo.MiddlewareFunc {
		if !strings.HasPrefix(r.Path, MerchantPathPrefix) {
			return nil
		}
		return mw
	}}
}

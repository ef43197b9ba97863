package ratelimit

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
)

// Module provides the *Limiter with the built-in classes plus every Class in the
// "ratelimit.classes" group (see AsClass). It needs redis.UniversalClient (redisx.Module),
// config.Config and *slog.Logger; a prometheus.Registerer is used when provided,
// otherwise prometheus.DefaultRegisterer.
//
// It also contributes the per-route middleware to httpx (group "route_middleware", Order
// RouteOrder): every module route is limited by its class (see ClassFor), and a route
// naming an unknown class fails the boot.
var Module = fx.Module("ratelimit",
	fx.Provide(newFromFx, httpx.AsRouteMiddleware(routeMiddleware)),
)

// RouteOrder places rate limiting before the idempotency guard (idempotency.RouteOrder),
// so a refused request costs no database work and a 429 is never stored as an answer.
const RouteOrder = 10

func routeMiddleware(l *Limiter) httpx.RouteMiddleware {
	return httpx.RouteMiddleware{
		Name:     "ratelimit",
		Order:    RouteOrder,
		For:      l.ForRoute,
		Validate: func(rs []httpx.Route) error { return l.ValidateRoutes(rs...) },
	}
}

// AsClass registers a module's class with the Limiter:
//
//	ratelimit.AsClass(ratelimit.Class{Name: "user.login_account", Limit: ratelimit.PerMinute(5), Fallback: true})
func AsClass(c Class) fx.Option {
	return fx.Supply(fx.Annotate(c, fx.ResultTags(`group:"ratelimit.classes"`)))
}

type fxParams struct {
	fx.In
	Redis      redis.UniversalClient
	Config     config.Config
	Log        *slog.Logger
	Registerer prometheus.Registerer `optional:"true"`
	Classes    []Class               `group:"ratelimit.classes"`
}

func newFromFx(p fxParams) (*Limiter, error) {
	opts := []Option{WithClasses(p.Classes...)}
	if p.Registerer != nil {
		opts = append(opts, WithRegisterer(p.Registerer))
	}
	return New(p.Redis, p.Config.RateLimit, p.Log.With("component", "ratelimit"), opts...)
}

package idempotency

import (
	"log/slog"

	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/worker"
)

// Module provides the *Guard and its janitor (a worker), and contributes the
// guard to every route with Idempotent set (httpx group "route_middleware", Order
// RouteOrder). It needs *sqldb.Cluster, config.Config and *slog.Logger.
var Module = fx.Module("idempotency",
	fx.Provide(newFromFx, httpx.AsRouteMiddleware(routeMiddleware), worker.As((*Guard).Janitor)),
)

// RouteOrder runs the guard after rate limiting (ratelimit.RouteOrder = 10) and before
// the route's own middleware.
const RouteOrder = 20

func routeMiddleware(g *Guard) httpx.RouteMiddleware {
	return httpx.RouteMiddleware{Name: "idempotency", Order: RouteOrder, For: g.ForRoute}
}

// redisPrefix namespaces the keys of the Redis store.
const redisPrefix = "mall:idem:"

type fxParams struct {
	fx.In
	Cluster *sqldb.Cluster
	Redis   redis.UniversalClient `optional:"true"`
	Config  config.Config
	Log     *slog.Logger
}

func newFromFx(p fxParams) (*Guard, error) {
	cfg, log := p.Config, p.Log
	maxBody, err := config.ParseBytes(cfg.HTTP.BodyLimit)
	if err != nil {
		return nil, &config.Error{Key: "http.body_limit", Msg: err.Error()}
	}
	var g *Guard
	switch cfg.Idempotency.Store {
	case "redis":
		if p.Redis == nil {
			return nil, &config.Error{Key: "idempotency.store", Msg: "redis needs the Redis client (redisx.Module)"}
		}
		g = NewRedis(p.Redis, redisPrefix, cfg.Idempotency, log.With("component", "idempotency"), WithMaxBody(maxBody))
	default:
		g = New(p.Cluster.Main(), cfg.Idempotency, log.With("component", "idempotency"), WithMaxBody(maxBody))
	}
	return g, nil
}

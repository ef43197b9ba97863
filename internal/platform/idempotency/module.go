package idempotency

import (
	"context"
	"log/slog"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// Module provides the *Guard, runs its janitor from OnStart to OnStop, and contributes the
// guard to every route with Idempotent set (httpx group "route_middleware", Order
// RouteOrder). It needs *sqldb.Cluster, config.Config and *slog.Logger.
var Module = fx.Module("idempotency",
	fx.Provide(newFromFx, httpx.AsRouteMiddleware(routeMiddleware)),
)

// RouteOrder runs the guard after rate limiting (ratelimit.RouteOrder = 10) and before
// the route's own middleware.
const RouteOrder = 20

func routeMiddleware(g *Guard) httpx.RouteMiddleware {
	return httpx.RouteMiddleware{Name: "idempotency", Order: RouteOrder, For: g.ForRoute}
}

func newFromFx(lc fx.Lifecycle, db *sqldb.Cluster, cfg config.Config, log *slog.Logger) (*Guard, error) {
	maxBody, err := config.ParseBytes(cfg.HTTP.BodyLimit)
	if err != nil {
		return nil, &config.Error{Key: "http.body_limit", Msg: err.Error()}
	}
	g := New(db.Main(), cfg.Idempotency, log.With("component", "idempotency"), WithMaxBody(maxBody))
	var (
		stop context.CancelFunc
		done chan struct{}
	)
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			var ctx context.Context
			ctx, stop = context.WithCancel(context.Background())
			done = make(chan struct{})
			go func() {
				defer close(done)
				g.RunJanitor(ctx)
			}()
			return nil
		},
		OnStop: func(ctx context.Context) error {
			stop()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	})
	return g, nil
}

package realtime

import (
	"log/slog"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
)

// MiddlewareOrder runs TokenMiddleware before the authentication middleware (user, -100).
const MiddlewareOrder = -200

// Module provides *Hub (started with the application, its connections closed with
// StatusGoingAway on stop) and TokenMiddleware. Modules register their /ws/... routes with
// Hub.Handler.
var Module = fx.Module("realtime",
	fx.Provide(
		newModuleHub,
		httpx.AsMiddleware(TokenMiddleware),
		httpx.AsRoutes(newMeRoutes),
	),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("component", "realtime") }),
)

// Params is what the module's hub needs.
type Params struct {
	fx.In

	Config     config.Config
	Redis      redis.UniversalClient
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

func newModuleHub(lc fx.Lifecycle, p Params) (*Hub, error) {
	cfg := ConfigFrom(p.Config.Realtime)
	cfg.TrustedClients = p.Config.RateLimit.TrustedClients
	h, err := NewHub(cfg, p.Redis, p.Registerer, p.Log)
	if err != nil {
		return nil, err
	}
	// Routes using the hub are built after it, so the HTTP server stops (and stops
	// accepting upgrades) before the hub closes the connections it holds.
	lc.Append(fx.Hook{OnStart: h.Start, OnStop: h.Close})
	return h, nil
}

// TokenMiddleware hands a WebSocket handshake's access token (?access_token= or
// Sec-WebSocket-Protocol "bearer, <token>") to the authentication middleware as an
// Authorization header, so the token is verified (signature, expiry, deny-list) by the one
// code path every other request uses. Other requests pass untouched.
func TokenMiddleware() httpx.Middleware {
	return httpx.Middleware{Name: "realtime.token", Order: MiddlewareOrder, Func: func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			_ = liftToken(c.Request())
			return next(c)
		}
	}}
}

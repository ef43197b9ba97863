package httpx

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/platform/config"
)

// Module provides *Server and runs it with the application: the listener is bound in
// OnStart and drained in OnStop.
//
// It needs config.Config, *slog.Logger, prometheus.Registerer and prometheus.Gatherer
// (provide the process's *prometheus.Registry as both), and optionally a
// trace.TracerProvider. Modules contribute to the groups "routes" (AsRoutes),
// "readiness" (AsCheck), "middleware" (AsMiddleware) and "route_middleware"
// (AsRouteMiddleware).
var Module = fx.Module("httpx",
	fx.Provide(New),
	fx.Invoke(run, runDebug),
)

// Params is what New takes from the fx graph.
type Params struct {
	fx.In

	Config     config.Config
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer

	Routes     []Routes     `group:"routes"`
	Checks     []Check      `group:"readiness"`
	Middleware []Middleware `group:"middleware"`
	// RouteMiddleware derives per-route middleware (rate-limit class, idempotency).
	RouteMiddleware []RouteMiddleware `group:"route_middleware"`

	TracerProvider trace.TracerProvider `optional:"true"`
}

// New builds the Server from the fx graph.
func New(p Params) (*Server, error) {
	return NewServer(ServerConfig{
		HTTP:            p.Config.HTTP,
		ShutdownTimeout: p.Config.App.ShutdownTimeout,
		DrainDelay:      p.Config.HTTP.DrainDelay,
		Production:      p.Config.App.IsProduction(),
		Logger:          p.Logger,
		Registerer:      p.Registerer,
		Gatherer:        p.Gatherer,
		Routes:          Collect(p.Routes),
		Checks:          p.Checks,
		Middleware:      p.Middleware,
		RouteMiddleware: p.RouteMiddleware,
		TracerProvider:  p.TracerProvider,
	})
}

func run(lc fx.Lifecycle, s *Server, sd fx.Shutdowner, log *slog.Logger) {
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			if err := s.Start(); err != nil {
				return err
			}
			log.Info("http server listening", "addr", s.Addr().String(), "tls", s.tls)
			if a := s.OpsAddr(); a != nil {
				log.Info("ops listener serving /metrics and /readyz", "addr", a.String())
			}
			// Serve only returns early when the listener fails; then the process must
			// stop rather than run on without HTTP.
			go func() {
				<-s.Done()
				if err := s.Err(); err != nil {
					log.Error("http server stopped", "error", err.Error())
					_ = sd.Shutdown(fx.ExitCode(1))
				}
			}()
			return nil
		},
		OnStop: s.Shutdown,
	})
}

// AsCheck annotates a constructor returning Check into the "readiness" group:
//
//	fx.Provide(httpx.AsCheck(func(db *sqldb.Cluster) httpx.Check {
//		return httpx.Check{Name: "mysql", Check: db.Ping}
//	}))
func AsCheck(f any) any {
	return fx.Annotate(f, fx.ResultTags(`group:"readiness"`))
}

// AsMiddleware annotates a constructor returning Middleware into the "middleware" group.
func AsMiddleware(f any) any {
	return fx.Annotate(f, fx.ResultTags(`group:"middleware"`))
}

// AsRouteMiddleware annotates a constructor returning RouteMiddleware into the
// "route_middleware" group:
//
//	fx.Provide(httpx.AsRouteMiddleware(func(l *ratelimit.Limiter) httpx.RouteMiddleware {
//		return httpx.RouteMiddleware{Name: "ratelimit", Order: 10, For: l.ForRoute,
//			Validate: func(rs []httpx.Route) error { return l.ValidateRoutes(rs...) }}
//	}))
func AsRouteMiddleware(f any) any {
	return fx.Annotate(f, fx.ResultTags(`group:"route_middleware"`))
}

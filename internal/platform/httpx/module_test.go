package httpx_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	mlog "github.com/mallhq/mall/internal/platform/log"
)

type pingRoutes struct{}

func (pingRoutes) Routes() []httpx.Route {
	return []httpx.Route{{
		Method: http.MethodGet, Path: "/api/v1/ping", Summary: "Ping", Tags: []string{"ping"},
		Handler: func(c echo.Context) error { return c.String(http.StatusOK, "pong") },
	}}
}

// The module wires groups from other modules exactly as the composition root will.
func TestModuleWiresGroupsAndLifecycle(t *testing.T) {
	cfg := config.Config{HTTP: testHTTPConfig(), App: config.App{ShutdownTimeout: 5 * time.Second}}
	cfg.HTTP.OpsToken = testOpsToken
	var srv *httpx.Server
	app := fxtest.New(t,
		fx.NopLogger,
		fx.Supply(cfg),
		fx.Provide(
			func() *slog.Logger { return mlog.NewWriter(io.Discard, config.Log{Level: "info"}) },
			// What the composition root provides: one registry, seen as both views.
			fx.Annotate(prometheus.NewRegistry,
				fx.As(fx.Self()), fx.As(new(prometheus.Registerer)), fx.As(new(prometheus.Gatherer))),
			httpx.AsRoutes(func() pingRoutes { return pingRoutes{} }),
			httpx.AsCheck(func() httpx.Check {
				return httpx.Check{Name: "db", Check: func(context.Context) error { return nil }}
			}),
			httpx.AsRouteMiddleware(func() httpx.RouteMiddleware {
				return httpx.RouteMiddleware{Name: "derived", For: func(r httpx.Route) echo.MiddlewareFunc {
					return func(next echo.HandlerFunc) echo.HandlerFunc {
						return func(c echo.Context) error {
							c.Response().Header().Set("X-Derived-For", r.Path)
							return next(c)
						}
					}
				}}
			}),
			httpx.AsMiddleware(func() httpx.Middleware {
				return httpx.Middleware{Name: "tag", Order: 1, Func: func(next echo.HandlerFunc) echo.HandlerFunc {
					return func(c echo.Context) error {
						c.Response().Header().Set("X-From-Group", "yes")
						return next(c)
					}
				}}
			}),
		),
		httpx.Module,
		fx.Populate(&srv),
	)
	app.RequireStart()
	base := "http://" + srv.Addr().String()

	res, err := http.Get(base + "/api/v1/ping")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != 200 || string(body) != "pong" || res.Header.Get("X-From-Group") != "yes" ||
		res.Header.Get("X-Derived-For") != "/api/v1/ping" {
		t.Fatalf("ping = %d %q, middleware headers %v", res.StatusCode, body, res.Header)
	}
	// The readiness checks of the group, listed for the ops token.
	req, _ := http.NewRequest(http.MethodGet, base+"/readyz", nil)
	req.Header.Set("Authorization", "Bearer "+testOpsToken)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	_ = res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `"name":"db"`) {
		t.Fatalf("/readyz = %d %s", res.StatusCode, body)
	}
	if err := httpx.CheckOpenAPI(srv.Echo(), srv.OpenAPI()); err != nil {
		t.Fatal(err)
	}

	app.RequireStop()
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("server still answers after the app stopped")
	}
}

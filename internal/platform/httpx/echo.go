// Package httpx is Mall's HTTP platform: the echo instance and its middleware chain,
// problem+json errors, JSON binding and validation, string IDs and paging, the OpenAPI
// document built from the route table, operational endpoints and the server lifecycle.
package httpx

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/mallhq/mall/internal/platform/config"
)

// Option adjusts NewEcho.
type Option func(*options)

type options struct {
	tracerProvider trace.TracerProvider
	middleware     []Middleware
}

// WithTracerProvider sets where request spans go. Without it an SDK provider with no
// exporter is used: spans still get real trace IDs for logs and propagation.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

// WithMiddleware adds global middleware (rate limiting, authentication), run by Order.
func WithMiddleware(mw ...Middleware) Option {
	return func(o *options) { o.middleware = append(o.middleware, mw...) }
}

// NewEcho returns an echo instance with Mall's middleware chain and error handler and no
// routes (add them with Register). The chain, outermost first:
//
//	route resolution -> request ID -> tracing -> metrics -> access log ->
//	error handling -> panic recovery -> security headers -> CORS -> body limit ->
//	Middleware by Order -> (per route) RouteMiddleware by Order -> Route.Middleware
//
// Errors are answered at the "error handling" step so everything outside it observes the
// final status; recovery sits inside it so a panic anywhere below is answered as a 500.
// reg may be nil (metrics are then collected but not exported).
func NewEcho(cfg config.HTTP, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*echo.Echo, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	limit, err := config.ParseBytes(cfg.BodyLimit)
	if err != nil {
		return nil, fmt.Errorf("http.body_limit: %w", err)
	}
	trusted, err := parseTrusted(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	for _, mw := range o.middleware {
		if mw.Func == nil {
			return nil, fmt.Errorf("middleware %q: Func is nil", mw.Name)
		}
	}
	tp := o.tracerProvider
	if tp == nil {
		tp = sdktrace.NewTracerProvider()
	}
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = ErrorHandler(log)
	e.IPExtractor = trusted.ipExtractor()
	e.Validator = structValidator{}

	e.Use(
		resolveRoute(),
		requestID(),
		tracing(tp, prop),
		m.middleware(),
		accessLog(log),
		handleErrors(),
		recoverPanics(),
		securityHeaders(trusted),
	)
	if len(cfg.CORSOrigins) > 0 {
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins: cfg.CORSOrigins,
			AllowMethods: []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
				http.MethodPatch, http.MethodDelete},
			AllowHeaders: []string{echo.HeaderAuthorization, echo.HeaderContentType,
				"Idempotency-Key", HeaderRequestID, "Traceparent", "Tracestate"},
			ExposeHeaders: []string{HeaderRequestID, echo.HeaderRetryAfter, echo.HeaderLocation},
			// Tokens travel in the Authorization header, not cookies: no credentials mode.
			MaxAge: 600,
		}))
	}
	e.Use(bodyLimit(limit))
	mws := slices.Clone(o.middleware)
	slices.SortStableFunc(mws, func(a, b Middleware) int {
		return cmp.Or(cmp.Compare(a.Order, b.Order), cmp.Compare(a.Name, b.Name))
	})
	for _, mw := range mws {
		e.Use(skipOpsPaths(mw.Func))
	}
	return e, nil
}

// tokenOpsPaths take the ops token (http.ops_token) in their Authorization header, not an
// access token: the modules' middleware (authentication above all) leaves them alone.
var tokenOpsPaths = map[string]bool{"/readyz": true, "/metrics": true}

func skipOpsPaths(mw echo.MiddlewareFunc) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		wrapped := mw(next)
		return func(c echo.Context) error {
			if tokenOpsPaths[RouteOf(c)] {
				return next(c)
			}
			return wrapped(c)
		}
	}
}

// structValidator lets handlers call c.Validate(v) with the same rules as Bind.
type structValidator struct{}

func (structValidator) Validate(v any) error { return Validate(v) }

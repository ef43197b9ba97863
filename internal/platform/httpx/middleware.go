package httpx

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/mallhq/mall/internal/platform/errs"
	mlog "github.com/mallhq/mall/internal/platform/log"
	"github.com/mallhq/mall/internal/platform/metrics"
	"github.com/mallhq/mall/internal/platform/text"
)

// Middleware is a global middleware contributed by another package through the fx group
// "middleware" (see AsMiddleware). The chain runs them by ascending Order (then Name),
// after the platform's own middleware (request ID, tracing, metrics, access log,
// recovery, security headers, CORS, body limit) and before each route's own middleware.
type Middleware struct {
	Name  string
	Order int
	Func  echo.MiddlewareFunc
}

// HeaderRequestID carries the request ID in both directions.
const HeaderRequestID = echo.HeaderXRequestID

// Keys in echo.Context.
const (
	ctxRoute     = "httpx.route"      // the matched Route.Path, set by resolveRoute
	ctxBodyLimit = "httpx.body_limit" // int64, set by the body limit middleware
	ctxError     = "httpx.error"      // the handled error, for the tracing span
)

// routeUnmatched labels requests that matched no registered route, so scanners probing
// random paths cannot blow up metric cardinality.
const routeUnmatched = "unmatched"

// RouteOf returns the route template (Route.Path) that serves c, or "unmatched" when the
// router found none. Available to every middleware in NewEcho's chain.
func RouteOf(c echo.Context) string {
	if r, ok := c.Get(ctxRoute).(string); ok {
		return r
	}
	return routeUnmatched
}

// resolveRoute records the matched route template first thing, so every later middleware
// (tracing, metrics, the access log, a global rate limiter rejecting early) labels the
// request by template. echo leaves its NotFoundHandler in place when nothing matched; a
// 405 keeps the template of the path that did match.
func resolveRoute() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Handler()
			if h != nil && c.Path() != "" &&
				reflect.ValueOf(h).Pointer() != reflect.ValueOf(echo.NotFoundHandler).Pointer() {
				c.Set(ctxRoute, c.Path())
			}
			return next(c)
		}
	}
}

func bodyLimitOf(c echo.Context) int64 {
	if n, ok := c.Get(ctxBodyLimit).(int64); ok && n > 0 {
		return n
	}
	return defaultBodyLimit
}

// requestID accepts a sane incoming X-Request-ID (so nginx's or a client's ID follows the
// request through our logs) and generates one otherwise.
func requestID() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			id := req.Header.Get(HeaderRequestID)
			if !saneRequestID(id) {
				id = rand.Text()
			}
			c.Response().Header().Set(HeaderRequestID, id)
			c.SetRequest(req.WithContext(mlog.WithRequestID(req.Context(), id)))
			return next(c)
		}
	}
}

// saneRequestID bounds what we copy into logs and headers: short, and only characters
// that cannot forge log structure or headers.
func saneRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z') || ('0' <= b && b <= '9') ||
			strings.IndexByte("-_.:+/=@", b) >= 0 {
			continue
		}
		return false
	}
	return true
}

// tracing starts a server span per request named by method and route template,
// continuing a W3C traceparent from the client.
func tracing(tp trace.TracerProvider, prop propagation.TextMapPropagator) echo.MiddlewareFunc {
	tracer := tp.Tracer("github.com/mallhq/mall/internal/platform/httpx")
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			ctx := prop.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
			ctx, span := tracer.Start(ctx, methodLabel(req.Method)+" "+RouteOf(c),
				trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(
					semconv.HTTPRequestMethodKey.String(req.Method),
					semconv.HTTPRoute(RouteOf(c)),
					semconv.URLPath(req.URL.Path),
					attribute.String("mall.request_id", mlog.RequestID(ctx)),
				))
			defer span.End()
			c.SetRequest(req.WithContext(ctx))

			err := next(c)

			status := c.Response().Status
			span.SetAttributes(semconv.HTTPResponseStatusCode(status), semconv.ClientAddress(c.RealIP()))
			if status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(status))
				if herr, ok := c.Get(ctxError).(error); ok {
					span.RecordError(herr)
				}
			}
			return err
		}
	}
}

// metrics holds the Prometheus collectors of the HTTP layer.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mall_http_requests_total",
			Help: "HTTP requests served, by method, route template and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mall_http_request_duration_seconds",
			Help:    "HTTP request latency, by method and route template.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mall_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.requests, err = metrics.Register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = metrics.Register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.inFlight, err = metrics.Register(reg, m.inFlight); err != nil {
		return nil, err
	}
	return m, nil
}

// knownMethods bounds the method label; anything else is "other".
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

func methodLabel(m string) string {
	if knownMethods[m] {
		return m
	}
	return "other"
}

func (m *httpMetrics) middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			m.inFlight.Inc()
			defer m.inFlight.Dec()
			start := time.Now()
			err := next(c)
			method, route := methodLabel(c.Request().Method), RouteOf(c)
			m.requests.WithLabelValues(method, route, strconv.Itoa(c.Response().Status)).Inc()
			m.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
			return err
		}
	}
}

// quietPaths are probed every few seconds by load balancers and Prometheus; their access
// log lines go to debug so they do not drown real traffic.
var quietPaths = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// accessLog writes one JSON line per request. request_id and trace_id come from the
// context through the log package's handler.
func accessLog(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			req, res := c.Request(), c.Response()
			route := RouteOf(c)
			level := slog.LevelInfo
			if quietPaths[route] {
				level = slog.LevelDebug
			}
			log.LogAttrs(req.Context(), level, "http request",
				slog.String("method", req.Method),
				slog.String("route", route),
				slog.String("path", text.Ellipsis(req.URL.Path, 512)),
				slog.Int("status", res.Status),
				slog.Int64("bytes", res.Size),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.String("remote_ip", c.RealIP()),
			)
			return err
		}
	}
}

// handleErrors hands an error to echo's HTTPErrorHandler (ErrorHandler) right here, so
// the middleware outside it (access log, metrics, tracing) sees the final status. It
// returns nil: the error has been answered and must not be handled twice.
func handleErrors() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			if err != nil {
				c.Set(ctxError, err)
				c.Error(err)
			}
			return nil
		}
	}
}

// PanicError is a recovered panic; ErrorHandler answers it with a bare 500 and logs the
// value and the stack once.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// recoverPanics turns a panic in a handler or middleware into a *PanicError.
func recoverPanics() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				r := recover()
				if r == nil {
					return
				}
				if r == http.ErrAbortHandler {
					// net/http's signal to abort the response silently; let it through.
					panic(r)
				}
				err = &PanicError{Value: r, Stack: debug.Stack()}
			}()
			return next(c)
		}
	}
}

// API responses are JSON: nothing in them may run, be framed or load anything.
const apiCSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// securityHeaders sets headers that make responses inert in a browser. HSTS is sent only
// when the client reached us over TLS (directly, or per X-Forwarded-Proto from a trusted
// proxy), because browsers ignore it over plain HTTP anyway.
func securityHeaders(trusted *trustedNets) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			h.Set(echo.HeaderXContentTypeOptions, "nosniff")
			h.Set(echo.HeaderXFrameOptions, "DENY")
			h.Set(echo.HeaderReferrerPolicy, "no-referrer")
			h.Set(echo.HeaderContentSecurityPolicy, apiCSP)
			req := c.Request()
			if req.TLS != nil || (trusted.peerTrusted(req) &&
				strings.EqualFold(req.Header.Get(echo.HeaderXForwardedProto), "https")) {
				h.Set(echo.HeaderStrictTransportSecurity, "max-age=31536000")
			}
			return next(c)
		}
	}
}

// bodyLimit rejects bodies larger than limit: at once from Content-Length, and while
// reading for chunked bodies (Bind maps the read error to 413).
func bodyLimit(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			if req.ContentLength > limit {
				return errs.ErrPayloadTooLarge.WithDetail("the request body exceeds %d bytes", limit)
			}
			if req.Body != nil && req.Body != http.NoBody {
				// The underlying writer, so net/http can close the connection after a 413.
				req.Body = http.MaxBytesReader(c.Response().Writer, req.Body, limit)
			}
			c.Set(ctxBodyLimit, limit)
			return next(c)
		}
	}
}

// trustedNets is the parsed http.trusted_proxies list.
type trustedNets struct{ nets []*net.IPNet }

func parseTrusted(cidrs []string) (*trustedNets, error) {
	t := &trustedNets{}
	for _, s := range cidrs {
		_, n, err := net.ParseCIDR(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("http.trusted_proxies: %q is not a CIDR: %w", s, err)
		}
		t.nets = append(t.nets, n)
	}
	return t, nil
}

func (t *trustedNets) peerTrusted(req *http.Request) bool {
	if len(t.nets) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		host = req.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	for _, n := range t.nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// ipExtractor reads X-Forwarded-For only when the direct peer is a trusted proxy, and then
// takes the right-most address that is not itself trusted. echo trusts loopback, link-local
// and private ranges by default; all of that is switched off so only the configured list
// counts.
func (t *trustedNets) ipExtractor() echo.IPExtractor {
	if len(t.nets) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range t.nets {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

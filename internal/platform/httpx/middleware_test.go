package httpx_test

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/httpx"
	mlog "github.com/mallhq/mall/internal/platform/log"
)

func TestRequestIDPropagationAndGeneration(t *testing.T) {
	h := start(t, testRoutes())
	tests := []struct {
		name     string
		give     string
		wantSame bool
	}{
		{name: "sane incoming is kept", give: "req-abc_123.XYZ:9", wantSame: true},
		{name: "uuid is kept", give: "9b2f3c4e-1d2a-4b5c-8d9e-0f1a2b3c4d5e", wantSame: true},
		{name: "absent is generated"},
		{name: "spaces are replaced", give: "bad id"},
		{name: "quotes are replaced", give: `x"}{"level":"ERROR`},
		{name: "too long is replaced", give: strings.Repeat("a", 129)},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var headers []string
			if tt.give != "" {
				headers = []string{"X-Request-ID", tt.give}
			}
			res := h.do(t, http.MethodGet, "/things/1", nil, headers...)
			got := res.header.Get("X-Request-ID")
			if tt.wantSame && got != tt.give {
				t.Fatalf("X-Request-ID = %q, want %q", got, tt.give)
			}
			if !tt.wantSame && (got == "" || got == tt.give || len(got) > 128) {
				t.Fatalf("X-Request-ID = %q, want a generated one", got)
			}
			if seen[got] && !tt.wantSame {
				t.Fatalf("generated ID %q repeated", got)
			}
			seen[got] = true
			recs := h.logs.waitRecords(t, 1, func(r map[string]any) bool {
				return r["msg"] == "http request" && r["request_id"] == got
			})
			if len(recs) != 1 {
				t.Fatalf("access log lines with request_id %q: %d", got, len(recs))
			}
		})
	}
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestAccessLogLineIsStructured(t *testing.T) {
	h := start(t, testRoutes())
	res := h.do(t, http.MethodGet, "/things/77?x=1", nil, "X-Request-ID", "log-test-1")
	if res.status != http.StatusOK {
		t.Fatalf("status %d", res.status)
	}
	recs := h.logs.waitRecords(t, 1, func(r map[string]any) bool { return r["request_id"] == "log-test-1" })
	if len(recs) != 1 {
		t.Fatalf("want one access log line, got %v", recs)
	}
	r := recs[0]
	want := map[string]any{
		"level": "INFO", "msg": "http request", "method": "GET", "route": "/things/:id",
		"path": "/things/77", "status": float64(200), "bytes": float64(len(res.body)), "remote_ip": "127.0.0.1",
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s = %v (%T), want %v", k, r[k], r[k], v)
		}
	}
	if _, ok := r["duration_ms"].(float64); !ok {
		t.Errorf("duration_ms missing: %v", r)
	}
	if tid, _ := r["trace_id"].(string); !hex32.MatchString(tid) {
		t.Errorf("trace_id = %q, want 32 hex digits", tid)
	}
}

func TestTraceparentIsContinued(t *testing.T) {
	h := start(t, testRoutes())
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	h.do(t, http.MethodGet, "/things/5", nil,
		"Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01", "X-Request-ID", "traced")
	h.do(t, http.MethodGet, "/things/5", nil, "X-Request-ID", "untraced")
	recs := h.logs.waitRecords(t, 2, func(r map[string]any) bool { return r["msg"] == "http request" })
	byID := map[any]map[string]any{}
	for _, r := range recs {
		byID[r["request_id"]] = r
	}
	if got := byID["traced"]["trace_id"]; got != traceID {
		t.Fatalf("trace_id = %v, want the client's %s", got, traceID)
	}
	if got, _ := byID["untraced"]["trace_id"].(string); !hex32.MatchString(got) || got == traceID {
		t.Fatalf("untraced request trace_id = %q, want a new one", got)
	}
}

func TestSecurityHeaders(t *testing.T) {
	routes := testRoutes()
	plain := start(t, routes)
	for _, path := range []string{"/things/1", "/no/such", "/boom"} {
		res := plain.do(t, http.MethodGet, path, nil)
		for k, v := range map[string]string{
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Referrer-Policy":         "no-referrer",
			"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
		} {
			if got := res.header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", path, k, got, v)
			}
		}
		if hsts := res.header.Get("Strict-Transport-Security"); hsts != "" {
			t.Errorf("%s: HSTS over plain HTTP: %q", path, hsts)
		}
	}
	// X-Forwarded-Proto is believed only from a trusted proxy.
	if hsts := plain.do(t, http.MethodGet, "/things/1", nil, "X-Forwarded-Proto", "https").
		header.Get("Strict-Transport-Security"); hsts != "" {
		t.Errorf("HSTS from an untrusted X-Forwarded-Proto: %q", hsts)
	}
	behindProxy := start(t, routes, func(c *httpx.ServerConfig) { c.HTTP.TrustedProxies = []string{"127.0.0.1/32"} })
	if hsts := behindProxy.do(t, http.MethodGet, "/things/1", nil, "X-Forwarded-Proto", "https").
		header.Get("Strict-Transport-Security"); !strings.HasPrefix(hsts, "max-age=") {
		t.Errorf("HSTS behind a trusted TLS proxy = %q", hsts)
	}
}

func TestCORS(t *testing.T) {
	const allowed = "https://shop.example.com"
	h := start(t, testRoutes(), func(c *httpx.ServerConfig) { c.HTTP.CORSOrigins = []string{allowed} })
	tests := []struct {
		name       string
		method     string
		origin     string
		preflight  bool
		wantOrigin string
	}{
		{name: "allowed simple", method: http.MethodGet, origin: allowed, wantOrigin: allowed},
		{name: "denied simple", method: http.MethodGet, origin: "https://evil.example.com"},
		{name: "denied subdomain", method: http.MethodGet, origin: "https://x.shop.example.com"},
		{name: "allowed preflight", method: http.MethodOptions, origin: allowed, preflight: true, wantOrigin: allowed},
		{name: "denied preflight", method: http.MethodOptions, origin: "https://evil.example.com", preflight: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			headers := []string{"Origin", tt.origin}
			if tt.preflight {
				headers = append(headers, "Access-Control-Request-Method", "POST",
					"Access-Control-Request-Headers", "content-type,authorization,idempotency-key")
			}
			res := h.do(t, tt.method, "/things", nil, headers...)
			if got := res.header.Get("Access-Control-Allow-Origin"); got != tt.wantOrigin {
				t.Fatalf("Allow-Origin = %q, want %q", got, tt.wantOrigin)
			}
			if tt.preflight && tt.wantOrigin != "" {
				if res.status != http.StatusNoContent {
					t.Fatalf("preflight status = %d", res.status)
				}
				if m := res.header.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "POST") {
					t.Fatalf("Allow-Methods = %q", m)
				}
				if hd := res.header.Get("Access-Control-Allow-Headers"); !strings.Contains(hd, "Idempotency-Key") {
					t.Fatalf("Allow-Headers = %q", hd)
				}
			}
			if !tt.preflight && tt.wantOrigin != "" {
				if ex := res.header.Get("Access-Control-Expose-Headers"); !strings.Contains(ex, "X-Request-Id") {
					t.Fatalf("Expose-Headers = %q", ex)
				}
			}
		})
	}

	off := start(t, testRoutes())
	for _, m := range []string{http.MethodGet, http.MethodOptions} {
		res := off.do(t, m, "/things", nil, "Origin", allowed, "Access-Control-Request-Method", "POST")
		for k := range res.header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Fatalf("CORS off but %s %s answered %s", m, "/things", k)
			}
		}
	}
}

func TestClientIPFromTrustedProxiesOnly(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string
		xff     string
		want    string
	}{
		{name: "no trusted proxies ignores XFF", xff: "203.0.113.7", want: "127.0.0.1"},
		{name: "loopback is not trusted unless configured", trusted: []string{"10.0.0.0/8"}, xff: "203.0.113.7",
			want: "127.0.0.1"},
		{name: "trusted peer: XFF client", trusted: []string{"127.0.0.1/32"}, xff: "203.0.113.7", want: "203.0.113.7"},
		{name: "trusted chain: right-most untrusted", trusted: []string{"127.0.0.1/32", "10.0.0.0/8"},
			xff: "198.51.100.1, 203.0.113.7, 10.1.2.3", want: "203.0.113.7"},
		{name: "trusted peer, no XFF", trusted: []string{"127.0.0.1/32"}, want: "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, testRoutes(), func(c *httpx.ServerConfig) { c.HTTP.TrustedProxies = tt.trusted })
			var headers []string
			if tt.xff != "" {
				headers = []string{"X-Forwarded-For", tt.xff}
			}
			res := h.do(t, http.MethodGet, "/ip", nil, headers...)
			if string(res.body) != tt.want {
				t.Fatalf("RealIP = %q, want %q", res.body, tt.want)
			}
		})
	}
}

func TestMetricsUseRouteTemplate(t *testing.T) {
	h := start(t, testRoutes())
	h.do(t, http.MethodGet, "/things/123", nil)
	h.do(t, http.MethodGet, "/things/456", nil)
	h.do(t, http.MethodGet, "/random/scanner/path", nil)
	h.do(t, http.MethodGet, "/fail/conflict", nil)
	res := h.do(t, http.MethodGet, "/metrics", nil)
	if res.status != http.StatusOK {
		t.Fatalf("/metrics status %d", res.status)
	}
	body := string(res.body)
	for _, want := range []string{
		`mall_http_requests_total{method="GET",route="/things/:id",status="200"} 2`,
		`mall_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`mall_http_requests_total{method="GET",route="/fail/:kind",status="409"} 1`,
		`mall_http_request_duration_seconds_count{method="GET",route="/things/:id"} 2`,
		`mall_http_requests_in_flight 1`, // the /metrics request itself
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, raw := range []string{"/things/123", "/random/scanner/path"} {
		if strings.Contains(body, raw) {
			t.Errorf("metrics contain raw path %q", raw)
		}
	}
}

// Global middleware runs in Order; an early rejection is still answered as a problem and
// labelled with the route template.
func TestGlobalMiddlewareOrderAndRejection(t *testing.T) {
	mark := func(tag string) echo.MiddlewareFunc {
		return func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				c.Response().Header().Add("X-Order", tag)
				if c.Request().Header.Get("X-Reject") == tag {
					return errs.ErrRateLimited.WithRetryAfter(3)
				}
				return next(c)
			}
		}
	}
	h := start(t, testRoutes(), func(c *httpx.ServerConfig) {
		c.Middleware = []httpx.Middleware{
			{Name: "auth", Order: 20, Func: mark("auth")},
			{Name: "ratelimit", Order: 10, Func: mark("ratelimit")},
		}
	})
	res := h.do(t, http.MethodGet, "/things/1", nil)
	if got := res.header.Values("X-Order"); strings.Join(got, ",") != "ratelimit,auth" {
		t.Fatalf("order = %v, want ratelimit,auth", got)
	}
	res = h.do(t, http.MethodGet, "/things/1", nil, "X-Reject", "ratelimit", "X-Request-ID", "rejected")
	if res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") != "3" {
		t.Fatalf("rejection: %d %v", res.status, res.header)
	}
	if p := res.problem(t); p.Code != "rate_limited" {
		t.Fatalf("code %q", p.Code)
	}
	recs := h.logs.waitRecords(t, 1, func(r map[string]any) bool { return r["request_id"] == "rejected" })
	if len(recs) != 1 || recs[0]["route"] != "/things/:id" || recs[0]["status"] != float64(429) {
		t.Fatalf("access log for rejected request = %v", recs)
	}
}

// Route middleware is derived from each module route's metadata; operational routes get
// none; Validate failures stop the server from being built.
func TestRouteMiddlewareFromMetadata(t *testing.T) {
	var seen []string
	limiter := httpx.RouteMiddleware{
		Name: "ratelimit", Order: 10,
		For: func(r httpx.Route) echo.MiddlewareFunc {
			seen = append(seen, r.Method+" "+r.Path)
			if r.RateLimit == "" {
				return nil
			}
			return func(next echo.HandlerFunc) echo.HandlerFunc {
				return func(c echo.Context) error {
					c.Response().Header().Add("X-Derived", "ratelimit:"+r.RateLimit)
					return next(c)
				}
			}
		},
	}
	idem := httpx.RouteMiddleware{
		Name: "idempotency", Order: 20,
		For: func(r httpx.Route) echo.MiddlewareFunc {
			if !r.Idempotent {
				return nil
			}
			return func(next echo.HandlerFunc) echo.HandlerFunc {
				return func(c echo.Context) error {
					c.Response().Header().Add("X-Derived", "idempotency")
					if c.Request().Header.Get("Idempotency-Key") == "" {
						return errs.ErrIdempotencyMissing
					}
					return next(c)
				}
			}
		},
	}
	h := start(t, testRoutes(), func(c *httpx.ServerConfig) {
		c.RouteMiddleware = []httpx.RouteMiddleware{idem, limiter}
	})
	res := h.do(t, http.MethodPost, "/things", strings.NewReader(validThing), "Content-Type", "application/json")
	if got := strings.Join(res.header.Values("X-Derived"), ","); got != "ratelimit:default,idempotency" {
		t.Fatalf("derived chain = %q, want ratelimit:default,idempotency", got)
	}
	if p := res.problem(t); p.Code != "idempotency.key_required" {
		t.Fatalf("code = %q", p.Code)
	}
	if got := h.do(t, http.MethodGet, "/things/1", nil).header.Values("X-Derived"); len(got) != 0 {
		t.Fatalf("route without metadata got %v", got)
	}
	for _, s := range seen {
		if strings.HasPrefix(s, "GET /healthz") || strings.HasPrefix(s, "GET /readyz") || strings.HasPrefix(s, "GET /metrics") {
			t.Fatalf("operational route %s was offered to route middleware", s)
		}
	}

	_, err := httpx.NewServer(httpx.ServerConfig{
		HTTP: testHTTPConfig(), Logger: mlog.NewWriter(&logBuffer{}, config.Log{Level: "info"}),
		Registerer: prometheus.NewRegistry(), Gatherer: prometheus.NewRegistry(), Routes: testRoutes(),
		RouteMiddleware: []httpx.RouteMiddleware{{Name: "ratelimit", For: limiter.For,
			Validate: func([]httpx.Route) error { return errors.New(`unknown class "defualt"`) }}},
	})
	if err == nil || !strings.Contains(err.Error(), "defualt") {
		t.Fatalf("NewServer with a failing Validate = %v", err)
	}
}

package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/redisx"
	"github.com/mallhq/mall/internal/platform/redisx/redisxtest"
)

const testUserHeader = "X-Test-User"

func sharedRedis(t *testing.T) *redis.Client { return redisxtest.Client(t) }

type fixture struct {
	lim *Limiter
	reg *prometheus.Registry
	url string
}

func newFixture(t *testing.T, rdb redis.UniversalClient, cfg config.RateLimit, opts ...Option) *fixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts = append([]Option{WithPrefix(redisxtest.Prefix(t)), WithRegisterer(reg)}, opts...)
	lim, err := New(rdb, cfg, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.HTTPErrorHandler = httpx.ErrorHandler(slog.New(slog.DiscardHandler))
	e.Use(fakeAuthn)
	ok := func(c echo.Context) error { return c.String(http.StatusOK, "ok") }
	for _, r := range []httpx.Route{
		{Method: http.MethodGet, Path: "/api/v1/products/:id"},
		{Method: http.MethodPost, Path: "/api/v1/auth/login"},
	} {
		var mws []echo.MiddlewareFunc
		if mw := lim.ForRoute(r); mw != nil {
			mws = append(mws, mw)
		}
		e.Add(r.Method, r.Path, ok, mws...)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return &fixture{lim: lim, reg: reg, url: srv.URL}
}

func fakeAuthn(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s := c.Request().Header.Get(testUserHeader); s != "" {
			id, _ := strconv.ParseInt(s, 10, 64)
			req := c.Request()
			c.SetRequest(req.WithContext(authn.With(req.Context(), authn.Principal{UserID: id})))
		}
		return next(c)
	}
}

type caller struct {
	ip   string
	user int64
}

func (f *fixture) do(t *testing.T, method, path string, who caller) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(echo.HeaderXRealIP, who.ip) // echo's default extractor trusts it (no IPExtractor set)
	if who.user != 0 {
		req.Header.Set(testUserHeader, strconv.FormatInt(who.user, 10))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Code string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	resp.Header.Set("X-Test-Code", body.Code)
	return resp
}

// burst sends n requests and returns how many were refused, checking every refusal.
func (f *fixture) burst(t *testing.T, method, path string, who caller, n int) (refused int) {
	t.Helper()
	for range n {
		resp := f.do(t, method, path, who)
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			refused++
			if ra, err := strconv.Atoi(resp.Header.Get(echo.HeaderRetryAfter)); err != nil || ra < 1 {
				t.Fatalf("429 with Retry-After %q", resp.Header.Get(echo.HeaderRetryAfter))
			}
			if code := resp.Header.Get("X-Test-Code"); code != errs.ErrRateLimited.Code {
				t.Fatalf("429 with code %q", code)
			}
		default:
			t.Fatalf("%s %s: status %d", method, path, resp.StatusCode)
		}
	}
	return refused
}

func TestBurstBeyondTheLimitIsRefused(t *testing.T) {
	f := newFixture(t, sharedRedis(t), config.RateLimit{Enabled: true, DefaultPerMinute: 5, AuthPerMinute: 3})
	who := caller{ip: "203.0.113.1"}
	for i := range 5 {
		resp := f.do(t, http.MethodGet, "/api/v1/products/1", who)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d", i+1, resp.StatusCode)
		}
		if l, r := resp.Header.Get(HeaderLimit), resp.Header.Get(HeaderRemaining); l != "5" || r != strconv.Itoa(4-i) {
			t.Fatalf("request %d: limit %q remaining %q, want 5 and %d", i+1, l, r, 4-i)
		}
	}
	resp := f.do(t, http.MethodGet, "/api/v1/products/1", who)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("6th request: %d, want 429", resp.StatusCode)
	}
	// 5 per minute refills one every 12 s.
	if ra, _ := strconv.Atoi(resp.Header.Get(echo.HeaderRetryAfter)); ra < 1 || ra > 12 {
		t.Fatalf("Retry-After %q, want 1..12", resp.Header.Get(echo.HeaderRetryAfter))
	}
	if resp.Header.Get(HeaderLimit) != "5" || resp.Header.Get(HeaderRemaining) != "0" {
		t.Fatalf("429 headers: limit %q remaining %q", resp.Header.Get(HeaderLimit), resp.Header.Get(HeaderRemaining))
	}
	if resp.Header.Get("X-Test-Code") != errs.ErrRateLimited.Code || !strings.HasPrefix(resp.Header.Get(echo.HeaderContentType), httpx.ContentTypeProblem) {
		t.Fatalf("429 body code %q, content type %q", resp.Header.Get("X-Test-Code"), resp.Header.Get(echo.HeaderContentType))
	}
	// The auth route has its own class and budget.
	if refused := f.burst(t, http.MethodPost, "/api/v1/auth/login", who, 5); refused != 2 {
		t.Fatalf("auth: %d of 5 refused, want 2", refused)
	}
	assertCounter(t, f.reg, "mall_ratelimit_decisions_total", map[string]string{"class": "default", "result": "allowed"}, 5)
	assertCounter(t, f.reg, "mall_ratelimit_decisions_total", map[string]string{"class": "default", "result": "refused"}, 1)
	assertCounter(t, f.reg, "mall_ratelimit_decisions_total", map[string]string{"class": "auth", "result": "refused"}, 2)
}

func TestCallersAreLimitedIndependently(t *testing.T) {
	f := newFixture(t, sharedRedis(t), config.RateLimit{Enabled: true, DefaultPerMinute: 3, AuthPerMinute: 3})
	const path = "/api/v1/products/1"
	tests := []struct {
		name string
		who  caller
		want int // refusals out of 5
	}{
		{"ip A exhausts its budget", caller{ip: "198.51.100.1"}, 2},
		{"ip B has its own", caller{ip: "198.51.100.2"}, 2},
		{"user 1 from ip A is keyed by user", caller{ip: "198.51.100.1", user: 1}, 2},
		{"user 2 from ip A has its own", caller{ip: "198.51.100.1", user: 2}, 2},
		{"user 1 from another ip shares user 1's budget", caller{ip: "198.51.100.3", user: 1}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := f.burst(t, http.MethodGet, path, tt.who, 5); got != tt.want {
				t.Fatalf("%d of 5 refused, want %d", got, tt.want)
			}
		})
	}
}

// TestRedisOutage kills a private Redis mid-test: the auth class keeps limiting in
// process, the default class fails open (counted), and both go back to Redis when it
// returns.
func TestRedisOutage(t *testing.T) {
	srv := redisxtest.StartServer(t)
	rdb, err := redisx.New(config.Redis{Addr: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	f := newFixture(t, rdb, config.RateLimit{Enabled: true, DefaultPerMinute: 4, AuthPerMinute: 3},
		WithCooldown(50*time.Millisecond))
	const (
		auth = "/api/v1/auth/login"
		def  = "/api/v1/products/1"
	)
	// Redis works: limits come from it.
	if got := f.burst(t, http.MethodPost, auth, caller{ip: "192.0.2.1"}, 4); got != 1 {
		t.Fatalf("auth with redis: %d of 4 refused, want 1", got)
	}
	if n := rdb.Keys(context.Background(), "rate:*auth:ip:192.0.2.1").Val(); len(n) != 1 {
		t.Fatalf("no GCRA key in redis: %v", n)
	}

	srv.Stop()

	start := time.Now()
	if got := f.burst(t, http.MethodPost, auth, caller{ip: "192.0.2.2"}, 3+2); got != 2 {
		t.Fatalf("auth without redis: %d of 5 refused, want 2 (in-process fallback)", got)
	}
	resp := f.do(t, http.MethodPost, auth, caller{ip: "192.0.2.2"})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get(HeaderLimit) != "3" || resp.Header.Get(HeaderRemaining) != "0" {
		t.Fatalf("fallback refusal: %d limit %q remaining %q", resp.StatusCode, resp.Header.Get(HeaderLimit), resp.Header.Get(HeaderRemaining))
	}
	if got := f.burst(t, http.MethodPost, auth, caller{ip: "192.0.2.3"}, 3); got != 0 {
		t.Fatalf("auth without redis, another ip: %d of 3 refused, want 0", got)
	}
	if got := f.burst(t, http.MethodGet, def, caller{ip: "192.0.2.2"}, 10); got != 0 {
		t.Fatalf("default without redis: %d of 10 refused, want 0 (fail open)", got)
	}
	if resp := f.do(t, http.MethodGet, def, caller{ip: "192.0.2.2"}); resp.Header.Get(HeaderLimit) != "" {
		t.Fatalf("fail-open response claims a limit: %q", resp.Header.Get(HeaderLimit))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("requests without redis took %s: the client does not fail fast", d)
	}
	if v := counterValue(t, f.reg, "mall_ratelimit_redis_errors_total", nil); v < 1 {
		t.Fatalf("mall_ratelimit_redis_errors_total = %v, want >= 1", v)
	}
	assertCounter(t, f.reg, "mall_ratelimit_decisions_total", map[string]string{"class": "auth", "result": "fallback_refused"}, 3)
	assertCounter(t, f.reg, "mall_ratelimit_decisions_total", map[string]string{"class": "default", "result": "fail_open"}, 11)

	srv.Start(t)

	// Wait until decisions come from Redis again (go-redis redials in the background).
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := f.lim.Allow(context.Background(), ClassDefault, "probe")
		if err != nil {
			t.Fatal(err)
		}
		if res.Source == SourceRedis {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still not using redis 15s after it came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := f.burst(t, http.MethodGet, def, caller{ip: "192.0.2.2"}, 4+3); got != 3 {
		t.Fatalf("default after recovery: %d of 7 refused, want 3", got)
	}
	if got := f.burst(t, http.MethodPost, auth, caller{ip: "192.0.2.4"}, 3+1); got != 1 {
		t.Fatalf("auth after recovery: %d of 4 refused, want 1", got)
	}
	if n := rdb.Keys(context.Background(), "rate:*").Val(); len(n) < 3 {
		t.Fatalf("keys in the restarted redis: %v, want the probe, default and auth keys", n)
	}
}

func TestModuleClassesAndProgrammaticAllow(t *testing.T) {
	reg := prometheus.NewRegistry()
	var (
		lim *Limiter
		rms routeMiddlewares
	)
	app := fxtest.New(t,
		fx.Supply(
			config.Config{RateLimit: config.RateLimit{Enabled: true, DefaultPerMinute: 100, AuthPerMinute: 10}},
			slog.New(slog.DiscardHandler),
			fx.Annotate(sharedRedis(t), fx.As(new(redis.UniversalClient))),
			fx.Annotate(reg, fx.As(new(prometheus.Registerer))),
		),
		Module,
		AsClass(Class{Name: "test.login_account", Limit: PerHour(2), Fallback: true}),
		fx.Populate(&lim),
		fx.Invoke(func(p routeMiddlewares) { rms = p }),
	)
	app.RequireStart()
	defer app.RequireStop()

	if len(rms.All) != 1 || rms.All[0].Name != "ratelimit" || rms.All[0].Order != RouteOrder || rms.All[0].For(httpx.Route{Path: "/x"}) == nil {
		t.Fatalf("route middleware contributed: %+v", rms.All)
	}
	if err := rms.All[0].Validate([]httpx.Route{{Method: "GET", Path: "/x", RateLimit: "typo"}}); !errors.Is(err, ErrUnknownClass) {
		t.Fatalf("route middleware Validate with a typo: %v", err)
	}

	account := "account:" + rand.Text() // the shared Redis outlives this test
	for i, want := range []bool{true, true, false} {
		res, err := lim.Allow(context.Background(), "test.login_account", account)
		if err != nil {
			t.Fatal(err)
		}
		if res.Allowed != want || res.Source != SourceRedis || res.Limit != 2 {
			t.Fatalf("attempt %d: %+v, want allowed=%v from redis", i+1, res, want)
		}
		if !want && (res.RetryAfter < 29*time.Minute || res.RetryAfter > 30*time.Minute) {
			t.Fatalf("refusal retry after %s, want about 30m", res.RetryAfter)
		}
	}
	if _, err := lim.Allow(context.Background(), "nope", "k"); !errors.Is(err, ErrUnknownClass) {
		t.Fatalf("unknown class: %v", err)
	}
	if err := lim.ValidateRoutes(httpx.Route{Method: "POST", Path: "/x", RateLimit: "test.login_account"}); err != nil {
		t.Fatal(err)
	}
	if err := lim.ValidateRoutes(httpx.Route{Method: "POST", Path: "/x", RateLimit: "typo"}); !errors.Is(err, ErrUnknownClass) {
		t.Fatalf("ValidateRoutes with a typo: %v", err)
	}
	for _, bad := range []Class{
		{Name: ClassAuth, Limit: PerMinute(1)},
		{Name: "a:b", Limit: PerMinute(1)},
		{Name: "zero", Limit: PerMinute(0)},
		{Name: "", Limit: PerMinute(1)},
	} {
		if err := lim.Register(bad); !errors.Is(err, ErrInvalidClass) {
			t.Fatalf("Register(%+v) = %v, want ErrInvalidClass", bad, err)
		}
	}
	if v := counterValue(t, reg, "mall_ratelimit_decisions_total", map[string]string{"class": "test.login_account"}); v != 3 {
		t.Fatalf("decisions recorded in the provided registerer: %v, want 3", v)
	}
}

func TestDisabledNeverLimits(t *testing.T) {
	f := newFixture(t, sharedRedis(t), config.RateLimit{Enabled: false, DefaultPerMinute: 1, AuthPerMinute: 1})
	if got := f.burst(t, http.MethodPost, "/api/v1/auth/login", caller{ip: "192.0.2.9"}, 5); got != 0 {
		t.Fatalf("%d refused with limits disabled", got)
	}
	if f.lim.ForRoute(httpx.Route{Path: "/x"}) != nil {
		t.Fatal("ForRoute returned middleware with limits disabled")
	}
	// The middleware itself, applied by hand, lets everything through too.
	e := echo.New()
	e.GET("/x", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }, f.lim.Middleware(ClassAuth))
	for range 3 {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
		if rec.Code != http.StatusNoContent || rec.Header().Get(HeaderLimit) != "" {
			t.Fatalf("disabled middleware: %d limit %q", rec.Code, rec.Header().Get(HeaderLimit))
		}
	}
}

func TestClassFor(t *testing.T) {
	tests := []struct {
		give httpx.Route
		want string
	}{
		{httpx.Route{Path: "/api/v1/products/:id"}, ClassDefault},
		{httpx.Route{Path: "/api/v1/auth/login"}, ClassAuth},
		{httpx.Route{Path: "/api/v1/auth/oauth/:provider/callback"}, ClassAuth},
		{httpx.Route{Path: "/api/v1/authors"}, ClassDefault},
		{httpx.Route{Path: "/api/v1/auth/login", RateLimit: "user.login"}, "user.login"},
		{httpx.Route{Path: "/api/v1/orders", RateLimit: "order.place"}, "order.place"},
	}
	for _, tt := range tests {
		if got := ClassFor(tt.give); got != tt.want {
			t.Errorf("ClassFor(%s) = %q, want %q", tt.give.Path, got, tt.want)
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	tests := []struct {
		give time.Duration
		want int
	}{
		{0, 1}, {-time.Second, 1}, {time.Nanosecond, 1}, {time.Second, 1},
		{time.Second + time.Millisecond, 2}, {12 * time.Second, 12},
	}
	for _, tt := range tests {
		if got := RetryAfterSeconds(tt.give); got != tt.want {
			t.Errorf("RetryAfterSeconds(%s) = %d, want %d", tt.give, got, tt.want)
		}
	}
}

func TestLocalLimiter(t *testing.T) {
	t.Run("limits at the class rate", func(t *testing.T) {
		l := newLocalLimiter(PerMinute(3), 10)
		now := time.Now()
		for i, want := range []bool{true, true, true, false, false} {
			if r := l.allow("k", now); r.Allowed != want {
				t.Fatalf("request %d: %+v, want allowed=%v", i+1, r, want)
			} else if !want && (r.RetryAfter <= 0 || r.RetryAfter > 20*time.Second) {
				t.Fatalf("refusal retry after %s, want (0, 20s]", r.RetryAfter)
			}
		}
		if r := l.allow("k", now.Add(20*time.Second)); !r.Allowed {
			t.Fatalf("after one emission interval: %+v", r)
		}
	})
	t.Run("bounded by max keys", func(t *testing.T) {
		l := newLocalLimiter(PerMinute(3), 100)
		now := time.Now()
		for i := range 10_000 {
			l.allow(fmt.Sprint("ip:", i), now)
		}
		if n := l.len(); n != 100 {
			t.Fatalf("%d keys tracked, want 100", n)
		}
	})
	t.Run("refilled keys are dropped", func(t *testing.T) {
		l := newLocalLimiter(PerMinute(3), 100)
		now := time.Now()
		for i := range 50 {
			l.allow(fmt.Sprint("ip:", i), now)
		}
		l.allow("late", now.Add(61*time.Second)) // every earlier bucket is full again
		if n := l.len(); n != 1 {
			t.Fatalf("%d keys tracked, want 1", n)
		}
	})
}

// --- helpers ---

type routeMiddlewares struct {
	fx.In
	All []httpx.RouteMiddleware `group:"route_middleware"`
}

func counterValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metric
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func assertCounter(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string, want float64) {
	t.Helper()
	if got := counterValue(t, g, name, labels); got != want {
		t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
	}
}

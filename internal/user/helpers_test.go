package user_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/app"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
	"github.com/mallhq/mall/internal/user"
)

// cheapPassword makes hashing fast for tests that are not about hashing.
var cheapPassword = &user.PasswordParams{Memory: 64, Time: 1, Threads: 1}

// testConfig is the default configuration on fresh databases (two shards), the shared test
// Redis and a fresh keys directory, with request rate limits out of the way: tests share
// 127.0.0.1 and the Redis buckets keyed by it.
func testConfig(t testing.TB) config.Config {
	t.Helper()
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	_, db := sqldbtest.NewCluster(t, sqldbtest.Options{Shards: 2})
	cfg.DB.Main, cfg.DB.Shards = db.Main, db.Shards
	cfg.DB.MigrateOnStart = true
	cfg.Redis.Addr = os.Getenv("MALL_TEST_REDIS_ADDR")
	if cfg.Redis.Addr == "" {
		t.Fatal("MALL_TEST_REDIS_ADDR is not set: run `make test`, or `scripts/services.sh up && eval \"$(scripts/services.sh env)\"`")
	}
	cfg.App.NodeID = 1
	cfg.Log.Level = "error"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.RateLimit.AuthPerMinute = 1_000_000
	cfg.RateLimit.DefaultPerMinute = 1_000_000
	cfg.Search.Bleve.Path = filepath.Join(t.TempDir(), "search")
	cfg.Auth.JWT.KeysDir = filepath.Join(t.TempDir(), "jwt")
	return cfg
}

type harnessOptions struct {
	// full starts every module (app.Options), not just the platform and the user module.
	full     bool
	password *user.PasswordParams
	routes   []httpx.Route
}

type harness struct {
	t   testing.TB
	cfg config.Config
	url string
	srv *httpx.Server
	cl  *sqldb.Cluster
	svc user.Service
	ids *idgen.Generator
	// ip is sent as X-Forwarded-For (127.0.0.1 is a trusted proxy), so each test has its own
	// client address for the per-IP login counters.
	ip  string
	app *fx.App
}

// start runs the application for cfg until the test ends (or stop).
func start(t testing.TB, cfg config.Config, o harnessOptions) *harness {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	h := &harness{t: t, cfg: cfg, ip: randomIP()}
	opts := []fx.Option{fx.NopLogger, fx.Populate(&h.srv, &h.cl, &h.svc, &h.ids)}
	if o.full {
		opts = append(opts, app.Options(cfg, logger))
	} else {
		opts = append(opts, fx.Supply(cfg, logger), app.Platform, user.Module)
	}
	if o.password != nil {
		opts = append(opts, fx.Supply(o.password))
	}
	if len(o.routes) > 0 {
		opts = append(opts, fx.Provide(httpx.AsRoutes(func() httpx.Routes { return staticRoutes(o.routes) })))
	}
	h.app = fx.New(opts...)
	if err := h.app.Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.stop)
	h.url = "http://" + h.srv.Addr().String()
	return h
}

func (h *harness) stop() {
	if h.app == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.app.Stop(ctx); err != nil {
		h.t.Errorf("stop: %v", err)
	}
	h.app = nil
}

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	if o.password == nil && !o.full {
		o.password = cheapPassword
	}
	return start(t, testConfig(t), o)
}

type staticRoutes []httpx.Route

func (r staticRoutes) Routes() []httpx.Route { return r }

func randomIP() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("10.%d.%d.%d", b[0], b[1], b[2])
}

func uniqueEmail(prefix string) string {
	return prefix + "-" + strings.ToLower(rand.Text()[:8]) + "@example.com"
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// code is the problem code of an error response ("" for a success).
func (r response) code() string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.body, &p)
	return p.Code
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body)) }

// want fails the test unless the response has status and, for errors, code.
func (r response) want(t testing.TB, status int, code string) response {
	t.Helper()
	if r.status != status || (code != "" && r.code() != code) {
		t.Fatalf("got %s, want %d %s", r, status, code)
	}
	return r
}

// req sends a request with a JSON body (nil for none; []byte as is) and extra header pairs.
func (h *harness) req(method, path string, body any, headers ...string) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Forwarded-For", h.ip)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

var noRedirect = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

type account struct {
	ID       string `json:"id"`
	Email    string `json:"email"`
	Nickname string `json:"nickname"`
}

type me struct {
	ID         string   `json:"id"`
	Email      string   `json:"email"`
	Nickname   string   `json:"nickname"`
	Roles      []string `json:"roles"`
	MerchantID string   `json:"merchant_id"`
}

const goodPassword = "correct horse battery"

func (h *harness) register(email string) account {
	h.t.Helper()
	var a account
	h.req("POST", "/api/v1/auth/register", map[string]string{"email": email, "password": goodPassword}).
		want(h.t, 201, "").decode(h.t, &a)
	return a
}

func (h *harness) login(email string) tokens {
	h.t.Helper()
	var tk tokens
	h.req("POST", "/api/v1/auth/login", map[string]string{"email": email, "password": goodPassword}).
		want(h.t, 200, "").decode(h.t, &tk)
	return tk
}

func (h *harness) me(access string) me {
	h.t.Helper()
	var m me
	h.req("GET", "/api/v1/me", nil, bearer(access)...).want(h.t, 200, "").decode(h.t, &m)
	return m
}

// newUser registers and logs in a fresh account.
func (h *harness) newUser(prefix string) (account, tokens) {
	h.t.Helper()
	a := h.register(uniqueEmail(prefix))
	return a, h.login(a.Email)
}

// admin creates a platform admin the way `mall admin create` does and logs it in.
func (h *harness) admin() (int64, tokens) {
	h.t.Helper()
	email := uniqueEmail("admin")
	id, created, err := user.EnsureAdmin(context.Background(), h.cfg, h.cl, h.ids, email, goodPassword)
	if err != nil || !created {
		h.t.Fatalf("EnsureAdmin: %d %v %v", id, created, err)
	}
	return id, h.login(email)
}

// Package apptest runs the whole application for HTTP tests: fresh databases (two shards),
// the shared test Redis, an ephemeral port, and helpers to register, log in and call routes.
// Every module's end-to-end tests use it instead of a harness of their own.
package apptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/app"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/mail"
	"github.com/mallhq/mall/internal/platform/mail/mailtest"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
	"github.com/mallhq/mall/internal/user"
)

// CheapPassword makes hashing fast for tests that are not about hashing.
var CheapPassword = &user.PasswordParams{Memory: 64, Time: 1, Threads: 1}

// Password is the password of every account the helpers create.
const Password = "correct horse battery"

// Config is the development configuration (configs/development.yaml over the defaults) on fresh databases (two shards), the shared test Redis
// and a fresh keys directory, with request rate limits out of the way: tests share 127.0.0.1
// and the Redis buckets keyed by it.
func Config(t testing.TB) config.Config {
	t.Helper()
	cfg, err := app.LoadDevConfig("")
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
	// A random node: test processes share one Redis, and keys named after IDs (cache entries,
	// deny-list) must not collide between apps on different databases.
	cfg.App.NodeID = 1 + mrand.IntN(200)
	cfg.Log.Level = "error"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.RateLimit.AuthPerMinute = 1_000_000
	cfg.RateLimit.DefaultPerMinute = 1_000_000
	cfg.RateLimit.UserPerMinute = 1_000_000
	cfg.Search.Bleve.Path = filepath.Join(t.TempDir(), "search")
	keys := filepath.Join(t.TempDir(), "jwt")
	return user.ConfigSection.With(cfg, func(c *user.Config) {
		c.JWT.KeysDir = keys
		// Failed-login delays and the per-session refresh limit out of the way too, for tests
		// not about them (those set their limits; DefaultLimits restores the shipped ones).
		c.Login.FreeFailures, c.Login.MaxFailuresPerAccountIP = 1_000_000, 1_000_000
		c.RefreshPerMinute = 1_000_000
	})
}

// DefaultLimits is cfg with the shipped request and login limits (configs/mall.yaml) that
// Config moves out of the way: for tests of the limits themselves.
func DefaultLimits(t testing.TB, cfg config.Config) config.Config {
	t.Helper()
	def, err := app.LoadDevConfig("") // the shipped limits (the dev file changes none of them)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RateLimit = def.RateLimit
	d, err := user.ConfigSection.From(def)
	if err != nil {
		t.Fatal(err)
	}
	return user.ConfigSection.With(cfg, func(c *user.Config) {
		c.Login = d.Login
		c.RefreshPerMinute = d.RefreshPerMinute
	})
}

// Options adjust Start.
type Options struct {
	// Modules replaces the domain modules (default: every module, app.Options). The
	// platform is always there.
	Modules []fx.Option
	// Password overrides the argon2id parameters (nil: CheapPassword; set
	// &user.DefaultPasswordParams for timing tests).
	Password *user.PasswordParams
	// Routes adds test-only routes.
	Routes []httpx.Route
	// Populate receives values from the graph (fx.Populate targets).
	Populate []any
}

// App is a running application.
type App struct {
	T       testing.TB
	Cfg     config.Config
	URL     string
	Server  *httpx.Server
	Cluster *sqldb.Cluster
	Users   user.Service
	IDs     *idgen.Generator
	// IP is sent as X-Forwarded-For (127.0.0.1 is a trusted proxy), so each test has its
	// own client address for per-IP limits.
	IP string
	// Mail is the SMTP server the application sends its mails to (mail.smtp_addr), unless
	// the configuration named another.
	Mail *mailtest.Server

	fx *fx.App
}

// New starts the application on Config(t).
func New(t testing.TB, o Options) *App {
	t.Helper()
	return Start(t, Config(t), o)
}

// Start runs the application for cfg until the test ends (or Stop).
func Start(t testing.TB, cfg config.Config, o Options) *App {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	a := &App{T: t, IP: RandomIP()}
	if mc, err := mail.ConfigSection.From(cfg); err == nil && mc.SMTPAddr == "" {
		// A real SMTP conversation with an in-process server (not the development log):
		// registration mails a token, and Register reads it from there.
		a.Mail = mailtest.Start(t)
		cfg = mail.ConfigSection.With(cfg, func(c *mail.Config) {
			c.SMTPAddr, c.TLS, c.LogMessages = a.Mail.Addr(), "none", false
		})
	}
	a.Cfg = cfg
	opts := []fx.Option{fx.NopLogger, fx.Populate(&a.Server, &a.Cluster, &a.Users, &a.IDs)}
	if o.Modules == nil {
		opts = append(opts, app.Options(cfg, logger))
	} else {
		opts = append(opts, fx.Supply(cfg, logger), app.Platform)
		opts = append(opts, o.Modules...)
	}
	if o.Password == nil {
		o.Password = CheapPassword
	}
	opts = append(opts, fx.Supply(o.Password))
	if len(o.Routes) > 0 {
		opts = append(opts, fx.Provide(httpx.AsRoutes(func() httpx.Routes { return staticRoutes(o.Routes) })))
	}
	if len(o.Populate) > 0 {
		opts = append(opts, fx.Populate(o.Populate...))
	}
	a.fx = fx.New(opts...)
	if err := a.fx.Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.fx.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	a.URL = "http://" + a.Server.Addr().String()
	return a
}

// Stop stops the application (idempotent).
func (a *App) Stop() {
	if a.fx == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.fx.Stop(ctx); err != nil {
		a.T.Errorf("stop: %v", err)
	}
	a.fx = nil
}

type staticRoutes []httpx.Route

func (r staticRoutes) Routes() []httpx.Route { return r }

// RandomIP is a random 10.x.y.z address.
func RandomIP() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("10.%d.%d.%d", b[0], b[1], b[2])
}

// UniqueEmail is prefix-<random>@example.com.
func UniqueEmail(prefix string) string {
	return prefix + "-" + strings.ToLower(rand.Text()[:8]) + "@example.com"
}

// FreeAddr is a free 127.0.0.1 port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Response is a read HTTP response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Code is the problem code of an error response ("" for a success).
func (r Response) Code() string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.Body, &p)
	return p.Code
}

// Decode unmarshals the body into v.
func (r Response) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

func (r Response) String() string { return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body)) }

// Want fails the test unless the response has status and, for errors, code.
func (r Response) Want(t testing.TB, status int, code string) Response {
	t.Helper()
	if r.Status != status || (code != "" && r.Code() != code) {
		t.Fatalf("got %s, want %d %s", r, status, code)
	}
	return r
}

// Req sends a request with a JSON body (nil for none; []byte as is) and extra header pairs
// (a Content-Type pair overrides the JSON default); a transport error fails the test.
func (a *App) Req(method, path string, body any, headers ...string) Response {
	a.T.Helper()
	r, err := a.Do(method, path, body, headers...)
	if err != nil {
		a.T.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// Do is Req returning transport errors instead of failing the test, for goroutines.
func (a *App) Do(method, path string, body any, headers ...string) (Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return Response{}, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, a.URL+path, rd)
	if err != nil {
		return Response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Forwarded-For", a.IP)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return Response{}, err
	}
	return Response{Status: res.StatusCode, Header: res.Header, Body: b}, nil
}

var noRedirect = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Bearer is the Authorization header pair for Req ("" for none).
func Bearer(tok string) []string {
	if tok == "" {
		return nil
	}
	return []string{"Authorization", "Bearer " + tok}
}

// Tokens is the login response.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// Account is the register response.
type Account struct {
	ID       string `json:"id"`
	Email    string `json:"email"`
	Nickname string `json:"nickname"`
}

// Me is the /api/v1/me response.
type Me struct {
	ID            string   `json:"id"`
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Nickname      string   `json:"nickname"`
	Roles         []string `json:"roles"`
	MerchantID    string   `json:"merchant_id"`
}

// Register creates an account with Password and verifies its address the way its owner
// does: with the token from the mail the application sent.
func (a *App) Register(email string) Account {
	a.T.Helper()
	acc := a.RegisterUnverified(email)
	a.VerifyEmail(acc.Email)
	return acc
}

// RegisterUnverified creates an account with Password and leaves its address unverified.
func (a *App) RegisterUnverified(email string) Account {
	a.T.Helper()
	var acc Account
	a.Req("POST", "/api/v1/auth/register", map[string]string{"email": email, "password": Password}).
		Want(a.T, http.StatusCreated, "").Decode(a.T, &acc)
	return acc
}

// MailToken waits for the n-th (1-based) mail to email and returns the token in it.
func (a *App) MailToken(email string, n int) string {
	a.T.Helper()
	if a.Mail == nil {
		a.T.Fatal("apptest: the application does not send to the test SMTP server (mail.smtp_addr was set)")
	}
	m := a.Mail.Wait(a.T, email, n)
	tok := TokenIn(m.Text)
	if tok == "" {
		a.T.Fatalf("no token in the mail to %s: %q", email, m.Text)
	}
	return tok
}

// TokenIn returns the token of a verification or reset mail's text ("" when none).
func TokenIn(text string) string {
	for line := range strings.Lines(text) {
		if tok, ok := strings.CutPrefix(strings.TrimSpace(line), user.TokenLinePrefix); ok {
			return strings.TrimSpace(tok)
		}
	}
	return ""
}

// VerifyEmail confirms email's address with the token of the first mail sent to it.
func (a *App) VerifyEmail(email string) {
	a.T.Helper()
	a.Req("POST", "/api/v1/auth/verify-email", map[string]string{"token": a.MailToken(email, 1)}).
		Want(a.T, http.StatusNoContent, "")
}

// Login logs an account in with Password.
func (a *App) Login(email string) Tokens {
	a.T.Helper()
	var tk Tokens
	a.Req("POST", "/api/v1/auth/login", map[string]string{"email": email, "password": Password}).
		Want(a.T, http.StatusOK, "").Decode(a.T, &tk)
	return tk
}

// Me reads /api/v1/me.
func (a *App) Me(access string) Me {
	a.T.Helper()
	var m Me
	a.Req("GET", "/api/v1/me", nil, Bearer(access)...).Want(a.T, http.StatusOK, "").Decode(a.T, &m)
	return m
}

// NewUser registers and logs in a fresh account.
func (a *App) NewUser(prefix string) (Account, Tokens) {
	a.T.Helper()
	acc := a.Register(UniqueEmail(prefix))
	return acc, a.Login(acc.Email)
}

// Admin creates a platform admin the way `mall admin create` does and logs it in.
func (a *App) Admin() (int64, Tokens) {
	a.T.Helper()
	email := UniqueEmail("admin")
	id, created, err := user.EnsureAdmin(context.Background(), a.Cfg, a.Cluster, a.IDs, email, Password)
	if err != nil || !created {
		a.T.Fatalf("EnsureAdmin: %d %v %v", id, created, err)
	}
	return id, a.Login(email)
}

// MerchantUser creates an account bound to merchantID with role (merchant_owner or
// merchant_staff) and logs it in, so the token carries the merchant.
func (a *App) MerchantUser(prefix string, role user.Role, merchantID int64) (Account, Tokens) {
	a.T.Helper()
	acc := a.Register(UniqueEmail(prefix))
	var id int64
	if _, err := fmt.Sscan(acc.ID, &id); err != nil {
		a.T.Fatal(err)
	}
	if err := a.Users.GrantRole(context.Background(), id, role, merchantID); err != nil {
		a.T.Fatalf("grant %s on %d: %v", role, merchantID, err)
	}
	return acc, a.Login(acc.Email)
}

// Merchant opens a merchant the way a user does: a fresh account applies over HTTP and the
// admin (adminToken) approves. It returns the merchant ID and the owner's account and a new
// token, which carries the merchant.
func (a *App) Merchant(adminToken string) (merchantID int64, owner Account, ownerToken string) {
	a.T.Helper()
	acc, tk := a.NewUser("owner")
	shop := "shop" + strconv.FormatInt(a.IDs.Next(0), 10)
	var app struct {
		ID string `json:"id"`
	}
	a.Req(http.MethodPost, "/api/v1/merchant-applications", map[string]string{"shop_name": shop,
		"company_name": shop + " Ltd", "license_no": "91310000" + shop, "contact_name": "Li Lei",
		"contact_phone": "13812345678"}, Bearer(tk.AccessToken)...).Want(a.T, http.StatusCreated, "").Decode(a.T, &app)
	var out struct {
		MerchantID string `json:"merchant_id"`
	}
	a.Req(http.MethodPost, "/api/v1/admin/merchant-applications/"+app.ID+"/approve", nil, Bearer(adminToken)...).
		Want(a.T, http.StatusOK, "").Decode(a.T, &out)
	if _, err := fmt.Sscan(out.MerchantID, &merchantID); err != nil {
		a.T.Fatal(err)
	}
	return merchantID, acc, a.Login(acc.Email).AccessToken
}

// AcceptStaffInvitation accepts, as the holder of token, their newest pending staff
// invitation and returns its merchant ID; they log in again to get the role.
func (a *App) AcceptStaffInvitation(token string) string {
	a.T.Helper()
	var list struct {
		Items []struct {
			MerchantID string `json:"merchant_id"`
		} `json:"items"`
	}
	a.Req(http.MethodGet, "/api/v1/me/staff-invitations", nil, Bearer(token)...).Want(a.T, http.StatusOK, "").Decode(a.T, &list)
	if len(list.Items) == 0 {
		a.T.Fatal("apptest: no pending staff invitation")
	}
	mid := list.Items[0].MerchantID
	a.Req(http.MethodPost, "/api/v1/me/staff-invitations/"+mid+"/accept", nil, Bearer(token)...).Want(a.T, http.StatusOK, "")
	return mid
}

// Address adds a shipping address for the token's user and returns its ID.
func (a *App) Address(token string) string {
	a.T.Helper()
	var out struct {
		ID string `json:"id"`
	}
	a.Req(http.MethodPost, "/api/v1/me/addresses", map[string]string{"name": "Han Meimei", "phone": "13912345678",
		"province": "Zhejiang", "city": "Hangzhou", "district": "Xihu", "detail": "1 Lake Road"}, Bearer(token)...).
		Want(a.T, http.StatusCreated, "").Decode(a.T, &out)
	return out.ID
}

// Events returns the payloads of the events of one type for one aggregate in the main
// database's outbox, in the order they were written.
func Events[T any](a *App, topic, eventType, aggregateID string) []T {
	a.T.Helper()
	rows, err := a.Cluster.Main().QueryContext(context.Background(),
		`SELECT envelope FROM platform_outbox WHERE topic = ? AND event_type = ? AND aggregate_id = ? ORDER BY id`,
		topic, eventType, aggregateID)
	if err != nil {
		a.T.Fatal(err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			a.T.Fatal(err)
		}
		var env struct {
			Payload T `json:"payload"`
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			a.T.Fatalf("envelope %s: %v", raw, err)
		}
		out = append(out, env.Payload)
	}
	if err := rows.Err(); err != nil {
		a.T.Fatal(err)
	}
	return out
}

// Serve runs one request through the whole handler chain in process (no network), as fuzz
// targets do: JSON body, bearer token ("" for none).
func (a *App) Serve(method, path string, body []byte, token string) *httptest.ResponseRecorder {
	return a.ServeWith(method, path, body, token)
}

// ServeWith is Serve with extra header pairs.
func (a *App) ServeWith(method, path string, body []byte, token string, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	a.Server.Handler().ServeHTTP(rec, req)
	return rec
}

// CheckOutcome fails on anything but a success status in ok or a 4xx problem+json with a
// code: the contract fuzz targets hold every handler to.
func CheckOutcome(t *testing.T, rec *httptest.ResponseRecorder, body []byte, ok ...int) {
	t.Helper()
	if slices.Contains(ok, rec.Code) {
		return
	}
	if rec.Code < 400 || rec.Code >= 500 {
		t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
	}
	var p httpx.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Code == "" || p.Status != rec.Code ||
		rec.Header().Get("Content-Type") != httpx.ContentTypeProblem {
		t.Fatalf("%d without a problem body for %q: %s", rec.Code, body, rec.Body)
	}
}

// Metric reads one sample of the app's /metrics by its full name as exposed, labels
// included (`mall_x_total{outcome="ok"}`); the test fails when there is none.
func (a *App) Metric(t testing.TB, name string) float64 {
	t.Helper()
	v, ok := a.MetricIfAny(t, name)
	if !ok {
		t.Fatalf("no sample %s in /metrics", name)
	}
	return v
}

// MetricIfAny is Metric for a series that may not exist yet (a labelled counter appears
// with its first increment): ok false when it has no sample.
func (a *App) MetricIfAny(t testing.TB, name string) (float64, bool) {
	t.Helper()
	for line := range strings.Lines(string(a.Req(http.MethodGet, "/metrics", nil).Body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f, true
		}
	}
	return 0, false
}

package user_test

import (
	"testing"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/user"
)

type (
	response = apptest.Response
	tokens   = apptest.Tokens
	account  = apptest.Account
	me       = apptest.Me
)

var cheapPassword = apptest.CheapPassword

const goodPassword = apptest.Password

func testConfig(t testing.TB) config.Config { return apptest.Config(t) }

// authOf is the user module's configuration (auth.*) in cfg. No t.Helper: a harness's t
// may be a *testing.F, which refuses Helper inside the fuzz function.
func authOf(t testing.TB, cfg config.Config) user.Config {
	c, err := user.ConfigSection.From(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// withAuth is cfg with the user module's configuration changed by edit.
func withAuth(cfg config.Config, edit func(*user.Config)) config.Config {
	return user.ConfigSection.With(cfg, edit)
}

type harnessOptions struct {
	// full starts every module (app.Options), not just the platform and the user module.
	full     bool
	password *user.PasswordParams
	routes   []httpx.Route
}

type harness struct {
	*apptest.App
	t   testing.TB
	cfg config.Config
	srv *httpx.Server
	cl  *sqldb.Cluster
	svc user.Service
	ids *idgen.Generator
}

// start runs the application for cfg until the test ends (or stop).
func start(t testing.TB, cfg config.Config, o harnessOptions) *harness {
	t.Helper()
	ao := apptest.Options{Password: o.password, Routes: o.routes}
	if !o.full {
		ao.Modules = []fx.Option{user.Module}
	}
	a := apptest.Start(t, cfg, ao)
	return &harness{App: a, t: t, cfg: cfg, srv: a.Server, cl: a.Cluster, svc: a.Users, ids: a.IDs}
}

func (h *harness) stop() { h.Stop() }

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	return start(t, testConfig(t), o)
}

package app_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/app"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
)

func testConfig(t *testing.T) config.Config {
	t.Helper()
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	_, db := sqldbtest.NewCluster(t, sqldbtest.Options{Shards: 2})
	cfg.DB.Main, cfg.DB.Shards = db.Main, db.Shards
	cfg.Redis.Addr = os.Getenv("MALL_TEST_REDIS_ADDR")
	if cfg.Redis.Addr == "" {
		t.Fatal("MALL_TEST_REDIS_ADDR is not set: run `make test`")
	}
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Search.Bleve.Path = filepath.Join(t.TempDir(), "search")
	cfg.Auth.JWT.KeysDir = filepath.Join(t.TempDir(), "jwt")
	return cfg
}

// TestOpenAPIDescribesEveryRoute starts the whole application and checks that the
// served document and the registered routes match in both directions.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	cfg := testConfig(t)
	var srv *httpx.Server
	a := fx.New(app.Options(cfg, slog.New(slog.DiscardHandler)), fx.Populate(&srv))
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop(context.Background()) //nolint:errcheck
	if err := httpx.CheckOpenAPI(srv.Echo(), srv.OpenAPI()); err != nil {
		t.Fatal(err)
	}
	if len(srv.Echo().Routes()) < 5 {
		t.Fatalf("only %d routes registered", len(srv.Echo().Routes()))
	}
}

func TestGraphIsComplete(t *testing.T) {
	cfg := testConfig(t)
	if err := fx.ValidateApp(app.Options(cfg, slog.New(slog.DiscardHandler))); err != nil {
		t.Fatal(err)
	}
}

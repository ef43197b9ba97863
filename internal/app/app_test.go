package app_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/app"
	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/platform/httpx"
)

// TestOpenAPIDescribesEveryRoute starts the whole application and checks that the
// served document and the registered routes match in both directions.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	cfg := apptest.Config(t)
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
	cfg := apptest.Config(t)
	if err := fx.ValidateApp(app.Options(cfg, slog.New(slog.DiscardHandler))); err != nil {
		t.Fatal(err)
	}
}

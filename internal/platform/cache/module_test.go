package cache_test

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/mallhq/mall/internal/platform/cache"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/metrics"
	"github.com/mallhq/mall/internal/platform/redisx"
	"github.com/mallhq/mall/internal/platform/redisx/redisxtest"
)

func TestModuleProvidesStartedBus(t *testing.T) {
	var bus *cache.Bus
	reg := prometheus.NewRegistry()
	app := fxtest.New(t,
		fx.Supply(config.Config{Redis: config.Redis{Addr: redisxtest.Addr(t)}}, slog.New(slog.DiscardHandler)),
		fx.Provide(func() prometheus.Registerer { return reg }),
		redisx.Module,
		cache.Module,
		fx.Populate(&bus),
	)
	app.RequireStart()
	if !bus.Subscribed() {
		t.Fatal("bus not subscribed after start")
	}
	if v, _ := metrics.Value(reg, cache.MetricBusSubscribed, nil); v != 1 {
		t.Fatalf("%s = %v on the provided registerer, want 1", cache.MetricBusSubscribed, v)
	}
	app.RequireStop()
	if bus.Subscribed() {
		t.Fatal("bus still subscribed after stop")
	}
}

package cache

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
)

// Module provides the process's *Bus, subscribed on start and closed on stop. It needs
// redis.UniversalClient (redisx.Module) and *slog.Logger; a prometheus.Registerer is used
// when provided, otherwise prometheus.DefaultRegisterer. Modules build their own caches
// with New[V](rdb, bus, Options{...}).
var Module = fx.Module("cache", fx.Provide(newBusFx))

type busParams struct {
	fx.In
	Lifecycle  fx.Lifecycle
	Redis      redis.UniversalClient
	Log        *slog.Logger
	Registerer prometheus.Registerer `optional:"true"`
}

func newBusFx(p busParams) (*Bus, error) {
	b, err := NewBus(p.Redis, p.Log.With("component", "cache"), p.Registerer)
	if err != nil {
		return nil, err
	}
	p.Lifecycle.Append(fx.Hook{
		OnStart: b.Start,
		OnStop:  func(context.Context) error { return b.Close() },
	})
	return b, nil
}

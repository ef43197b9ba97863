package redisx

import (
	"context"

	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
)

// Module provides the process's *redis.Client, the same client as redis.UniversalClient,
// closes it on stop, and adds the "redis" readiness check (PING) to /readyz. It needs a
// config.Config.
var Module = fx.Module("redisx",
	fx.Provide(
		newClient,
		func(c *redis.Client) redis.UniversalClient { return c },
		httpx.AsCheck(newReadiness),
	),
)

func newClient(lc fx.Lifecycle, cfg config.Config) (*redis.Client, error) {
	c, err := New(cfg.Redis)
	if err != nil {
		return nil, err
	}
	lc.Append(fx.StopHook(func(context.Context) error { return c.Close() }))
	return c, nil
}

func newReadiness(rdb redis.UniversalClient) httpx.Check {
	return httpx.Check{Name: "redis", Check: func(ctx context.Context) error { return Check(ctx, rdb) }}
}

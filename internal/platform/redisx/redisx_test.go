package redisx_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/redisx"
	"github.com/mallhq/mall/internal/platform/redisx/redisxtest"
)

func TestNewRejectsUnusableConfig(t *testing.T) {
	tests := []struct {
		name string
		give config.Redis
	}{
		{"empty address", config.Redis{}},
		{"no port", config.Redis{Addr: "localhost"}},
		{"negative db", config.Redis{Addr: "127.0.0.1:6379", DB: -1}},
		{"negative pool", config.Redis{Addr: "127.0.0.1:6379", PoolSize: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := redisx.New(tt.give); !errors.Is(err, redisx.ErrConfig) {
				t.Fatalf("New(%+v) = %v, want ErrConfig", tt.give, err)
			}
		})
	}
}

func TestOptionsHonourConfigAndFailFast(t *testing.T) {
	o, err := redisx.Options(config.Redis{Addr: "10.0.0.1:6380", Password: "pw", DB: 3, PoolSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != "10.0.0.1:6380" || o.Password != "pw" || o.DB != 3 || o.PoolSize != 7 {
		t.Fatalf("options do not carry the config: %+v", o)
	}
	for name, d := range map[string]time.Duration{"dial": o.DialTimeout, "read": o.ReadTimeout, "write": o.WriteTimeout} {
		if d <= 0 || d > 2*time.Second {
			t.Errorf("%s timeout %s, want (0, 2s]", name, d)
		}
	}
	if o.DialerRetries != 1 || o.MaxRetries > 1 || !o.ContextTimeoutEnabled {
		t.Errorf("dialer retries %d, max retries %d, context timeouts %v", o.DialerRetries, o.MaxRetries, o.ContextTimeoutEnabled)
	}
}

func TestClientUsesTheConfiguredDatabase(t *testing.T) {
	ctx := context.Background()
	key := redisxtest.Prefix(t) + "db"
	db5, err := redisx.New(config.Redis{Addr: redisxtest.Addr(t), DB: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer db5.Close()
	if err := db5.Set(ctx, key, "x", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	defer db5.Del(ctx, key)
	if n := redisxtest.Client(t).Exists(ctx, key).Val(); n != 0 {
		t.Fatal("a key written with db 5 is visible in db 0")
	}
	if n := db5.Exists(ctx, key).Val(); n != 1 {
		t.Fatal("the key is missing in db 5")
	}
}

func TestCheckFailsFastWhenRedisIsDown(t *testing.T) {
	srv := redisxtest.StartServer(t)
	c, err := redisx.New(config.Redis{Addr: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := redisx.Check(context.Background(), c); err != nil {
		t.Fatalf("Check with redis up: %v", err)
	}
	srv.Stop()
	for i := range 3 { // the pooled connection dies first, then dials are refused
		start := time.Now()
		if err := redisx.Check(context.Background(), c); err == nil {
			t.Fatalf("Check %d with redis down: nil", i)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("Check %d took %s with redis down, want it to fail fast", i, d)
		}
	}
	srv.Start(t)
	deadline := time.Now().Add(10 * time.Second)
	for redisx.Check(context.Background(), c) != nil {
		if time.Now().After(deadline) {
			t.Fatal("Check still failing 10s after redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type readiness struct {
	fx.In
	Checks []httpx.Check `group:"readiness"`
}

func TestModuleProvidesClientAndReadiness(t *testing.T) {
	var (
		client    *redis.Client
		universal redis.UniversalClient
		ready     readiness
	)
	app := fxtest.New(t,
		fx.Supply(config.Config{Redis: config.Redis{Addr: redisxtest.Addr(t)}}),
		redisx.Module,
		fx.Populate(&client, &universal),
		fx.Invoke(func(r readiness) { ready = r }),
	)
	app.RequireStart()
	if universal != redis.UniversalClient(client) {
		t.Fatal("redis.UniversalClient is not the provided *redis.Client")
	}
	if len(ready.Checks) != 1 || ready.Checks[0].Name != "redis" {
		t.Fatalf("readiness checks: %+v", ready.Checks)
	}
	if err := ready.Checks[0].Check(context.Background()); err != nil {
		t.Fatalf("readiness with redis up: %v", err)
	}
	app.RequireStop()
	if err := client.Ping(context.Background()).Err(); !errors.Is(err, redis.ErrClosed) {
		t.Fatalf("Ping after stop = %v, want redis.ErrClosed", err)
	}
}

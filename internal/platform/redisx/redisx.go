// Package redisx builds Mall's Redis client. Redis is never the source of truth here
// (limits, caches, hot state), so the client is tuned to fail fast when Redis is gone:
// callers fall back or fail open rather than queueing behind a dead server.
package redisx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mallhq/mall/internal/platform/config"
)

// Timeouts of every client New returns. Short on purpose: a Redis that does not answer
// within a second is treated as down by its callers.
const (
	DialTimeout  = time.Second
	ReadTimeout  = time.Second
	WriteTimeout = time.Second
	PoolTimeout  = 2 * time.Second
	// CheckTimeout bounds one readiness PING when the caller's context has no deadline.
	CheckTimeout = 2 * time.Second
)

// ErrConfig is returned by New for an unusable configuration.
var ErrConfig = errors.New("redisx: invalid configuration")

// New returns a client for cfg. It does not connect: go-redis dials lazily, so a process
// can start while Redis is down and report it through the readiness check instead.
func New(cfg config.Redis) (*redis.Client, error) {
	opts, err := Options(cfg)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opts), nil
}

// Options returns the go-redis options New uses for cfg.
func Options(cfg config.Redis) (*redis.Options, error) {
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("%w: redis.addr must be host:port, got %q", ErrConfig, cfg.Addr)
	}
	if cfg.DB < 0 {
		return nil, fmt.Errorf("%w: redis.db must not be negative, got %d", ErrConfig, cfg.DB)
	}
	if cfg.PoolSize < 0 {
		return nil, fmt.Errorf("%w: redis.pool_size must not be negative, got %d", ErrConfig, cfg.PoolSize)
	}
	return &redis.Options{
		Addr:     cfg.Addr,
		Password: cfg.Password,
		DB:       cfg.DB,
		PoolSize: cfg.PoolSize, // 0 = go-redis default (10 per CPU)

		DialTimeout: DialTimeout,
		// One dial attempt per connection: go-redis would otherwise retry a refused dial
		// five times with backoff, which is the opposite of failing fast.
		DialerRetries: 1,
		ReadTimeout:   ReadTimeout,
		WriteTimeout:  WriteTimeout,
		PoolTimeout:   PoolTimeout,
		MaxRetries:    1,
		// Honour request deadlines too, so a handler's budget bounds its Redis calls.
		ContextTimeoutEnabled: true,
	}, nil
}

// Check PINGs Redis; it is the readiness probe. Without a deadline in ctx it allows
// CheckTimeout.
func Check(ctx context.Context, rdb redis.UniversalClient) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, CheckTimeout)
		defer cancel()
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	return nil
}

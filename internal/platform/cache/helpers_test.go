package cache_test

import (
	"context"
	"crypto/rand"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mallhq/mall/internal/platform/cache"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/metrics"
	"github.com/mallhq/mall/internal/platform/redisx"
)

// product is the cached value in these tests: a product page with its price.
type product struct {
	ID    string `json:"id"`
	Price int64  `json:"price"`
}

// fakeDB is the source of truth: a price per product and a count of loads.
type fakeDB struct {
	price atomic.Int64
	loads atomic.Int64
}

func newDB(price int64) *fakeDB {
	d := &fakeDB{}
	d.price.Store(price)
	return d
}

func (d *fakeDB) load(ctx context.Context) (product, error) {
	d.loads.Add(1)
	return product{ID: "p1", Price: d.price.Load()}, nil
}

// replica is one app instance: its own Redis client, Bus and metrics registry.
type replica struct {
	rdb *redis.Client
	bus *cache.Bus
	reg *prometheus.Registry
}

func newReplica(t testing.TB, addr string) *replica {
	t.Helper()
	rdb, err := redisx.New(config.Redis{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	reg := prometheus.NewRegistry()
	bus, err := cache.NewBus(rdb, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bus.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	return &replica{rdb: rdb, bus: bus, reg: reg}
}

func newCache(t testing.TB, r *replica, o cache.Options) *cache.Cache[product] {
	t.Helper()
	c, err := cache.New[product](r.rdb, r.bus, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// cacheName is unique per call so tests sharing Redis never share keys.
func cacheName(t testing.TB) string {
	t.Helper()
	return "test-" + strings.ToLower(rand.Text()[:12])
}

// cleanupKeys deletes the cache's Redis keys when the test ends.
func cleanupKeys(t testing.TB, rdb *redis.Client, name string) {
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, "mall:cache:"+name+":*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
}

func metric(t testing.TB, r *replica, name string, labels map[string]string) float64 {
	t.Helper()
	v, err := metrics.Value(r.reg, name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustGet(t testing.TB, c *cache.Cache[product], key string, load func(context.Context) (product, error)) product {
	t.Helper()
	v, err := c.Get(context.Background(), key, load)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return v
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

package cache_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mallhq/mall/internal/platform/cache"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/redisx"
	"github.com/mallhq/mall/internal/platform/redisx/redisxtest"
)

// Redis is a cache here, never the truth: with it down, reads go to the loader (still one
// load per key at a time), Invalidate drops the local L1 and reports the failure, and
// everything works again once Redis is back.
func TestReadsSurviveRedisOutage(t *testing.T) {
	srv := redisxtest.StartServer(t)
	r := newReplica(t, srv.Addr)
	c := newCache(t, r, cache.Options{Name: cacheName(t), L1Size: 100, L1TTL: 10 * time.Minute})
	db := newDB(100)
	ctx := context.Background()
	mustGet(t, c, "p1", db.load)

	srv.Stop()
	start := time.Now()
	if v := mustGet(t, c, "p1", db.load); v.Price != 100 { // L1 hit: no Redis involved
		t.Fatalf("price %d", v.Price)
	}
	// A cold key with Redis down: many concurrent callers, one load, no error.
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if v, err := c.Get(ctx, "p2", db.load); err != nil || v.Price != 100 {
				t.Errorf("Get with Redis down = %v, %v", v, err)
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("reads with Redis down took %s, want them to fail over fast", d)
	}
	if got := db.loads.Load(); got != 2 {
		t.Fatalf("%d loads, want 2 (p1 before, p2 once during the outage)", got)
	}
	if got := metric(t, r, cache.MetricRedisErrors, map[string]string{"cache": c.Name()}); got < 1 {
		t.Fatalf("redis errors metric = %v, want ≥ 1", got)
	}

	// Invalidate cannot reach L2 or the other replicas: it says so, and still drops L1.
	db.price.Store(120)
	if err := c.Invalidate(ctx, "p1"); err == nil {
		t.Fatal("Invalidate with Redis down returned nil")
	}
	if v := mustGet(t, c, "p1", db.load); v.Price != 120 {
		t.Fatalf("after a failed Invalidate the local L1 still serves %d", v.Price)
	}

	srv.Start(t)
	// Back: a new key is written to L2 again.
	eventually(t, 10*time.Second, "a miss fills L2 after Redis restarted", func() bool {
		key := "p3-" + time.Now().Format("150405.000000")
		mustGet(t, c, key, db.load)
		return r.rdb.HExists(ctx, c.RedisKey(key), "v").Val()
	})
	if err := c.Invalidate(ctx, "p1"); err != nil { // the caller's retry succeeds
		t.Fatalf("Invalidate after Redis restarted: %v", err)
	}
}

// Messages published while a replica's subscription is down are lost to it; when the
// subscription comes back the replica clears its whole L1, so it cannot keep serving a
// value whose invalidation it missed.
func TestResubscribeClearsL1(t *testing.T) {
	tests := []struct {
		name string
		cut  func(t *testing.T, srv *redisxtest.Server, r *replica)
	}{
		{"server restarted", func(t *testing.T, srv *redisxtest.Server, r *replica) {
			srv.Stop()
			srv.Start(t)
		}},
		{"subscription connection killed", func(t *testing.T, srv *redisxtest.Server, r *replica) {
			if err := r.rdb.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redisxtest.StartServer(t)
			r := newReplica(t, srv.Addr)
			c := newCache(t, r, cache.Options{Name: cacheName(t), L1Size: 100, L1TTL: 10 * time.Minute})
			db := newDB(100)
			mustGet(t, c, "p1", db.load)
			mustGet(t, c, "p1", db.load)
			if db.loads.Load() != 1 || cache.L1Len(c) != 1 {
				t.Fatalf("warm-up: %d loads, %d L1 entries", db.loads.Load(), cache.L1Len(c))
			}
			subs := metric(t, r, cache.MetricBusSubscriptions, nil)

			tt.cut(t, srv, r)

			eventually(t, 10*time.Second, "the bus resubscribes", func() bool {
				return metric(t, r, cache.MetricBusSubscriptions, nil) > subs && r.bus.Subscribed()
			})
			if n := cache.L1Len(c); n != 0 {
				t.Fatalf("L1 holds %d entries after resubscribing, want 0", n)
			}
			// The next read goes past L1 (L1TTL is ten minutes: only the clear explains it).
			l1Before := metric(t, r, cache.MetricHits, map[string]string{"cache": c.Name(), "level": "l1"})
			mustGet(t, c, "p1", db.load)
			if got := metric(t, r, cache.MetricHits, map[string]string{"cache": c.Name(), "level": "l1"}); got != l1Before {
				t.Fatal("the read after resubscribing was an L1 hit")
			}
			if got := metric(t, r, cache.MetricL1Clears, map[string]string{"cache": c.Name()}); got != 1 {
				t.Fatalf("L1 clears = %v, want 1 (the resubscription; the cache was made after Start)", got)
			}
		})
	}
}

// A replica may start while Redis is down; it hears invalidations once Redis is up.
func TestBusStartsWithRedisDown(t *testing.T) {
	srv := redisxtest.StartServer(t)
	srv.Stop()
	start := time.Now()
	b := newReplica(t, srv.Addr) // Start must not fail nor hang
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Start took %s with Redis down", d)
	}
	if b.bus.Subscribed() {
		t.Fatal("Subscribed with Redis down")
	}
	name := cacheName(t)
	cb := newCache(t, b, cache.Options{Name: name, L1Size: 10, L1TTL: 10 * time.Minute})
	db := newDB(100)
	if v := mustGet(t, cb, "p1", db.load); v.Price != 100 {
		t.Fatalf("price %d", v.Price)
	}

	srv.Start(t)
	eventually(t, 10*time.Second, "the bus subscribes once Redis is up", b.bus.Subscribed)
	mustGet(t, cb, "p1", db.load) // warm again after the clear on subscribe

	a := newReplica(t, srv.Addr)
	ca := newCache(t, a, cache.Options{Name: name, L1Size: 10})
	db.price.Store(120)
	if err := ca.Invalidate(context.Background(), "p1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "B hears the invalidation", func() bool {
		return mustGet(t, cb, "p1", db.load).Price == 120
	})
}

func TestBusLifecycle(t *testing.T) {
	r := newReplica(t, redisxtest.Addr(t))
	if !r.bus.Subscribed() {
		t.Fatal("not subscribed after Start with Redis up")
	}
	if err := r.bus.Start(context.Background()); !errors.Is(err, cache.ErrBusState) {
		t.Fatalf("second Start = %v, want ErrBusState", err)
	}
	if err := r.bus.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.bus.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if r.bus.Subscribed() {
		t.Fatal("subscribed after Close")
	}
	if err := r.bus.Start(context.Background()); !errors.Is(err, cache.ErrBusState) {
		t.Fatalf("Start after Close = %v, want ErrBusState", err)
	}
}

// A subscription that goes silent without the connection failing (a partition, a hung
// server) is noticed by an unanswered PING and replaced; the replacement clears L1 like
// any resubscription. CLIENT PAUSE makes the server ignore the PING for a while.
func TestSilentSubscriptionIsReplaced(t *testing.T) {
	srv := redisxtest.StartServer(t)
	rdb, err := redisx.New(config.Redis{Addr: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	reg := prometheus.NewRegistry()
	bus, err := cache.NewBus(rdb, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	cache.SetPingInterval(bus, 100*time.Millisecond)
	if err := bus.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	r := &replica{rdb: rdb, bus: bus, reg: reg}
	c := newCache(t, r, cache.Options{Name: cacheName(t), L1Size: 10, L1TTL: 10 * time.Minute})
	mustGet(t, c, "p1", newDB(1).load)

	if err := rdb.Do(context.Background(), "CLIENT", "PAUSE", "1000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the silent subscription is replaced and L1 cleared", func() bool {
		return metric(t, r, cache.MetricBusErrors, nil) >= 1 &&
			metric(t, r, cache.MetricL1Clears, map[string]string{"cache": c.Name()}) >= 1 && bus.Subscribed()
	})
	if n := cache.L1Len(c); n != 0 {
		t.Fatalf("L1 holds %d entries after the subscription was replaced", n)
	}
}

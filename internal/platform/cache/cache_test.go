package cache_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/platform/cache"
	"github.com/mallhq/mall/internal/platform/redisx/redisxtest"
)

func TestThousandConcurrentMissesLoadOnce(t *testing.T) {
	r := newReplica(t, redisxtest.Addr(t))
	name := cacheName(t)
	cleanupKeys(t, r.rdb, name)
	c := newCache(t, r, cache.Options{Name: name, L1Size: 1000})
	db := newDB(100)
	slow := func(ctx context.Context) (product, error) {
		time.Sleep(50 * time.Millisecond) // keep the flight open while the others arrive
		return db.load(ctx)
	}

	const n = 1000
	start := make(chan struct{})
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for range n {
		wg.Go(func() {
			<-start
			v, err := c.Get(context.Background(), "p1", slow)
			if err != nil || v.Price != 100 {
				wrong.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := db.loads.Load(); got != 1 {
		t.Fatalf("%d concurrent misses caused %d loads, want 1", n, got)
	}
	if wrong.Load() != 0 {
		t.Fatalf("%d of %d callers did not get price 100", wrong.Load(), n)
	}
	if got := metric(t, r, cache.MetricLoads, map[string]string{"cache": name}); got != 1 {
		t.Fatalf("loads metric = %v, want 1", got)
	}
}

func TestConcurrentMissesOnTwoReplicasLoadAtMostOncePerReplica(t *testing.T) {
	addr := redisxtest.Addr(t)
	a, b := newReplica(t, addr), newReplica(t, addr)
	name := cacheName(t)
	cleanupKeys(t, a.rdb, name)
	ca := newCache(t, a, cache.Options{Name: name, L1Size: 100})
	cb := newCache(t, b, cache.Options{Name: name, L1Size: 100})
	db := newDB(100)
	slow := func(ctx context.Context) (product, error) {
		time.Sleep(50 * time.Millisecond)
		return db.load(ctx)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 1000 {
		c := ca
		if i%2 == 1 {
			c = cb
		}
		wg.Go(func() {
			<-start
			if v, err := c.Get(context.Background(), "p1", slow); err != nil || v.Price != 100 {
				t.Errorf("Get = %v, %v", v, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := db.loads.Load(); got < 1 || got > 2 {
		t.Fatalf("two replicas loaded %d times, want 1 or 2", got)
	}
}

// The done-when: two app instances sharing Redis both warm with price 100; the price
// changes to 120 and instance A invalidates (as the catalog's event consumer would). A
// never answers 100 again after Invalidate returned; B answers 120 within a second.
func TestStalePriceNeverServedAfterUpdateOnTwoReplicas(t *testing.T) {
	addr := redisxtest.Addr(t)
	a, b := newReplica(t, addr), newReplica(t, addr)
	name := cacheName(t)
	cleanupKeys(t, a.rdb, name)
	opts := cache.Options{Name: name, L1Size: 100, L1TTL: 10 * time.Minute}
	ca, cb := newCache(t, a, opts), newCache(t, b, opts)
	db := newDB(100)

	for _, c := range []*cache.Cache[product]{ca, cb} {
		for range 2 {
			if v := mustGet(t, c, "p1", db.load); v.Price != 100 {
				t.Fatalf("warm-up price %d, want 100", v.Price)
			}
		}
	}
	if got := metric(t, b, cache.MetricHits, map[string]string{"cache": name, "level": "l1"}); got != 1 {
		t.Fatalf("B L1 hits after warm-up = %v, want 1 (B must be serving from L1)", got)
	}
	loadsBefore := db.loads.Load()

	db.price.Store(120)
	if err := ca.Invalidate(context.Background(), "p1"); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if v := mustGet(t, ca, "p1", db.load); v.Price != 120 {
			t.Fatalf("A read %d after Invalidate returned: price %d, want 120", i, v.Price)
		}
	}
	sawNew := false
	eventually(t, 5*time.Second, "B serves price 120", func() bool {
		v := mustGet(t, cb, "p1", db.load)
		if sawNew && v.Price != 120 {
			t.Fatalf("B went back to price %d after serving 120", v.Price)
		}
		sawNew = v.Price == 120
		return sawNew
	})
	for range 100 {
		if v := mustGet(t, cb, "p1", db.load); v.Price != 120 {
			t.Fatalf("B went back to price %d after serving 120", v.Price)
		}
	}
	if got := db.loads.Load() - loadsBefore; got != 1 {
		t.Fatalf("%d loads after the update, want 1 (A loads, B reads L2)", got)
	}
}

// blockingLoader reads the "database" at once, then waits for release before returning:
// a slow load that read the old row.
type blockingLoader struct {
	db      *fakeDB
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func newBlockingLoader(db *fakeDB) *blockingLoader {
	return &blockingLoader{db: db, started: make(chan struct{}), release: make(chan struct{})}
}

func (l *blockingLoader) load(ctx context.Context) (product, error) {
	v, err := l.db.load(ctx)
	blocked := false
	l.once.Do(func() { blocked = true })
	if blocked {
		close(l.started)
		<-l.release
	}
	return v, err
}

// The classic race: A misses and reads v1; the price changes and is invalidated; then
// A's load finishes. Its v1 must be stored nowhere.
func TestLoadOverlappingInvalidateIsNotStored(t *testing.T) {
	tests := []struct {
		name string
		// invalidator returns the cache that invalidates: the loading one, or another replica's.
		remote bool
	}{
		{name: "same replica", remote: false},
		{name: "other replica", remote: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := redisxtest.Addr(t)
			a, b, c := newReplica(t, addr), newReplica(t, addr), newReplica(t, addr)
			name := cacheName(t)
			cleanupKeys(t, a.rdb, name)
			opts := cache.Options{Name: name, L1Size: 100, L1TTL: 10 * time.Minute}
			ca, cb, cc := newCache(t, a, opts), newCache(t, b, opts), newCache(t, c, opts)
			invalidator := ca
			if tt.remote {
				invalidator = cb
			}
			db := newDB(100)
			bl := newBlockingLoader(db)

			first := make(chan product, 1)
			go func() { first <- mustGetAsync(ca, "p1", bl.load) }()
			<-bl.started // A has read price 100 and is still loading

			db.price.Store(120)
			if err := invalidator.Invalidate(context.Background(), "p1"); err != nil {
				t.Fatal(err)
			}
			close(bl.release)
			if v := <-first; v.Price != 100 {
				t.Fatalf("the overlapping Get returned %d, want the 100 it loaded", v.Price)
			}

			// Nothing may serve 100 now: not A's L1, not L2 (read by a fresh replica), not
			// Redis itself.
			if v := mustGet(t, ca, "p1", db.load); v.Price != 120 {
				t.Fatalf("A serves %d after the invalidation, want 120", v.Price)
			}
			if v := mustGet(t, cc, "p1", db.load); v.Price != 120 {
				t.Fatalf("a third replica serves %d from L2, want 120", v.Price)
			}
			raw, err := a.rdb.HGet(context.Background(), ca.RedisKey("p1"), "v").Result()
			if err != nil || !strings.Contains(raw, `"price":120`) {
				t.Fatalf("L2 holds %q (%v), want price 120", raw, err)
			}
			if got := metric(t, a, cache.MetricStaleRefused, map[string]string{"cache": name}); got < 1 {
				t.Fatalf("stale fills refused = %v, want ≥ 1", got)
			}
		})
	}
}

func mustGetAsync(c *cache.Cache[product], key string, load func(context.Context) (product, error)) product {
	v, err := c.Get(context.Background(), key, load)
	if err != nil {
		panic(err)
	}
	return v
}

// The L1 side of the race: a Get reads the old value from L2, an Invalidate on the same
// replica completes, then the Get fills L1. The fill must be refused.
func TestL2ReadOverlappingInvalidateIsNotKeptInL1(t *testing.T) {
	addr := redisxtest.Addr(t)
	a, b := newReplica(t, addr), newReplica(t, addr)
	name := cacheName(t)
	cleanupKeys(t, a.rdb, name)
	opts := cache.Options{Name: name, L1Size: 100, L1TTL: 10 * time.Minute}
	ca, cb := newCache(t, a, opts), newCache(t, b, opts)
	db := newDB(100)
	mustGet(t, cb, "p1", db.load) // L2 holds 100; A's L1 is cold

	readL2 := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	cache.SetTestHookAfterL2(ca, func(string) {
		once.Do(func() {
			close(readL2)
			<-release
		})
	})
	first := make(chan product, 1)
	go func() { first <- mustGetAsync(ca, "p1", db.load) }()
	<-readL2 // A has read 100 from L2 and not filled L1 yet

	db.price.Store(120)
	if err := ca.Invalidate(context.Background(), "p1"); err != nil {
		t.Fatal(err)
	}
	close(release)
	if v := <-first; v.Price != 100 {
		t.Fatalf("the overlapping Get returned %d, want the 100 it read", v.Price)
	}
	if v := mustGet(t, ca, "p1", db.load); v.Price != 120 {
		t.Fatalf("A serves %d after Invalidate returned, want 120", v.Price)
	}
}

// A Get that starts after Invalidate returned must not join a load that started before.
func TestGetAfterInvalidateDoesNotJoinEarlierLoad(t *testing.T) {
	r := newReplica(t, redisxtest.Addr(t))
	name := cacheName(t)
	cleanupKeys(t, r.rdb, name)
	c := newCache(t, r, cache.Options{Name: name, L1Size: 100})
	db := newDB(100)
	bl := newBlockingLoader(db)

	first := make(chan product, 1)
	go func() { first <- mustGetAsync(c, "p1", bl.load) }()
	<-bl.started
	db.price.Store(120)
	if err := c.Invalidate(context.Background(), "p1"); err != nil {
		t.Fatal(err)
	}
	// bl.load is still blocked: a Get joining its flight would wait for release (and
	// then get 100); the deadline turns that into a failure rather than a hang.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	v, err := c.Get(ctx, "p1", bl.load)
	if err != nil || v.Price != 120 {
		t.Fatalf("Get after Invalidate = %v, %v; want price 120 from a new load", v, err)
	}
	close(bl.release)
	<-first
}

// Counted invariant under load: a writer raises the price and invalidates through A
// while readers on A and B read. Every read on A returns at least the price whose
// Invalidate had returned before the read began; B converges to the last price.
func TestConcurrentUpdatesNeverServeOlderPriceThanLastInvalidate(t *testing.T) {
	addr := redisxtest.Addr(t)
	a, b := newReplica(t, addr), newReplica(t, addr)
	name := cacheName(t)
	cleanupKeys(t, a.rdb, name)
	opts := cache.Options{Name: name, L1Size: 100, L1TTL: 10 * time.Minute}
	ca, cb := newCache(t, a, opts), newCache(t, b, opts)
	db := newDB(1)
	load := func(ctx context.Context) (product, error) {
		v, err := db.load(ctx)
		time.Sleep(time.Duration(v.Price%3) * 100 * time.Microsecond) // vary the overlap
		return v, err
	}

	const updates = 200
	var floor atomic.Int64 // price whose Invalidate has returned
	floor.Store(1)
	done := make(chan struct{})
	var reads, violations atomic.Int64
	var wg sync.WaitGroup
	for i := range 6 {
		c := ca
		if i%2 == 1 {
			c = cb
		}
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				atStart := floor.Load()
				v, err := c.Get(context.Background(), "p1", load)
				if err != nil {
					t.Errorf("Get: %v", err)
					return
				}
				reads.Add(1)
				if c == ca && v.Price < atStart {
					violations.Add(1)
					t.Errorf("A served %d after the Invalidate of %d returned", v.Price, atStart)
				}
				if v.Price < 1 || v.Price > updates {
					t.Errorf("served price %d that never existed", v.Price)
				}
			}
		})
	}
	for p := int64(2); p <= updates; p++ {
		db.price.Store(p)
		if err := ca.Invalidate(context.Background(), "p1"); err != nil {
			t.Fatal(err)
		}
		floor.Store(p)
		time.Sleep(200 * time.Microsecond)
	}
	close(done)
	wg.Wait()
	if violations.Load() != 0 {
		t.Fatalf("%d stale reads on A", violations.Load())
	}
	eventually(t, 5*time.Second, "B converges to the last price", func() bool {
		return mustGet(t, cb, "p1", load).Price == updates
	})
	if v := mustGet(t, ca, "p1", load); v.Price != updates {
		t.Fatalf("A serves %d at the end, want %d", v.Price, updates)
	}
	t.Logf("%d reads, %d loads over %d updates", reads.Load(), db.loads.Load(), updates)
}

func TestNegativeCaching(t *testing.T) {
	addr := redisxtest.Addr(t)
	a, b := newReplica(t, addr), newReplica(t, addr)
	name := cacheName(t)
	cleanupKeys(t, a.rdb, name)
	opts := cache.Options{Name: name, L1Size: 100, L1TTL: 10 * time.Minute, NegativeTTL: 300 * time.Millisecond}
	ca, cb := newCache(t, a, opts), newCache(t, b, opts)
	var exists atomic.Bool
	var loads atomic.Int64
	load := func(ctx context.Context) (product, error) {
		loads.Add(1)
		if !exists.Load() {
			return product{}, fmt.Errorf("product p9: %w", cache.ErrNotFound)
		}
		return product{ID: "p9", Price: 5}, nil
	}
	get := func(c *cache.Cache[product]) error {
		_, err := c.Get(context.Background(), "p9", load)
		return err
	}

	for i := range 3 {
		if err := get(ca); !errors.Is(err, cache.ErrNotFound) {
			t.Fatalf("Get %d on an absent key = %v, want ErrNotFound", i, err)
		}
	}
	if err := get(cb); !errors.Is(err, cache.ErrNotFound) { // from L2, no load
		t.Fatalf("other replica: %v, want ErrNotFound", err)
	}
	if got := loads.Load(); got != 1 {
		t.Fatalf("absent key loaded %d times within NegativeTTL, want 1", got)
	}

	exists.Store(true) // the product is created; its event invalidates
	if err := ca.Invalidate(context.Background(), "p9"); err != nil {
		t.Fatal(err)
	}
	if v, err := ca.Get(context.Background(), "p9", load); err != nil || v.Price != 5 {
		t.Fatalf("after Invalidate: %v, %v; want the new product", v, err)
	}
	if got := loads.Load(); got != 2 {
		t.Fatalf("loads after Invalidate = %d, want 2", got)
	}
	eventually(t, 5*time.Second, "B sees the product", func() bool { return get(cb) == nil })

	// Without an invalidation the absence expires by itself after NegativeTTL, in L1
	// too (although L1TTL is long).
	exists.Store(false)
	if err := ca.Invalidate(context.Background(), "p9"); err != nil {
		t.Fatal(err)
	}
	cachedAt := time.Now()
	if err := get(ca); !errors.Is(err, cache.ErrNotFound) {
		t.Fatal(err)
	}
	exists.Store(true)
	before := loads.Load()
	err := get(ca)
	if time.Since(cachedAt) < 300*time.Millisecond { // else the machine was too slow to tell
		if !errors.Is(err, cache.ErrNotFound) || loads.Load() != before {
			t.Fatalf("within NegativeTTL: %v after %d loads, want ErrNotFound from the cache", err, loads.Load()-before)
		}
		time.Sleep(400 * time.Millisecond)
		if err := get(ca); err != nil {
			t.Fatalf("after NegativeTTL: %v, want the product", err)
		}
		if got := loads.Load() - before; got != 1 {
			t.Fatalf("%d loads after NegativeTTL, want 1", got)
		}
	}
}

func TestLoaderErrorsAreReturnedAndNotCached(t *testing.T) {
	r := newReplica(t, redisxtest.Addr(t))
	name := cacheName(t)
	cleanupKeys(t, r.rdb, name)
	c := newCache(t, r, cache.Options{Name: name, L1Size: 100})
	boom := errors.New("db down")
	var calls atomic.Int64
	load := func(context.Context) (product, error) {
		if calls.Add(1) == 1 {
			return product{}, boom
		}
		return product{Price: 7}, nil
	}
	if _, err := c.Get(context.Background(), "k", load); !errors.Is(err, boom) {
		t.Fatalf("Get = %v, want the loader's error", err)
	}
	if v, err := c.Get(context.Background(), "k", load); err != nil || v.Price != 7 {
		t.Fatalf("second Get = %v, %v; the error must not be cached", v, err)
	}
	if got := metric(t, r, cache.MetricLoadErrors, map[string]string{"cache": name}); got != 1 {
		t.Fatalf("load errors metric = %v, want 1", got)
	}
}

func TestL1DisabledUsesL2Only(t *testing.T) {
	r := newReplica(t, redisxtest.Addr(t))
	name := cacheName(t)
	cleanupKeys(t, r.rdb, name)
	c := newCache(t, r, cache.Options{Name: name, L1Size: 0})
	db := newDB(100)
	for range 5 {
		if v := mustGet(t, c, "p1", db.load); v.Price != 100 {
			t.Fatalf("price %d", v.Price)
		}
	}
	l1 := metric(t, r, cache.MetricHits, map[string]string{"cache": name, "level": "l1"})
	l2 := metric(t, r, cache.MetricHits, map[string]string{"cache": name, "level": "l2"})
	if db.loads.Load() != 1 || l1 != 0 || l2 != 4 || cache.L1Len(c) != 0 {
		t.Fatalf("loads %d, l1 hits %v, l2 hits %v, L1 entries %d; want 1, 0, 4, 0",
			db.loads.Load(), l1, l2, cache.L1Len(c))
	}
	db.price.Store(120)
	if err := c.Invalidate(context.Background(), "p1"); err != nil {
		t.Fatal(err)
	}
	if v := mustGet(t, c, "p1", db.load); v.Price != 120 {
		t.Fatalf("after Invalidate: %d, want 120", v.Price)
	}
}

func TestHitsAreCountedByLevel(t *testing.T) {
	addr := redisxtest.Addr(t)
	a, b := newReplica(t, addr), newReplica(t, addr)
	name := cacheName(t)
	cleanupKeys(t, a.rdb, name)
	ca := newCache(t, a, cache.Options{Name: name, L1Size: 10})
	cb := newCache(t, b, cache.Options{Name: name, L1Size: 10})
	db := newDB(1)
	mustGet(t, ca, "k", db.load) // miss, load
	mustGet(t, ca, "k", db.load) // l1
	mustGet(t, cb, "k", db.load) // l2
	mustGet(t, cb, "k", db.load) // l1
	for _, tt := range []struct {
		r      *replica
		name   string
		labels map[string]string
		want   float64
	}{
		{a, cache.MetricMisses, map[string]string{"cache": name}, 1},
		{a, cache.MetricLoads, map[string]string{"cache": name}, 1},
		{a, cache.MetricHits, map[string]string{"cache": name, "level": "l1"}, 1},
		{a, cache.MetricHits, map[string]string{"cache": name, "level": "l2"}, 0},
		{b, cache.MetricHits, map[string]string{"cache": name, "level": "l2"}, 1},
		{b, cache.MetricHits, map[string]string{"cache": name, "level": "l1"}, 1},
		{b, cache.MetricMisses, map[string]string{"cache": name}, 0},
	} {
		if got := metric(t, tt.r, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	if err := ca.Invalidate(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "B counts the remote invalidation", func() bool {
		return metric(t, b, cache.MetricInvalidations, map[string]string{"cache": name, "source": "remote"}) == 1
	})
	if got := metric(t, a, cache.MetricInvalidations, map[string]string{"cache": name, "source": "local"}); got != 1 {
		t.Fatalf("local invalidations on A = %v, want 1", got)
	}
}

// One caller giving up must not fail the others sharing its load.
func TestCallerCancellationDoesNotFailSharedLoad(t *testing.T) {
	r := newReplica(t, redisxtest.Addr(t))
	name := cacheName(t)
	cleanupKeys(t, r.rdb, name)
	c := newCache(t, r, cache.Options{Name: name, L1Size: 10})
	db := newDB(100)
	bl := newBlockingLoader(db)

	ctx, cancel := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, "p1", bl.load)
		firstErr <- err
	}()
	<-bl.started
	second := make(chan product, 1)
	go func() { second <- mustGetAsync(c, "p1", bl.load) }()
	cancel()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v, want context.Canceled", err)
	}
	close(bl.release)
	if v := <-second; v.Price != 100 {
		t.Fatalf("other caller got %d, want 100", v.Price)
	}
	if db.loads.Load() != 1 {
		t.Fatalf("%d loads, want 1", db.loads.Load())
	}
}

func TestLoaderPanicReachesCallers(t *testing.T) {
	r := newReplica(t, redisxtest.Addr(t))
	name := cacheName(t)
	cleanupKeys(t, r.rdb, name)
	c := newCache(t, r, cache.Options{Name: name, L1Size: 10})
	defer func() {
		p := recover()
		if p == nil || !strings.Contains(fmt.Sprint(p), "loader panicked: kaboom") {
			t.Fatalf("recovered %v, want the loader's panic", p)
		}
		// Nothing was cached: the next Get loads.
		if v := mustGet(t, c, "k", newDB(3).load); v.Price != 3 {
			t.Fatalf("after the panic: %d", v.Price)
		}
	}()
	c.Get(context.Background(), "k", func(context.Context) (product, error) { panic("kaboom") })
}

func TestUndecodableL2ValueIsReplaced(t *testing.T) {
	r := newReplica(t, redisxtest.Addr(t))
	name := cacheName(t)
	cleanupKeys(t, r.rdb, name)
	c := newCache(t, r, cache.Options{Name: name, L1Size: 10})
	ctx := context.Background()
	if err := r.rdb.HSet(ctx, c.RedisKey("p1"), "v", `v{"price":"not a number"}`).Err(); err != nil {
		t.Fatal(err)
	}
	db := newDB(100)
	if v := mustGet(t, c, "p1", db.load); v.Price != 100 {
		t.Fatalf("price %d", v.Price)
	}
	if got := metric(t, r, cache.MetricDecodeErrors, map[string]string{"cache": name}); got != 1 {
		t.Fatalf("decode errors = %v, want 1", got)
	}
	raw, err := r.rdb.HGet(ctx, c.RedisKey("p1"), "v").Result()
	if err != nil || !strings.Contains(raw, `"price":100`) {
		t.Fatalf("L2 = %q, %v; want the reloaded value", raw, err)
	}
}

func TestL2EntriesExpireWithJitteredTTL(t *testing.T) {
	r := newReplica(t, redisxtest.Addr(t))
	name := cacheName(t)
	cleanupKeys(t, r.rdb, name)
	c := newCache(t, r, cache.Options{Name: name, L1Size: 10, L2TTL: time.Minute, NegativeTTL: 5 * time.Second})
	mustGet(t, c, "p1", newDB(1).load)
	_, _ = c.Get(context.Background(), "gone", func(context.Context) (product, error) { return product{}, cache.ErrNotFound })
	ttl := r.rdb.PTTL(context.Background(), c.RedisKey("p1")).Val()
	if ttl < 55*time.Second || ttl > 66*time.Second+time.Second {
		t.Fatalf("value TTL %s, want L2TTL plus up to 10%%", ttl)
	}
	if ttl := r.rdb.PTTL(context.Background(), c.RedisKey("gone")).Val(); ttl <= 0 || ttl > 5*time.Second {
		t.Fatalf("negative entry TTL %s, want NegativeTTL", ttl)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	r := newReplica(t, redisxtest.Addr(t))
	tests := []struct {
		name string
		give cache.Options
		want error
	}{
		{"empty name", cache.Options{}, cache.ErrConfig},
		{"colon in name", cache.Options{Name: "a:b"}, cache.ErrConfig},
		{"upper case", cache.Options{Name: "Product"}, cache.ErrConfig},
		{"negative size", cache.Options{Name: "x", L1Size: -1}, cache.ErrConfig},
		{"negative ttl", cache.Options{Name: "x", L2TTL: -time.Second}, cache.ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := cache.New[product](r.rdb, r.bus, tt.give); !errors.Is(err, tt.want) {
				t.Fatalf("New(%+v) = %v, want %v", tt.give, err, tt.want)
			}
		})
	}
	name := cacheName(t)
	if _, err := cache.New[product](r.rdb, r.bus, cache.Options{Name: name}); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.New[string](r.rdb, r.bus, cache.Options{Name: name}); !errors.Is(err, cache.ErrDuplicateName) {
		t.Fatalf("second cache named %q: %v, want ErrDuplicateName", name, err)
	}
}

// One Bus serves caches of different value types; an invalidation reaches only its cache.
func TestBusRoutesInvalidationsByCacheName(t *testing.T) {
	addr := redisxtest.Addr(t)
	a, b := newReplica(t, addr), newReplica(t, addr)
	n1, n2 := cacheName(t), cacheName(t)
	cleanupKeys(t, a.rdb, n1)
	cleanupKeys(t, a.rdb, n2)
	pb := newCache(t, b, cache.Options{Name: n1, L1Size: 10, L1TTL: time.Hour})
	sa, err := cache.New[string](a.rdb, a.bus, cache.Options{Name: n2, L1Size: 10, L1TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := cache.New[string](b.rdb, b.bus, cache.Options{Name: n2, L1Size: 10, L1TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	db := newDB(1)
	var label atomic.Value
	label.Store("one")
	loadLabel := func(context.Context) (string, error) { return label.Load().(string), nil }
	mustGet(t, pb, "k", db.load)
	if v, _ := sb.Get(context.Background(), "k", loadLabel); v != "one" {
		t.Fatal(v)
	}
	db.price.Store(2)
	label.Store("two")
	if err := sa.Invalidate(context.Background(), "k"); err != nil { // only the string cache
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "B's string cache hears its invalidation", func() bool {
		v, _ := sb.Get(context.Background(), "k", loadLabel)
		return v == "two"
	})
	if v := mustGet(t, pb, "k", db.load); v.Price != 1 {
		t.Fatalf("the product cache was invalidated by the string cache's message: %d", v.Price)
	}
}

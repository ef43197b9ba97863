package idgen_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mallhq/mall/internal/platform/idgen"
)

func TestConcurrentIDsAreUniqueAndCarryTheShard(t *testing.T) {
	g, err := idgen.New(7)
	if err != nil {
		t.Fatal(err)
	}
	const workers, per = 8, 20000
	ids := make([][]int64, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				shard := (w*per + i) % 1024
				id := g.Next(shard)
				if idgen.Shard(id) != shard {
					t.Errorf("id %d carries shard %d, want %d", id, idgen.Shard(id), shard)
					return
				}
				ids[w] = append(ids[w], id)
			}
		}(w)
	}
	wg.Wait()
	seen := make(map[int64]struct{}, workers*per)
	for _, list := range ids {
		for i, id := range list {
			if id <= 0 {
				t.Fatalf("non-positive id %d", id)
			}
			if _, dup := seen[id]; dup {
				t.Fatalf("duplicate id %d", id)
			}
			seen[id] = struct{}{}
			// One goroutine's IDs increase (ignoring the shard bits, which vary).
			if i > 0 && id>>10 <= list[i-1]>>10 {
				t.Fatalf("ids not increasing: %d after %d", id, list[i-1])
			}
		}
	}
}

func TestDifferentNodesNeverCollide(t *testing.T) {
	a, _ := idgen.New(1)
	b, _ := idgen.New(2)
	seen := map[int64]bool{}
	for i := 0; i < 50000; i++ {
		for _, id := range []int64{a.Next(5), b.Next(5)} {
			if seen[id] {
				t.Fatalf("collision %d", id)
			}
			seen[id] = true
		}
	}
}

func TestTimeRoundTrip(t *testing.T) {
	g, _ := idgen.New(0)
	before := time.Now().Add(-time.Millisecond)
	id := g.Next(0)
	if got := idgen.Time(id); got.Before(before) || got.After(time.Now().Add(time.Second)) {
		t.Fatalf("Time(id) = %v", got)
	}
}

func TestNodeRange(t *testing.T) {
	for _, n := range []int{-1, 256} {
		if _, err := idgen.New(n); err == nil {
			t.Errorf("node %d accepted", n)
		}
	}
}

func TestLeasesAreExclusive(t *testing.T) {
	addr := os.Getenv("MALL_TEST_REDIS_ADDR")
	if addr == "" {
		t.Fatal("MALL_TEST_REDIS_ADDR is not set: run `make test`")
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, DB: 60}) // DB 60 is this test's own
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var leases []*idgen.Lease
	seen := map[int]bool{}
	for i := 0; i < 5; i++ {
		l, err := idgen.AcquireLease(ctx, rdb)
		if err != nil {
			t.Fatal(err)
		}
		if seen[l.Node] {
			t.Fatalf("node %d leased twice", l.Node)
		}
		seen[l.Node] = true
		leases = append(leases, l)
	}
	if err := leases[0].Release(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := idgen.AcquireLease(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if l.Node != leases[0].Node {
		t.Fatalf("released node %d not reused, got %d", leases[0].Node, l.Node)
	}
	for _, l := range append(leases[1:], l) {
		_ = l.Release(ctx)
	}
}

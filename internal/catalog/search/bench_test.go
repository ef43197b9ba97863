package search

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkSearch100k measures the bleve engine on 100,000 generated products (see
// GenerateProducts): keyword + filter + facets queries, sequentially, in parallel (capacity
// on this machine's cores) and paced at 100 queries/s (latency under the target load; use
// -benchtime=3000x for a 30 s run). It reports p50/p99 in ms next to ns/op.
//
//	go test -run '^$' -bench Search100k -benchtime 3000x ./internal/catalog/search/
//
// Building the index takes a while; set MALL_SEARCH_BENCH_INDEX to a directory to keep it
// between runs.
func BenchmarkSearch100k(b *testing.B) {
	ctx := context.Background()
	path := os.Getenv("MALL_SEARCH_BENCH_INDEX")
	if path == "" {
		path = filepath.Join(b.TempDir(), "bench.bleve")
	}
	s, err := OpenBleve(path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if res, err := s.Search(ctx, Query{Limit: 1}); err != nil {
		b.Fatal(err)
	} else if res.Total != 100_000 {
		start := time.Now()
		err := s.Rebuild(ctx, func(yield func(Product) error) error {
			for _, p := range GenerateProducts(100_000, 1) {
				if err := yield(p); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("indexed 100,000 products in %s", time.Since(start).Round(time.Millisecond))
	}
	queries := benchQueries(1000)
	for _, q := range queries[:3] {
		res, err := s.Search(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("sample %+v: %d hits, %d+%d facets", q, res.Total, len(res.Facets.Category), len(res.Facets.Brand))
	}

	b.Run("sequential", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			start := time.Now()
			if _, err := s.Search(ctx, queries[i%len(queries)]); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		reportLatency(b, lat)
	})

	b.Run("parallel", func(b *testing.B) {
		var next int64
		var mu sync.Mutex
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if _, err := s.Search(ctx, queries[i%int64(len(queries))]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	b.Run("rate100", func(b *testing.B) {
		var (
			mu  sync.Mutex
			lat = make([]time.Duration, 0, b.N)
			wg  sync.WaitGroup
		)
		tick := time.NewTicker(10 * time.Millisecond) // 100 queries/s, open loop
		defer tick.Stop()
		b.ResetTimer()
		for i := range b.N {
			<-tick.C
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				if _, err := s.Search(ctx, queries[i%len(queries)]); err != nil {
					b.Error(err)
					return
				}
				d := time.Since(start)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}()
		}
		wg.Wait()
		b.StopTimer()
		reportLatency(b, lat)
	})
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "max-ms")
}

// benchQueries is a deterministic mix of storefront searches: a keyword (Chinese, English,
// or mixed) in 9 of 10, a category filter in half, a brand or a price range now and then,
// every sort, and facets always (the engine computes them on every query).
func benchQueries(n int) []Query {
	rng := rand.New(rand.NewPCG(7, 7))
	cats := GeneratedCategories()
	var out []Query
	for range n {
		r, br, l := rng.IntN(5), rng.IntN(3), rng.IntN(2)
		leaf := genTree[r].branches[br].leaves[l]
		var q Query
		switch rng.IntN(10) {
		case 0, 1, 2, 3:
			q.Q = leaf.zh
		case 4, 5:
			q.Q = leaf.en
		case 6:
			q.Q = genPick(rng, genFeatZH) + leaf.zh
		case 7:
			q.Q = genPick(rng, genAdjEN) + " " + leaf.en
		case 8:
			q.Q = genBrandName(rng.IntN(GeneratedBrandsN))
		}
		if rng.IntN(2) == 0 {
			if rng.IntN(2) == 0 {
				q.CategoryID = int64(r + 1)
			} else {
				q.CategoryID = genBranchID(r, br)
			}
		} else if q.Q == "" {
			q.CategoryID = cats[rng.IntN(len(cats))].ID
		}
		if rng.IntN(5) == 0 {
			q.BrandID = int64(1 + rng.IntN(GeneratedBrandsN))
		}
		if rng.IntN(4) == 0 {
			q.PriceMin, q.PriceMax = ptr(leaf.basePrice/2), ptr(leaf.basePrice*2)
		}
		q.Sort = allSorts[rng.IntN(len(allSorts))]
		out = append(out, q)
	}
	return out
}

func TestGenerateProductsIsDeterministic(t *testing.T) {
	t.Parallel()
	a, b := GenerateProducts(500, 42), GenerateProducts(500, 42)
	if !slices.EqualFunc(a, b, func(x, y Product) bool { return fmt.Sprint(x) == fmt.Sprint(y) }) {
		t.Fatal("same seed, different products")
	}
	if c := GenerateProducts(500, 43); fmt.Sprint(c[0]) == fmt.Sprint(a[0]) && fmt.Sprint(c[1]) == fmt.Sprint(a[1]) {
		t.Fatal("different seeds, same products")
	}
	cats := map[int64]GeneratedCategory{}
	for _, c := range GeneratedCategories() {
		if c.ParentID != 0 {
			if _, ok := cats[c.ParentID]; !ok {
				t.Fatalf("category %d listed before its parent %d", c.ID, c.ParentID)
			}
		}
		cats[c.ID] = c
	}
	if len(cats) != 50 || len(GeneratedBrands()) != GeneratedBrandsN {
		t.Fatalf("%d categories, %d brands", len(cats), len(GeneratedBrands()))
	}
	for _, p := range a {
		if _, err := p.normalize(); err != nil {
			t.Fatal(err)
		}
		if cats[p.CategoryID].ParentID != p.CategoryPath[1] || cats[p.CategoryPath[1]].ParentID != p.CategoryPath[0] {
			t.Fatalf("product %d: path %v does not follow the tree", p.ID, p.CategoryPath)
		}
		if p.MerchantID < 1 || p.MerchantID > GeneratedMerchants || p.BrandID > GeneratedBrandsN || p.Title == "" {
			t.Fatalf("product %+v", p)
		}
	}
	// The generated titles are searchable the way the catalog seed relies on.
	s := indexed(t, newBleve(t), a...)
	if res := mustSearch(t, s, Query{Q: "保温杯"}); res.Total == 0 {
		t.Fatal("no 保温杯 among the generated products")
	}
}

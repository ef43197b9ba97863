package search

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The contract every engine meets. contractTest runs it against one engine; newSearcher
// returns a fresh, empty Searcher (closed by the test's cleanup).

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Categories: 1 家居 > 11 杯壶 > {111 保温杯, 112 杯子}; 2 数码 > {21 手机, 22 手表}.
// Brands: 501 Thermos, 502 Tiger, 503 Apple, 504 Huawei. Merchants 9001, 9002.
func fixtureProducts() []Product {
	p := func(id int64, title, sub string, path []int64, brand, merchant, lo, hi int64, hours int) Product {
		return Product{ID: id, Title: title, Subtitle: sub, CategoryID: path[len(path)-1], CategoryPath: path,
			BrandID: brand, MerchantID: merchant, PriceMin: lo, PriceMax: hi,
			CreatedAt: t0.Add(time.Duration(hours) * time.Hour)}
	}
	flask, mug, phone, watch := []int64{1, 11, 111}, []int64{1, 11, 112}, []int64{2, 21}, []int64{2, 22}
	return []Product{
		p(101, "不锈钢保温杯 500ml", "Thermos 真空保温 长效保冷", flask, 501, 9001, 8900, 12900, 1),
		p(102, "保温杯", "简约款 大容量", flask, 502, 9002, 5900, 5900, 2),
		p(103, "Thermos Vacuum Insulated Bottle", "Stainless steel, keeps drinks hot", flask, 501, 9001, 15900, 19900, 3),
		p(104, "陶瓷马克杯", "可搭配保温杯套使用", mug, 0, 9002, 2900, 6900, 4),
		p(105, "智能手机 Pro Max 256GB", "5G 全网通", phone, 504, 9001, 499900, 599900, 5),
		p(106, "智能手表 运动版", "心率监测 长续航", watch, 504, 9001, 129900, 129900, 6),
		p(107, "iPhone 15 手机壳", "透明防摔", phone, 503, 9002, 3900, 4900, 7),
		p(108, "Apple Watch Series 9", "智能手表 GPS", watch, 503, 9002, 299900, 299900, 8),
		p(109, "thermos kids water bottle", "儿童 吸管杯", mug, 501, 9002, 8900, 8900, 9),
		p(110, "THERMOS 焖烧罐", "保温 焖烧 一体", flask, 501, 9001, 18900, 18900, 10),
	}
}

// pagingProducts has many equal sort keys: 4 prices, 5 creation times, 3 title lengths.
func pagingProducts() []Product {
	var out []Product
	for i := range 23 {
		title := "Widget 测试"
		for range i % 3 {
			title += " extra"
		}
		out = append(out, Product{
			ID: int64(1001 + i), Title: title, Subtitle: "paging",
			CategoryID: 112, CategoryPath: []int64{1, 11, 112},
			BrandID: int64(600 + i%2), MerchantID: int64(9100 + i%2),
			PriceMin: int64(990 + 1000*(i%4)), PriceMax: int64(990 + 1000*(i%4)),
			CreatedAt: t0.Add(time.Duration(i%5) * time.Hour),
		})
	}
	return out
}

func ptr(n int64) *int64 { return &n }

func mustSearch(t *testing.T, s Searcher, q Query) Result {
	t.Helper()
	res, err := s.Search(context.Background(), q)
	if err != nil {
		t.Fatalf("Search(%+v): %v", q, err)
	}
	return res
}

func hitIDs(r Result) []int64 {
	ids := make([]int64, len(r.Items))
	for i, h := range r.Items {
		ids[i] = h.ID
	}
	return ids
}

func sorted(ids []int64) []int64 {
	c := slices.Clone(ids)
	slices.Sort(c)
	return c
}

func indexed(t *testing.T, s Searcher, ps ...Product) Searcher {
	t.Helper()
	if err := s.Index(context.Background(), ps...); err != nil {
		t.Fatalf("Index: %v", err)
	}
	return s
}

func contractTest(t *testing.T, newSearcher func(t *testing.T) Searcher) {
	ctx := context.Background()
	withFixture := func(t *testing.T) Searcher { return indexed(t, newSearcher(t), fixtureProducts()...) }

	t.Run("KeywordMatching", func(t *testing.T) {
		s := withFixture(t)
		tests := []struct {
			name string
			give string
			want []int64 // as a set
		}{
			{"chinese bigrams find the longer word", "保温杯", []int64{101, 102, 104}},
			{"手机 finds 智能手机 and 手机壳 but not 手表", "手机", []int64{105, 107}},
			{"english is case-insensitive", "Thermos", []int64{101, 103, 109, 110}},
			{"english lower case", "thermos", []int64{101, 103, 109, 110}},
			{"english upper case", "THERMOS", []int64{101, 103, 109, 110}},
			{"full-width latin folds", "ＴＨＥＲＭＯＳ", []int64{101, 103, 109, 110}},
			{"every word must match", "thermos bottle", []int64{103, 109}},
			{"stop words are ignored", "the thermos bottle", []int64{103, 109}},
			{"terms may come from title and subtitle", "Thermos 保温杯", []int64{101}},
			{"unrelated words do not flood results", "保温杯 iphone", nil},
			{"mixed latin and chinese in one title", "iphone 手机壳", []int64{107}},
			{"a keyword of only stop words matches nothing", "the", nil},
			{"punctuation only matches nothing", "!!!", nil},
			{"surrounding space is ignored", "  智能手表  ", []int64{106, 108}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := mustSearch(t, s, Query{Q: tt.give})
				if got := sorted(hitIDs(res)); !slices.Equal(got, sorted(tt.want)) {
					t.Fatalf("Q=%q: got %v, want %v", tt.give, got, sorted(tt.want))
				}
				if res.Total != len(tt.want) {
					t.Fatalf("Q=%q: total %d, want %d", tt.give, res.Total, len(tt.want))
				}
			})
		}
	})

	t.Run("HitFields", func(t *testing.T) {
		s := withFixture(t)
		res := mustSearch(t, s, Query{Q: "保温杯", BrandID: 502})
		want := []Hit{{ID: 102, Title: "保温杯", PriceMin: 5900, MerchantID: 9002}}
		if !slices.Equal(res.Items, want) {
			t.Fatalf("got %+v, want %+v", res.Items, want)
		}
	})

	t.Run("Filters", func(t *testing.T) {
		s := withFixture(t)
		tests := []struct {
			name string
			give Query
			want []int64
		}{
			{"root category includes descendants", Query{CategoryID: 1}, []int64{101, 102, 103, 104, 109, 110}},
			{"middle category includes descendants", Query{CategoryID: 11}, []int64{101, 102, 103, 104, 109, 110}},
			{"leaf category", Query{CategoryID: 111}, []int64{101, 102, 103, 110}},
			{"other root", Query{CategoryID: 2}, []int64{105, 106, 107, 108}},
			{"unknown category", Query{CategoryID: 999}, nil},
			{"brand", Query{BrandID: 501}, []int64{101, 103, 109, 110}},
			{"merchant", Query{MerchantID: 9002}, []int64{102, 104, 107, 108, 109}},
			// price_min must lie in the range: 104 (2900..6900) overlaps [5000, 9000] but is out.
			{"price range on price_min, inclusive", Query{PriceMin: ptr(5900), PriceMax: ptr(8900)}, []int64{101, 102, 109}},
			{"price range excludes mere overlap", Query{PriceMin: ptr(5000), PriceMax: ptr(9000)}, []int64{101, 102, 109}},
			{"price lower bound only", Query{PriceMin: ptr(100000)}, []int64{105, 106, 108}},
			{"price upper bound only, inclusive", Query{PriceMax: ptr(3900)}, []int64{104, 107}},
			{"filters are a conjunction", Query{CategoryID: 111, MerchantID: 9001}, []int64{101, 103, 110}},
			{"keyword and filters", Query{Q: "thermos", CategoryID: 111, MerchantID: 9001, PriceMax: ptr(16000)}, []int64{101, 103}},
			{"keyword and brand", Query{Q: "智能", BrandID: 503}, []int64{108}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := mustSearch(t, s, tt.give)
				if got := sorted(hitIDs(res)); !slices.Equal(got, sorted(tt.want)) {
					t.Fatalf("got %v, want %v", got, sorted(tt.want))
				}
				if res.Total != len(tt.want) {
					t.Fatalf("total %d, want %d", res.Total, len(tt.want))
				}
			})
		}
	})

	t.Run("Sorts", func(t *testing.T) {
		s := withFixture(t)
		tests := []struct {
			name string
			give Query
			want []int64 // in order
		}{
			{"price ascending, ties by ID ascending", Query{CategoryID: 1, Sort: SortPriceAsc}, []int64{104, 102, 101, 109, 103, 110}},
			{"price descending, ties by ID descending", Query{CategoryID: 1, Sort: SortPriceDesc}, []int64{110, 103, 109, 101, 102, 104}},
			{"newest first", Query{CategoryID: 1, Sort: SortNewest}, []int64{110, 109, 104, 103, 102, 101}},
			{"relevance without keyword is newest", Query{CategoryID: 2}, []int64{108, 107, 106, 105}},
			{"relevance: short title match, longer title match, subtitle match", Query{Q: "保温杯"}, []int64{102, 101, 104}},
			{"relevance: title match before subtitle match", Query{Q: "智能手表"}, []int64{106, 108}},
			{"price sort with keyword", Query{Q: "thermos", Sort: SortPriceAsc}, []int64{101, 109, 103, 110}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := hitIDs(mustSearch(t, s, tt.give)); !slices.Equal(got, tt.want) {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			})
		}
	})

	t.Run("Facets", func(t *testing.T) {
		s := withFixture(t)
		tests := []struct {
			name            string
			give            Query
			category, brand []Facet
			total           int
		}{
			{"whole index", Query{},
				[]Facet{{111, 4}, {21, 2}, {22, 2}, {112, 2}},
				[]Facet{{501, 4}, {503, 2}, {504, 2}, {502, 1}}, 10},
			{"over the filtered set, not the page", Query{CategoryID: 1, Limit: 1},
				[]Facet{{111, 4}, {112, 2}}, []Facet{{501, 4}, {502, 1}}, 6},
			{"with a keyword", Query{Q: "智能"},
				[]Facet{{22, 2}, {21, 1}}, []Facet{{504, 2}, {503, 1}}, 3},
			{"every filter applies, the facet's own too", Query{Q: "智能", BrandID: 503},
				[]Facet{{22, 1}}, []Facet{{503, 1}}, 1},
			{"no hits, no facets", Query{Q: "不存在的商品"}, []Facet{}, []Facet{}, 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := mustSearch(t, s, tt.give)
				if !slices.Equal(res.Facets.Category, tt.category) {
					t.Errorf("category facets %v, want %v", res.Facets.Category, tt.category)
				}
				if !slices.Equal(res.Facets.Brand, tt.brand) {
					t.Errorf("brand facets %v, want %v", res.Facets.Brand, tt.brand)
				}
				if res.Total != tt.total {
					t.Errorf("total %d, want %d", res.Total, tt.total)
				}
			})
		}
	})

	t.Run("Pagination", func(t *testing.T) {
		s := indexed(t, newSearcher(t), pagingProducts()...)
		for _, base := range []Query{
			{Q: "widget", Sort: SortRelevance},
			{Q: "widget", Sort: SortPriceAsc},
			{Sort: SortPriceDesc},
			{Sort: SortNewest},
			{Q: "测试", MerchantID: 9101, Sort: SortPriceAsc},
		} {
			for _, limit := range []int{4, 5, 23} {
				t.Run(fmt.Sprintf("%s q=%s m=%d limit=%d", base.Sort, base.Q, base.MerchantID, limit), func(t *testing.T) {
					all := base
					all.Limit = 100
					want := mustSearch(t, s, all)
					if want.NextCursor != "" {
						t.Fatalf("single page has a next cursor")
					}
					var got []int64
					q := base
					q.Limit = limit
					pages := 0
					for {
						res := mustSearch(t, s, q)
						pages++
						if res.Total != want.Total {
							t.Fatalf("page %d: total %d, want %d", pages, res.Total, want.Total)
						}
						if len(res.Items) > limit {
							t.Fatalf("page %d: %d items, limit %d", pages, len(res.Items), limit)
						}
						got = append(got, hitIDs(res)...)
						if res.NextCursor == "" {
							break
						}
						if pages > 30 {
							t.Fatal("pagination does not end")
						}
						q.Cursor = res.NextCursor
					}
					if !slices.Equal(got, hitIDs(want)) {
						t.Fatalf("paged %v\nwant  %v", got, hitIDs(want))
					}
					if wantPages := max(1, (want.Total+limit-1)/limit); pages != wantPages {
						t.Fatalf("%d pages, want %d (the last full page must not announce an empty one)", pages, wantPages)
					}
				})
			}
		}
		if n := len(hitIDs(mustSearch(t, s, Query{Q: "widget"}))); n != DefaultLimit {
			t.Fatalf("default limit: %d items, want %d", n, DefaultLimit)
		}
	})

	t.Run("BadQueries", func(t *testing.T) {
		s := indexed(t, newSearcher(t), pagingProducts()...)
		first := mustSearch(t, s, Query{Sort: SortPriceAsc, Limit: 2})
		if first.NextCursor == "" {
			t.Fatal("no cursor to reuse")
		}
		tests := []struct {
			name string
			give Query
		}{
			{"cursor not base64", Query{Cursor: "!!!"}},
			{"cursor of garbage", Query{Cursor: base64.RawURLEncoding.EncodeToString([]byte("garbage"))}},
			{"cursor with unknown fields", Query{Cursor: base64.RawURLEncoding.EncodeToString([]byte(`{"s":"newest","id":1,"x":1}`))}},
			{"cursor for another sort", Query{Sort: SortPriceDesc, Cursor: first.NextCursor}},
			{"cursor for another filter", Query{Sort: SortPriceAsc, MerchantID: 9100, Cursor: first.NextCursor}},
			{"unknown sort", Query{Sort: "cheapest"}},
			{"price_min above price_max", Query{PriceMin: ptr(5000), PriceMax: ptr(4999)}},
			{"negative price", Query{PriceMin: ptr(-1)}},
			{"negative limit", Query{Limit: -1}},
			{"negative ID", Query{CategoryID: -5}},
			{"keyword too long", Query{Q: string(make([]byte, MaxQueryLen+1))}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.Search(ctx, tt.give)
				if !errors.Is(err, ErrBadQuery) {
					t.Fatalf("err = %v, want ErrBadQuery", err)
				}
			})
		}
		// The cursor still works with its own query.
		next := mustSearch(t, s, Query{Sort: SortPriceAsc, Limit: 2, Cursor: first.NextCursor})
		if len(next.Items) != 2 || slices.Contains(hitIDs(first), next.Items[0].ID) {
			t.Fatalf("second page %v after %v", hitIDs(next), hitIDs(first))
		}
		if err := s.Index(ctx, Product{ID: 0, MerchantID: 1, CategoryID: 1, CreatedAt: t0}); !errors.Is(err, ErrBadProduct) {
			t.Fatalf("Index(ID 0) = %v, want ErrBadProduct", err)
		}
		if err := s.Index(ctx, Product{ID: 1, MerchantID: 1, CategoryID: 1, PriceMin: 10, PriceMax: 5, CreatedAt: t0}); !errors.Is(err, ErrBadProduct) {
			t.Fatalf("Index(price_min > price_max) = %v, want ErrBadProduct", err)
		}
	})

	t.Run("DeleteRemoves", func(t *testing.T) {
		s := withFixture(t)
		if err := s.Delete(ctx, 102, 999999); err != nil { // 999999 does not exist
			t.Fatal(err)
		}
		res := mustSearch(t, s, Query{Q: "保温杯"})
		if got := sorted(hitIDs(res)); !slices.Equal(got, []int64{101, 104}) {
			t.Fatalf("after delete: %v", got)
		}
		if res := mustSearch(t, s, Query{}); res.Total != 9 || !slices.Equal(res.Facets.Brand, []Facet{{501, 4}, {503, 2}, {504, 2}}) {
			t.Fatalf("after delete: total %d, brands %v", res.Total, res.Facets.Brand)
		}
		if err := s.Delete(ctx); err != nil {
			t.Fatalf("Delete(): %v", err)
		}
	})

	t.Run("ReindexUpdates", func(t *testing.T) {
		s := withFixture(t)
		p := fixtureProducts()[1] // 102 保温杯, 5900
		p.PriceMin, p.PriceMax = 25900, 25900
		p.Title = "保温杯 升级款"
		p.CategoryID, p.CategoryPath = 112, []int64{1, 11, 112}
		indexed(t, s, p)
		if got := sorted(hitIDs(mustSearch(t, s, Query{PriceMin: ptr(5000), PriceMax: ptr(9000)}))); !slices.Equal(got, []int64{101, 109}) {
			t.Fatalf("old price still matches: %v", got)
		}
		res := mustSearch(t, s, Query{Q: "升级款"})
		want := []Hit{{ID: 102, Title: "保温杯 升级款", PriceMin: 25900, MerchantID: 9002}}
		if !slices.Equal(res.Items, want) {
			t.Fatalf("got %+v, want %+v", res.Items, want)
		}
		if got := hitIDs(mustSearch(t, s, Query{CategoryID: 1, Sort: SortPriceDesc, Limit: 1})); !slices.Equal(got, []int64{102}) {
			t.Fatalf("price sort after update: %v", got)
		}
		if res := mustSearch(t, s, Query{CategoryID: 111}); res.Total != 3 {
			t.Fatalf("moved product still in its old category: total %d", res.Total)
		}
		if res := mustSearch(t, s, Query{}); res.Total != 10 {
			t.Fatalf("upsert duplicated the document: total %d", res.Total)
		}
	})

	t.Run("Rebuild", func(t *testing.T) {
		s := withFixture(t)
		newSet := pagingProducts()
		keep := fixtureProducts()[0] // 101 survives, with a new price
		keep.PriceMin = 1000
		newSet = append(newSet, keep)

		// Searches running throughout see either the old set (10) or the new one (24), never
		// a mix, never an error.
		var (
			stop     = make(chan struct{})
			wg       sync.WaitGroup
			searches atomic.Int64
			bad      atomic.Value
		)
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					res, err := s.Search(ctx, Query{Limit: 1})
					searches.Add(1)
					if err != nil {
						bad.Store(fmt.Sprintf("search during rebuild: %v", err))
						return
					}
					if res.Total != 10 && res.Total != len(newSet) {
						bad.Store(fmt.Sprintf("search during rebuild saw %d documents", res.Total))
						return
					}
				}
			}()
		}
		err := s.Rebuild(ctx, func(yield func(Product) error) error {
			for i, p := range newSet {
				if i == len(newSet)/2 {
					// Half-way: the live index still answers with the old set.
					if res := mustSearch(t, s, Query{}); res.Total != 10 {
						return fmt.Errorf("live index changed during rebuild: total %d", res.Total)
					}
				}
				if err := yield(p); err != nil {
					return err
				}
			}
			return nil
		})
		// Let the readers run a few searches (a failing reader stops early and reports).
		for deadline := time.Now().Add(5 * time.Second); searches.Load() < 5 && bad.Load() == nil && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("Rebuild: %v", err)
		}
		if msg := bad.Load(); msg != nil {
			t.Fatal(msg)
		}
		res := mustSearch(t, s, Query{Q: "保温杯"})
		if want := []Hit{{ID: 101, Title: keep.Title, PriceMin: 1000, MerchantID: 9001}}; !slices.Equal(res.Items, want) {
			t.Fatalf("after rebuild: %+v, want %+v", res.Items, want)
		}
		if res := mustSearch(t, s, Query{}); res.Total != len(newSet) {
			t.Fatalf("after rebuild: total %d, want %d", res.Total, len(newSet))
		}
		// The rebuilt index takes writes as usual.
		indexed(t, s, fixtureProducts()[4])
		if got := hitIDs(mustSearch(t, s, Query{Q: "手机"})); !slices.Equal(got, []int64{105}) {
			t.Fatalf("write after rebuild: %v", got)
		}
	})

	t.Run("RebuildKeepsConcurrentWrites", func(t *testing.T) {
		s := withFixture(t)
		fx := fixtureProducts()
		fresh := fx[1] // 102, updated live during the rebuild
		fresh.PriceMin, fresh.PriceMax = 7700, 7700
		added := Product{ID: 120, Title: "新品保温壶", MerchantID: 9001, CategoryID: 111, CategoryPath: []int64{1, 11, 111}, PriceMin: 100, PriceMax: 100, CreatedAt: t0}
		err := s.Rebuild(ctx, func(yield func(Product) error) error {
			for i, p := range fx {
				if i == 0 {
					if err := s.Index(ctx, fresh, added); err != nil {
						return err
					}
					if err := s.Delete(ctx, 103); err != nil {
						return err
					}
				}
				// The source read its snapshot before those writes: it still yields the
				// stale 102 and the deleted 103.
				if err := yield(p); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Rebuild: %v", err)
		}
		res := mustSearch(t, s, Query{Limit: 100})
		if got := sorted(hitIDs(res)); !slices.Equal(got, []int64{101, 102, 104, 105, 106, 107, 108, 109, 110, 120}) {
			t.Fatalf("after rebuild: %v", got)
		}
		if got := mustSearch(t, s, Query{BrandID: 502}).Items; len(got) != 1 || got[0].PriceMin != 7700 {
			t.Fatalf("live update lost to the rebuild's stale copy: %+v", got)
		}
	})

	t.Run("RebuildFailureKeepsIndex", func(t *testing.T) {
		s := withFixture(t)
		boom := errors.New("source failed")
		err := s.Rebuild(ctx, func(yield func(Product) error) error {
			for _, p := range pagingProducts()[:5] {
				if err := yield(p); err != nil {
					return err
				}
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Rebuild = %v, want the source's error", err)
		}
		if res := mustSearch(t, s, Query{}); res.Total != 10 {
			t.Fatalf("after failed rebuild: total %d", res.Total)
		}
		// An invalid product is reported to the source, which may skip it.
		var skipped int
		err = s.Rebuild(ctx, func(yield func(Product) error) error {
			for _, p := range append(pagingProducts()[:3], Product{ID: -1}) {
				if err := yield(p); errors.Is(err, ErrBadProduct) {
					skipped++
				} else if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || skipped != 1 {
			t.Fatalf("Rebuild = %v, skipped %d", err, skipped)
		}
		if res := mustSearch(t, s, Query{}); res.Total != 3 {
			t.Fatalf("after rebuild: total %d", res.Total)
		}
		// A cancelled context stops the rebuild and keeps the index.
		cctx, cancel := context.WithCancel(ctx)
		err = s.Rebuild(cctx, func(yield func(Product) error) error {
			cancel()
			return yield(fixtureProducts()[0])
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Rebuild with cancelled context = %v", err)
		}
		if res := mustSearch(t, s, Query{}); res.Total != 3 {
			t.Fatalf("after cancelled rebuild: total %d", res.Total)
		}
	})

	t.Run("ConcurrentUse", func(t *testing.T) {
		s := newSearcher(t)
		ps := pagingProducts()
		var wg sync.WaitGroup
		errc := make(chan error, 8)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(ps); i += 4 {
					if err := s.Index(ctx, ps[i]); err != nil {
						errc <- err
						return
					}
					if _, err := s.Search(ctx, Query{Q: "widget", Sort: SortPriceAsc}); err != nil {
						errc <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		if res := mustSearch(t, s, Query{}); res.Total != len(ps) {
			t.Fatalf("total %d, want %d", res.Total, len(ps))
		}
	})

	t.Run("Closed", func(t *testing.T) {
		s := newSearcher(t)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Search(ctx, Query{}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Search after Close = %v, want ErrClosed", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

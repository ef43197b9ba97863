package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/mallhq/mall/internal/catalog/search"
	"github.com/mallhq/mall/internal/merchant"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/stock"
)

// SearchSource reads what the search index should hold from the source of truth: the
// catalog's tables (product, SKU prices, category path), the merchant's status (uncached:
// merchant.Service.Get) and the units sold (stock.Service.Levels). A product is indexed
// when it is on_sale and its merchant is active.
type SearchSource struct {
	st *store
	// merchants is nil when the merchant module is not wired: every merchant is active.
	merchants merchant.Service
	stock     stock.Service
}

// NewSearchSource returns the source over the catalog tables of db; merchants may be nil.
func NewSearchSource(db *sqldb.Cluster, st stock.Service, merchants merchant.Service) (*SearchSource, error) {
	if db == nil || st == nil {
		return nil, errors.New("catalog: search source needs DB and Stock")
	}
	return &SearchSource{st: &store{cl: db}, merchants: merchants, stock: st}, nil
}

// rebuildBatch is how many products Rebuild reads per query.
const rebuildBatch = 500

// all yields every on-sale product of an active merchant, read in ID-ordered batches of
// rebuildBatch; count receives the number of products yielded.
func (s *SearchSource) all(ctx context.Context, yield func(search.Product) error, count *int) error {
	c := newSourceCache()
	var after int64
	for {
		rows, err := s.st.onSaleAfter(ctx, after, rebuildBatch)
		if err != nil {
			return fmt.Errorf("catalog: search source: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		after = rows[len(rows)-1].ID
		docs, _, err := s.build(ctx, rows, c)
		if err != nil {
			return err
		}
		for _, d := range docs {
			if err := yield(d); err != nil {
				return err
			}
			if count != nil {
				*count++
			}
		}
	}
}

// Docs loads the products among ids: the documents to index and the IDs to delete (every
// other ID: not on sale, merchant not active, or no such product).
func (s *SearchSource) Docs(ctx context.Context, ids []int64) (index []search.Product, remove []int64, err error) {
	rows, err := s.st.searchRows(ctx, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("catalog: search source: %w", err)
	}
	docs, _, err := s.build(ctx, rows, newSourceCache())
	if err != nil {
		return nil, nil, err
	}
	for _, id := range ids {
		if !slices.ContainsFunc(docs, func(p search.Product) bool { return p.ID == id }) && !slices.Contains(remove, id) {
			remove = append(remove, id)
		}
	}
	return docs, remove, nil
}

// sourceCache keeps merchant statuses and category parents for the length of one load.
type sourceCache struct {
	active  map[int64]bool
	parents map[int64]int64 // category -> parent (0: root or unknown)
}

func newSourceCache() *sourceCache {
	return &sourceCache{active: map[int64]bool{}, parents: map[int64]int64{}}
}

// build turns product rows into documents for those that belong in the index.
func (s *SearchSource) build(ctx context.Context, rows []searchRow, c *sourceCache) (docs []search.Product, skipped []int64, err error) {
	var keep []searchRow
	for _, r := range rows {
		ok := Status(r.Status) == StatusOnSale
		if ok {
			if ok, err = s.active(ctx, r.MerchantID, c); err != nil {
				return nil, nil, err
			}
		}
		if ok {
			keep = append(keep, r)
		} else {
			skipped = append(skipped, r.ID)
		}
	}
	if len(keep) == 0 {
		return nil, skipped, nil
	}
	ids := make([]int64, len(keep))
	cats := make([]int64, 0, len(keep))
	for i, r := range keep {
		ids[i] = r.ID
		cats = append(cats, r.CategoryID)
	}
	skus, err := s.st.skuPrices(ctx, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("catalog: search source: %w", err)
	}
	sold, err := s.sold(ctx, skus)
	if err != nil {
		return nil, nil, err
	}
	if err := s.loadParents(ctx, cats, c); err != nil {
		return nil, nil, err
	}
	for _, r := range keep {
		p := search.Product{ID: r.ID, MerchantID: r.MerchantID, BrandID: r.BrandID.Int64, CategoryID: r.CategoryID,
			CategoryPath: categoryPath(r.CategoryID, c.parents), Title: r.Title, Subtitle: r.Subtitle,
			PriceMin: r.PriceMin, PriceMax: r.PriceMax, Sales: sold[r.ID], CreatedAt: r.CreatedAt}
		first := true
		for _, k := range skus {
			if k.ProductID != r.ID {
				continue
			}
			if first || k.Price < p.PriceMin {
				p.PriceMin = k.Price
			}
			if first || k.Price > p.PriceMax {
				p.PriceMax = k.Price
			}
			first = false
		}
		docs = append(docs, p)
	}
	return docs, skipped, nil
}

// active reports whether the merchant exists and is not suspended, reading its row (not
// the status cache IsActive uses: a suspension made on another replica must count now).
func (s *SearchSource) active(ctx context.Context, merchantID int64, c *sourceCache) (bool, error) {
	if s.merchants == nil {
		return true, nil
	}
	if v, ok := c.active[merchantID]; ok {
		return v, nil
	}
	m, err := s.merchants.Get(ctx, merchantID)
	switch {
	case errors.Is(err, merchant.ErrNotFound):
		c.active[merchantID] = false
	case err != nil:
		return false, fmt.Errorf("catalog: search source: merchant %d: %w", merchantID, err)
	default:
		c.active[merchantID] = m.Status == merchant.StatusActive
	}
	return c.active[merchantID], nil
}

// sold sums the units sold of each product's SKUs.
func (s *SearchSource) sold(ctx context.Context, skus []skuPriceRow) (map[int64]int64, error) {
	out := map[int64]int64{}
	for chunk := range slices.Chunk(skus, stock.MaxBatch) {
		ids := make([]int64, len(chunk))
		for i, k := range chunk {
			ids[i] = k.ID
		}
		levels, err := s.stock.Levels(ctx, ids...)
		if err != nil {
			return nil, fmt.Errorf("catalog: search source: stock levels: %w", err)
		}
		for _, k := range chunk {
			out[k.ProductID] += levels[k.ID].Sold
		}
	}
	return out, nil
}

// loadParents fills c.parents for the categories and all their ancestors, one query per
// tree level.
func (s *SearchSource) loadParents(ctx context.Context, cats []int64, c *sourceCache) error {
	missing := func(ids []int64) []int64 {
		var out []int64
		for _, id := range ids {
			if _, ok := c.parents[id]; !ok && id > 0 && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
		return out
	}
	todo := missing(cats)
	for level := 0; len(todo) > 0 && level <= MaxCategoryDepth; level++ {
		got, err := s.st.categoryParents(ctx, todo)
		if err != nil {
			return fmt.Errorf("catalog: search source: categories: %w", err)
		}
		var next []int64
		for _, id := range todo {
			p := got[id] // an unknown category counts as a root
			c.parents[id] = p
			if p != 0 {
				next = append(next, p)
			}
		}
		todo = missing(next)
	}
	return nil
}

// categoryPath is the category's ancestors and itself, root first.
func categoryPath(id int64, parents map[int64]int64) []int64 {
	path := []int64{id}
	for p := parents[id]; p != 0 && len(path) <= MaxCategoryDepth && !slices.Contains(path, p); p = parents[p] {
		path = append(path, p)
	}
	slices.Reverse(path)
	return path
}

// Reindex rebuilds idx from src (search.Searcher.Rebuild: built beside the live index and
// swapped in) and returns the number of products indexed.
func Reindex(ctx context.Context, idx search.Searcher, src *SearchSource) (int, error) {
	n := 0
	err := idx.Rebuild(ctx, func(yield func(search.Product) error) error {
		return src.all(ctx, yield, &n)
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

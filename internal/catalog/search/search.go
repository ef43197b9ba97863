// Package search is the catalog's product search: one Searcher interface with two engines,
// an embedded bleve index (the default) and Elasticsearch 7 through olivere/elastic.
//
// Semantics shared by both engines (the contract test suite checks them on each):
//
//   - One document per on-sale product (SPU). Index upserts, Delete removes; both are visible
//     to Search as soon as they return.
//   - Keyword (Query.Q): analyzed like Elasticsearch's "cjk" analyzer (CJK bigrams, lower-cased
//     latin words, English stop words dropped), matched against title (boost 3) and subtitle
//     "cross fields" with AND: every query term must occur in the title or the subtitle. A
//     keyword that analyzes to no terms matches nothing.
//   - Filters are a conjunction. CategoryID matches the category and all its descendants
//     (Product.CategoryPath). The price range is inclusive and applies to PriceMin, the
//     "from" price the listing shows: a product whose cheapest SKU lies in the range matches,
//     one that merely overlaps it does not.
//   - Facets count the product's own category and its brand over the whole filtered result set
//     (every filter applied, including the facet's own dimension), not just the page; at most
//     FacetSize entries each, by count descending then ID ascending. Products without a brand
//     (BrandID 0) are not counted.
//   - Sorts: relevance (score desc, then ID asc), price_asc (PriceMin asc, then ID asc),
//     price_desc (PriceMin desc, then ID desc), newest (CreatedAt desc, then ID desc).
//     Relevance without a keyword has no scores to rank by and sorts as newest.
//   - Pagination is by opaque cursor (see cursor.go): the sort key of the last hit plus its ID,
//     fed back as search_after, so pages neither skip nor repeat while the index is unchanged.
package search

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/errs"
)

// Product is the indexed view of one on-sale product (SPU).
type Product struct {
	ID         int64
	MerchantID int64
	BrandID    int64 // 0 = no brand
	CategoryID int64
	// CategoryPath is the category's ancestors and the category itself (root first), so a
	// filter on a parent category matches its descendants. CategoryID is added when missing.
	CategoryPath []int64
	Title        string // Chinese and/or English
	Subtitle     string
	PriceMin     int64 // fen, the cheapest SKU
	PriceMax     int64 // fen, the dearest SKU
	Sales        int64 // units sold; carried in the index for a future "sales" sort
	CreatedAt    time.Time
}

// Sort orders search results.
type Sort string

const (
	SortRelevance Sort = "relevance"
	SortPriceAsc  Sort = "price_asc"
	SortPriceDesc Sort = "price_desc"
	SortNewest    Sort = "newest"
)

// allSorts lists every valid Sort.
var allSorts = []Sort{SortRelevance, SortPriceAsc, SortPriceDesc, SortNewest}

func (s Sort) valid() bool {
	for _, v := range allSorts {
		if s == v {
			return true
		}
	}
	return false
}

const (
	DefaultLimit = 20
	MaxLimit     = 100
	// FacetSize is the most entries each facet returns.
	FacetSize = 50
	// MaxQueryLen is the longest keyword accepted, in bytes.
	MaxQueryLen = 256
	// MaxPrice bounds prices (fen) so they stay exact in every engine's numeric type.
	MaxPrice = 1 << 53
)

// Query is one search request. Zero values mean "no filter"; PriceMin/PriceMax are nil when
// unbounded.
type Query struct {
	Q          string
	CategoryID int64
	BrandID    int64
	MerchantID int64
	PriceMin   *int64
	PriceMax   *int64
	Sort       Sort   // "" = relevance
	Limit      int    // 0 = DefaultLimit; above MaxLimit is clamped
	Cursor     string // Result.NextCursor of the previous page
}

// Hit is one result item (API.md: {id, title, price_min, merchant_id}).
type Hit struct {
	ID         int64
	Title      string
	PriceMin   int64
	MerchantID int64
}

// Facet is one facet value with the number of matching products.
type Facet struct {
	ID    int64
	Count int
}

// Facets are counts by category (the product's own) and by brand.
type Facets struct {
	Category []Facet
	Brand    []Facet
}

// Result is one page of hits. Total and Facets cover the whole filtered set.
type Result struct {
	Items      []Hit
	Total      int
	Facets     Facets
	NextCursor string // "" on the last page
}

// Searcher is a product search engine.
type Searcher interface {
	// Index upserts products (in bulk). They are searchable when it returns.
	Index(ctx context.Context, products ...Product) error
	// Delete removes products (off shelf, merchant suspended, deleted); unknown IDs are ignored.
	Delete(ctx context.Context, ids ...int64) error
	Search(ctx context.Context, q Query) (Result, error)
	// Rebuild replaces the whole index with the products source yields: it builds a new index
	// beside the live one and swaps it in atomically; searches keep answering from the old
	// index meanwhile. Index and Delete calls made during the rebuild are applied to both and
	// win over what source yields for the same product. When source or the build fails, the
	// live index is left as it was.
	Rebuild(ctx context.Context, source func(yield func(Product) error) error) error
	Close() error
}

var (
	// ErrBadQuery is a search request that cannot be answered as given (bad cursor,
	// price_min > price_max, unknown sort, ...). Fields names the offending parameter.
	ErrBadQuery = errs.New(errs.Invalid, "search.invalid_query")
	// ErrBadProduct is a product that cannot be indexed (non-positive ID, negative price, ...).
	ErrBadProduct = errs.New(errs.Invalid, "search.invalid_product")
	// ErrClosed is returned by a Searcher after Close.
	ErrClosed = errors.New("search: searcher closed")
)

// Option configures New.
type Option func(*options)

type options struct {
	httpClient *http.Client
	now        func() time.Time
}

// WithHTTPClient sets the HTTP client the Elasticsearch engine uses (timeouts, TLS, tracing).
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithClock sets the clock used to name rebuilt indices (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// New opens the engine cfg.Engine names: "bleve" (cfg.Bleve.Path, created when absent) or
// "elasticsearch" (checks the cluster is 7.x and creates the first index behind the alias
// cfg.Elasticsearch.Index when there is none, so ctx should allow a few round trips).
func New(ctx context.Context, cfg config.Search, opts ...Option) (Searcher, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	var (
		s   Searcher
		err error
	)
	switch cfg.Engine {
	case "", "bleve":
		s, err = openBleve(cfg.Bleve.Path, o.now)
	case "elasticsearch":
		s, err = newElastic(ctx, cfg.Elasticsearch, o)
	default:
		err = fmt.Errorf("search: unknown engine %q (want bleve or elasticsearch)", cfg.Engine)
	}
	if err != nil {
		return nil, err // not a nil *engine in a non-nil interface
	}
	return s, nil
}

package search

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/analysis/lang/cjk"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/token/stop"
	unitokenizer "github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	"github.com/blevesearch/bleve/v2/analysis/tokenmap"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/registry"
	bsearch "github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
)

// Field names, shared by the bleve documents and the Elasticsearch mapping.
const (
	fieldID           = "id"
	fieldTitle        = "title"
	fieldSubtitle     = "subtitle"
	fieldMerchantID   = "merchant_id"
	fieldBrandID      = "brand_id"
	fieldCategoryID   = "category_id"
	fieldCategoryPath = "category_path"
	fieldPriceMin     = "price_min"
	fieldPriceMax     = "price_max"
	fieldSales        = "sales"
	fieldCreatedAt    = "created_at"
	// bleve only:
	// fieldText is the title and the subtitle as one field, for cross-field matching:
	// every keyword term must occur in one or the other.
	fieldText = "text"
	// Sort keys: fixed-width decimal strings, which sort as the numbers do, with the ID
	// appended so that no two documents tie. Visiting one such doc value per hit is much
	// cheaper than a numeric field (bleve keeps every precision-shifted term of a number in
	// its doc values) plus _id (a stored-field lookup per hit): the 100k benchmark went
	// from 13 ms to 5 ms per query.
	fieldSortID      = "sort_id"      // %019d id: the relevance tie-break
	fieldSortPrice   = "sort_price"   // %016d price_min + %019d id
	fieldSortCreated = "sort_created" // %016d created_at (Unix ms) + %019d id
	// fieldFacets holds "c<category_id>" and "b<brand_id>": both facets from one doc value
	// visit per hit instead of two.
	fieldFacets = "facets"
	// bleveFacetTerms bounds the distinct facet terms bleve returns (it counts them all and
	// returns the top ones); we split them by prefix and keep FacetSize of each.
	bleveFacetTerms = 100_000

	titleBoost = 3
)

// cjkStopWords is the stop list of Elasticsearch's (and Lucene's) cjk analyzer, so both
// engines drop the same query words.
var cjkStopWords = []string{"a", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in",
	"into", "is", "it", "no", "not", "of", "on", "or", "s", "such", "t", "that", "the", "their",
	"then", "there", "these", "they", "this", "to", "was", "will", "with", "www"}

// hangulFilter marks Hangul words as ideographic so that cjk_bigram splits them into
// bigrams, as Elasticsearch's cjk analyzer does (bleve's tokenizer types them as letters).
const hangulFilter = "mall_hangul_as_cjk"

func init() {
	err := registry.RegisterTokenFilter(hangulFilter, func(map[string]any, *registry.Cache) (analysis.TokenFilter, error) {
		return hangulAsCJK{}, nil
	})
	if err != nil {
		panic(err)
	}
}

type hangulAsCJK struct{}

func (hangulAsCJK) Filter(in analysis.TokenStream) analysis.TokenStream {
	for _, t := range in {
		if t.Type == analysis.AlphaNumeric && allHangul(t.Term) {
			t.Type = analysis.Ideographic
		}
	}
	return in
}

func allHangul(b []byte) bool {
	for _, r := range string(b) {
		if !unicode.Is(unicode.Hangul, r) {
			return false
		}
	}
	return len(b) > 0
}

const (
	bleveAnalyzer  = "mall_cjk"
	bleveBatchSize = 1000
	// boltTimeout bounds the wait for the index's lock file: a second process opening the
	// same path fails instead of hanging.
	boltTimeout = "5s"
)

// bleveMapping is the index mapping: title, and title plus subtitle as "text", analyzed like
// Elasticsearch's cjk analyzer (unicode word segmentation, CJK width folding, lower-casing,
// CJK bigrams, English stop words); IDs as keywords (exact terms); prices as numbers (range
// filter); doc values only for the facet and sort-key fields. Nothing dynamic, no _all.
func bleveMapping() (*mapping.IndexMappingImpl, error) {
	im := bleve.NewIndexMapping()
	if err := im.AddCustomTokenMap("mall_cjk_stop_words", map[string]any{
		"type": tokenmap.Name, "tokens": toAny(cjkStopWords),
	}); err != nil {
		return nil, err
	}
	if err := im.AddCustomTokenFilter("mall_cjk_stop", map[string]any{
		"type": stop.Name, "stop_token_map": "mall_cjk_stop_words",
	}); err != nil {
		return nil, err
	}
	if err := im.AddCustomAnalyzer(bleveAnalyzer, map[string]any{
		"type":          custom.Name,
		"tokenizer":     unitokenizer.Name,
		"token_filters": []any{cjk.WidthName, lowercase.Name, hangulFilter, cjk.BigramName, "mall_cjk_stop"},
	}); err != nil {
		return nil, err
	}
	im.DefaultAnalyzer = bleveAnalyzer
	im.IndexDynamic, im.StoreDynamic, im.DocValuesDynamic = false, false, false

	text := func(store bool) *mapping.FieldMapping {
		f := bleve.NewTextFieldMapping()
		f.Analyzer = bleveAnalyzer
		f.Store = store
		f.IncludeTermVectors, f.IncludeInAll, f.DocValues = false, false, false
		return f
	}
	kw := func(store, docValues bool) *mapping.FieldMapping {
		f := bleve.NewKeywordFieldMapping()
		f.Analyzer = keyword.Name
		f.Store, f.DocValues = store, docValues
		f.IncludeTermVectors, f.IncludeInAll = false, false
		f.SkipFreqNorm = true // filters and facets only: no scoring
		return f
	}
	num := func(store, docValues bool) *mapping.FieldMapping {
		f := bleve.NewNumericFieldMapping()
		f.Store, f.DocValues, f.IncludeInAll = store, docValues, false
		return f
	}
	doc := bleve.NewDocumentStaticMapping()
	doc.AddFieldMappingsAt(fieldTitle, text(true))
	doc.AddFieldMappingsAt(fieldText, text(false))
	doc.AddFieldMappingsAt(fieldMerchantID, kw(true, false))
	doc.AddFieldMappingsAt(fieldBrandID, kw(false, false))
	doc.AddFieldMappingsAt(fieldCategoryID, kw(false, false))
	doc.AddFieldMappingsAt(fieldFacets, kw(false, true))
	doc.AddFieldMappingsAt(fieldCategoryPath, kw(false, false))
	doc.AddFieldMappingsAt(fieldPriceMin, num(true, false))
	doc.AddFieldMappingsAt(fieldPriceMax, num(false, false))
	doc.AddFieldMappingsAt(fieldSales, num(false, false))
	created := num(true, false)
	created.Index = false // stored for cursors only
	doc.AddFieldMappingsAt(fieldCreatedAt, created)
	// Sort keys are indexed too: bleve derives doc values from the indexed terms.
	doc.AddFieldMappingsAt(fieldSortID, kw(false, true))
	doc.AddFieldMappingsAt(fieldSortPrice, kw(false, true))
	doc.AddFieldMappingsAt(fieldSortCreated, kw(false, true))
	im.DefaultMapping = doc
	return im, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// bleveDocID is the document ID, zero-padded like the sort keys.
func bleveDocID(id int64) string { return fmt.Sprintf("%019d", id) }

// bleveSortKey is a sort key value: a non-negative number (price or Unix ms) and the ID, as
// fixed-width decimals.
func bleveSortKey(n, id int64) string { return fmt.Sprintf("%016d%019d", n, id) }

func bleveDoc(p Product) map[string]any {
	path := make([]string, len(p.CategoryPath))
	for i, c := range p.CategoryPath {
		path[i] = strconv.FormatInt(c, 10)
	}
	d := map[string]any{
		fieldTitle:        p.Title,
		fieldText:         p.Title + "\n" + p.Subtitle, // no bigram spans the line break
		fieldMerchantID:   strconv.FormatInt(p.MerchantID, 10),
		fieldCategoryID:   strconv.FormatInt(p.CategoryID, 10),
		fieldCategoryPath: path,
		fieldPriceMin:     float64(p.PriceMin),
		fieldPriceMax:     float64(p.PriceMax),
		fieldSales:        float64(p.Sales),
		fieldCreatedAt:    float64(p.CreatedAt.UnixMilli()),
		fieldSortID:       bleveDocID(p.ID),
		fieldSortPrice:    bleveSortKey(p.PriceMin, p.ID),
		fieldSortCreated:  bleveSortKey(p.CreatedAt.UnixMilli(), p.ID),
	}
	facets := []string{"c" + strconv.FormatInt(p.CategoryID, 10)}
	if p.BrandID != 0 {
		d[fieldBrandID] = strconv.FormatInt(p.BrandID, 10)
		facets = append(facets, "b"+strconv.FormatInt(p.BrandID, 10))
	}
	d[fieldFacets] = facets
	return d
}

// bleveSearcher is the embedded engine: one on-disk index at path.
type bleveSearcher struct {
	path string
	now  func() time.Time

	// mu guards the fields below. Search, Index and Delete hold it for reading for their
	// whole duration; the rebuild swap and Close hold it for writing, so they wait for
	// in-flight calls and calls wait for them — none sees a closed index.
	mu       sync.RWMutex
	idx      bleve.Index
	building *bleveBuild
	closed   bool

	rebuildMu sync.Mutex // one rebuild at a time
}

type bleveBuild struct {
	idx    bleve.Index
	writes rebuildWrites
}

var _ Searcher = (*bleveSearcher)(nil)

// OpenBleve opens the bleve index at path, creating it (and its parent directories) when
// absent. It also finishes what a rebuild interrupted by a crash left behind: a half-built
// "<path>.new-*" directory is removed; a "<path>.old-*" directory is the previous index and
// is restored when path itself is missing, removed otherwise.
//
// One process at a time: a second process opening the same path fails after a few seconds.
func OpenBleve(path string) (Searcher, error) {
	s, err := openBleve(path, time.Now)
	if err != nil {
		return nil, err // not a nil *bleveSearcher in a non-nil interface
	}
	return s, nil
}

func openBleve(path string, now func() time.Time) (*bleveSearcher, error) {
	if path == "" {
		return nil, errors.New("search: bleve: empty index path")
	}
	path = filepath.Clean(path)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("search: bleve: %w", err)
	}
	if err := recoverBleveDirs(path); err != nil {
		return nil, err
	}
	idx, err := openOrCreateBleve(path)
	if err != nil {
		return nil, err
	}
	return &bleveSearcher{path: path, now: now, idx: idx}, nil
}

func openOrCreateBleve(path string) (bleve.Index, error) {
	cfg := map[string]any{"bolt_timeout": boltTimeout}
	idx, err := bleve.OpenUsing(path, cfg)
	if errors.Is(err, bleve.ErrorIndexPathDoesNotExist) {
		var m *mapping.IndexMappingImpl
		if m, err = bleveMapping(); err == nil {
			idx, err = bleve.NewUsing(path, m, scorch.Name, scorch.Name, cfg)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("search: bleve: open %s: %w", path, err)
	}
	return idx, nil
}

func recoverBleveDirs(path string) error {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("search: bleve: %w", err)
	}
	base := filepath.Base(path)
	var olds []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, base+".new-"):
			if err := os.RemoveAll(filepath.Join(filepath.Dir(path), name)); err != nil {
				return fmt.Errorf("search: bleve: remove unfinished rebuild: %w", err)
			}
		case strings.HasPrefix(name, base+".old-"):
			olds = append(olds, filepath.Join(filepath.Dir(path), name))
		}
	}
	slices.Sort(olds) // the suffix is a Unix nanosecond timestamp of fixed width: newest last
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && len(olds) > 0 {
		if err := os.Rename(olds[len(olds)-1], path); err != nil {
			return fmt.Errorf("search: bleve: restore index: %w", err)
		}
		olds = olds[:len(olds)-1]
	}
	for _, o := range olds {
		if err := os.RemoveAll(o); err != nil {
			return fmt.Errorf("search: bleve: remove replaced index: %w", err)
		}
	}
	return nil
}

func (s *bleveSearcher) Index(ctx context.Context, products ...Product) error {
	ps, err := normalizeAll(products)
	if err != nil {
		return err
	}
	return s.write(ctx, ps, nil)
}

func (s *bleveSearcher) Delete(ctx context.Context, ids ...int64) error {
	return s.write(ctx, nil, positiveIDs(ids))
}

// write upserts ps and deletes ids in the live index and, during a rebuild, in the index
// being built too (see Searcher.Rebuild).
func (s *bleveSearcher) write(ctx context.Context, ps []Product, ids []int64) error {
	if len(ps)+len(ids) == 0 {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if err := bleveWrite(ctx, s.idx, ps, ids); err != nil {
		return err
	}
	if b := s.building; b != nil {
		b.writes.touch(append(productIDs(ps), ids...))
		if err := bleveWrite(context.WithoutCancel(ctx), b.idx, ps, ids); err != nil {
			b.writes.fail(err)
		}
	}
	return nil
}

// positiveIDs drops IDs that cannot name a product.
func positiveIDs(ids []int64) []int64 {
	return slices.DeleteFunc(slices.Clone(ids), func(id int64) bool { return id <= 0 })
}

func productIDs(ps []Product) []int64 {
	ids := make([]int64, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids
}

// bleveWrite indexes ps and deletes ids in batches of bleveBatchSize.
func bleveWrite(ctx context.Context, idx bleve.Index, ps []Product, ids []int64) error {
	b := idx.NewBatch()
	flush := func() error {
		if b.Size() == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := idx.Batch(b); err != nil {
			return fmt.Errorf("search: bleve: write: %w", err)
		}
		b.Reset()
		return nil
	}
	for _, p := range ps {
		if err := b.Index(bleveDocID(p.ID), bleveDoc(p)); err != nil {
			return fmt.Errorf("search: bleve: product %d: %w", p.ID, err)
		}
		if b.Size() >= bleveBatchSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	for _, id := range ids {
		b.Delete(bleveDocID(id))
		if b.Size() >= bleveBatchSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

func (s *bleveSearcher) Search(ctx context.Context, q Query) (Result, error) {
	p, err := q.plan()
	if err != nil {
		return Result{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return Result{}, ErrClosed
	}
	bq, ok := s.query(p)
	if !ok {
		return Result{Items: []Hit{}, Facets: Facets{Category: []Facet{}, Brand: []Facet{}}}, nil
	}
	req := bleve.NewSearchRequestOptions(bq, p.limit+1, 0, false)
	req.Fields = []string{fieldTitle, fieldMerchantID, fieldPriceMin, fieldCreatedAt}
	req.SortByCustom(bleveSort(p.sort))
	if p.sort != SortRelevance {
		req.Score = bleve.ScoreNone
	}
	if p.after != nil {
		req.SearchAfter = bleveSearchAfter(p.sort, *p.after)
	}
	req.AddFacet("facets", bleve.NewFacetRequest(fieldFacets, bleveFacetTerms))
	res, err := s.idx.SearchInContext(ctx, req)
	if err != nil {
		return Result{}, fmt.Errorf("search: bleve: %w", err)
	}
	out := Result{Items: make([]Hit, 0, min(len(res.Hits), p.limit)), Total: int(res.Total)}
	var last sortKey
	for i, h := range res.Hits {
		if i == p.limit {
			out.NextCursor = p.nextCursor(last)
			break
		}
		hit, created, err := bleveHit(h)
		if err != nil {
			return Result{}, err
		}
		out.Items = append(out.Items, hit)
		last = hitKey(p.sort, hit, created, h.Score)
	}
	out.Facets = bleveFacets(res.Facets["facets"])
	return out, nil
}

// query translates p; ok is false when the keyword analyzes to no terms (nothing matches).
func (s *bleveSearcher) query(p plan) (q query.Query, ok bool) {
	var filters []query.Query
	term := func(field string, id int64) {
		if id > 0 {
			t := query.NewTermQuery(strconv.FormatInt(id, 10))
			t.SetField(field)
			filters = append(filters, t)
		}
	}
	term(fieldCategoryPath, p.categoryID)
	term(fieldBrandID, p.brandID)
	term(fieldMerchantID, p.merchantID)
	if p.priceMin != nil || p.priceMax != nil {
		var lo, hi *float64
		if p.priceMin != nil {
			f := float64(*p.priceMin)
			lo = &f
		}
		if p.priceMax != nil {
			f := float64(*p.priceMax)
			hi = &f
		}
		incl := true
		r := query.NewNumericRangeInclusiveQuery(lo, hi, &incl, &incl)
		r.SetField(fieldPriceMin)
		filters = append(filters, r)
	}
	var filter query.Query
	switch len(filters) {
	case 0:
	case 1:
		filter = filters[0]
	default:
		filter = query.NewConjunctionQuery(filters)
	}

	if p.q == "" {
		if filter == nil {
			return query.NewMatchAllQuery(), true
		}
		return filter, true
	}
	terms := s.analyze(p.q)
	if len(terms) == 0 {
		return nil, false
	}
	// Every term must occur in the title or the subtitle (cross-field AND); the score is
	// that match plus a bonus for the terms found in the title. (bleve has no dis_max, and a
	// per-term disjunction over the two fields would halve title-only matches by its coord
	// factor — ranking a long title that repeats the word in the subtitle above an exact title.)
	must := make([]query.Query, len(terms))
	bonus := make([]query.Query, len(terms))
	for i, t := range terms {
		mq := query.NewTermQuery(t)
		mq.SetField(fieldText)
		must[i] = mq
		tq := query.NewTermQuery(t)
		tq.SetField(fieldTitle)
		tq.SetBoost(titleBoost)
		bonus[i] = tq
	}
	b := query.NewBooleanQuery([]query.Query{query.NewConjunctionQuery(must)}, []query.Query{query.NewDisjunctionQuery(bonus)}, nil)
	if filter != nil {
		b.AddFilter(filter) // filters do not score
	}
	return b, true
}

// analyze returns the distinct terms of s as the index analyzes titles.
func (s *bleveSearcher) analyze(text string) []string {
	a := s.idx.Mapping().AnalyzerNamed(bleveAnalyzer)
	if a == nil {
		return nil
	}
	var terms []string
	for _, t := range a.Analyze([]byte(text)) {
		if term := string(t.Term); !slices.Contains(terms, term) {
			terms = append(terms, term)
		}
	}
	return terms
}

func bleveSort(s Sort) bsearch.SortOrder {
	field := func(name string, desc bool) *bsearch.SortField {
		return &bsearch.SortField{Field: name, Type: bsearch.SortFieldAsString, Desc: desc, Missing: bsearch.SortFieldMissingLast}
	}
	switch s {
	case SortPriceAsc:
		return bsearch.SortOrder{field(fieldSortPrice, false)}
	case SortPriceDesc:
		return bsearch.SortOrder{field(fieldSortPrice, true)}
	case SortNewest:
		return bsearch.SortOrder{field(fieldSortCreated, true)}
	default:
		return bsearch.SortOrder{&bsearch.SortScore{Desc: true}, field(fieldSortID, false)}
	}
}

func bleveSearchAfter(s Sort, c cursor) []string {
	if s == SortRelevance {
		return []string{strconv.FormatFloat(c.Score, 'g', -1, 64), bleveDocID(c.ID)}
	}
	return []string{bleveSortKey(c.Key, c.ID)}
}

// bleveHit reads a hit's stored fields, and its created_at in Unix ms.
func bleveHit(h *bsearch.DocumentMatch) (Hit, int64, error) {
	id, err := strconv.ParseInt(h.ID, 10, 64)
	if err != nil {
		return Hit{}, 0, fmt.Errorf("search: bleve: document ID %q: %w", h.ID, err)
	}
	title, _ := h.Fields[fieldTitle].(string)
	merchant, _ := h.Fields[fieldMerchantID].(string)
	price, _ := h.Fields[fieldPriceMin].(float64)
	created, _ := h.Fields[fieldCreatedAt].(float64)
	mid, err := strconv.ParseInt(merchant, 10, 64)
	if err != nil {
		return Hit{}, 0, fmt.Errorf("search: bleve: document %d: merchant_id %q: %w", id, merchant, err)
	}
	return Hit{ID: id, Title: title, PriceMin: int64(price), MerchantID: mid}, int64(created), nil
}

func bleveFacets(fr *bsearch.FacetResult) Facets {
	out := Facets{Category: []Facet{}, Brand: []Facet{}}
	if fr == nil || fr.Terms == nil {
		return out
	}
	for _, t := range fr.Terms.Terms() {
		if len(t.Term) < 2 {
			continue
		}
		id, err := strconv.ParseInt(t.Term[1:], 10, 64)
		if err != nil {
			continue
		}
		switch t.Term[0] {
		case 'c':
			out.Category = append(out.Category, Facet{ID: id, Count: t.Count})
		case 'b':
			out.Brand = append(out.Brand, Facet{ID: id, Count: t.Count})
		}
	}
	sortFacets(out.Category)
	sortFacets(out.Brand)
	out.Category = out.Category[:min(len(out.Category), FacetSize)]
	out.Brand = out.Brand[:min(len(out.Brand), FacetSize)]
	return out
}

func sortFacets(fs []Facet) {
	slices.SortFunc(fs, func(a, b Facet) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

func (s *bleveSearcher) Rebuild(ctx context.Context, source func(yield func(Product) error) error) error {
	s.rebuildMu.Lock()
	defer s.rebuildMu.Unlock()

	stamp := fmt.Sprintf("%019d", s.now().UnixNano())
	newPath := s.path + ".new-" + stamp
	m, err := bleveMapping()
	if err != nil {
		return err
	}
	nidx, err := bleve.NewUsing(newPath, m, scorch.Name, scorch.Name, map[string]any{"bolt_timeout": boltTimeout})
	if err != nil {
		return fmt.Errorf("search: bleve: rebuild: %w", err)
	}
	b := &bleveBuild{idx: nidx}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = nidx.Close()
		_ = os.RemoveAll(newPath)
		return ErrClosed
	}
	s.building = b
	s.mu.Unlock()

	abort := func(err error) error {
		s.mu.Lock()
		s.building = nil
		s.mu.Unlock()
		_ = nidx.Close()
		_ = os.RemoveAll(newPath)
		return err
	}
	y := &rebuildYield{ctx: ctx, writes: &b.writes, size: bleveBatchSize, write: func(ps []Product) error {
		return bleveWrite(ctx, nidx, ps, nil)
	}}
	if err := y.finish(source(y.yield)); err != nil {
		return abort(fmt.Errorf("search: bleve: rebuild: %w", err))
	}
	// One segment instead of the dozens bulk loading leaves: fewer doc-value chunks and
	// dictionaries per query (about 10% faster searches on the 100k benchmark).
	if err := forceMerge(ctx, nidx); err != nil {
		return abort(fmt.Errorf("search: bleve: rebuild: merge: %w", err))
	}
	if err := ctx.Err(); err != nil {
		return abort(err)
	}
	return s.swap(b, newPath, stamp)
}

func forceMerge(ctx context.Context, idx bleve.Index) error {
	adv, err := idx.Advanced()
	if err != nil {
		return err
	}
	if sc, ok := adv.(*scorch.Scorch); ok {
		return sc.ForceMerge(ctx, nil)
	}
	return nil
}

// swap puts the index built at newPath in place of the live one: close both, rename the
// live directory aside, rename the new one in, reopen. Searches wait on the lock meanwhile
// (milliseconds) instead of failing. The replaced directory is removed after the lock is
// released (or by recoverBleveDirs at the next open, should that fail).
func (s *bleveSearcher) swap(b *bleveBuild, newPath, stamp string) error {
	oldPath := s.path + ".old-" + stamp
	s.mu.Lock()
	err := s.swapLocked(b, newPath, oldPath)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("search: bleve: rebuild: %w", err)
	}
	_ = os.RemoveAll(oldPath)
	return nil
}

func (s *bleveSearcher) swapLocked(b *bleveBuild, newPath, oldPath string) error {
	s.building = nil
	discardNew := func(err error) error {
		_ = b.idx.Close()
		_ = os.RemoveAll(newPath)
		return err
	}
	if s.closed {
		return discardNew(ErrClosed)
	}
	// A write made during the rebuild that failed on the new index leaves it incomplete.
	if err := b.writes.err(); err != nil {
		return discardNew(err)
	}
	if err := b.idx.Close(); err != nil {
		return discardNew(fmt.Errorf("close new index: %w", err))
	}
	if err := s.idx.Close(); err != nil {
		_ = os.RemoveAll(newPath)
		return s.reopen(fmt.Errorf("close live index: %w", err))
	}
	if err := os.Rename(s.path, oldPath); err != nil {
		_ = os.RemoveAll(newPath)
		return s.reopen(err)
	}
	if err := os.Rename(newPath, s.path); err != nil {
		_ = os.RemoveAll(newPath)
		return s.restore(oldPath, err)
	}
	idx, err := openOrCreateBleve(s.path)
	if err != nil {
		return s.restore(oldPath, err)
	}
	s.idx = idx
	return nil
}

// restore puts the previous index back at the path after a failed swap and reopens it.
func (s *bleveSearcher) restore(oldPath string, cause error) error {
	_ = os.RemoveAll(s.path)
	if err := os.Rename(oldPath, s.path); err != nil {
		s.closed = true // nothing left to serve from; the next open recovers oldPath
		return fmt.Errorf("%w (restore: %v)", cause, err)
	}
	return s.reopen(cause)
}

// reopen opens the live index again after a failed swap and returns cause.
func (s *bleveSearcher) reopen(cause error) error {
	idx, err := openOrCreateBleve(s.path)
	if err != nil {
		s.closed = true
		return fmt.Errorf("%w (reopen: %v)", cause, err)
	}
	s.idx = idx
	return cause
}

func (s *bleveSearcher) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.idx.Close()
}

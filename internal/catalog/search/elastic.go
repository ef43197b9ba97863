package search

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/mallhq/mall/internal/platform/config"
)

const (
	esBulkSize = 500 // actions per _bulk request
	// esTimestamp names versioned indices: <alias>_<yyyymmddhhmmss>.
	esTimestamp = "20060102150405"
	// esFirstIndexSuffix names the index New creates when the alias does not exist yet. A
	// fixed name makes replicas starting together converge on one index instead of each
	// adding their own.
	esFirstIndexSuffix = "_00000000000000"
	// esCleanupTimeout bounds deleting a half-built index after a failed rebuild, whose
	// context may already be done.
	esCleanupTimeout = 30 * time.Second
	// defaultESTimeout bounds a cluster call when search.elasticsearch.timeout is 0.
	defaultESTimeout = 10 * time.Second
)

// esSearcher is the Elasticsearch 7 engine. Queries and writes go through the alias; a
// rebuild writes a new versioned index and swaps the alias to it in one _aliases call.
type esSearcher struct {
	client   *elastic.Client
	alias    string
	analyzer string
	now      func() time.Time

	// mu: Index and Delete hold it for reading while they write (to the alias and, during a
	// rebuild, to the new index); the swap holds it for writing, so no write straddles it.
	mu       sync.RWMutex
	building *esBuild
	closed   bool

	rebuildMu sync.Mutex
}

type esBuild struct {
	index  string
	writes rebuildWrites
}

var _ Searcher = (*esSearcher)(nil)

// esDoc is the _source of a product document; IDs are keywords (exact terms, exact facet
// keys), except id, which is a long for the sort tie-break.
type esDoc struct {
	ID           int64    `json:"id"`
	Title        string   `json:"title"`
	Subtitle     string   `json:"subtitle"`
	MerchantID   string   `json:"merchant_id"`
	BrandID      string   `json:"brand_id,omitempty"`
	CategoryID   string   `json:"category_id"`
	CategoryPath []string `json:"category_path"`
	PriceMin     int64    `json:"price_min"`
	PriceMax     int64    `json:"price_max"`
	Sales        int64    `json:"sales"`
	CreatedAt    string   `json:"created_at"` // RFC 3339, UTC, milliseconds
}

func newESDoc(p Product) esDoc {
	path := make([]string, len(p.CategoryPath))
	for i, c := range p.CategoryPath {
		path[i] = strconv.FormatInt(c, 10)
	}
	d := esDoc{
		ID: p.ID, Title: p.Title, Subtitle: p.Subtitle,
		MerchantID:   strconv.FormatInt(p.MerchantID, 10),
		CategoryID:   strconv.FormatInt(p.CategoryID, 10),
		CategoryPath: path,
		PriceMin:     p.PriceMin, PriceMax: p.PriceMax, Sales: p.Sales,
		CreatedAt: p.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
	}
	if p.BrandID != 0 {
		d.BrandID = strconv.FormatInt(p.BrandID, 10)
	}
	return d
}

func newElastic(ctx context.Context, cfg config.SearchElasticsearch, o options) (*esSearcher, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("search: elasticsearch: no URLs configured")
	}
	if cfg.Index == "" {
		return nil, errors.New("search: elasticsearch: no index alias configured")
	}
	s := &esSearcher{alias: cfg.Index, analyzer: cfg.Analyzer, now: o.now}
	if s.analyzer == "" {
		s.analyzer = "cjk"
	}
	opts := []elastic.ClientOptionFunc{
		elastic.SetURL(cfg.URLs...),
		// One URL behind a load balancer is the normal setup: no sniffing for nodes, no
		// background health checks marking the only connection dead.
		elastic.SetSniff(false),
		elastic.SetHealthcheck(false),
		elastic.SetDecoder(&elastic.NumberDecoder{}), // 64-bit IDs stay exact
	}
	if cfg.Username != "" || cfg.Password != "" {
		opts = append(opts, elastic.SetBasicAuth(cfg.Username, cfg.Password))
	}
	hc := &http.Client{}
	if o.httpClient != nil {
		c := *o.httpClient
		hc = &c
	}
	hc.Timeout = cfg.Timeout
	if hc.Timeout <= 0 {
		hc.Timeout = defaultESTimeout
	}
	opts = append(opts, elastic.SetHttpClient(hc))
	client, err := elastic.DialContext(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("search: elasticsearch: %w", err)
	}
	s.client = client
	info, _, err := client.Ping(cfg.URLs[0]).Do(ctx)
	if err != nil {
		return nil, fmt.Errorf("search: elasticsearch: %w", err)
	}
	if !strings.HasPrefix(info.Version.Number, "7.") {
		return nil, fmt.Errorf("search: elasticsearch: cluster version %q, want 7.x", info.Version.Number)
	}
	if err := s.ensureAlias(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// ensureAlias creates the first index behind the alias when the alias does not exist.
func (s *esSearcher) ensureAlias(ctx context.Context) error {
	indices, err := s.aliasIndices(ctx)
	if err != nil {
		return err
	}
	if len(indices) > 0 {
		return nil
	}
	body := s.indexBody(false)
	body["aliases"] = map[string]any{s.alias: map[string]any{}}
	_, err = s.client.CreateIndex(s.alias + esFirstIndexSuffix).BodyJson(body).Do(ctx)
	if err != nil && !isAlreadyExists(err) { // another replica won the race
		return fmt.Errorf("search: elasticsearch: create index: %w", err)
	}
	return nil
}

// aliasIndices returns the indices the alias points to, none when it does not exist.
func (s *esSearcher) aliasIndices(ctx context.Context) ([]string, error) {
	res, err := s.client.Aliases().Alias(s.alias).Do(ctx)
	if elastic.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("search: elasticsearch: get alias %s: %w", s.alias, err)
	}
	var out []string
	for name := range res.Indices {
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

func isAlreadyExists(err error) bool {
	var e *elastic.Error
	return errors.As(err, &e) && e.Details != nil && e.Details.Type == "resource_already_exists_exception"
}

// indexBody is the create-index request: an explicit, strict mapping. Text fields use the
// configured analyzer ("cjk" is built in; plugins such as IK add "ik_max_word").
func (s *esSearcher) indexBody(building bool) map[string]any {
	text := map[string]any{"type": "text", "analyzer": s.analyzer}
	keyword := map[string]any{"type": "keyword"}
	long := map[string]any{"type": "long"}
	body := map[string]any{
		"mappings": map[string]any{
			"dynamic": "strict",
			"properties": map[string]any{
				fieldID:           long,
				fieldTitle:        text,
				fieldSubtitle:     text,
				fieldMerchantID:   keyword,
				fieldBrandID:      keyword,
				fieldCategoryID:   keyword,
				fieldCategoryPath: keyword,
				fieldPriceMin:     long,
				fieldPriceMax:     map[string]any{"type": "long", "index": false},
				fieldSales:        long,
				fieldCreatedAt:    map[string]any{"type": "date", "format": "strict_date_optional_time||epoch_millis"},
			},
		},
	}
	if building {
		// No refreshes while bulk loading; Rebuild turns them back on before the swap.
		body["settings"] = map[string]any{"index": map[string]any{"refresh_interval": "-1"}}
	}
	return body
}

func (s *esSearcher) Index(ctx context.Context, products ...Product) error {
	ps, err := normalizeAll(products)
	if err != nil {
		return err
	}
	return s.write(ctx, ps, nil)
}

func (s *esSearcher) Delete(ctx context.Context, ids ...int64) error {
	return s.write(ctx, nil, positiveIDs(ids))
}

// write upserts ps and deletes ids through the alias and, during a rebuild, in the index
// being built too (see Searcher.Rebuild).
func (s *esSearcher) write(ctx context.Context, ps []Product, ids []int64) error {
	if len(ps)+len(ids) == 0 {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	// wait_for: return once the change is searchable, without forcing a refresh per call.
	if err := s.bulk(ctx, s.alias, ps, ids, "wait_for"); err != nil {
		return err
	}
	if b := s.building; b != nil {
		b.writes.touch(append(productIDs(ps), ids...))
		if err := s.bulk(context.WithoutCancel(ctx), b.index, ps, ids, ""); err != nil {
			b.writes.fail(err)
		}
	}
	return nil
}

// bulk indexes ps and deletes ids in _bulk requests of at most esBulkSize actions; refresh
// (e.g. wait_for) goes with the last one.
func (s *esSearcher) bulk(ctx context.Context, index string, ps []Product, ids []int64, refresh string) error {
	var reqs []elastic.BulkableRequest
	for _, p := range ps {
		reqs = append(reqs, elastic.NewBulkIndexRequest().Id(strconv.FormatInt(p.ID, 10)).Doc(newESDoc(p)))
	}
	for _, id := range ids {
		reqs = append(reqs, elastic.NewBulkDeleteRequest().Id(strconv.FormatInt(id, 10)))
	}
	for start := 0; start < len(reqs); start += esBulkSize {
		chunk := reqs[start:min(start+esBulkSize, len(reqs))]
		svc := s.client.Bulk().Index(index).Add(chunk...)
		if refresh != "" && start+esBulkSize >= len(reqs) {
			svc.Refresh(refresh) // the last request's refresh covers the earlier ones
		}
		res, err := svc.Do(ctx)
		if err != nil {
			return fmt.Errorf("search: elasticsearch: bulk %s: %w", index, err)
		}
		if !res.Errors {
			continue
		}
		for _, item := range res.Failed() {
			if item.Status == 404 && item.Result == "not_found" { // deleting an absent product
				continue
			}
			reason := "status " + strconv.Itoa(item.Status)
			if item.Error != nil {
				reason = item.Error.Type + ": " + item.Error.Reason
			}
			return fmt.Errorf("search: elasticsearch: bulk %s: document %s: %s", index, item.Id, reason)
		}
	}
	return nil
}

func (s *esSearcher) Search(ctx context.Context, q Query) (Result, error) {
	p, err := q.plan()
	if err != nil {
		return Result{}, err
	}
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return Result{}, ErrClosed
	}
	src := elastic.NewSearchSource().
		Query(esQuery(p)).
		Size(p.limit+1).
		TrackTotalHits(true).
		FetchSourceContext(elastic.NewFetchSourceContext(true).
			Include(fieldID, fieldTitle, fieldMerchantID, fieldPriceMin, fieldCreatedAt)).
		SortBy(esSort(p.sort)...).
		Aggregation("category", elastic.NewTermsAggregation().Field(fieldCategoryID).
			Size(FacetSize).OrderByCountDesc().OrderByKeyAsc()).
		Aggregation("brand", elastic.NewTermsAggregation().Field(fieldBrandID).
			Size(FacetSize).OrderByCountDesc().OrderByKeyAsc())
	if c := p.after; c != nil {
		if p.sort == SortRelevance {
			src.SearchAfter(c.Score, c.ID)
		} else {
			src.SearchAfter(c.Key, c.ID)
		}
	}
	res, err := s.client.Search(s.alias).SearchSource(src).Do(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("search: elasticsearch: search: %w", err)
	}
	out := Result{Items: []Hit{}}
	if res.Hits != nil {
		if res.Hits.TotalHits != nil {
			out.Total = int(res.Hits.TotalHits.Value)
		}
		var last sortKey
		for i, h := range res.Hits.Hits {
			if i == p.limit {
				out.NextCursor = p.nextCursor(last)
				break
			}
			var d esDoc
			if err := json.Unmarshal(h.Source, &d); err != nil {
				return Result{}, fmt.Errorf("search: elasticsearch: hit %s: %w", h.Id, err)
			}
			created, err := time.Parse(time.RFC3339Nano, d.CreatedAt)
			if err != nil {
				return Result{}, fmt.Errorf("search: elasticsearch: hit %s: created_at: %w", h.Id, err)
			}
			mid, err := strconv.ParseInt(d.MerchantID, 10, 64)
			if err != nil {
				return Result{}, fmt.Errorf("search: elasticsearch: hit %s: merchant_id: %w", h.Id, err)
			}
			hit := Hit{ID: d.ID, Title: d.Title, PriceMin: d.PriceMin, MerchantID: mid}
			var score float64
			if h.Score != nil {
				score = *h.Score
			}
			out.Items = append(out.Items, hit)
			last = hitKey(p.sort, hit, created.UnixMilli(), score)
		}
	}
	if out.Facets.Category, err = esFacets(res.Aggregations, "category"); err != nil {
		return Result{}, err
	}
	if out.Facets.Brand, err = esFacets(res.Aggregations, "brand"); err != nil {
		return Result{}, err
	}
	return out, nil
}

// esQuery: the keyword as a cross-field AND multi_match (every term in title or subtitle,
// title boosted) scored in must; the filters in filter context (no scoring, cacheable).
func esQuery(p plan) elastic.Query {
	b := elastic.NewBoolQuery()
	if p.q != "" {
		b.Must(elastic.NewMultiMatchQuery(p.q, fieldTitle+"^"+strconv.Itoa(titleBoost), fieldSubtitle).
			Type("cross_fields").Operator("and"))
	}
	term := func(field string, id int64) {
		if id > 0 {
			b.Filter(elastic.NewTermQuery(field, strconv.FormatInt(id, 10)))
		}
	}
	term(fieldCategoryPath, p.categoryID)
	term(fieldBrandID, p.brandID)
	term(fieldMerchantID, p.merchantID)
	if p.priceMin != nil || p.priceMax != nil {
		r := elastic.NewRangeQuery(fieldPriceMin)
		if p.priceMin != nil {
			r.Gte(*p.priceMin)
		}
		if p.priceMax != nil {
			r.Lte(*p.priceMax)
		}
		b.Filter(r)
	}
	return b
}

func esSort(s Sort) []elastic.Sorter {
	id := elastic.NewFieldSort(fieldID)
	switch s {
	case SortPriceAsc:
		return []elastic.Sorter{elastic.NewFieldSort(fieldPriceMin).Asc(), id.Asc()}
	case SortPriceDesc:
		return []elastic.Sorter{elastic.NewFieldSort(fieldPriceMin).Desc(), id.Desc()}
	case SortNewest:
		return []elastic.Sorter{elastic.NewFieldSort(fieldCreatedAt).Desc(), id.Desc()}
	default:
		return []elastic.Sorter{elastic.NewScoreSort().Desc(), id.Asc()}
	}
}

func esFacets(aggs elastic.Aggregations, name string) ([]Facet, error) {
	out := []Facet{}
	terms, ok := aggs.Terms(name)
	if !ok {
		return out, nil
	}
	for _, b := range terms.Buckets {
		key := fmt.Sprint(b.Key)
		id, err := strconv.ParseInt(key, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("search: elasticsearch: facet %s key %q: %w", name, key, err)
		}
		out = append(out, Facet{ID: id, Count: int(b.DocCount)})
	}
	sortFacets(out)
	return out, nil
}

func (s *esSearcher) Rebuild(ctx context.Context, source func(yield func(Product) error) error) error {
	s.rebuildMu.Lock()
	defer s.rebuildMu.Unlock()

	name, err := s.createVersionedIndex(ctx)
	if err != nil {
		return err
	}
	b := &esBuild{index: name}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.dropIndex(name, ErrClosed)
	}
	s.building = b
	s.mu.Unlock()

	abort := func(err error) error {
		s.mu.Lock()
		s.building = nil
		s.mu.Unlock()
		return s.dropIndex(name, fmt.Errorf("search: elasticsearch: rebuild: %w", err))
	}
	y := &rebuildYield{ctx: ctx, writes: &b.writes, size: esBulkSize, write: func(ps []Product) error {
		return s.bulk(ctx, name, ps, nil, "")
	}}
	if err := y.finish(source(y.yield)); err != nil {
		return abort(err)
	}
	if _, err := s.client.IndexPutSettings(name).
		BodyJson(map[string]any{"index": map[string]any{"refresh_interval": nil}}).Do(ctx); err != nil {
		return abort(fmt.Errorf("enable refresh: %w", err))
	}
	if _, err := s.client.Refresh(name).Do(ctx); err != nil {
		return abort(fmt.Errorf("refresh: %w", err))
	}

	// Swap with writes held off, so none lands in the old index after the swap.
	s.mu.Lock()
	if err := b.writes.err(); err != nil {
		s.building = nil
		s.mu.Unlock()
		return s.dropIndex(name, fmt.Errorf("search: elasticsearch: rebuild: %w", err))
	}
	old, err := s.aliasIndices(ctx)
	if err == nil {
		err = s.swapAlias(ctx, old, name)
	}
	s.building = nil
	s.mu.Unlock()
	if err != nil {
		return s.dropIndex(name, err)
	}
	if len(old) > 0 {
		if _, err := s.client.DeleteIndex(old...).Do(ctx); err != nil {
			return fmt.Errorf("search: elasticsearch: rebuild done, but deleting the replaced indices %v failed: %w", old, err)
		}
	}
	return nil
}

// createVersionedIndex creates <alias>_<yyyymmddhhmmss>, with a counter appended when a
// rebuild in the same second already took the name.
func (s *esSearcher) createVersionedIndex(ctx context.Context) (string, error) {
	base := s.alias + "_" + s.now().UTC().Format(esTimestamp)
	for i := 1; ; i++ {
		name := base
		if i > 1 {
			name = base + "_" + strconv.Itoa(i)
		}
		_, err := s.client.CreateIndex(name).BodyJson(s.indexBody(true)).Do(ctx)
		if err == nil {
			return name, nil
		}
		if !isAlreadyExists(err) || i == 100 {
			return "", fmt.Errorf("search: elasticsearch: create index %s: %w", name, err)
		}
	}
}

// swapAlias moves the alias from old to name atomically: one _aliases call with every
// remove and the add.
func (s *esSearcher) swapAlias(ctx context.Context, old []string, name string) error {
	svc := s.client.Alias()
	if len(old) > 0 {
		svc.Action(elastic.NewAliasRemoveAction(s.alias).Index(old...))
	}
	svc.Action(elastic.NewAliasAddAction(s.alias).Index(name))
	if _, err := svc.Do(ctx); err != nil {
		return fmt.Errorf("search: elasticsearch: swap alias %s to %s: %w", s.alias, name, err)
	}
	return nil
}

// dropIndex deletes a half-built index (best effort, even when ctx is done) and returns err.
func (s *esSearcher) dropIndex(name string, err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), esCleanupTimeout)
	defer cancel()
	if _, derr := s.client.DeleteIndex(name).Do(ctx); derr != nil {
		return fmt.Errorf("%w (and deleting the unfinished index %s failed: %v)", err, name, derr)
	}
	return err
}

func (s *esSearcher) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.client.Stop()
	}
	return nil
}

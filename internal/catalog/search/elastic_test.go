package search

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/catalog/search/estest"
	"github.com/mallhq/mall/internal/platform/config"
)

const testAlias = "mall_products"

func esConfig(srv *estest.Server) config.Search {
	return config.Search{Engine: "elasticsearch", Elasticsearch: config.SearchElasticsearch{
		URLs: []string{srv.URL}, Index: testAlias, Analyzer: "cjk",
	}}
}

func newESServer(t *testing.T, opts ...estest.Option) *estest.Server {
	t.Helper()
	srv := estest.New(opts...)
	t.Cleanup(srv.Close)
	return srv
}

func openES(t *testing.T, cfg config.Search, opts ...Option) Searcher {
	t.Helper()
	s, err := New(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newES(t *testing.T) Searcher {
	t.Helper()
	return openES(t, esConfig(newESServer(t, estest.RequireAnalyzer("cjk"))))
}

func TestElasticsearchContract(t *testing.T) {
	t.Parallel()
	contractTest(t, newES)
}

func requestsTo(srv *estest.Server, method, suffix string) []estest.Request {
	var out []estest.Request
	for _, r := range srv.Requests() {
		if r.Method == method && strings.HasSuffix(r.Path, suffix) {
			out = append(out, r)
		}
	}
	return out
}

func TestElasticsearchMappingUsesConfiguredAnalyzer(t *testing.T) {
	t.Parallel()
	srv := newESServer(t, estest.WithPluginAnalyzers("ik_max_word"), estest.RequireAnalyzer("ik_max_word"))
	cfg := esConfig(srv)

	// The server refuses text fields without the required analyzer: "cjk" fails here.
	if _, err := New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "ik_max_word") {
		t.Fatalf("New with analyzer cjk on a server requiring ik_max_word = %v", err)
	}

	cfg.Elasticsearch.Analyzer = "ik_max_word"
	s := openES(t, cfg)
	indices := srv.AliasIndices(testAlias)
	if len(indices) != 1 || indices[0] != testAlias+"_00000000000000" {
		t.Fatalf("alias points to %v", indices)
	}
	m := srv.Mapping(indices[0])
	if m["dynamic"] != "strict" {
		t.Fatalf("mapping is not strict: %v", m)
	}
	props := m["properties"].(map[string]any)
	for _, f := range []string{"title", "subtitle"} {
		if a := props[f].(map[string]any)["analyzer"]; a != "ik_max_word" {
			t.Fatalf("%s analyzer = %v", f, a)
		}
	}
	for f, typ := range map[string]string{"id": "long", "category_path": "keyword", "brand_id": "keyword", "price_min": "long", "created_at": "date"} {
		if got := props[f].(map[string]any)["type"]; got != typ {
			t.Fatalf("%s type = %v, want %s", f, got, typ)
		}
	}
	indexed(t, s, fixtureProducts()...)
	if got := sorted(hitIDs(mustSearch(t, s, Query{Q: "保温杯"}))); !slices.Equal(got, []int64{101, 102, 104}) {
		t.Fatalf("search with the plugin analyzer: %v", got)
	}
}

func TestElasticsearchRequests(t *testing.T) {
	t.Parallel()
	srv := newESServer(t)
	s := openES(t, esConfig(srv))
	indexed(t, s, fixtureProducts()...)
	if err := s.Delete(context.Background(), 101); err != nil {
		t.Fatal(err)
	}
	mustSearch(t, s, Query{Q: "保温杯", CategoryID: 1, BrandID: 502, MerchantID: 9002, PriceMin: ptr(1), PriceMax: ptr(10000), Sort: SortRelevance})

	bulks := requestsTo(srv, http.MethodPost, "/_bulk")
	if len(bulks) != 2 {
		t.Fatalf("%d bulk requests, want 2 (one index, one delete)", len(bulks))
	}
	for _, b := range bulks {
		if b.Path != "/"+testAlias+"/_bulk" || b.Query.Get("refresh") != "wait_for" {
			t.Fatalf("bulk %s?%s: want the alias and refresh=wait_for", b.Path, b.Query.Encode())
		}
	}
	searches := requestsTo(srv, http.MethodPost, "/_search")
	if len(searches) != 1 || searches[0].Path != "/"+testAlias+"/_search" {
		t.Fatalf("searches: %+v", searches)
	}
	var body struct {
		Query struct {
			Bool struct {
				Must   json.RawMessage  `json:"must"` // one clause: an object
				Filter []map[string]any `json:"filter"`
			} `json:"bool"`
		} `json:"query"`
		TrackTotalHits bool                      `json:"track_total_hits"`
		Size           int                       `json:"size"`
		Sort           []map[string]any          `json:"sort"`
		Aggregations   map[string]map[string]any `json:"aggregations"`
	}
	if err := json.Unmarshal(searches[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	mm := body.Query.Bool.Must
	if !strings.Contains(string(mm), `"type":"cross_fields"`) || !strings.Contains(string(mm), `"operator":"and"`) || !strings.Contains(string(mm), `"title^3"`) {
		t.Fatalf("must: %s", mm)
	}
	if len(body.Query.Bool.Filter) != 4 {
		t.Fatalf("filters: %v (want category, brand, merchant, price in filter context)", body.Query.Bool.Filter)
	}
	if !body.TrackTotalHits || body.Size != DefaultLimit+1 || len(body.Sort) != 2 {
		t.Fatalf("track_total_hits %v, size %d, sort %v", body.TrackTotalHits, body.Size, body.Sort)
	}
	for _, name := range []string{"category", "brand"} {
		terms := body.Aggregations[name]["terms"].(map[string]any)
		if terms["size"] != float64(FacetSize) {
			t.Fatalf("%s aggregation: %v", name, terms)
		}
	}
}

func TestElasticsearchRebuildSwapsAliasAtomically(t *testing.T) {
	t.Parallel()
	srv := newESServer(t)
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	s := openES(t, esConfig(srv), WithClock(func() time.Time { return now }))
	indexed(t, s, fixtureProducts()...)

	rebuild := func(ps []Product) {
		t.Helper()
		srv.ResetRequests()
		err := s.Rebuild(context.Background(), func(yield func(Product) error) error {
			for _, p := range ps {
				if err := yield(p); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	rebuild(pagingProducts())
	want := testAlias + "_20250304050607"
	if got := srv.Indices(); !slices.Equal(got, []string{want}) {
		t.Fatalf("indices after rebuild %v, want only %s (the old one deleted)", got, want)
	}
	if got := srv.AliasIndices(testAlias); !slices.Equal(got, []string{want}) {
		t.Fatalf("alias -> %v", got)
	}
	if srv.RefreshDisabled(want) {
		t.Fatal("refresh left disabled on the new index")
	}
	creates := requestsTo(srv, http.MethodPut, "/"+want)
	if len(creates) != 1 || !strings.Contains(string(creates[0].Body), `"refresh_interval":"-1"`) {
		t.Fatalf("index creation: %+v", creates)
	}
	swaps := requestsTo(srv, http.MethodPost, "/_aliases")
	if len(swaps) != 1 {
		t.Fatalf("%d _aliases calls, want 1", len(swaps))
	}
	var actions struct {
		Actions []map[string]map[string]any `json:"actions"`
	}
	if err := json.Unmarshal(swaps[0].Body, &actions); err != nil {
		t.Fatal(err)
	}
	if len(actions.Actions) != 2 ||
		actions.Actions[0]["remove"]["index"] != testAlias+"_00000000000000" ||
		actions.Actions[1]["add"]["index"] != want {
		t.Fatalf("alias actions: %s", swaps[0].Body)
	}
	for _, b := range requestsTo(srv, http.MethodPost, "/_bulk") {
		if b.Path != "/"+want+"/_bulk" || b.Query.Has("refresh") {
			t.Fatalf("rebuild bulk %s?%s: want the new index, no refresh", b.Path, b.Query.Encode())
		}
	}
	if res := mustSearch(t, s, Query{}); res.Total != len(pagingProducts()) {
		t.Fatalf("total %d after rebuild", res.Total)
	}

	// A second rebuild in the same second gets a distinct name.
	rebuild(fixtureProducts())
	if got := srv.Indices(); !slices.Equal(got, []string{want + "_2"}) {
		t.Fatalf("indices after second rebuild %v", got)
	}
}

func TestElasticsearchFailedRebuildDropsNewIndex(t *testing.T) {
	t.Parallel()
	srv := newESServer(t)
	s := openES(t, esConfig(srv))
	indexed(t, s, fixtureProducts()...)
	first := srv.Indices()

	// The alias swap fails: the new index goes, the alias stays, searches keep working.
	srv.FailNext(http.StatusServiceUnavailable, func(method, path string) bool { return path == "/_aliases" })
	err := s.Rebuild(context.Background(), func(yield func(Product) error) error {
		return yield(pagingProducts()[0])
	})
	if err == nil {
		t.Fatal("Rebuild succeeded despite the failed swap")
	}
	if got := srv.Indices(); !slices.Equal(got, first) {
		t.Fatalf("indices %v, want %v", got, first)
	}
	if res := mustSearch(t, s, Query{}); res.Total != 10 {
		t.Fatalf("total %d", res.Total)
	}

	// A bulk write into the new index fails: same.
	srv.FailNext(http.StatusInternalServerError, func(method, path string) bool {
		return strings.HasSuffix(path, "/_bulk") && !strings.HasPrefix(path, "/"+testAlias+"/")
	})
	err = s.Rebuild(context.Background(), func(yield func(Product) error) error {
		for _, p := range pagingProducts() {
			if err := yield(p); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		t.Fatal("Rebuild succeeded despite the failed bulk")
	}
	if got := srv.Indices(); !slices.Equal(got, first) {
		t.Fatalf("indices %v, want %v", got, first)
	}
}

func TestElasticsearchConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("basic auth", func(t *testing.T) {
		srv := newESServer(t, estest.WithBasicAuth("mall", "s3cret"))
		cfg := esConfig(srv)
		if _, err := New(ctx, cfg); err == nil {
			t.Fatal("New without credentials succeeded")
		}
		cfg.Elasticsearch.Username, cfg.Elasticsearch.Password = "mall", "wrong"
		if _, err := New(ctx, cfg); err == nil {
			t.Fatal("New with a wrong password succeeded")
		}
		cfg.Elasticsearch.Password = "s3cret"
		s := openES(t, cfg)
		indexed(t, s, fixtureProducts()...)
		if res := mustSearch(t, s, Query{}); res.Total != 10 {
			t.Fatalf("total %d", res.Total)
		}
	})
	for _, v := range []string{"6.8.23", "8.11.0"} {
		t.Run("refuses version "+v, func(t *testing.T) {
			srv := newESServer(t, estest.WithVersion(v))
			s, err := New(ctx, esConfig(srv))
			if err == nil || !strings.Contains(err.Error(), "want 7.x") || s != nil {
				t.Fatalf("New against %s = %v, %v", v, s, err)
			}
		})
	}
	t.Run("replicas share the first index", func(t *testing.T) {
		srv := newESServer(t)
		a := openES(t, esConfig(srv))
		b := openES(t, esConfig(srv))
		if got := srv.Indices(); len(got) != 1 {
			t.Fatalf("indices %v", got)
		}
		indexed(t, a, fixtureProducts()...)
		if res := mustSearch(t, b, Query{}); res.Total != 10 {
			t.Fatalf("second client sees %d", res.Total)
		}
	})
	t.Run("server down", func(t *testing.T) {
		srv := estest.New()
		srv.Close()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := New(cctx, esConfig(srv)); err == nil {
			t.Fatal("New against a closed server succeeded")
		}
	})
	t.Run("a stalled cluster fails the search at the timeout", func(t *testing.T) {
		srv := newESServer(t)
		cfg := esConfig(srv)
		cfg.Elasticsearch.Timeout = 300 * time.Millisecond
		s := openES(t, cfg)
		srv.StallNext(time.Minute, func(method, path string) bool { return strings.HasSuffix(path, "/_search") })
		start := time.Now()
		_, err := s.Search(ctx, Query{})
		if el := time.Since(start); err == nil || errors.Is(err, ErrBadQuery) || el > 5*time.Second {
			t.Fatalf("Search on a stalled cluster = %v after %s", err, el)
		}
		if res := mustSearch(t, s, Query{}); res.Total != 0 {
			t.Fatalf("the next search: total %d", res.Total)
		}
	})
	t.Run("search error is not a bad query", func(t *testing.T) {
		srv := newESServer(t)
		s := openES(t, esConfig(srv))
		srv.FailNext(http.StatusInternalServerError, func(method, path string) bool { return strings.HasSuffix(path, "/_search") })
		_, err := s.Search(ctx, Query{})
		if err == nil || errors.Is(err, ErrBadQuery) {
			t.Fatalf("Search on a failing cluster = %v", err)
		}
	})
}

func TestElasticsearchLargeIndexCall(t *testing.T) {
	t.Parallel()
	srv := newESServer(t)
	s := openES(t, esConfig(srv))
	srv.ResetRequests()
	ps := GenerateProducts(2*esBulkSize+1, 3)
	indexed(t, s, ps...)
	bulks := requestsTo(srv, http.MethodPost, "/_bulk")
	if len(bulks) != 3 {
		t.Fatalf("%d bulk requests for %d products, want 3", len(bulks), len(ps))
	}
	for i, b := range bulks {
		if got, want := b.Query.Get("refresh"), map[bool]string{true: "wait_for", false: ""}[i == 2]; got != want {
			t.Fatalf("bulk %d: refresh=%q, want %q", i, got, want)
		}
	}
	if res := mustSearch(t, s, Query{}); res.Total != len(ps) {
		t.Fatalf("total %d, want %d", res.Total, len(ps))
	}
}

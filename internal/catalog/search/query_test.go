package search

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/mallhq/mall/internal/catalog/search/estest"
	"github.com/mallhq/mall/internal/platform/errs"
)

func TestParseQuery(t *testing.T) {
	t.Parallel()
	validCursor := encodeCursor(cursor{Sort: SortPriceAsc, Hash: plan{q: "杯"}.fingerprint(), Key: 990, ID: 7})
	tests := []struct {
		name      string
		give      string
		want      Query
		wantField string // non-empty: ErrBadQuery naming this field
	}{
		{name: "empty", give: "", want: Query{}},
		{name: "everything", give: "q=保温杯&category_id=11&brand_id=501&merchant_id=9001&price_min=100&price_max=9900&sort=price_desc&limit=50",
			want: Query{Q: "保温杯", CategoryID: 11, BrandID: 501, MerchantID: 9001, PriceMin: ptr(100), PriceMax: ptr(9900), Sort: SortPriceDesc, Limit: 50}},
		{name: "empty values are absent", give: "q=&category_id=&price_min=&sort=&limit=&cursor=", want: Query{}},
		{name: "64-bit IDs", give: "category_id=9223372036854775807", want: Query{CategoryID: 9223372036854775807}},
		{name: "zero price", give: "price_min=0&price_max=0", want: Query{PriceMin: ptr(0), PriceMax: ptr(0)}},
		{name: "unknown parameters are ignored", give: "utm_source=x&page=2", want: Query{}},
		{name: "cursor of this query", give: "q=杯&sort=price_asc&cursor=" + validCursor, want: Query{Q: "杯", Sort: SortPriceAsc, Cursor: validCursor}},
		{name: "ID not decimal", give: "category_id=0x10", wantField: "category_id"},
		{name: "ID zero", give: "brand_id=0", wantField: "brand_id"},
		{name: "ID negative", give: "merchant_id=-3", wantField: "merchant_id"},
		{name: "ID overflows", give: "category_id=9223372036854775808", wantField: "category_id"},
		{name: "price not an integer", give: "price_min=9.9", wantField: "price_min"},
		{name: "price negative", give: "price_max=-1", wantField: "price_max"},
		{name: "price too large", give: "price_max=9007199254740993", wantField: "price_max"},
		{name: "price_min above price_max", give: "price_min=200&price_max=100", wantField: "price_min"},
		{name: "unknown sort", give: "sort=popular", wantField: "sort"},
		{name: "limit zero", give: "limit=0", wantField: "limit"},
		{name: "limit too large", give: "limit=101", wantField: "limit"},
		{name: "limit not a number", give: "limit=ten", wantField: "limit"},
		{name: "repeated parameter", give: "q=a&q=b", wantField: "q"},
		{name: "bad cursor", give: "cursor=abc", wantField: "cursor"},
		{name: "cursor of another query", give: "q=碗&sort=price_asc&cursor=" + validCursor, wantField: "cursor"},
		{name: "cursor of another sort", give: "q=杯&sort=newest&cursor=" + validCursor, wantField: "cursor"},
		{name: "invalid UTF-8", give: "q=%ff%fe", wantField: "q"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := url.ParseQuery(tt.give)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseQuery(v)
			if tt.wantField != "" {
				e, ok := errs.As(err)
				if !errors.Is(err, ErrBadQuery) || !ok || len(e.Fields) != 1 || e.Fields[0].Field != tt.wantField {
					t.Fatalf("ParseQuery(%s) = %v, want ErrBadQuery naming %s", tt.give, err, tt.wantField)
				}
				if e.Kind != errs.Invalid {
					t.Fatalf("kind %v", e.Kind)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseQuery(%s): %v", tt.give, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			back, err := ParseQuery(got.Values())
			if err != nil || !reflect.DeepEqual(back, got) {
				t.Fatalf("Values round trip: %+v, %v", back, err)
			}
		})
	}
}

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []cursor{
		{Sort: SortRelevance, Hash: 1, Score: 0.1 + 0.2, ID: 9223372036854775807},
		{Sort: SortRelevance, Hash: 2, Score: 1e-300, ID: 1},
		{Sort: SortPriceAsc, Hash: 3, Key: MaxPrice, ID: 5},
		{Sort: SortNewest, Hash: 4, Key: -1, ID: 5},
	} {
		got, err := decodeCursor(encodeCursor(c))
		if err != nil || got != c {
			t.Fatalf("round trip of %+v: %+v, %v", c, got, err)
		}
	}
}

// FuzzQuery feeds raw query strings of GET /api/v1/search to ParseQuery: it never panics,
// every error is ErrBadQuery naming a field, and what it accepts is a valid query that
// survives a round trip through Values.
func FuzzQuery(f *testing.F) {
	f.Add("q=保温杯&category_id=11&sort=price_asc&limit=20")
	f.Add("price_min=100&price_max=50")
	f.Add("cursor=eyJzIjoicHJpY2VfYXNjIiwiaCI6MSwiayI6OTkwLCJpZCI6N30")
	f.Fuzz(func(t *testing.T, raw string) {
		v, _ := url.ParseQuery(raw) // what net/http's URL.Query() gives a handler
		q, err := ParseQuery(v)
		if err != nil {
			e, ok := errs.As(err)
			if !errors.Is(err, ErrBadQuery) || !ok || len(e.Fields) == 0 || e.Fields[0].Field == "" {
				t.Fatalf("ParseQuery(%q) = %v: not ErrBadQuery with a field", raw, err)
			}
			return
		}
		p, err := q.plan()
		if err != nil {
			t.Fatalf("accepted %q but plan fails: %v", raw, err)
		}
		if p.limit < 1 || p.limit > MaxLimit || !p.sort.valid() {
			t.Fatalf("accepted %q as limit %d sort %q", raw, p.limit, p.sort)
		}
		back, err := ParseQuery(q.Values())
		if err != nil || !reflect.DeepEqual(back, q) {
			t.Fatalf("round trip of %q: %+v (%v), want %+v", raw, back, err, q)
		}
	})
}

// FuzzSearch runs what ParseQuery accepts against both engines holding the same products:
// no query a client can send makes either fail (a 5xx), and when both analyzers split the
// keyword the same way, both return the same result set, total and facets.
func FuzzSearch(f *testing.F) {
	f.Add("q=保温杯&sort=price_asc")
	f.Add("q=Thermos+保温杯&category_id=1")
	f.Add("q=widget&merchant_id=9101&price_min=990&price_max=2990&limit=3")
	f.Add("category_id=2&sort=newest&limit=100")
	ctx := context.Background()
	products := append(fixtureProducts(), pagingProducts()...)
	bl, err := OpenBleve(filepath.Join(f.TempDir(), "fuzz.bleve"))
	if err != nil {
		f.Fatal(err)
	}
	defer bl.Close()
	srv := estest.New()
	defer srv.Close()
	es, err := New(ctx, esConfig(srv))
	if err != nil {
		f.Fatal(err)
	}
	defer es.Close()
	for _, s := range []Searcher{bl, es} {
		if err := s.Index(ctx, products...); err != nil {
			f.Fatal(err)
		}
	}
	m, err := bleveMapping()
	if err != nil {
		f.Fatal(err)
	}
	analyzer := m.AnalyzerNamed(bleveAnalyzer)
	f.Fuzz(func(t *testing.T, raw string) {
		v, _ := url.ParseQuery(raw)
		q, err := ParseQuery(v)
		if err != nil {
			return
		}
		q.Limit, q.Cursor = MaxLimit, "" // compare whole result sets
		rb, err := bl.Search(ctx, q)
		if err != nil {
			t.Fatalf("bleve: %+v: %v", q, err)
		}
		re, err := es.Search(ctx, q)
		if err != nil {
			t.Fatalf("elasticsearch: %+v: %v", q, err)
		}
		var bleveTerms []string
		for _, tok := range analyzer.Analyze([]byte(q.Q)) {
			bleveTerms = append(bleveTerms, string(tok.Term))
		}
		if !slices.Equal(bleveTerms, estest.Analyze("cjk", q.Q)) {
			return // the stand-in's tokenizer approximates UAX #29; exotic scripts may differ
		}
		if rb.Total != re.Total || !slices.Equal(sorted(hitIDs(rb)), sorted(hitIDs(re))) ||
			!reflect.DeepEqual(rb.Facets, re.Facets) {
			t.Fatalf("%+v:\nbleve %d %v %v\nes    %d %v %v", q, rb.Total, sorted(hitIDs(rb)), rb.Facets, re.Total, sorted(hitIDs(re)), re.Facets)
		}
		if q.Sort != SortRelevance && q.Sort != "" && !slices.Equal(hitIDs(rb), hitIDs(re)) {
			t.Fatalf("%+v: order differs:\nbleve %v\nes    %v", q, hitIDs(rb), hitIDs(re))
		}
	})
}

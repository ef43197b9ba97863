package search

import (
	"math"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mallhq/mall/internal/platform/errs"
)

// queryParams are the GET /api/v1/search parameters ParseQuery understands.
var queryParams = []string{"q", "category_id", "brand_id", "merchant_id", "price_min", "price_max", "sort", "limit", "cursor"}

// ParseQuery reads the GET /api/v1/search parameters (q, category_id, brand_id, merchant_id,
// price_min, price_max, sort, limit, cursor) into a validated Query. IDs are positive decimal
// strings, prices non-negative integers of fen; an empty value counts as absent; other
// parameters are ignored. Every error is ErrBadQuery with the offending field named.
func ParseQuery(v url.Values) (Query, error) {
	var q Query
	for _, name := range queryParams {
		if len(v[name]) > 1 {
			return Query{}, badQuery(name, "given more than once")
		}
	}
	q.Q = v.Get("q")
	var err error
	if q.CategoryID, err = parseID(v, "category_id"); err != nil {
		return Query{}, err
	}
	if q.BrandID, err = parseID(v, "brand_id"); err != nil {
		return Query{}, err
	}
	if q.MerchantID, err = parseID(v, "merchant_id"); err != nil {
		return Query{}, err
	}
	if q.PriceMin, err = parsePrice(v, "price_min"); err != nil {
		return Query{}, err
	}
	if q.PriceMax, err = parsePrice(v, "price_max"); err != nil {
		return Query{}, err
	}
	q.Sort = Sort(v.Get("sort"))
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return Query{}, badQuery("limit", "must be an integer from 1 to "+strconv.Itoa(MaxLimit))
		}
		q.Limit = n
	}
	q.Cursor = v.Get("cursor")
	if _, err := q.plan(); err != nil {
		return Query{}, err
	}
	return q, nil
}

// Values is the inverse of ParseQuery: the parameters that ask for q (e.g. to build a link).
func (q Query) Values() url.Values {
	v := url.Values{}
	set := func(name string, n int64) {
		if n != 0 {
			v.Set(name, strconv.FormatInt(n, 10))
		}
	}
	if q.Q != "" {
		v.Set("q", q.Q)
	}
	set("category_id", q.CategoryID)
	set("brand_id", q.BrandID)
	set("merchant_id", q.MerchantID)
	if q.PriceMin != nil {
		v.Set("price_min", strconv.FormatInt(*q.PriceMin, 10))
	}
	if q.PriceMax != nil {
		v.Set("price_max", strconv.FormatInt(*q.PriceMax, 10))
	}
	if q.Sort != "" {
		v.Set("sort", string(q.Sort))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	return v
}

func parseID(v url.Values, name string) (int64, error) {
	s := v.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, badQuery(name, "must be a positive decimal ID")
	}
	return n, nil
}

func parsePrice(v url.Values, name string) (*int64, error) {
	s := v.Get(name)
	if s == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > MaxPrice {
		return nil, badQuery(name, "must be an integer of fen from 0 to "+strconv.FormatInt(MaxPrice, 10))
	}
	return &n, nil
}

func badQuery(field, msg string) error {
	return ErrBadQuery.WithDetail("%s %s", field, msg).WithFields(errs.FieldError{Field: field, Message: msg})
}

// plan is a validated, normalized Query, the input both engines translate.
type plan struct {
	q                               string // trimmed keyword, "" = none
	categoryID, brandID, merchantID int64
	priceMin, priceMax              *int64
	sort                            Sort // effective sort (relevance without keyword → newest)
	limit                           int
	after                           *cursor // nil on the first page
}

func (q Query) plan() (plan, error) {
	p := plan{
		q:          strings.TrimSpace(q.Q),
		categoryID: q.CategoryID, brandID: q.BrandID, merchantID: q.MerchantID,
		priceMin: q.PriceMin, priceMax: q.PriceMax,
		sort:  q.Sort,
		limit: q.Limit,
	}
	if !utf8.ValidString(p.q) {
		return plan{}, badQuery("q", "must be valid UTF-8")
	}
	if len(p.q) > MaxQueryLen {
		return plan{}, badQuery("q", "must be at most "+strconv.Itoa(MaxQueryLen)+" bytes")
	}
	for _, f := range []struct {
		name string
		id   int64
	}{{"category_id", q.CategoryID}, {"brand_id", q.BrandID}, {"merchant_id", q.MerchantID}} {
		if f.id < 0 {
			return plan{}, badQuery(f.name, "must be a positive decimal ID")
		}
	}
	for _, f := range []struct {
		name  string
		price *int64
	}{{"price_min", q.PriceMin}, {"price_max", q.PriceMax}} {
		if f.price != nil && (*f.price < 0 || *f.price > MaxPrice) {
			return plan{}, badQuery(f.name, "must be an integer of fen from 0 to "+strconv.FormatInt(MaxPrice, 10))
		}
	}
	if q.PriceMin != nil && q.PriceMax != nil && *q.PriceMin > *q.PriceMax {
		return plan{}, badQuery("price_min", "must not exceed price_max")
	}
	switch {
	case p.sort == "":
		p.sort = SortRelevance
	case !p.sort.valid():
		return plan{}, badQuery("sort", "must be one of relevance, price_asc, price_desc, newest")
	}
	if p.sort == SortRelevance && p.q == "" {
		p.sort = SortNewest
	}
	switch {
	case p.limit < 0:
		return plan{}, badQuery("limit", "must be an integer from 1 to "+strconv.Itoa(MaxLimit))
	case p.limit == 0:
		p.limit = DefaultLimit
	case p.limit > MaxLimit:
		p.limit = MaxLimit
	}
	if q.Cursor != "" {
		c, err := decodeCursor(q.Cursor)
		if err != nil {
			return plan{}, err
		}
		if c.Sort != p.sort || c.Hash != p.fingerprint() {
			return plan{}, badQuery("cursor", "belongs to another query")
		}
		p.after = &c
	}
	return p, nil
}

// fingerprint identifies the result set a cursor walks (keyword and filters), so a cursor
// replayed against another query is refused instead of silently skipping results.
func (p plan) fingerprint() uint32 {
	h := uint32(2166136261) // FNV-1a
	add := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint32(s[i])
			h *= 16777619
		}
		h ^= 0xff // separator
		h *= 16777619
	}
	price := func(p *int64) string {
		if p == nil {
			return "-"
		}
		return strconv.FormatInt(*p, 10)
	}
	add(p.q)
	add(strconv.FormatInt(p.categoryID, 10))
	add(strconv.FormatInt(p.brandID, 10))
	add(strconv.FormatInt(p.merchantID, 10))
	add(price(p.priceMin))
	add(price(p.priceMax))
	return h
}

// nextCursor returns the cursor that continues after last. Engines fetch limit+1 hits and
// call it only when the extra hit exists, so the last page has no cursor.
func (p plan) nextCursor(last sortKey) string {
	return encodeCursor(cursor{Sort: p.sort, Hash: p.fingerprint(), Score: last.score, Key: last.key, ID: last.id})
}

// sortKey is what a hit is ordered by: its score (relevance) or key (price_min, or
// created_at in Unix milliseconds), then its ID.
type sortKey struct {
	score float64
	key   int64
	id    int64
}

func validScore(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// hitKey is the sort key of a hit under sort s.
func hitKey(s Sort, h Hit, createdMs int64, score float64) sortKey {
	switch s {
	case SortRelevance:
		return sortKey{score: score, id: h.ID}
	case SortNewest:
		return sortKey{key: createdMs, id: h.ID}
	default:
		return sortKey{key: h.PriceMin, id: h.ID}
	}
}

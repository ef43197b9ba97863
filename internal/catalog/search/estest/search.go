package estest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// hitDoc is a document being searched, with the index it lives in.
type hitDoc struct {
	ix    *index
	d     *document
	score float64
}

// searchCtx holds what queries need: the searched documents and per-field statistics.
type searchCtx struct {
	fields map[string]field
	docs   []*document
	stats  map[string]*fieldStats
}

type fieldStats struct {
	docCount int
	avgLen   float64
	df       map[string]int
}

func (c *searchCtx) fieldStats(name string) *fieldStats {
	if st := c.stats[name]; st != nil {
		return st
	}
	st := &fieldStats{df: map[string]int{}}
	total := 0
	for _, d := range c.docs {
		if tf, ok := d.terms[name]; ok {
			st.docCount++
			total += d.length[name]
			for t := range tf {
				st.df[t]++
			}
		}
	}
	if st.docCount > 0 {
		st.avgLen = float64(total) / float64(st.docCount)
	}
	c.stats[name] = st
	return st
}

// bm25 is the score of term in field of d, Lucene's BM25 (k1 = 1.2, b = 0.75).
func (c *searchCtx) bm25(d *document, fieldName, term string) float64 {
	tf := d.terms[fieldName][term]
	if tf == 0 {
		return 0
	}
	st := c.fieldStats(fieldName)
	n := float64(st.df[term])
	idf := math.Log(1 + (float64(st.docCount)-n+0.5)/(n+0.5))
	const k1, b = 1.2, 0.75
	dl := float64(d.length[fieldName])
	return idf * float64(tf) * (k1 + 1) / (float64(tf) + k1*(1-b+b*dl/st.avgLen))
}

// query is a parsed query clause.
type query interface {
	// eval reports whether d matches and its score.
	eval(c *searchCtx, d *document) (bool, float64)
}

func (s *Server) parseQuery(fields map[string]field, v any) (query, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, parsingError("query malformed, must be an object with exactly one clause")
	}
	for kind, body := range m {
		switch kind {
		case "match_all":
			bm, ok := body.(map[string]any)
			if !ok {
				return nil, parsingError("[match_all] malformed")
			}
			boost, err := takeBoost(bm, "match_all")
			if err != nil {
				return nil, err
			}
			return matchAll{boost: boost}, nil
		case "bool":
			return s.parseBool(fields, body)
		case "multi_match":
			return parseMultiMatch(fields, body)
		case "match":
			return parseMatch(fields, body)
		case "term":
			return parseTerm(fields, body)
		case "terms":
			return parseTerms(fields, body)
		case "range":
			return parseRange(fields, body)
		default:
			return nil, parsingError("unknown query [%s]", kind)
		}
	}
	panic("unreachable")
}

func takeBoost(m map[string]any, clause string, allowed ...string) (float64, error) {
	boost := 1.0
	for k, v := range m {
		switch {
		case k == "boost":
			f, err := number(v)
			if err != nil {
				return 0, parsingError("[%s] boost must be a number", clause)
			}
			boost = f
		case k == "_name":
		case slices.Contains(allowed, k):
		default:
			return 0, parsingError("[%s] query does not support [%s]", clause, k)
		}
	}
	return boost, nil
}

func number(v any) (float64, error) {
	switch v := v.(type) {
	case json.Number:
		return v.Float64()
	case string:
		return strconv.ParseFloat(v, 64)
	}
	return 0, fmt.Errorf("not a number: %v", v)
}

type matchAll struct{ boost float64 }

func (q matchAll) eval(*searchCtx, *document) (bool, float64) { return true, q.boost }

type boolQuery struct {
	must, filter, should, mustNot []query
	minShould                     int
	boost                         float64
}

func (s *Server) parseBool(fields map[string]field, v any) (query, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, parsingError("[bool] malformed")
	}
	q := &boolQuery{minShould: -1}
	boost, err := takeBoost(m, "bool", "must", "filter", "should", "must_not", "minimum_should_match")
	if err != nil {
		return nil, err
	}
	q.boost = boost
	for k, val := range m {
		var dst *[]query
		switch k {
		case "must":
			dst = &q.must
		case "filter":
			dst = &q.filter
		case "should":
			dst = &q.should
		case "must_not":
			dst = &q.mustNot
		case "minimum_should_match":
			n, err := strconv.Atoi(fmt.Sprint(val))
			if err != nil {
				return nil, badRequest("estest implements only integer minimum_should_match, got %v", val)
			}
			q.minShould = n
			continue
		default:
			continue
		}
		list, ok := val.([]any)
		if !ok {
			list = []any{val}
		}
		for _, c := range list {
			sub, err := s.parseQuery(fields, c)
			if err != nil {
				return nil, err
			}
			*dst = append(*dst, sub)
		}
	}
	if q.minShould < 0 {
		q.minShould = 0
		if len(q.must) == 0 && len(q.filter) == 0 && len(q.should) > 0 {
			q.minShould = 1
		}
	}
	return q, nil
}

func (q *boolQuery) eval(c *searchCtx, d *document) (bool, float64) {
	score := 0.0
	for _, m := range q.must {
		ok, s := m.eval(c, d)
		if !ok {
			return false, 0
		}
		score += s
	}
	for _, f := range q.filter {
		if ok, _ := f.eval(c, d); !ok {
			return false, 0
		}
	}
	for _, m := range q.mustNot {
		if ok, _ := m.eval(c, d); ok {
			return false, 0
		}
	}
	matched := 0
	for _, sh := range q.should {
		if ok, s := sh.eval(c, d); ok {
			matched++
			score += s
		}
	}
	if matched < q.minShould {
		return false, 0
	}
	if len(q.must) == 0 && len(q.should) == 0 {
		return true, 0 // filter / must_not only: no score, as in Elasticsearch
	}
	return true, score * q.boost
}

type fieldBoost struct {
	name  string
	boost float64
}

type multiMatch struct {
	typ    string // best_fields, most_fields, cross_fields
	and    bool
	fields []fieldBoost
	terms  map[string][]string // field → analyzed query terms
	boost  float64
}

func parseOperator(v any) (bool, error) {
	switch strings.ToLower(fmt.Sprint(v)) {
	case "and":
		return true, nil
	case "or":
		return false, nil
	}
	return false, parsingError("operator must be AND or OR, got %v", v)
}

func parseMultiMatch(fields map[string]field, v any) (query, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, parsingError("[multi_match] malformed")
	}
	boost, err := takeBoost(m, "multi_match", "query", "fields", "type", "operator")
	if err != nil {
		return nil, err
	}
	q := &multiMatch{typ: "best_fields", boost: boost, terms: map[string][]string{}}
	text, ok := m["query"].(string)
	if !ok {
		return nil, parsingError("[multi_match] requires a string query")
	}
	if t, ok := m["type"]; ok {
		q.typ, _ = t.(string)
		switch q.typ {
		case "best_fields", "most_fields", "cross_fields":
		default:
			return nil, badRequest("estest does not implement multi_match type [%v]", t)
		}
	}
	if op, ok := m["operator"]; ok {
		if q.and, err = parseOperator(op); err != nil {
			return nil, err
		}
	}
	list, ok := m["fields"].([]any)
	if !ok || len(list) == 0 {
		return nil, badRequest("estest: multi_match needs an explicit fields list")
	}
	analyzer := ""
	for _, x := range list {
		spec, _ := x.(string)
		name, b, hasBoost := strings.Cut(spec, "^")
		fb := fieldBoost{name: name, boost: 1}
		if hasBoost {
			f, err := strconv.ParseFloat(b, 64)
			if err != nil {
				return nil, parsingError("bad field boost in [%s]", spec)
			}
			fb.boost = f
		}
		if strings.ContainsAny(name, "*?") {
			return nil, badRequest("estest does not implement field patterns [%s]", name)
		}
		f, ok := fields[name]
		if !ok {
			return nil, badRequest("estest: multi_match on unmapped field [%s]", name)
		}
		if f.typ != "text" {
			return nil, badRequest("estest implements multi_match only on text fields, [%s] is [%s]", name, f.typ)
		}
		if q.typ == "cross_fields" && analyzer != "" && f.analyzer != analyzer {
			return nil, badRequest("estest does not implement cross_fields over fields with different analyzers")
		}
		analyzer = f.analyzer
		q.fields = append(q.fields, fb)
		q.terms[name] = dedupe(Analyze(f.analyzer, text))
	}
	return q, nil
}

func dedupe(ss []string) []string {
	var out []string
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// fieldMatch scores one field: all (and) or any (or) terms present.
func fieldMatch(c *searchCtx, d *document, fieldName string, terms []string, and bool, boost float64) (bool, float64) {
	if len(terms) == 0 {
		return false, 0 // zero_terms_query: none
	}
	score, hits := 0.0, 0
	for _, t := range terms {
		if s := c.bm25(d, fieldName, t); s > 0 || d.terms[fieldName][t] > 0 {
			hits++
			score += s
		}
	}
	if hits == 0 || (and && hits < len(terms)) {
		return false, 0
	}
	return true, score * boost
}

func (q *multiMatch) eval(c *searchCtx, d *document) (bool, float64) {
	switch q.typ {
	case "cross_fields":
		// Every term (or any, for "or") in at least one field; a term scores its best field.
		terms := q.terms[q.fields[0].name]
		if len(terms) == 0 {
			return false, 0
		}
		score, hits := 0.0, 0
		for _, t := range terms {
			best, found := 0.0, false
			for _, f := range q.fields {
				if d.terms[f.name][t] > 0 {
					found = true
					best = max(best, f.boost*c.bm25(d, f.name, t))
				}
			}
			if found {
				hits++
				score += best
			}
		}
		if hits == 0 || (q.and && hits < len(terms)) {
			return false, 0
		}
		return true, score * q.boost
	default:
		matched, best, sum := false, 0.0, 0.0
		for _, f := range q.fields {
			if ok, s := fieldMatch(c, d, f.name, q.terms[f.name], q.and, f.boost); ok {
				matched = true
				best = max(best, s)
				sum += s
			}
		}
		if q.typ == "most_fields" {
			return matched, sum * q.boost
		}
		return matched, best * q.boost
	}
}

type match struct {
	field string
	terms []string
	and   bool
	boost float64
}

func parseMatch(fields map[string]field, v any) (query, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, parsingError("[match] query malformed, expected one field")
	}
	for name, spec := range m {
		f, ok := fields[name]
		if !ok {
			return nil, badRequest("estest: match on unmapped field [%s]", name)
		}
		if f.typ != "text" {
			return nil, badRequest("estest implements match only on text fields, [%s] is [%s]", name, f.typ)
		}
		q := &match{field: name, boost: 1}
		var text string
		switch spec := spec.(type) {
		case string:
			text = spec
		case map[string]any:
			boost, err := takeBoost(spec, "match", "query", "operator")
			if err != nil {
				return nil, err
			}
			q.boost = boost
			text, ok = spec["query"].(string)
			if !ok {
				return nil, parsingError("[match] requires a string query")
			}
			if op, ok := spec["operator"]; ok {
				if q.and, err = parseOperator(op); err != nil {
					return nil, err
				}
			}
		default:
			return nil, parsingError("[match] malformed")
		}
		q.terms = dedupe(Analyze(f.analyzer, text))
		return q, nil
	}
	panic("unreachable")
}

func (q *match) eval(c *searchCtx, d *document) (bool, float64) {
	return fieldMatch(c, d, q.field, q.terms, q.and, q.boost)
}

// termQuery matches documents holding one of values in field (term and terms queries).
type termQuery struct {
	field  string
	typ    string
	values []any
	boost  float64
}

func queryValue(f field, name string, v any) (any, error) {
	if f.typ == "text" {
		s, ok := v.(string)
		if !ok {
			return nil, badRequest("term on text field [%s] needs a string", name)
		}
		return s, nil
	}
	nv, err := f.value(v)
	if err != nil {
		return nil, errf(400, "query_shard_exception", "failed to create query on field [%s]: %v", name, err)
	}
	return nv, nil
}

func parseTerm(fields map[string]field, v any) (query, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, parsingError("[term] query malformed, expected one field")
	}
	for name, spec := range m {
		f, ok := fields[name]
		if !ok {
			return nil, badRequest("estest: term on unmapped field [%s]", name)
		}
		q := &termQuery{field: name, typ: f.typ, boost: 1}
		val := spec
		if sm, ok := spec.(map[string]any); ok {
			boost, err := takeBoost(sm, "term", "value")
			if err != nil {
				return nil, err
			}
			q.boost = boost
			val, ok = sm["value"]
			if !ok {
				return nil, parsingError("[term] requires a value")
			}
		}
		nv, err := queryValue(f, name, val)
		if err != nil {
			return nil, err
		}
		q.values = []any{nv}
		return q, nil
	}
	panic("unreachable")
}

func parseTerms(fields map[string]field, v any) (query, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, parsingError("[terms] query malformed")
	}
	var q *termQuery
	boost := 1.0
	for name, spec := range m {
		if name == "boost" {
			f, err := number(spec)
			if err != nil {
				return nil, parsingError("[terms] boost must be a number")
			}
			boost = f
			continue
		}
		if q != nil {
			return nil, parsingError("[terms] query does not support multiple fields")
		}
		f, ok := fields[name]
		if !ok {
			return nil, badRequest("estest: terms on unmapped field [%s]", name)
		}
		list, ok := spec.([]any)
		if !ok {
			return nil, badRequest("estest implements only the array form of [terms]")
		}
		q = &termQuery{field: name, typ: f.typ}
		for _, x := range list {
			nv, err := queryValue(f, name, x)
			if err != nil {
				return nil, err
			}
			q.values = append(q.values, nv)
		}
	}
	if q == nil {
		return nil, parsingError("[terms] query requires a field")
	}
	q.boost = boost
	return q, nil
}

func (q *termQuery) eval(_ *searchCtx, d *document) (bool, float64) {
	if q.typ == "text" {
		for _, v := range q.values {
			if d.terms[q.field][v.(string)] > 0 {
				return true, q.boost
			}
		}
		return false, 0
	}
	for _, have := range d.values[q.field] {
		for _, want := range q.values {
			if have == want {
				return true, q.boost
			}
		}
	}
	return false, 0
}

type rangeQuery struct {
	field        string
	lo, hi       any // nil = unbounded
	loInc, hiInc bool
	boost        float64
}

func parseRange(fields map[string]field, v any) (query, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, parsingError("[range] query malformed, expected one field")
	}
	for name, spec := range m {
		f, ok := fields[name]
		if !ok {
			return nil, badRequest("estest: range on unmapped field [%s]", name)
		}
		if f.typ == "text" || f.typ == "boolean" {
			return nil, badRequest("estest does not implement range on [%s] fields", f.typ)
		}
		sm, ok := spec.(map[string]any)
		if !ok {
			return nil, parsingError("[range] malformed")
		}
		boost, err := takeBoost(sm, "range", "gte", "gt", "lte", "lt", "from", "to", "include_lower", "include_upper")
		if err != nil {
			return nil, err
		}
		q := &rangeQuery{field: name, loInc: true, hiInc: true, boost: boost}
		conv := func(x any) (any, error) {
			if x == nil {
				return nil, nil
			}
			return queryValue(f, name, x)
		}
		flag := func(k string) (bool, error) {
			x, ok := sm[k]
			if !ok {
				return true, nil
			}
			b, ok := x.(bool)
			if !ok {
				return false, parsingError("[range] %s must be a boolean", k)
			}
			return b, nil
		}
		if q.loInc, err = flag("include_lower"); err != nil {
			return nil, err
		}
		if q.hiInc, err = flag("include_upper"); err != nil {
			return nil, err
		}
		for k, x := range sm {
			var err error
			switch k {
			case "from":
				q.lo, err = conv(x)
			case "to":
				q.hi, err = conv(x)
			case "gte", "gt":
				q.lo, err = conv(x)
				q.loInc = k == "gte"
			case "lte", "lt":
				q.hi, err = conv(x)
				q.hiInc = k == "lte"
			}
			if err != nil {
				return nil, err
			}
		}
		return q, nil
	}
	panic("unreachable")
}

func (q *rangeQuery) eval(_ *searchCtx, d *document) (bool, float64) {
	for _, v := range d.values[q.field] {
		if q.lo != nil {
			c := compareValues(v, q.lo)
			if c < 0 || (c == 0 && !q.loInc) {
				continue
			}
		}
		if q.hi != nil {
			c := compareValues(v, q.hi)
			if c > 0 || (c == 0 && !q.hiInc) {
				continue
			}
		}
		return true, q.boost
	}
	return false, 0
}

func compareValues(a, b any) int {
	switch a := a.(type) {
	case int64:
		return cmp.Compare(a, b.(int64))
	case float64:
		return cmp.Compare(a, b.(float64))
	case string:
		return cmp.Compare(a, b.(string))
	case bool:
		bb := b.(bool)
		switch {
		case a == bb:
			return 0
		case !a:
			return -1
		}
		return 1
	}
	return 0
}

// ---- search ----

type sortSpec struct {
	field string // "_score" for the score
	desc  bool
	f     field
}

type aggSpec struct {
	name, field string
	f           field
	size        int
	order       []aggOrder
	minDocCount int
}

type aggOrder struct {
	byKey bool
	desc  bool
}

type sourceFilter struct {
	none     bool
	includes []string
}

func (s *Server) search(target string, body []byte) (any, error) {
	var ixs []*index
	if ix := s.indices[target]; ix != nil {
		if !s.searchIndices {
			return nil, badRequest("estest: search on the concrete index [%s]; search through its alias", target)
		}
		ixs = []*index{ix}
	} else {
		if strings.ContainsAny(target, "*,") || target == "_all" {
			return nil, badRequest("estest does not implement multi-target searches [%s]", target)
		}
		var err error
		if ixs, err = s.resolve(target); err != nil {
			return nil, err
		}
	}
	fields := ixs[0].fields
	for _, ix := range ixs[1:] {
		for name, f := range ix.fields {
			if g, ok := fields[name]; ok && g != f {
				return nil, badRequest("estest: field [%s] is mapped differently across the searched indices", name)
			}
		}
	}
	var req map[string]any
	if len(body) > 0 {
		if err := decodeJSON(body, &req); err != nil {
			return nil, err
		}
	}
	var (
		q            query = matchAll{boost: 1}
		size, from         = 10, 0
		sorts        []sortSpec
		after        []any
		trackTotal   any = json.Number("10000")
		aggs         []aggSpec
		src          = sourceFilter{}
		err          error
		explicitSort bool
	)
	for k, v := range req {
		switch k {
		case "query":
			if q, err = s.parseQuery(fields, v); err != nil {
				return nil, err
			}
		case "size", "from":
			n, err := strconv.Atoi(fmt.Sprint(v))
			if err != nil || n < 0 {
				return nil, parsingError("[%s] must be a non-negative integer", k)
			}
			if k == "size" {
				size = n
			} else {
				from = n
			}
		case "sort":
			explicitSort = true
			if sorts, err = parseSort(fields, v); err != nil {
				return nil, err
			}
		case "search_after":
			list, ok := v.([]any)
			if !ok {
				return nil, parsingError("[search_after] must be an array")
			}
			after = list
		case "track_total_hits":
			trackTotal = v
		case "aggs", "aggregations":
			if aggs, err = parseAggs(fields, v); err != nil {
				return nil, err
			}
		case "_source":
			if src, err = parseSource(v); err != nil {
				return nil, err
			}
		default:
			return nil, parsingError("Unknown key for a START_OBJECT in [%s].", k)
		}
	}
	if !explicitSort {
		sorts = []sortSpec{{field: "_score", desc: true}}
	}
	if from+size > ixs[0].maxWindow {
		return nil, badRequest("Result window is too large, from + size must be less than or equal to: [%d] but was [%d].", ixs[0].maxWindow, from+size)
	}
	var afterVals []any
	if after != nil {
		if !explicitSort {
			return nil, badRequest("Sort must contain at least one field.")
		}
		if len(after) != len(sorts) {
			return nil, badRequest("search_after has %d value(s) but sort has %d.", len(after), len(sorts))
		}
		if from > 0 {
			return nil, badRequest("`from` parameter must be set to 0 when `search_after` is used.")
		}
		for i, v := range after {
			sv, err := sortValue(sorts[i], v)
			if err != nil {
				return nil, err
			}
			afterVals = append(afterVals, sv)
		}
	}

	// Evaluate.
	c := &searchCtx{fields: fields, stats: map[string]*fieldStats{}}
	var all []hitDoc
	for _, ix := range ixs {
		for _, d := range ix.visible {
			c.docs = append(c.docs, d)
			all = append(all, hitDoc{ix: ix, d: d})
		}
	}
	var matched []hitDoc
	for _, h := range all {
		if ok, score := q.eval(c, h.d); ok {
			h.score = score
			matched = append(matched, h)
		}
	}
	keys := func(h hitDoc) []any {
		out := make([]any, len(sorts))
		for i, sp := range sorts {
			out[i] = docSortValue(sp, h)
		}
		return out
	}
	slices.SortStableFunc(matched, func(a, b hitDoc) int {
		if c := compareKeys(sorts, keys(a), keys(b)); c != 0 {
			return c
		}
		if c := cmp.Compare(a.ix.name, b.ix.name); c != 0 { // Lucene's doc order, roughly
			return c
		}
		return cmp.Compare(a.d.seq, b.d.seq)
	})
	page := matched
	if afterVals != nil {
		i := 0
		for i < len(page) && compareKeys(sorts, keys(page[i]), afterVals) <= 0 {
			i++
		}
		page = page[i:]
	}
	page = page[min(from, len(page)):]
	page = page[:min(size, len(page))]

	scored := !explicitSort || slices.ContainsFunc(sorts, func(sp sortSpec) bool { return sp.field == "_score" })
	hits := make([]any, 0, len(page))
	var maxScore any
	for _, h := range page {
		hit := map[string]any{"_index": h.ix.name, "_type": "_doc", "_id": h.d.id, "_score": nil}
		if scored {
			hit["_score"] = h.score
		}
		if !src.none {
			hit["_source"] = src.filter(h.d.source)
		}
		if explicitSort {
			hit["sort"] = keys(h)
		}
		hits = append(hits, hit)
	}
	if scored && len(matched) > 0 {
		m := 0.0
		for _, h := range matched {
			m = max(m, h.score)
		}
		maxScore = m
	}
	hitsObj := map[string]any{"max_score": maxScore, "hits": hits}
	switch tt := trackTotal.(type) {
	case bool:
		if tt {
			hitsObj["total"] = map[string]any{"value": len(matched), "relation": "eq"}
		}
	case json.Number:
		n, err := strconv.Atoi(tt.String())
		if err != nil {
			return nil, parsingError("[track_total_hits] must be a boolean or an integer")
		}
		if len(matched) > n {
			hitsObj["total"] = map[string]any{"value": n, "relation": "gte"}
		} else {
			hitsObj["total"] = map[string]any{"value": len(matched), "relation": "eq"}
		}
	default:
		return nil, parsingError("[track_total_hits] must be a boolean or an integer")
	}
	resp := map[string]any{
		"took": 1, "timed_out": false,
		"_shards": map[string]any{"total": len(ixs), "successful": len(ixs), "skipped": 0, "failed": 0},
		"hits":    hitsObj,
	}
	if len(aggs) > 0 {
		out := map[string]any{}
		for _, a := range aggs {
			out[a.name] = a.run(matched)
		}
		resp["aggregations"] = out
	}
	return resp, nil
}

func parseSort(fields map[string]field, v any) ([]sortSpec, error) {
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	var out []sortSpec
	add := func(name string, order any) error {
		sp := sortSpec{field: name, desc: name == "_score"}
		if order != nil {
			switch order {
			case "asc":
				sp.desc = false
			case "desc":
				sp.desc = true
			default:
				return parsingError("[sort] order must be asc or desc, got %v", order)
			}
		}
		if name != "_score" {
			f, ok := fields[name]
			if !ok {
				return badRequest("No mapping found for [%s] in order to sort on", name)
			}
			if f.typ == "text" {
				return badRequest("Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [%s] in order to load field data by uninverting the inverted index. Note that this can use significant memory.", name)
			}
			sp.f = f
		}
		out = append(out, sp)
		return nil
	}
	for _, x := range list {
		switch x := x.(type) {
		case string:
			if err := add(x, nil); err != nil {
				return nil, err
			}
		case map[string]any:
			if len(x) != 1 {
				return nil, parsingError("[sort] each element must have one field")
			}
			for name, spec := range x {
				switch spec := spec.(type) {
				case string:
					if err := add(name, spec); err != nil {
						return nil, err
					}
				case map[string]any:
					for k := range spec {
						if k != "order" {
							return nil, badRequest("estest does not implement the sort option [%s]", k)
						}
					}
					if err := add(name, spec["order"]); err != nil {
						return nil, err
					}
				default:
					return nil, parsingError("[sort] malformed for [%s]", name)
				}
			}
		default:
			return nil, parsingError("[sort] malformed")
		}
	}
	return out, nil
}

// docSortValue is the value a hit sorts by: min of a multi-valued field ascending, max
// descending; nil when missing (sorted last).
func docSortValue(sp sortSpec, h hitDoc) any {
	if sp.field == "_score" {
		return h.score
	}
	var best any
	for _, v := range h.d.values[sp.field] {
		if best == nil || (compareValues(v, best) < 0) != sp.desc {
			best = v
		}
	}
	return best
}

// sortValue converts a search_after value to the sort field's type.
func sortValue(sp sortSpec, v any) (any, error) {
	if sp.field == "_score" {
		f, err := number(v)
		if err != nil {
			return nil, badRequest("Failed to parse search_after value for field [_score]: %v", v)
		}
		return f, nil
	}
	nv, err := sp.f.value(v)
	if err != nil {
		return nil, badRequest("Failed to parse search_after value for field [%s]: %v", sp.field, err)
	}
	return nv, nil
}

func compareKeys(sorts []sortSpec, a, b []any) int {
	for i, sp := range sorts {
		x, y := a[i], b[i]
		var c int
		switch {
		case x == nil && y == nil:
			c = 0
		case x == nil:
			return 1 // missing last, whatever the order
		case y == nil:
			return -1
		default:
			c = compareValues(x, y)
		}
		if sp.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

func parseAggs(fields map[string]field, v any) ([]aggSpec, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, parsingError("[aggs] must be an object")
	}
	var out []aggSpec
	for name, spec := range m {
		sm, ok := spec.(map[string]any)
		if !ok || len(sm) != 1 {
			return nil, parsingError("aggregation [%s] must hold exactly one aggregation type", name)
		}
		body, ok := sm["terms"].(map[string]any)
		if !ok {
			for typ := range sm {
				return nil, badRequest("estest does not implement the aggregation type [%s]", typ)
			}
		}
		a := aggSpec{name: name, size: 10, minDocCount: 1, order: []aggOrder{{desc: true}, {byKey: true}}}
		for k, val := range body {
			switch k {
			case "field":
				a.field, _ = val.(string)
			case "size":
				n, err := strconv.Atoi(fmt.Sprint(val))
				if err != nil || n <= 0 {
					return nil, parsingError("[size] must be greater than 0. Found [%v] in [%s]", val, name)
				}
				a.size = n
			case "min_doc_count":
				n, err := strconv.Atoi(fmt.Sprint(val))
				if err != nil || n < 1 {
					return nil, badRequest("estest implements min_doc_count >= 1 only")
				}
				a.minDocCount = n
			case "order":
				list, ok := val.([]any)
				if !ok {
					list = []any{val}
				}
				a.order = nil
				for _, o := range list {
					om, ok := o.(map[string]any)
					if !ok || len(om) != 1 {
						return nil, parsingError("[order] malformed in [%s]", name)
					}
					for key, dir := range om {
						if key != "_count" && key != "_key" {
							return nil, badRequest("estest implements ordering terms by _count and _key only, got [%s]", key)
						}
						if dir != "asc" && dir != "desc" {
							return nil, parsingError("unknown order direction [%v]", dir)
						}
						a.order = append(a.order, aggOrder{byKey: key == "_key", desc: dir == "desc"})
					}
				}
			default:
				return nil, badRequest("estest does not implement the terms option [%s]", k)
			}
		}
		f, ok := fields[a.field]
		if !ok {
			return nil, badRequest("estest: terms aggregation on unmapped field [%s]", a.field)
		}
		if f.typ == "text" {
			return nil, badRequest("Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [%s] in order to load field data by uninverting the inverted index. Note that this can use significant memory.", a.field)
		}
		a.f = f
		out = append(out, a)
	}
	return out, nil
}

func (a aggSpec) run(matched []hitDoc) any {
	counts := map[any]int{}
	for _, h := range matched {
		seen := map[any]bool{}
		for _, v := range h.d.values[a.field] {
			if !seen[v] {
				seen[v] = true
				counts[v]++
			}
		}
	}
	type bucket struct {
		key   any
		count int
	}
	var bs []bucket
	for k, n := range counts {
		if n >= a.minDocCount {
			bs = append(bs, bucket{k, n})
		}
	}
	slices.SortFunc(bs, func(x, y bucket) int {
		for _, o := range a.order {
			var c int
			if o.byKey {
				c = compareValues(x.key, y.key)
			} else {
				c = cmp.Compare(x.count, y.count)
			}
			if o.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return compareValues(x.key, y.key)
	})
	other := 0
	if len(bs) > a.size {
		for _, b := range bs[a.size:] {
			other += b.count
		}
		bs = bs[:a.size]
	}
	buckets := make([]any, 0, len(bs))
	for _, b := range bs {
		bk := map[string]any{"key": b.key, "doc_count": b.count}
		if a.f.typ == "date" {
			bk["key_as_string"] = strconv.FormatInt(b.key.(int64), 10)
		}
		buckets = append(buckets, bk)
	}
	return map[string]any{"doc_count_error_upper_bound": 0, "sum_other_doc_count": other, "buckets": buckets}
}

func parseSource(v any) (sourceFilter, error) {
	sf, err := parseSourceSpec(v)
	for _, inc := range sf.includes {
		if inc == "" || strings.ContainsAny(inc, "*.") {
			return sourceFilter{}, badRequest("estest implements _source includes of top-level field names only, got [%s]", inc)
		}
	}
	return sf, err
}

func parseSourceSpec(v any) (sourceFilter, error) {
	switch v := v.(type) {
	case bool:
		return sourceFilter{none: !v}, nil
	case string:
		return sourceFilter{includes: []string{v}}, nil
	case []any:
		var sf sourceFilter
		for _, x := range v {
			s, _ := x.(string)
			sf.includes = append(sf.includes, s)
		}
		return sf, nil
	case map[string]any:
		var sf sourceFilter
		for k, x := range v {
			if k != "includes" && k != "include" {
				return sf, badRequest("estest implements _source includes only, got [%s]", k)
			}
			list, _ := x.([]any)
			for _, y := range list {
				s, _ := y.(string)
				sf.includes = append(sf.includes, s)
			}
		}
		return sf, nil
	}
	return sourceFilter{}, parsingError("[_source] malformed")
}

func (sf sourceFilter) filter(src map[string]any) map[string]any {
	if len(sf.includes) == 0 {
		return src
	}
	out := map[string]any{}
	for _, inc := range sf.includes {
		if v, ok := src[inc]; ok {
			out[inc] = v
		}
	}
	return out
}

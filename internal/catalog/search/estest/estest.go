// Package estest is an in-memory stand-in for an Elasticsearch 7 cluster, served over HTTP by
// httptest, for testing code that talks to Elasticsearch through its REST API (here the
// catalog search adapter through olivere/elastic). No Elasticsearch can run on the machines
// this project is built on; this server implements the endpoints and the query DSL subset
// the adapter uses, and checks what it receives, so a test fails when the adapter sends
// something a real cluster would reject or answer differently:
//
//   - GET / (version), HEAD /{index}, PUT /{index} (settings, strict mappings, aliases),
//     DELETE /{index}[,...], GET /_alias/{alias}, POST /_aliases, PUT /{index}/_settings,
//     POST /{index}/_refresh, POST /[{index}/]_bulk (index and delete), POST /{target}/_search.
//   - Query DSL: bool (must, filter, should, must_not), match_all, match, multi_match
//     (best_fields, most_fields, cross_fields; operator and/or; field boosts), term, terms,
//     range (gte/gt/lte/lt and the from/to/include_* form); sort on fields and _score with
//     search_after; size/from; track_total_hits; terms aggregations; _source filtering.
//     Anything else is refused with a 400 naming it — a real cluster may accept it, but
//     this server could not evaluate it faithfully.
//   - Text analysis per the mapping's analyzer (see Analyze), BM25 scoring.
//   - Writes become searchable only after a refresh (POST _refresh, or ?refresh=true /
//     wait_for on the write) — there is no periodic refresh, so code relying on timing fails.
//   - Stricter than a default cluster on purpose: no index auto-creation, mappings must be
//     "dynamic": "strict", queries may only name mapped fields, and (by default) searches must
//     go through an alias. A refresh=wait_for write to an index whose refresh is disabled is
//     refused instead of hanging.
//
// Every request is recorded (Requests) so tests can assert on what was sent.
package estest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Request is one request the server received, and the status it answered.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Body   []byte
	Status int
}

// Option configures a Server.
type Option func(*Server)

// WithVersion sets the version GET / reports (default 7.17.18).
func WithVersion(v string) Option { return func(s *Server) { s.version = v } }

// WithBasicAuth makes every request require these credentials.
func WithBasicAuth(user, password string) Option {
	return func(s *Server) { s.user, s.password = user, password }
}

// WithPluginAnalyzers makes extra analyzer names available to mappings, as an installed
// analysis plugin would (e.g. "ik_max_word"); they tokenize like "cjk".
func WithPluginAnalyzers(names ...string) Option {
	return func(s *Server) {
		for _, n := range names {
			s.analyzers[n] = true
		}
	}
}

// RequireAnalyzer refuses mappings whose text fields do not use analyzer name.
func RequireAnalyzer(name string) Option { return func(s *Server) { s.requireAnalyzer = name } }

// AllowSearchOnIndex lets searches name a concrete index instead of an alias.
func AllowSearchOnIndex() Option { return func(s *Server) { s.searchIndices = true } }

// Server is the fake cluster. Use New, then URL; Close when done.
type Server struct {
	*httptest.Server

	version         string
	user, password  string
	analyzers       map[string]bool
	requireAnalyzer string
	searchIndices   bool

	mu       sync.Mutex
	indices  map[string]*index
	requests []Request
	faults   []fault
	seq      int64
}

type fault struct {
	match  func(method, path string) bool
	status int
	stall  time.Duration // a stalled request answers after this long (or when the client gives up)
}

// New starts a server.
func New(opts ...Option) *Server {
	s := &Server{version: "7.17.18", analyzers: maps.Clone(builtinAnalyzers), indices: map[string]*index{}}
	for _, o := range opts {
		o(s)
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// Indices returns the names of the existing indices, sorted.
func (s *Server) Indices() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.indices))
}

// AliasIndices returns the indices alias points to, sorted.
func (s *Server) AliasIndices(alias string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.aliasIndices(alias)
}

// Mapping returns the mappings an index was created with, as received.
func (s *Server) Mapping(name string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ix := s.indices[name]; ix != nil {
		return ix.rawMappings
	}
	return nil
}

// RefreshDisabled reports whether the index's refresh_interval is -1.
func (s *Server) RefreshDisabled(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ix := s.indices[name]
	return ix != nil && ix.refreshDisabled
}

// DocCount returns the number of documents in an index, refreshed or not.
func (s *Server) DocCount(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ix := s.indices[name]; ix != nil {
		return len(ix.docs)
	}
	return 0
}

// FailNext makes the next request for which match returns true answer status with an error,
// without any effect.
func (s *Server) FailNext(status int, match func(method, path string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, fault{match: match, status: status})
}

// StallNext makes the next matching request hang for d before it is answered normally: a
// cluster that stopped answering (a long GC, a saturated node).
func (s *Server) StallNext(d time.Duration, match func(method, path string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, fault{match: match, stall: d})
}

// esError is an error response in Elasticsearch's shape.
type esError struct {
	status int
	typ    string
	reason string
}

func (e *esError) Error() string { return e.typ + ": " + e.reason }

func errf(status int, typ, format string, args ...any) *esError {
	return &esError{status: status, typ: typ, reason: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *esError {
	return errf(http.StatusBadRequest, "illegal_argument_exception", format, args...)
}

func parsingError(format string, args ...any) *esError {
	return errf(http.StatusBadRequest, "parsing_exception", format, args...)
}

func indexNotFound(name string) *esError {
	return errf(http.StatusNotFound, "index_not_found_exception", "no such index [%s]", name)
}

func (e *esError) body() map[string]any {
	cause := map[string]any{"type": e.typ, "reason": e.reason}
	return map[string]any{
		"error":  map[string]any{"root_cause": []any{cause}, "type": e.typ, "reason": e.reason},
		"status": e.status,
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	status, resp := s.handle(r, body)
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Body: body, Status: status})
	s.mu.Unlock()
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="security" charset="UTF-8"`)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	w.WriteHeader(status)
	if r.Method != http.MethodHead && resp != nil {
		_ = json.NewEncoder(w).Encode(resp)
	}
}

func (s *Server) handle(r *http.Request, body []byte) (int, any) {
	if s.user != "" || s.password != "" {
		if !s.authorized(r) {
			e := errf(http.StatusUnauthorized, "security_exception", "missing authentication credentials for REST request [%s]", r.URL.Path)
			return e.status, e.body()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.match(r.Method, r.URL.Path) {
			s.faults = slices.Delete(s.faults, i, i+1)
			if f.stall > 0 {
				s.mu.Unlock()
				select {
				case <-time.After(f.stall):
				case <-r.Context().Done():
				}
				s.mu.Lock()
				break
			}
			e := errf(f.status, "estest_injected_fault", "injected failure for %s %s", r.Method, r.URL.Path)
			return e.status, e.body()
		}
	}
	if len(body) > 0 {
		ct := r.Header.Get("Content-Type")
		if !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "application/x-ndjson") {
			e := errf(http.StatusNotAcceptable, "content_type_exception", "Content-Type header [%s] is not supported", ct)
			return e.status, e.body()
		}
	}
	resp, err := s.route(r, body)
	if err != nil {
		e, ok := err.(*esError)
		if !ok {
			e = errf(http.StatusInternalServerError, "exception", "%v", err)
		}
		return e.status, e.body()
	}
	if h, ok := resp.(headOnly); ok {
		return int(h), nil
	}
	return http.StatusOK, resp
}

type headOnly int

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	raw, ok := strings.CutPrefix(h, "Basic ")
	if !ok {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return false
	}
	u, p, _ := strings.Cut(string(b), ":")
	return u == s.user && p == s.password
}

// allowParams refuses query parameters the server does not implement.
func allowParams(q url.Values, names ...string) error {
	for k := range q {
		if !slices.Contains(names, k) && k != "pretty" && k != "error_trace" {
			return badRequest("request contains unrecognized parameter: [%s]", k)
		}
	}
	return nil
}

func (s *Server) route(r *http.Request, body []byte) (any, error) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if parts[0] == "" {
		parts = nil
	}
	q := r.URL.Query()
	m := r.Method
	switch {
	case len(parts) == 0 && (m == http.MethodGet || m == http.MethodHead):
		return s.root(), nil
	case len(parts) == 1 && parts[0] == "_aliases" && (m == http.MethodPost || m == http.MethodPut):
		return s.updateAliases(body)
	case len(parts) == 2 && parts[0] == "_alias" && m == http.MethodGet:
		return s.getAlias(parts[1])
	case len(parts) == 1 && parts[0] == "_bulk" && (m == http.MethodPost || m == http.MethodPut):
		if err := allowParams(q, "refresh"); err != nil {
			return nil, err
		}
		return s.bulk("", q.Get("refresh"), body)
	case len(parts) == 2 && parts[1] == "_bulk" && (m == http.MethodPost || m == http.MethodPut):
		if err := allowParams(q, "refresh"); err != nil {
			return nil, err
		}
		return s.bulk(parts[0], q.Get("refresh"), body)
	case len(parts) == 2 && parts[1] == "_refresh" && (m == http.MethodPost || m == http.MethodGet):
		return s.refresh(parts[0])
	case len(parts) == 2 && parts[1] == "_settings" && m == http.MethodPut:
		return s.putSettings(parts[0], body)
	case len(parts) == 2 && parts[1] == "_search" && (m == http.MethodPost || m == http.MethodGet):
		if err := allowParams(q); err != nil {
			return nil, err
		}
		return s.search(parts[0], body)
	case len(parts) == 1 && !strings.HasPrefix(parts[0], "_"):
		switch m {
		case http.MethodHead:
			if s.indices[parts[0]] != nil || len(s.aliasIndices(parts[0])) > 0 {
				return headOnly(http.StatusOK), nil
			}
			return headOnly(http.StatusNotFound), nil
		case http.MethodPut:
			if err := allowParams(q); err != nil {
				return nil, err
			}
			return s.createIndex(parts[0], body)
		case http.MethodDelete:
			return s.deleteIndices(parts[0])
		}
	}
	return nil, badRequest("estest does not implement %s %s", m, r.URL.Path)
}

func (s *Server) root() any {
	return map[string]any{
		"name":         "estest",
		"cluster_name": "estest",
		"cluster_uuid": "estest",
		"version": map[string]any{
			"number":                              s.version,
			"build_flavor":                        "default",
			"build_type":                          "estest",
			"build_snapshot":                      false,
			"lucene_version":                      "8.11.1",
			"minimum_wire_compatibility_version":  "6.8.0",
			"minimum_index_compatibility_version": "6.0.0-beta1",
		},
		"tagline": "You Know, for Search",
	}
}

// decodeJSON decodes a request body keeping numbers exact.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return parsingError("request body is not valid JSON: %v", err)
	}
	if dec.More() {
		return parsingError("request body holds more than one JSON value")
	}
	return nil
}

// ---- indices ----

type field struct {
	typ      string
	analyzer string // text fields
	indexed  bool
	format   string // dates
}

type index struct {
	name            string
	fields          map[string]field
	rawMappings     map[string]any
	refreshDisabled bool
	maxWindow       int
	aliases         map[string]bool
	docs            map[string]*document // latest writes
	visible         map[string]*document // as of the last refresh
}

var indexNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.\-]*$`)

var fieldTypes = map[string]bool{"text": true, "keyword": true, "long": true, "integer": true,
	"short": true, "byte": true, "double": true, "float": true, "date": true, "boolean": true}

func (s *Server) createIndex(name string, body []byte) (any, error) {
	if !indexNameRE.MatchString(name) || len(name) > 255 {
		return nil, errf(400, "invalid_index_name_exception", "Invalid index name [%s]", name)
	}
	if s.indices[name] != nil {
		return nil, errf(400, "resource_already_exists_exception", "index [%s/estest] already exists", name)
	}
	if len(s.aliasIndices(name)) > 0 {
		return nil, errf(400, "invalid_index_name_exception", "Invalid index name [%s], already exists as alias", name)
	}
	var req map[string]any
	if len(body) > 0 {
		if err := decodeJSON(body, &req); err != nil {
			return nil, err
		}
	}
	ix := &index{name: name, fields: map[string]field{}, maxWindow: 10000, aliases: map[string]bool{},
		docs: map[string]*document{}, visible: map[string]*document{}}
	for k, v := range req {
		switch k {
		case "settings":
			if err := ix.applySettings(v, true); err != nil {
				return nil, err
			}
		case "mappings":
			if err := s.parseMappings(ix, v); err != nil {
				return nil, err
			}
		case "aliases":
			am, ok := v.(map[string]any)
			if !ok {
				return nil, parsingError("aliases must be an object")
			}
			for a, spec := range am {
				if sm, ok := spec.(map[string]any); !ok || len(sm) != 0 {
					return nil, badRequest("estest implements only plain aliases, got %v for [%s]", spec, a)
				}
				if s.indices[a] != nil || a == name {
					return nil, errf(400, "invalid_alias_name_exception", "Invalid alias name [%s]: an index or data stream exists with the same name as the alias", a)
				}
				ix.aliases[a] = true
			}
		default:
			return nil, parsingError("unknown key [%s] for create index", k)
		}
	}
	if ix.rawMappings == nil {
		return nil, badRequest("estest: create index [%s] without mappings: this server has no dynamic mapping", name)
	}
	s.indices[name] = ix
	return map[string]any{"acknowledged": true, "shards_acknowledged": true, "index": name}, nil
}

// applySettings reads {"index": {...}} or flat / dotted settings.
func (ix *index) applySettings(v any, creating bool) error {
	m, ok := v.(map[string]any)
	if !ok {
		return parsingError("settings must be an object")
	}
	flat := map[string]any{}
	for k, val := range m {
		if k == "index" {
			inner, ok := val.(map[string]any)
			if !ok {
				return parsingError("settings.index must be an object")
			}
			for ik, iv := range inner {
				flat[ik] = iv
			}
			continue
		}
		flat[strings.TrimPrefix(k, "index.")] = val
	}
	for k, val := range flat {
		switch k {
		case "refresh_interval":
			switch val := val.(type) {
			case nil:
				ix.refreshDisabled = false
			case string:
				if val == "-1" {
					ix.refreshDisabled = true
				} else if _, err := time.ParseDuration(val); err != nil {
					return badRequest("failed to parse setting [index.refresh_interval] with value [%s]", val)
				} else {
					ix.refreshDisabled = false
				}
			case json.Number:
				ix.refreshDisabled = val.String() == "-1"
			default:
				return badRequest("bad refresh_interval %v", val)
			}
		case "number_of_shards", "number_of_replicas":
			if !creating && k == "number_of_shards" {
				return badRequest("final index setting [index.number_of_shards], not updateable")
			}
		case "max_result_window":
			n, err := strconv.Atoi(fmt.Sprint(val))
			if err != nil || n <= 0 {
				return badRequest("bad max_result_window %v", val)
			}
			ix.maxWindow = n
		default:
			return badRequest("estest does not implement the index setting [%s]", k)
		}
	}
	return nil
}

func (s *Server) parseMappings(ix *index, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return errf(400, "mapper_parsing_exception", "mappings must be an object")
	}
	ix.rawMappings = m
	for k := range m {
		if k != "dynamic" && k != "properties" {
			return errf(400, "mapper_parsing_exception", "estest does not implement the mapping parameter [%s]", k)
		}
	}
	if d := fmt.Sprint(m["dynamic"]); d != "strict" {
		return errf(400, "mapper_parsing_exception", `estest: mappings must set "dynamic": "strict", got %v`, m["dynamic"])
	}
	props, ok := m["properties"].(map[string]any)
	if !ok || len(props) == 0 {
		return errf(400, "mapper_parsing_exception", "mappings need properties")
	}
	for name, pv := range props {
		p, ok := pv.(map[string]any)
		if !ok {
			return errf(400, "mapper_parsing_exception", "Expected map for property [%s]", name)
		}
		f := field{indexed: true}
		f.typ, _ = p["type"].(string)
		if !fieldTypes[f.typ] {
			return errf(400, "mapper_parsing_exception", "No handler for type [%v] declared on field [%s]", p["type"], name)
		}
		for k, val := range p {
			switch k {
			case "type":
			case "analyzer", "search_analyzer":
				if f.typ != "text" {
					return errf(400, "mapper_parsing_exception", "unknown parameter [%s] on mapper [%s] of type [%s]", k, name, f.typ)
				}
				a, _ := val.(string)
				if !s.analyzers[a] {
					return errf(400, "mapper_parsing_exception", "analyzer [%v] has not been configured in mappings", val)
				}
				if k == "search_analyzer" && a != f.analyzer && f.analyzer != "" {
					return badRequest("estest: a search_analyzer different from the analyzer is not implemented")
				}
				f.analyzer = a
			case "index":
				b, ok := val.(bool)
				if !ok {
					return errf(400, "mapper_parsing_exception", "index must be a boolean on [%s]", name)
				}
				f.indexed = b
			case "format":
				if f.typ != "date" {
					return errf(400, "mapper_parsing_exception", "unknown parameter [format] on mapper [%s] of type [%s]", name, f.typ)
				}
				f.format, _ = val.(string)
				for _, part := range strings.Split(f.format, "||") {
					if part != "strict_date_optional_time" && part != "epoch_millis" && part != "date_optional_time" {
						return badRequest("estest does not implement the date format [%s]", part)
					}
				}
			case "doc_values":
			default:
				return errf(400, "mapper_parsing_exception", "estest does not implement the mapping parameter [%s] on [%s]", k, name)
			}
		}
		if f.typ == "text" {
			if f.analyzer == "" {
				f.analyzer = "standard"
			}
			if s.requireAnalyzer != "" && f.analyzer != s.requireAnalyzer {
				return errf(400, "mapper_parsing_exception", "estest: text field [%s] uses analyzer [%s], this server requires [%s]", name, f.analyzer, s.requireAnalyzer)
			}
		}
		if f.typ == "date" && f.format == "" {
			f.format = "strict_date_optional_time||epoch_millis"
		}
		ix.fields[name] = f
	}
	return nil
}

func (s *Server) deleteIndices(names string) (any, error) {
	list := strings.Split(names, ",")
	for _, n := range list {
		if strings.ContainsAny(n, "*?") || n == "_all" {
			return nil, badRequest("estest refuses wildcard deletes [%s]", n)
		}
		if s.indices[n] == nil {
			if len(s.aliasIndices(n)) > 0 {
				return nil, badRequest("The provided expression [%s] matches an alias, specify the corresponding concrete indices instead.", n)
			}
			return nil, indexNotFound(n)
		}
	}
	for _, n := range list {
		delete(s.indices, n)
	}
	return map[string]any{"acknowledged": true}, nil
}

func (s *Server) putSettings(target string, body []byte) (any, error) {
	ixs, err := s.resolve(target)
	if err != nil {
		return nil, err
	}
	var req map[string]any
	if err := decodeJSON(body, &req); err != nil {
		return nil, err
	}
	for _, ix := range ixs {
		if err := ix.applySettings(req, false); err != nil {
			return nil, err
		}
	}
	return map[string]any{"acknowledged": true}, nil
}

func (s *Server) refresh(target string) (any, error) {
	ixs, err := s.resolve(target)
	if err != nil {
		return nil, err
	}
	for _, ix := range ixs {
		ix.refresh()
	}
	return map[string]any{"_shards": map[string]any{"total": len(ixs), "successful": len(ixs), "failed": 0}}, nil
}

func (ix *index) refresh() { ix.visible = maps.Clone(ix.docs) }

// resolve maps an index or alias name to indices.
func (s *Server) resolve(name string) ([]*index, error) {
	if ix := s.indices[name]; ix != nil {
		return []*index{ix}, nil
	}
	var out []*index
	for _, n := range s.aliasIndices(name) {
		out = append(out, s.indices[n])
	}
	if len(out) == 0 {
		return nil, indexNotFound(name)
	}
	return out, nil
}

func (s *Server) aliasIndices(alias string) []string {
	var out []string
	for n, ix := range s.indices {
		if ix.aliases[alias] {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// ---- aliases ----

func (s *Server) getAlias(alias string) (any, error) {
	if strings.ContainsAny(alias, "*,") {
		return nil, badRequest("estest does not implement alias patterns [%s]", alias)
	}
	names := s.aliasIndices(alias)
	if len(names) == 0 {
		return nil, &esError{status: 404, typ: "aliases_not_found_exception", reason: "alias [" + alias + "] missing"}
	}
	out := map[string]any{}
	for _, n := range names {
		out[n] = map[string]any{"aliases": map[string]any{alias: map[string]any{}}}
	}
	return out, nil
}

func (s *Server) updateAliases(body []byte) (any, error) {
	var req map[string]any
	if err := decodeJSON(body, &req); err != nil {
		return nil, err
	}
	for k := range req {
		if k != "actions" {
			return nil, parsingError("unknown key [%s] in _aliases", k)
		}
	}
	actions, ok := req["actions"].([]any)
	if !ok || len(actions) == 0 {
		return nil, badRequest("No action specified")
	}
	type op struct {
		add          bool
		index, alias string
	}
	var ops []op
	for _, a := range actions {
		am, ok := a.(map[string]any)
		if !ok || len(am) != 1 {
			return nil, parsingError("each alias action must be an object with one key")
		}
		for kind, spec := range am {
			if kind != "add" && kind != "remove" {
				return nil, badRequest("estest does not implement the alias action [%s]", kind)
			}
			sm, ok := spec.(map[string]any)
			if !ok {
				return nil, parsingError("[%s] must be an object", kind)
			}
			var idxs, aliases []string
			for k, v := range sm {
				switch k {
				case "index", "alias":
					str, ok := v.(string)
					if !ok {
						return nil, parsingError("[%s] must be a string", k)
					}
					if k == "index" {
						idxs = append(idxs, str)
					} else {
						aliases = append(aliases, str)
					}
				case "indices", "aliases":
					list, ok := v.([]any)
					if !ok {
						return nil, parsingError("[%s] must be an array", k)
					}
					for _, x := range list {
						str, _ := x.(string)
						if k == "indices" {
							idxs = append(idxs, str)
						} else {
							aliases = append(aliases, str)
						}
					}
				default:
					return nil, badRequest("estest does not implement the alias action parameter [%s]", k)
				}
			}
			if len(idxs) == 0 || len(aliases) == 0 {
				return nil, badRequest("One of [index/indices] and one of [alias/aliases] is required")
			}
			for _, i := range idxs {
				for _, al := range aliases {
					ops = append(ops, op{add: kind == "add", index: i, alias: al})
				}
			}
		}
	}
	// Validate everything first: the request is atomic.
	for _, o := range ops {
		ix := s.indices[o.index]
		if ix == nil {
			return nil, indexNotFound(o.index)
		}
		if o.add && s.indices[o.alias] != nil {
			return nil, errf(400, "invalid_alias_name_exception", "Invalid alias name [%s]: an index or data stream exists with the same name as the alias", o.alias)
		}
		if !o.add && !ix.aliases[o.alias] {
			return nil, errf(404, "aliases_not_found_exception", "aliases [%s] missing", o.alias)
		}
	}
	for _, o := range ops {
		if o.add {
			s.indices[o.index].aliases[o.alias] = true
		} else {
			delete(s.indices[o.index].aliases, o.alias)
		}
	}
	return map[string]any{"acknowledged": true}, nil
}

// ---- documents ----

type document struct {
	id     string
	seq    int64
	source map[string]any
	values map[string][]any          // keyword: string; long, date: int64; double: float64; boolean: bool
	terms  map[string]map[string]int // text field → term → frequency
	length map[string]int            // text field → number of terms
}

func (s *Server) bulk(target, refresh string, body []byte) (any, error) {
	switch refresh {
	case "", "true", "false", "wait_for":
	default:
		return nil, badRequest("unknown value for refresh: [%s].", refresh)
	}
	lines := bytes.Split(body, []byte("\n"))
	if len(lines) == 0 || len(bytes.TrimSpace(body)) == 0 {
		return nil, badRequest("request body is required")
	}
	if len(lines[len(lines)-1]) != 0 {
		return nil, badRequest("The bulk request must be terminated by a newline [\\n]")
	}
	type action struct {
		kind, index, id string
		source          []byte
	}
	var acts []action
	for i := 0; i < len(lines)-1; i++ {
		if len(bytes.TrimSpace(lines[i])) == 0 {
			continue
		}
		var meta map[string]map[string]any
		if err := decodeJSON(lines[i], &meta); err != nil || len(meta) != 1 {
			return nil, badRequest("Malformed action/metadata line [%d], expected a simple object with one key", i+1)
		}
		for kind, md := range meta {
			if kind != "index" && kind != "delete" {
				return nil, badRequest("estest does not implement the bulk action [%s]", kind)
			}
			a := action{kind: kind, index: target}
			for k, v := range md {
				str, ok := v.(string)
				switch {
				case k == "_index" && ok:
					a.index = str
				case k == "_id" && ok:
					a.id = str
				default:
					return nil, badRequest("Action/metadata line [%d] contains an unknown parameter [%s]", i+1, k)
				}
			}
			if a.index == "" {
				return nil, errf(400, "action_request_validation_exception", "Validation Failed: 1: index is missing;")
			}
			if kind == "index" {
				i++
				if i >= len(lines)-1 {
					return nil, badRequest("The bulk request must be terminated by a newline [\\n]")
				}
				a.source = lines[i]
			} else if a.id == "" {
				return nil, errf(400, "action_request_validation_exception", "Validation Failed: 1: id is missing;")
			}
			acts = append(acts, a)
		}
	}
	if refresh == "wait_for" {
		for _, a := range acts {
			if ixs, err := s.resolve(a.index); err == nil {
				for _, ix := range ixs {
					if ix.refreshDisabled {
						return nil, badRequest("estest: refresh=wait_for on index [%s], whose refresh_interval is -1, would never return", ix.name)
					}
				}
			}
		}
	}
	touched := map[*index]bool{}
	items := make([]any, 0, len(acts))
	anyErr := false
	for _, a := range acts {
		item, ix, err := s.bulkItem(a.kind, a.index, a.id, a.source)
		if err != nil {
			anyErr = true
			item = map[string]any{"_index": a.index, "_type": "_doc", "_id": a.id, "status": err.status,
				"error": map[string]any{"type": err.typ, "reason": err.reason}}
		}
		if ix != nil {
			touched[ix] = true
		}
		items = append(items, map[string]any{a.kind: item})
	}
	if refresh == "true" || refresh == "wait_for" {
		for ix := range touched {
			ix.refresh()
		}
	}
	return map[string]any{"took": 1, "errors": anyErr, "items": items}, nil
}

func (s *Server) bulkItem(kind, target, id string, source []byte) (map[string]any, *index, *esError) {
	ix := s.indices[target]
	if ix == nil {
		names := s.aliasIndices(target)
		switch len(names) {
		case 0:
			e := indexNotFound(target)
			e.reason += " (estest: index auto-creation is disabled)"
			return nil, nil, e
		case 1:
			ix = s.indices[names[0]]
		default:
			return nil, nil, badRequest("no write index is defined for alias [%s]. The write index may be explicitly disabled using is_write_index=false or the alias points to multiple indices without one being designated as a write index", target)
		}
	}
	s.seq++
	switch kind {
	case "delete":
		if _, ok := ix.docs[id]; !ok {
			return map[string]any{"_index": ix.name, "_type": "_doc", "_id": id, "result": "not_found", "status": 404}, ix, nil
		}
		delete(ix.docs, id)
		return map[string]any{"_index": ix.name, "_type": "_doc", "_id": id, "result": "deleted", "status": 200}, ix, nil
	default:
		if id == "" {
			id = "auto" + strconv.FormatInt(s.seq, 10)
		}
		d, err := ix.parseDoc(id, source)
		if err != nil {
			return nil, ix, err
		}
		d.seq = s.seq
		_, existed := ix.docs[id]
		ix.docs[id] = d
		if existed {
			return map[string]any{"_index": ix.name, "_type": "_doc", "_id": id, "result": "updated", "status": 200}, ix, nil
		}
		return map[string]any{"_index": ix.name, "_type": "_doc", "_id": id, "result": "created", "status": 201}, ix, nil
	}
}

func (ix *index) parseDoc(id string, source []byte) (*document, *esError) {
	var src map[string]any
	if err := decodeJSON(source, &src); err != nil {
		return nil, errf(400, "mapper_parsing_exception", "failed to parse: %v", err)
	}
	d := &document{id: id, source: src, values: map[string][]any{}, terms: map[string]map[string]int{}, length: map[string]int{}}
	for name, v := range src {
		f, ok := ix.fields[name]
		if !ok {
			return nil, errf(400, "strict_dynamic_mapping_exception", "mapping set to strict, dynamic introduction of [%s] within [_doc] is not allowed", name)
		}
		vals := []any{v}
		if arr, ok := v.([]any); ok {
			vals = arr
		}
		for _, x := range vals {
			if x == nil {
				continue
			}
			if f.typ == "text" {
				str, ok := x.(string)
				if !ok {
					return nil, errf(400, "mapper_parsing_exception", "failed to parse field [%s] of type [text]: not a string", name)
				}
				if d.terms[name] == nil {
					d.terms[name] = map[string]int{}
				}
				for _, t := range Analyze(f.analyzer, str) {
					d.terms[name][t]++
					d.length[name]++
				}
				continue
			}
			nv, err := f.value(x)
			if err != nil {
				return nil, errf(400, "mapper_parsing_exception", "failed to parse field [%s] of type [%s] in document with id '%s': %v", name, f.typ, id, err)
			}
			d.values[name] = append(d.values[name], nv)
		}
	}
	return d, nil
}

// value converts a JSON value (or query value) to the field's comparable form.
func (f field) value(x any) (any, error) {
	switch f.typ {
	case "keyword":
		switch x := x.(type) {
		case string:
			return x, nil
		case json.Number:
			return x.String(), nil
		case bool:
			return strconv.FormatBool(x), nil
		}
	case "long", "integer", "short", "byte":
		var s string
		switch x := x.(type) {
		case json.Number:
			s = x.String()
		case string:
			s = x // coerced, as ES does
		case int64:
			return x, nil
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		}
		return nil, fmt.Errorf("[%v] is not an integer", x)
	case "double", "float":
		var s string
		switch x := x.(type) {
		case json.Number:
			s = x.String()
		case string:
			s = x
		}
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return n, nil
		}
		return nil, fmt.Errorf("[%v] is not a number", x)
	case "boolean":
		if b, ok := x.(bool); ok {
			return b, nil
		}
	case "date":
		switch x := x.(type) {
		case string:
			if strings.Contains(f.format, "strict_date_optional_time") || strings.Contains(f.format, "date_optional_time") {
				for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
					if t, err := time.Parse(layout, x); err == nil {
						return t.UnixMilli(), nil
					}
				}
			}
			if strings.Contains(f.format, "epoch_millis") {
				if n, err := strconv.ParseInt(x, 10, 64); err == nil {
					return n, nil
				}
			}
		case json.Number:
			if strings.Contains(f.format, "epoch_millis") {
				if n, err := strconv.ParseInt(x.String(), 10, 64); err == nil {
					return n, nil
				}
			}
		case int64:
			return x, nil
		}
		return nil, fmt.Errorf("failed to parse date field [%v] with format [%s]", x, f.format)
	}
	return nil, fmt.Errorf("cannot use %T %v as [%s]", x, x, f.typ)
}

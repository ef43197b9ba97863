package estest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

type client struct {
	t   *testing.T
	srv *Server
}

func newClient(t *testing.T, opts ...Option) client {
	srv := New(opts...)
	t.Cleanup(srv.Close)
	return client{t: t, srv: srv}
}

// do sends a request and returns the status and decoded body.
func (c client) do(method, path, body string) (int, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.srv.URL+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		ct := "application/json"
		if strings.Contains(path, "_bulk") {
			ct = "application/x-ndjson"
		}
		req.Header.Set("Content-Type", ct)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			c.t.Fatalf("%s %s: body %q: %v", method, path, raw, err)
		}
	}
	return res.StatusCode, out
}

func (c client) ok(method, path, body string) map[string]any {
	c.t.Helper()
	status, out := c.do(method, path, body)
	if status != http.StatusOK {
		c.t.Fatalf("%s %s: %d %v", method, path, status, out)
	}
	return out
}

// fails asserts a 4xx whose reason mentions want.
func (c client) fails(method, path, body string, wantStatus int, want string) {
	c.t.Helper()
	status, out := c.do(method, path, body)
	reason := ""
	if e, ok := out["error"].(map[string]any); ok {
		reason, _ = e["reason"].(string)
		reason = e["type"].(string) + ": " + reason
	}
	if status != wantStatus || !strings.Contains(reason, want) {
		c.t.Fatalf("%s %s: %d %q, want %d mentioning %q", method, path, status, reason, wantStatus, want)
	}
}

const mapping = `{"mappings":{"dynamic":"strict","properties":{
	"id":{"type":"long"},"title":{"type":"text","analyzer":"cjk"},"tag":{"type":"keyword"},
	"price":{"type":"long"},"at":{"type":"date"}}},
	"aliases":{"items":{}}}`

func seeded(t *testing.T, opts ...Option) client {
	c := newClient(t, opts...)
	c.ok("PUT", "/items_1", mapping)
	bulk := `{"index":{"_id":"1"}}
{"id":1,"title":"不锈钢保温杯","tag":"a","price":100,"at":"2025-01-01T00:00:00Z"}
{"index":{"_id":"2"}}
{"id":2,"title":"Thermos bottle","tag":["a","b"],"price":200,"at":"2025-01-02T00:00:00.000Z"}
{"index":{"_id":"3"}}
{"id":3,"title":"智能手机","tag":"b","price":300,"at":1735862400000}
`
	out := c.ok("POST", "/items/_bulk?refresh=true", bulk)
	if out["errors"] != false {
		t.Fatalf("bulk: %v", out)
	}
	return c
}

func hitIDs(out map[string]any) []string {
	var ids []string
	for _, h := range out["hits"].(map[string]any)["hits"].([]any) {
		ids = append(ids, h.(map[string]any)["_id"].(string))
	}
	return ids
}

func TestAnalyzeCJK(t *testing.T) {
	tests := []struct {
		give string
		want []string
	}{
		{"保温杯", []string{"保温", "温杯"}},
		{"不锈钢保温杯 500ml", []string{"不锈", "锈钢", "钢保", "保温", "温杯", "500ml"}},
		{"Thermos THE Bottle", []string{"thermos", "bottle"}},
		{"杯", []string{"杯"}},
		{"A 杯 B", []string{"杯", "b"}}, // "a" is a stop word
		{"iPhone15手机壳", []string{"iphone15", "手机", "机壳"}},
		{"ＴＨＥＲＭＯＳ", []string{"thermos"}},
		{"don't U.S.A 1,000.5", []string{"don't", "u.s.a", "1,000.5"}},
		{"한국어", []string{"한국", "국어"}},
		{"", nil},
	}
	for _, tt := range tests {
		if got := Analyze("cjk", tt.give); !slices.Equal(got, tt.want) {
			t.Errorf("Analyze(cjk, %q) = %q, want %q", tt.give, got, tt.want)
		}
	}
	if got := Analyze("standard", "保温杯 The"); !slices.Equal(got, []string{"保", "温", "杯", "the"}) {
		t.Errorf("standard: %q", got)
	}
}

func TestSearchEvaluatesTheDSL(t *testing.T) {
	c := seeded(t)
	tests := []struct {
		name string
		body string
		want []string
	}{
		{"multi_match and", `{"query":{"multi_match":{"query":"保温杯","fields":["title"],"operator":"and"}}}`, []string{"1"}},
		{"multi_match no terms", `{"query":{"multi_match":{"query":"the","fields":["title"],"operator":"and"}}}`, nil},
		{"term keyword multi-valued", `{"query":{"term":{"tag":"b"}},"sort":[{"id":{"order":"asc"}}]}`, []string{"2", "3"}},
		{"term long coerces string", `{"query":{"term":{"price":"200"}}}`, []string{"2"}},
		{"terms", `{"query":{"terms":{"id":[1,3]}},"sort":[{"id":"desc"}]}`, []string{"3", "1"}},
		{"range from/to form", `{"query":{"range":{"price":{"from":150,"to":null,"include_lower":true,"include_upper":true}}},"sort":["id"]}`, []string{"2", "3"}},
		{"range gt/lt", `{"query":{"range":{"price":{"gt":100,"lt":300}}}}`, []string{"2"}},
		{"range on date", `{"query":{"range":{"at":{"gte":"2025-01-02T00:00:00Z"}}},"sort":[{"at":{"order":"asc"}}]}`, []string{"2", "3"}},
		{"bool filter and must_not", `{"query":{"bool":{"filter":[{"term":{"tag":"a"}}],"must_not":{"term":{"id":1}}}}}`, []string{"2"}},
		{"sort desc with search_after", `{"sort":[{"price":{"order":"desc"}},{"id":{"order":"asc"}}],"search_after":[300,3]}`, []string{"2", "1"}},
		{"size", `{"size":1,"sort":[{"id":{"order":"asc"}}]}`, []string{"1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := c.ok("POST", "/items/_search", tt.body)
			if got := hitIDs(out); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	out := c.ok("POST", "/items/_search", `{"size":0,"track_total_hits":true,"aggs":{"tags":{"terms":{"field":"tag","size":1,"order":[{"_count":"desc"},{"_key":"asc"}]}}}}`)
	agg := out["aggregations"].(map[string]any)["tags"].(map[string]any)
	buckets := agg["buckets"].([]any)
	if len(buckets) != 1 || buckets[0].(map[string]any)["key"] != "a" || agg["sum_other_doc_count"] != float64(2) {
		t.Fatalf("aggregation: %v", agg)
	}
	if total := out["hits"].(map[string]any)["total"].(map[string]any); total["value"] != float64(3) || total["relation"] != "eq" {
		t.Fatalf("total: %v", total)
	}
	out = c.ok("POST", "/items/_search", `{"query":{"term":{"id":2}},"_source":{"includes":["id","tag"]}}`)
	src := out["hits"].(map[string]any)["hits"].([]any)[0].(map[string]any)["_source"].(map[string]any)
	if len(src) != 2 || src["id"] != float64(2) {
		t.Fatalf("_source filtering: %v", src)
	}
}

func TestServerRefusesWhatItCannotEvaluate(t *testing.T) {
	c := seeded(t)
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"unknown query", "POST", "/items/_search", `{"query":{"query_string":{"query":"x"}}}`, 400, "unknown query [query_string]"},
		{"unknown top-level key", "POST", "/items/_search", `{"highlight":{}}`, 400, "highlight"},
		{"unimplemented multi_match type", "POST", "/items/_search", `{"query":{"multi_match":{"query":"x","fields":["title"],"type":"phrase"}}}`, 400, "phrase"},
		{"unmapped field", "POST", "/items/_search", `{"query":{"term":{"nope":"x"}}}`, 400, "unmapped field [nope]"},
		{"sort on text", "POST", "/items/_search", `{"sort":["title"]}`, 400, "Text fields are not optimised"},
		{"aggregation on text", "POST", "/items/_search", `{"aggs":{"t":{"terms":{"field":"title"}}}}`, 400, "Text fields are not optimised"},
		{"search_after length", "POST", "/items/_search", `{"sort":["id"],"search_after":[1,2]}`, 400, "search_after has 2 value(s) but sort has 1"},
		{"search on a concrete index", "POST", "/items_1/_search", `{}`, 400, "through its alias"},
		{"search a missing index", "POST", "/nope/_search", `{}`, 404, "no such index [nope]"},
		{"result window", "POST", "/items/_search", `{"size":10001}`, 400, "Result window is too large"},
		{"search parameter", "POST", "/items/_search?scroll=1m", `{}`, 400, "unrecognized parameter: [scroll]"},
		{"mapping not strict", "PUT", "/other", `{"mappings":{"properties":{"a":{"type":"keyword"}}}}`, 400, "strict"},
		{"unknown analyzer", "PUT", "/other", `{"mappings":{"dynamic":"strict","properties":{"a":{"type":"text","analyzer":"ik_smart"}}}}`, 400, "analyzer [ik_smart] has not been configured"},
		{"analyzer on keyword", "PUT", "/other", `{"mappings":{"dynamic":"strict","properties":{"a":{"type":"keyword","analyzer":"cjk"}}}}`, 400, "unknown parameter [analyzer]"},
		{"index exists", "PUT", "/items_1", mapping, 400, "resource_already_exists_exception"},
		{"index named like an alias", "PUT", "/items", mapping, 400, "already exists as alias"},
		{"delete an alias", "DELETE", "/items", "", 400, "matches an alias"},
		{"delete a wildcard", "DELETE", "/items_*", "", 400, "wildcard"},
		{"bulk update action", "POST", "/items/_bulk", "{\"update\":{\"_id\":\"1\"}}\n{\"doc\":{}}\n", 400, "bulk action [update]"},
		{"bulk without final newline", "POST", "/items/_bulk", `{"delete":{"_id":"1"}}`, 400, "terminated by a newline"},
		{"bulk unknown metadata", "POST", "/items/_bulk", "{\"index\":{\"_id\":\"1\",\"pipeline\":\"p\"}}\n{}\n", 400, "unknown parameter [pipeline]"},
		{"alias remove of a missing alias", "POST", "/_aliases", `{"actions":[{"remove":{"index":"items_1","alias":"nope"}}]}`, 404, "aliases [nope] missing"},
		{"alias missing", "GET", "/_alias/nope", "", 404, "alias [nope] missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.fails(tt.method, tt.path, tt.body, tt.status, tt.want)
		})
	}
	// Bad documents fail per item.
	out := c.ok("POST", "/items/_bulk", "{\"index\":{\"_id\":\"9\"}}\n{\"id\":9,\"colour\":\"red\"}\n{\"index\":{\"_index\":\"missing\",\"_id\":\"9\"}}\n{\"id\":9}\n{\"index\":{\"_id\":\"9\"}}\n{\"id\":\"nine\"}\n")
	items := out["items"].([]any)
	for i, want := range []string{"strict_dynamic_mapping_exception", "index_not_found_exception", "mapper_parsing_exception"} {
		got := items[i].(map[string]any)["index"].(map[string]any)["error"].(map[string]any)["type"]
		if got != want {
			t.Errorf("item %d: %v, want %s", i, got, want)
		}
	}
	if out["errors"] != true {
		t.Fatal("errors flag not set")
	}
	// An alias swap is atomic: one bad action and nothing changes.
	c.ok("PUT", "/items_2", strings.Replace(mapping, `"aliases":{"items":{}}`, `"aliases":{}`, 1))
	c.fails("POST", "/_aliases", `{"actions":[{"add":{"index":"items_2","alias":"items"}},{"remove":{"index":"items_2","alias":"items"}},{"remove":{"index":"items_1","alias":"nope"}}]}`, 404, "missing")
	if got := c.srv.AliasIndices("items"); !slices.Equal(got, []string{"items_1"}) {
		t.Fatalf("alias after failed swap: %v", got)
	}
	// Writing through an alias to two indices has no write index.
	c.ok("POST", "/_aliases", `{"actions":[{"add":{"index":"items_2","alias":"items"}}]}`)
	out = c.ok("POST", "/items/_bulk", "{\"delete\":{\"_id\":\"1\"}}\n")
	if out["errors"] != true {
		t.Fatalf("write through a two-index alias: %v", out)
	}
}

func TestWritesNeedARefresh(t *testing.T) {
	c := seeded(t)
	count := func() int {
		out := c.ok("POST", "/items/_search", `{"track_total_hits":true}`)
		return int(out["hits"].(map[string]any)["total"].(map[string]any)["value"].(float64))
	}
	c.ok("POST", "/items/_bulk", "{\"delete\":{\"_id\":\"1\"}}\n{\"index\":{\"_id\":\"4\"}}\n{\"id\":4}\n")
	if n := count(); n != 3 {
		t.Fatalf("unrefreshed writes visible: %d", n)
	}
	c.ok("POST", "/items/_refresh", "")
	if n := count(); n != 3 { // one deleted, one added
		t.Fatalf("after refresh: %d", n)
	}
	out := c.ok("POST", "/items/_bulk", "{\"delete\":{\"_id\":\"404\"}}\n")
	if out["errors"] != false { // a not_found delete is not a failure
		t.Fatalf("delete of a missing document: %v", out)
	}
	// wait_for on an index whose refresh is off would hang a real cluster: refused.
	c.ok("PUT", "/items_1/_settings", `{"index":{"refresh_interval":"-1"}}`)
	c.fails("POST", "/items/_bulk?refresh=wait_for", "{\"delete\":{\"_id\":\"2\"}}\n", 400, "would never return")
	c.ok("PUT", "/items_1/_settings", `{"index":{"refresh_interval":null}}`)
	c.ok("POST", "/items/_bulk?refresh=wait_for", "{\"delete\":{\"_id\":\"2\"}}\n")
	if n := count(); n != 2 {
		t.Fatalf("after wait_for: %d", n)
	}
}

func TestAuthAndContentType(t *testing.T) {
	c := newClient(t, WithBasicAuth("u", "p"))
	c.fails("GET", "/", "", 401, "security_exception")
	req, _ := http.NewRequest("GET", c.srv.URL+"/", nil)
	req.SetBasicAuth("u", "p")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("with credentials: %d", res.StatusCode)
	}

	c = newClient(t)
	req, _ = http.NewRequest("PUT", c.srv.URL+"/x", strings.NewReader(mapping))
	req.Header.Set("Content-Type", "text/plain")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotAcceptable {
		t.Fatalf("text/plain body: %d", res.StatusCode)
	}
	if got := c.srv.Requests(); len(got) != 1 || got[0].Status != http.StatusNotAcceptable {
		t.Fatalf("recorded: %+v", got)
	}
}

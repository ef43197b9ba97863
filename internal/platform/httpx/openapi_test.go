package httpx_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/httpx"
)

func TestCheckOpenAPIPassesForRouteTable(t *testing.T) {
	h := start(t, testRoutes())
	if err := httpx.CheckOpenAPI(h.srv.Echo(), h.srv.OpenAPI()); err != nil {
		t.Fatalf("CheckOpenAPI: %v", err)
	}
}

func TestCheckOpenAPIFailsForRouteBypassingTable(t *testing.T) {
	h := start(t, testRoutes())
	h.srv.Echo().GET("/sneaky/:id", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	err := httpx.CheckOpenAPI(h.srv.Echo(), h.srv.OpenAPI())
	if err == nil || !strings.Contains(err.Error(), "route GET /sneaky/{id} is registered with echo but missing") {
		t.Fatalf("CheckOpenAPI = %v, want the undocumented route named", err)
	}
}

func TestCheckOpenAPIFailsForDocumentedPathWithoutRoute(t *testing.T) {
	h := start(t, testRoutes())
	doc := h.srv.OpenAPI()
	desc := "ghost"
	op := openapi3.NewOperation()
	op.Responses = openapi3.NewResponses(openapi3.WithStatus(200, &openapi3.ResponseRef{Value: &openapi3.Response{Description: &desc}}))
	doc.AddOperation("/ghost", http.MethodGet, op)
	// A documented method on an existing path without its route counts too.
	doc.AddOperation("/things/{id}", http.MethodDelete, op)
	err := httpx.CheckOpenAPI(h.srv.Echo(), doc)
	if err == nil {
		t.Fatal("CheckOpenAPI passed with documented operations that have no route")
	}
	for _, want := range []string{"OpenAPI documents GET /ghost but no such route", "OpenAPI documents DELETE /things/{id}"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("CheckOpenAPI = %v, want it to contain %q", err, want)
		}
	}
}

func TestOpenAPIDocumentContent(t *testing.T) {
	h := start(t, testRoutes())
	// The served document is what a client gets: load and validate it independently.
	res := h.do(t, http.MethodGet, "/openapi.json", nil)
	if res.status != http.StatusOK || !strings.HasPrefix(res.header.Get("Content-Type"), "application/json") {
		t.Fatalf("/openapi.json = %d %s", res.status, res.header.Get("Content-Type"))
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(res.body)
	if err != nil {
		t.Fatalf("load served document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("served document invalid: %v", err)
	}

	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/things", "/things/{id}"} {
		if doc.Paths.Value(p) == nil {
			t.Errorf("path %s not documented", p)
		}
	}

	create := doc.Paths.Value("/things").Post
	if create == nil || create.Summary != "Create a thing" || create.Tags[0] != "things" {
		t.Fatalf("POST /things = %+v", create)
	}
	if create.Security == nil || len(*create.Security) != 1 || (*create.Security)[0]["bearerAuth"] == nil {
		t.Errorf("POST /things lacks bearer security")
	}
	if p := create.Parameters.GetByInAndName("header", "Idempotency-Key"); p == nil || !p.Required {
		t.Errorf("POST /things lacks a required Idempotency-Key header")
	}
	if create.Responses.Value("201") == nil || create.Responses.Value("201").Value.Content.Get("application/json") == nil {
		t.Errorf("POST /things lacks its 201 JSON response")
	}
	for _, code := range []string{"400", "401", "403", "409", "413", "415", "422", "429", "default"} {
		r := create.Responses.Value(code)
		if r == nil || r.Value == nil || r.Value.Content.Get("application/problem+json") == nil {
			t.Errorf("POST /things lacks problem response %s", code)
		}
	}

	body := create.RequestBody.Value.Content.Get("application/json").Schema.Value
	if !create.RequestBody.Value.Required {
		t.Errorf("request body not required")
	}
	for _, f := range []string{"name", "owner_id"} {
		if !contains(body.Required, f) {
			t.Errorf("request schema: %s not required (required = %v)", f, body.Required)
		}
	}
	if contains(body.Required, "tags") {
		t.Errorf("tags marked required")
	}
	owner := body.Properties["owner_id"].Value
	if !owner.Type.Is("string") || owner.Pattern == "" {
		t.Errorf("owner_id (ID) schema = %+v, want a string with a pattern", owner)
	}
	if name := body.Properties["name"].Value; name.MaxLength == nil || *name.MaxLength != 20 {
		t.Errorf("name maxLength from validate:max=20 missing: %+v", name)
	}
	if kind := body.Properties["kind"].Value; len(kind.Enum) != 2 {
		t.Errorf("kind enum from validate:oneof missing: %+v", kind)
	}
	if qty := body.Properties["qty"].Value; qty.Min == nil || *qty.Min != 1 || qty.Max == nil || *qty.Max != 10 {
		t.Errorf("qty bounds missing: %+v", qty)
	}
	tags := body.Properties["tags"].Value
	if tags.MaxItems == nil || *tags.MaxItems != 3 || tags.Items.Value.MinLength != 1 || tags.Items.Value.MaxLength != nil {
		t.Errorf("tags: want maxItems 3 and items minLength 1 (rules after dive): %+v / %+v", tags, tags.Items.Value)
	}
	if addr := body.Properties["address"].Value; !contains(addr.Required, "city") {
		t.Errorf("nested struct required fields missing: %+v", addr)
	}
	if _, ok := doc.Components.Schemas["Problem"]; !ok {
		t.Errorf("Problem schema missing")
	}

	list := doc.Paths.Value("/things").Get
	for _, q := range []string{"limit", "cursor", "status"} {
		if list.Parameters.GetByInAndName("query", q) == nil {
			t.Errorf("GET /things lacks query parameter %s", q)
		}
	}
	items := list.Responses.Value("200").Value.Content.Get("application/json").Schema.Value
	if items.Properties["items"] == nil || items.Properties["next_cursor"] == nil {
		t.Errorf("list response schema = %+v", items)
	}

	get := doc.Paths.Value("/things/{id}").Get
	if p := get.Parameters.GetByInAndName("path", "id"); p == nil || !p.Required {
		t.Errorf("GET /things/{id} lacks its path parameter")
	}
	if get.Security != nil && len(*get.Security) > 0 {
		t.Errorf("public route has security")
	}
	if doc.Paths.Value("/metrics").Get.Responses.Value("200").Value.Content.Get("text/plain") == nil {
		t.Errorf("/metrics not documented as text/plain")
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestDocsPageIsSelfContained(t *testing.T) {
	h := start(t, testRoutes())
	res := h.do(t, http.MethodGet, "/docs", nil)
	if res.status != http.StatusOK || !strings.HasPrefix(res.header.Get("Content-Type"), "text/html") {
		t.Fatalf("/docs = %d %s", res.status, res.header.Get("Content-Type"))
	}
	page := string(res.body)
	if !strings.Contains(page, `fetch("/openapi.json"`) {
		t.Fatal("docs page does not load /openapi.json")
	}
	if regexp.MustCompile(`(?i)<script[^>]+src=|<link[^>]+href=|https?://`).MatchString(page) {
		t.Fatal("docs page references external resources")
	}
	csp := res.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'sha256-") || !strings.Contains(csp, "connect-src 'self'") {
		t.Fatalf("docs CSP = %q", csp)
	}
}

func TestRegisterRejectsBadRoutes(t *testing.T) {
	h := func(c echo.Context) error { return nil }
	tests := []struct {
		name string
		give []httpx.Route
		want string
	}{
		{name: "duplicate", give: []httpx.Route{{Method: "GET", Path: "/a", Handler: h}, {Method: "GET", Path: "/a", Handler: h}},
			want: "registered twice"},
		{name: "same shape, other param name", give: []httpx.Route{{Method: "GET", Path: "/a/:id", Handler: h},
			{Method: "GET", Path: "/a/:oid", Handler: h}}, want: "registered twice"},
		{name: "lower-case method", give: []httpx.Route{{Method: "get", Path: "/a", Handler: h}}, want: "method"},
		{name: "relative path", give: []httpx.Route{{Method: "GET", Path: "a", Handler: h}}, want: "start with /"},
		{name: "nil handler", give: []httpx.Route{{Method: "GET", Path: "/a"}}, want: "handler is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := httpx.Register(echo.New(), tt.give)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Register = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestNewServerRejectsDuplicateOfOperationalRoute(t *testing.T) {
	_, err := httpx.BuildOpenAPI([]httpx.Route{
		{Method: "GET", Path: "/x/:id", Handler: func(echo.Context) error { return nil }},
		{Method: "GET", Path: "/x/:id", Handler: func(echo.Context) error { return nil }},
	})
	if err == nil || !strings.Contains(err.Error(), "documented twice") {
		t.Fatalf("BuildOpenAPI with a duplicate = %v", err)
	}
}

func TestOpenAPIPath(t *testing.T) {
	tests := []struct{ give, want string }{
		{"/api/v1/orders/:id", "/api/v1/orders/{id}"},
		{"/api/v1/auctions/:id/bids", "/api/v1/auctions/{id}/bids"},
		{"/a/:x/b/:y", "/a/{x}/b/{y}"},
		{"/static/*", "/static/{path}"},
		{"/healthz", "/healthz"},
	}
	for _, tt := range tests {
		if got := httpx.OpenAPIPath(tt.give); got != tt.want {
			t.Errorf("OpenAPIPath(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

package httpx_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mallhq/mall/internal/platform/errs"
)

const validThing = `{"name":"lamp","qty":2,"owner_id":"42"}`

func TestBindOutcomes(t *testing.T) {
	h := start(t, testRoutes())
	tests := []struct {
		name        string
		give        string
		contentType string
		wantStatus  int
		wantCode    string
		wantDetail  string // substring
		wantFields  []errs.FieldError
	}{
		{name: "valid", give: validThing, contentType: "application/json", wantStatus: 201},
		{name: "valid with charset", give: validThing, contentType: "application/json; charset=UTF-8", wantStatus: 201},
		{name: "wrong content type", give: validThing, contentType: "text/plain", wantStatus: 415,
			wantCode: "request.unsupported_media_type"},
		{name: "form content type", give: "name=x", contentType: "application/x-www-form-urlencoded", wantStatus: 415,
			wantCode: "request.unsupported_media_type"},
		{name: "missing content type", give: validThing, wantStatus: 415, wantCode: "request.unsupported_media_type"},
		{name: "latin1 charset", give: validThing, contentType: "application/json; charset=latin1", wantStatus: 415,
			wantCode: "request.unsupported_media_type"},
		{name: "unknown field", give: `{"name":"lamp","qty":2,"owner_id":"42","price":1}`, contentType: "application/json",
			wantStatus: 400, wantCode: "request.invalid", wantDetail: `unknown field "price"`,
			wantFields: []errs.FieldError{{Field: "price", Message: "is not a known field"}}},
		{name: "empty body", give: "", contentType: "application/json", wantStatus: 400, wantCode: "request.invalid",
			wantDetail: "empty"},
		{name: "whitespace body", give: " \n ", contentType: "application/json", wantStatus: 400, wantCode: "request.invalid",
			wantDetail: "empty"},
		{name: "duplicate key", give: `{"name":"lamp","qty":2,"owner_id":"42","qty":3}`, contentType: "application/json",
			wantStatus: 400, wantCode: "request.invalid", wantDetail: `key "qty" appears twice`,
			wantFields: []errs.FieldError{{Field: "qty", Message: "appears twice"}}},
		{name: "trailing data", give: validThing + `{"x":1}`, contentType: "application/json", wantStatus: 400,
			wantCode: "request.invalid", wantDetail: "after the JSON value"},
		{name: "trailing bracket", give: validThing + `]`, contentType: "application/json", wantStatus: 400,
			wantCode: "request.invalid", wantDetail: "after the JSON value"},
		{name: "malformed", give: `{"name":`, contentType: "application/json", wantStatus: 400, wantCode: "request.invalid",
			wantDetail: "malformed JSON"},
		{name: "syntax error", give: `{"name" "x"}`, contentType: "application/json", wantStatus: 400,
			wantCode: "request.invalid", wantDetail: "offset"},
		{name: "array instead of object", give: `[1]`, contentType: "application/json", wantStatus: 400,
			wantCode: "request.invalid", wantDetail: "must be an object"},
		{name: "wrong field type", give: `{"name":"lamp","qty":"2","owner_id":"42"}`, contentType: "application/json",
			wantStatus: 400, wantCode: "request.invalid", wantDetail: `field "qty" must be an integer`},
		{name: "numeric ID", give: `{"name":"lamp","qty":2,"owner_id":42}`, contentType: "application/json",
			wantStatus: 400, wantCode: "request.invalid", wantDetail: `field "owner_id" must be an ID`},
		{name: "negative ID", give: `{"name":"lamp","qty":2,"owner_id":"-42"}`, contentType: "application/json",
			wantStatus: 400, wantCode: "request.invalid", wantDetail: `field "owner_id" must be an ID`},
		{name: "overflowing ID", give: `{"name":"lamp","qty":2,"owner_id":"9223372036854775808"}`,
			contentType: "application/json", wantStatus: 400, wantCode: "request.invalid", wantDetail: `"owner_id"`},
		{name: "invalid UTF-8", give: "{\"name\":\"\xff\",\"qty\":2,\"owner_id\":\"42\"}", contentType: "application/json",
			wantStatus: 400, wantCode: "request.invalid", wantDetail: "UTF-8"},
		{name: "validation", give: `{"name":"","qty":11,"tags":["a","b","c","d"],"kind":"huge","address":{}}`,
			contentType: "application/json", wantStatus: 400, wantCode: "request.validation",
			wantFields: []errs.FieldError{
				{Field: "name", Message: "is required"},
				{Field: "qty", Message: "must be at most 10"},
				{Field: "owner_id", Message: "is required"},
				{Field: "tags", Message: "must have at most 3 items"},
				{Field: "kind", Message: "must be one of: small, large"},
				{Field: "address.city", Message: "is required"},
			}},
		{name: "nested dive validation", give: `{"name":"lamp","qty":2,"owner_id":"42","tags":["ok",""]}`,
			contentType: "application/json", wantStatus: 400, wantCode: "request.validation",
			wantFields: []errs.FieldError{{Field: "tags[1]", Message: "must have at least 1 characters"}}},
		{name: "too large", give: `{"name":"` + strings.Repeat("x", 2000) + `"}`, contentType: "application/json",
			wantStatus: 413, wantCode: "request.too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			headers := []string{"Idempotency-Key", "k1"}
			if tt.contentType != "" {
				headers = append(headers, "Content-Type", tt.contentType)
			}
			res := h.do(t, http.MethodPost, "/things", strings.NewReader(tt.give), headers...)
			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", res.status, tt.wantStatus, res.body)
			}
			if tt.wantStatus < 300 {
				return
			}
			p := res.problem(t)
			if p.Code != tt.wantCode {
				t.Fatalf("code = %q, want %q (%s)", p.Code, tt.wantCode, res.body)
			}
			if !strings.Contains(p.Detail, tt.wantDetail) {
				t.Fatalf("detail = %q, want it to contain %q", p.Detail, tt.wantDetail)
			}
			if tt.wantFields != nil && !sameFields(p.Errors, tt.wantFields) {
				t.Fatalf("errors = %+v, want %+v", p.Errors, tt.wantFields)
			}
		})
	}
}

func sameFields(got, want []errs.FieldError) bool {
	if len(got) != len(want) {
		return false
	}
	m := map[errs.FieldError]bool{}
	for _, f := range got {
		m[f] = true
	}
	for _, f := range want {
		if !m[f] {
			return false
		}
	}
	return true
}

func TestBindValidResponseCarriesStringIDs(t *testing.T) {
	h := start(t, testRoutes())
	res := h.do(t, http.MethodPost, "/things", strings.NewReader(validThing),
		"Content-Type", "application/json", "Idempotency-Key", "k")
	if res.status != http.StatusCreated {
		t.Fatalf("status = %d: %s", res.status, res.body)
	}
	var raw map[string]any
	if err := json.Unmarshal(res.body, &raw); err != nil {
		t.Fatal(err)
	}
	// 2^53+1 would round in JavaScript if it were a number.
	if raw["id"] != "9007199254740993" || raw["owner_id"] != "42" {
		t.Fatalf("IDs not strings: %s", res.body)
	}
}

// A chunked body has no Content-Length, so the limit is enforced while reading.
func TestBindChunkedBodyTooLarge(t *testing.T) {
	h := start(t, testRoutes())
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, `{"name":"`+strings.Repeat("x", 4096)+`"}`)
		_ = pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, h.url+"/things", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res := send(t, req)
	if res.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413: %s", res.status, res.body)
	}
	if p := res.problem(t); p.Code != "request.too_large" {
		t.Fatalf("code = %q", p.Code)
	}
}

func TestBindQueryValidation(t *testing.T) {
	h := start(t, testRoutes())
	res := h.do(t, http.MethodGet, "/things?status=weird", nil)
	if res.status != http.StatusBadRequest {
		t.Fatalf("status = %d: %s", res.status, res.body)
	}
	p := res.problem(t)
	if p.Code != "request.validation" || len(p.Errors) != 1 || p.Errors[0].Field != "status" {
		t.Fatalf("problem = %+v", p)
	}
}

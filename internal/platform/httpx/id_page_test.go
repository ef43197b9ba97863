package httpx_test

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/httpx"
)

func TestIDJSONRoundTrip(t *testing.T) {
	tests := []httpx.ID{0, 1, 42, 9007199254740993, math.MaxInt64}
	for _, give := range tests {
		b, err := json.Marshal(give)
		if err != nil {
			t.Fatal(err)
		}
		if want := `"` + give.String() + `"`; string(b) != want {
			t.Fatalf("Marshal(%d) = %s, want %s", give, b, want)
		}
		var got httpx.ID
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("Unmarshal(%s): %v", b, err)
		}
		if got != give {
			t.Fatalf("round trip %d -> %d", give, got)
		}
	}
	// As a map key (TextMarshaler) too.
	b, err := json.Marshal(map[httpx.ID]int{7: 1})
	if err != nil || string(b) != `{"7":1}` {
		t.Fatalf("map key: %s %v", b, err)
	}
}

func TestIDJSONRejections(t *testing.T) {
	tests := []string{
		`42`, `-1`, `1.5`, `true`, `{}`, `[]`,
		`""`, `"-1"`, `"+1"`, `"01"`, `" 1"`, `"1 "`, `"1e3"`, `"abc"`, `"0x10"`, `"１"`,
		`"9223372036854775808"`, `"99999999999999999999999"`,
	}
	for _, give := range tests {
		var id httpx.ID = 5
		if err := json.Unmarshal([]byte(give), &id); err == nil {
			t.Errorf("Unmarshal(%s) = %d, want an error", give, id)
		}
		if id != 5 {
			t.Errorf("Unmarshal(%s) changed the ID to %d", give, id)
		}
	}
	var id httpx.ID = 5
	if err := json.Unmarshal([]byte(`null`), &id); err != nil || id != 5 {
		t.Fatalf("null: id=%d err=%v, want unchanged", id, err)
	}
	// A JSON escape is still the same string.
	if err := json.Unmarshal([]byte(`"\u0031\u0032"`), &id); err != nil || id != 12 {
		t.Fatalf("escaped digits: id=%d err=%v", id, err)
	}
}

func TestParamIDRejectsMalformed(t *testing.T) {
	h := start(t, testRoutes())
	if res := h.do(t, http.MethodGet, "/things/123", nil); res.status != http.StatusOK ||
		!strings.Contains(string(res.body), `"id":"123"`) {
		t.Fatalf("good id: %d %s", res.status, res.body)
	}
	for _, give := range []string{"abc", "-1", "01", "9223372036854775808"} {
		res := h.do(t, http.MethodGet, "/things/"+give, nil)
		if res.status != http.StatusBadRequest {
			t.Fatalf("%s: status = %d", give, res.status)
		}
		if p := res.problem(t); p.Code != "request.invalid" || !strings.Contains(p.Detail, `"id"`) {
			t.Fatalf("%s: problem = %+v", give, p)
		}
	}
}

func TestPaging(t *testing.T) {
	h := start(t, testRoutes())
	type listBody struct {
		Items      []map[string]any `json:"items"`
		NextCursor *string          `json:"next_cursor"`
	}
	get := func(q string) (response, listBody) {
		res := h.do(t, http.MethodGet, "/things"+q, nil)
		var lb listBody
		if res.status == http.StatusOK {
			if err := json.Unmarshal(res.body, &lb); err != nil {
				t.Fatal(err)
			}
		}
		return res, lb
	}
	res, lb := get("")
	if res.status != 200 || len(lb.Items) != httpx.DefaultLimit || lb.NextCursor == nil || *lb.NextCursor == "" {
		t.Fatalf("default page: %d items=%d next=%v", res.status, len(lb.Items), lb.NextCursor)
	}
	cur, err := httpx.DecodeCursor(*lb.NextCursor)
	if err != nil || string(cur) != "20" {
		t.Fatalf("next cursor decodes to %q, %v", cur, err)
	}
	res, lb = get("?limit=100&cursor=" + *lb.NextCursor)
	if res.status != 200 || len(lb.Items) != 100 {
		t.Fatalf("limit=100: %d items=%d", res.status, len(lb.Items))
	}
	for _, give := range []string{"0", "101", "-1", "abc", "1.5", "1e2", ""} {
		if give == "" {
			continue
		}
		res, _ := get("?limit=" + give)
		if res.status != http.StatusBadRequest {
			t.Fatalf("limit=%s: status = %d", give, res.status)
		}
		if p := res.problem(t); p.Code != "request.invalid" || len(p.Errors) != 1 || p.Errors[0].Field != "limit" {
			t.Fatalf("limit=%s: problem = %+v", give, p)
		}
	}
	for _, give := range []string{"!!!", "a+b/", "YQ==", strings.Repeat("A", 2000)} {
		res, _ := get("?cursor=" + give)
		if res.status != http.StatusBadRequest {
			t.Fatalf("cursor=%s: status = %d", give, res.status)
		}
		if p := res.problem(t); p.Code != "request.invalid" || p.Errors[0].Field != "cursor" {
			t.Fatalf("cursor=%s: problem = %+v", give, p)
		}
	}
}

func TestPageOfAndNewList(t *testing.T) {
	p := httpx.Page{Limit: 2}
	cursor := func(v int) []byte { return []byte{byte(v)} }
	full := httpx.PageOf([]int{1, 2, 3}, p, cursor)
	if len(full.Items) != 2 || full.NextCursor != httpx.EncodeCursor([]byte{2}) {
		t.Fatalf("PageOf with extra row = %+v", full)
	}
	last := httpx.PageOf([]int{1, 2}, p, cursor)
	if len(last.Items) != 2 || last.NextCursor != "" {
		t.Fatalf("PageOf last page = %+v", last)
	}
	b, _ := json.Marshal(httpx.NewList[int](nil, nil))
	if string(b) != `{"items":[],"next_cursor":""}` {
		t.Fatalf("empty list = %s", b)
	}
}

// PageFrom also works on a bare echo context (no server), as module unit tests use it.
func TestPageFromDefaults(t *testing.T) {
	e := echo.New()
	req, _ := http.NewRequest(http.MethodGet, "/x", nil)
	c := e.NewContext(req, nil)
	p, err := httpx.PageFrom(c)
	if err != nil || p.Limit != 20 || p.Cursor != nil || p.Fetch() != 21 {
		t.Fatalf("PageFrom = %+v, %v", p, err)
	}
}

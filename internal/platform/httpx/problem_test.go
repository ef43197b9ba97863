package httpx_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestUnknownRouteIs404Problem(t *testing.T) {
	h := start(t, testRoutes())
	res := h.do(t, http.MethodGet, "/no/such/route", nil)
	if res.status != http.StatusNotFound {
		t.Fatalf("status = %d, want 404", res.status)
	}
	if p := res.problem(t); p.Code != "route.not_found" {
		t.Fatalf("code = %q, want route.not_found", p.Code)
	}
}

func TestWrongMethodIs405ProblemWithAllow(t *testing.T) {
	h := start(t, testRoutes())
	res := h.do(t, http.MethodDelete, "/things", nil)
	if res.status != http.StatusMethodNotAllowed {
		t.Fatalf("status = %d, want 405", res.status)
	}
	if p := res.problem(t); p.Code != "route.method_not_allowed" {
		t.Fatalf("code = %q", p.Code)
	}
	if allow := res.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Fatalf("Allow = %q, want GET and POST", allow)
	}
}

func TestPanicIs500WithoutStackAndLoggedOnce(t *testing.T) {
	h := start(t, testRoutes())
	res := h.do(t, http.MethodGet, "/boom", nil)
	if res.status != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", res.status)
	}
	p := res.problem(t)
	if p.Code != "internal" {
		t.Fatalf("code = %q, want internal", p.Code)
	}
	for _, leak := range []string{"kaboom", "secret-internal-detail", "goroutine", ".go:"} {
		if strings.Contains(string(res.body), leak) {
			t.Fatalf("body leaks %q: %s", leak, res.body)
		}
	}
	// Wait for the access log line, which comes after the error handler's.
	h.logs.waitRecords(t, 1, func(r map[string]any) bool { return r["msg"] == "http request" && r["route"] == "/boom" })
	var panics []map[string]any
	for _, r := range h.logs.records(t) {
		line, _ := json.Marshal(r)
		if strings.Contains(string(line), "kaboom") || r["level"] == "ERROR" {
			panics = append(panics, r)
		}
	}
	if len(panics) != 1 {
		t.Fatalf("panic logged %d times, want exactly once: %v", len(panics), panics)
	}
	rec := panics[0]
	if rec["level"] != "ERROR" || rec["msg"] != "request failed" || rec["route"] != "/boom" {
		t.Fatalf("panic record = %v", rec)
	}
	if st, _ := rec["stack"].(string); !strings.Contains(st, "goroutine") {
		t.Fatalf("panic record has no stack: %v", rec)
	}
	if rec["request_id"] == nil || rec["trace_id"] == nil {
		t.Fatalf("panic record lacks request_id/trace_id: %v", rec)
	}
}

func TestErrorKindsMapToStatusesAndCodes(t *testing.T) {
	h := start(t, testRoutes())
	tests := []struct {
		give       string
		wantStatus int
		wantCode   string
		wantDetail string
		wantRetry  string
		wantLogged bool
	}{
		{give: "conflict", wantStatus: 409, wantCode: "stock.insufficient", wantDetail: "sku 7 has 0 left"},
		{give: "wrapped", wantStatus: 409, wantCode: "stock.insufficient"},
		{give: "ratelimit", wantStatus: 429, wantCode: "rate_limited", wantRetry: "7"},
		{give: "unauthenticated", wantStatus: 401, wantCode: "auth.unauthenticated"},
		{give: "forbidden", wantStatus: 403, wantCode: "auth.forbidden"},
		{give: "notfound", wantStatus: 404, wantCode: "order.not_found"},
		{give: "unprocessable", wantStatus: 422, wantCode: "idempotency.key_reused"},
		{give: "unavailable", wantStatus: 503, wantCode: "service.unavailable"},
		{give: "timeout", wantStatus: 503, wantCode: "service.unavailable"},
		{give: "plain", wantStatus: 500, wantCode: "internal", wantLogged: true},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			res := h.do(t, http.MethodGet, "/fail/"+tt.give, nil)
			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", res.status, tt.wantStatus, res.body)
			}
			p := res.problem(t)
			if p.Code != tt.wantCode {
				t.Fatalf("code = %q, want %q", p.Code, tt.wantCode)
			}
			if p.Type == "" || p.Title == "" {
				t.Fatalf("problem lacks type/title: %+v", p)
			}
			if tt.wantDetail != "" && p.Detail != tt.wantDetail {
				t.Fatalf("detail = %q, want %q", p.Detail, tt.wantDetail)
			}
			if got := res.header.Get("Retry-After"); got != tt.wantRetry {
				t.Fatalf("Retry-After = %q, want %q", got, tt.wantRetry)
			}
			if strings.Contains(string(res.body), "hunter2") {
				t.Fatalf("internal error text leaked: %s", res.body)
			}
		})
	}
	h.logs.waitRecords(t, len(tests), func(r map[string]any) bool { return r["msg"] == "http request" })
	var logged []string
	for _, r := range h.logs.records(t) {
		if r["msg"] == "request failed" {
			logged = append(logged, r["error"].(string))
		}
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "exploded") {
		t.Fatalf("unexpected-error log lines = %q, want exactly the 500", logged)
	}
}

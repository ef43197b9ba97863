package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"status":"ok"}`)) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"status":"ok"}`)) })
	mux.HandleFunc("GET /fail", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func TestLoadCountsRequestsAndErrors(t *testing.T) {
	s := newServer(t)
	// Long enough that a loaded machine still completes requests inside the window.
	opts := LoadOptions{Conns: 4, Warmup: 50 * time.Millisecond, Duration: 500 * time.Millisecond}
	tests := []struct {
		give       string
		wantErrors bool
	}{
		{give: "/healthz", wantErrors: false},
		{give: "/fail", wantErrors: true},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			next, _ := Static(http.MethodGet, tt.give, nil)(context.Background(), nil)
			r := Load(context.Background(), s.URL, next, opts)
			if r.Requests == 0 || r.Rate() <= 0 || r.P50 <= 0 || r.P99 < r.P50 {
				t.Fatalf("implausible result %+v", r)
			}
			if got := r.Errors > 0; got != tt.wantErrors {
				t.Fatalf("errors = %d, want errors: %v", r.Errors, tt.wantErrors)
			}
			if tt.wantErrors && (r.Errors != r.Requests || r.ErrKinds["HTTP 503"] != r.Errors) {
				t.Fatalf("every request should fail with 503: %+v", r)
			}
		})
	}
}

func TestLoadCountsSocketErrors(t *testing.T) {
	s := httptest.NewServer(http.NotFoundHandler())
	url := s.URL
	s.Close() // nothing listens any more
	next, _ := Static(http.MethodGet, "/", nil)(context.Background(), nil)
	r := Load(context.Background(), url, next, LoadOptions{Conns: 2, Duration: 100 * time.Millisecond})
	if r.Errors == 0 || r.ErrKinds["socket"] != r.Errors || r.FirstErr == "" {
		t.Fatalf("want socket errors, got %+v", r)
	}
}

func TestEnvCall(t *testing.T) {
	s := newServer(t)
	env := &Env{MallURL: s.URL, Client: s.Client()}
	var out struct{ OK bool }
	err := env.Call(context.Background(), http.MethodPost, s.URL+"/echo", http.Header{"Authorization": {"Bearer t"}}, map[string]int{"a": 1}, &out)
	if err != nil || !out.OK {
		t.Fatalf("Call = %v, out %+v", err, out)
	}
	err = env.Call(context.Background(), http.MethodPost, s.URL+"/echo", nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("want a 401 error, got %v", err)
	}
}

func TestRunWritesReport(t *testing.T) {
	mall, base := newServer(t), newServer(t)
	out := filepath.Join(t.TempDir(), "benchmarks.md")
	list := []Scenario{
		{Name: "baseline", Target: TargetBaseline, Setup: Static(http.MethodGet, "/healthz", nil)},
		{Name: "GET /healthz", Target: TargetMall, Setup: Static(http.MethodGet, "/healthz", nil)},
		{Name: "broken setup", Target: TargetMall, Setup: func(context.Context, *Env) (Next, error) {
			return nil, errors.New("no login")
		}},
		{Name: "filtered out", Target: TargetMall, Setup: Static(http.MethodGet, "/healthz", nil)},
		{Name: "GET /healthz fixed rate", Target: TargetMall, Setup: Static(http.MethodGet, "/healthz", nil), Rate: 100,
			Goal: p99AtMost(time.Second)},
		{Name: "half the baseline", Target: TargetMall, Setup: Static(http.MethodGet, "/healthz", nil), Goal: atLeastBaseline(0.5)},
		{Name: "no search server", Target: TargetSearch, Setup: Static(http.MethodGet, "/healthz", nil)},
	}
	o := Options{
		MallURL: mall.URL, BaselineURL: base.URL, Conns: 2, Duration: 100 * time.Millisecond,
		WaitReady: 5 * time.Second, Out: out, Commit: "abc1234-dirty", MallBinary: "/nonexistent",
		Filter: regexp.MustCompile("healthz|broken|half|search"),
	}
	err := Run(context.Background(), o, list)
	if err == nil || !strings.Contains(err.Error(), "no login") {
		t.Fatalf("Run should report the failed setup, got %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{
		"| scenario | rate (req/s) | ratio to baseline | p50 | p99 | errors | goal |",
		"| baseline | ", " | 1.00 | ",
		"| GET /healthz | ",
		"| broken setup | – | – | – | – | setup failed: no login | |",
		"| GET /healthz fixed rate | ", " | – | ", "✓ p99 ≤ 1.00 s",
		"| half the baseline | ", "≥ 0.5 × baseline",
		"| no search server | – | – | – | – | not run: no -mall-search server | |",
		"| commit | abc1234-dirty |",
		"CPUs",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "filtered out") {
		t.Errorf("filtered row present:\n%s", md)
	}
}

func TestRunWithoutMall(t *testing.T) {
	base := newServer(t)
	o := Options{BaselineURL: base.URL, Conns: 1, Duration: 50 * time.Millisecond, WaitReady: time.Second,
		Out: filepath.Join(t.TempDir(), "b.md"), SkipReason: "cmd/mall does not build yet"}
	if err := Run(context.Background(), o, scenarios); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(o.Out)
	if !strings.Contains(string(b), "| GET /healthz | – | – | – | – | not run: cmd/mall does not build yet |") {
		t.Fatalf("want a skipped mall row:\n%s", b)
	}
}

// TestLoadRate: the open loop sends on schedule, counts only requests scheduled after the
// warm-up, and times them from their scheduled start.
func TestLoadRate(t *testing.T) {
	var n atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		time.Sleep(20 * time.Millisecond)
	}))
	t.Cleanup(slow.Close)
	r := LoadRate(context.Background(), slow.URL, func(int, int64) Request { return Request{Method: http.MethodGet, Path: "/"} },
		LoadOptions{Conns: 4, Warmup: 100 * time.Millisecond, Duration: 500 * time.Millisecond}, 100)
	if r.Requests < 45 || r.Requests > 55 || r.Errors != 0 || n.Load() < 55 || n.Load() > 65 {
		t.Fatalf("want about 50 counted of about 60 sent: %+v, sent %d", r, n.Load())
	}
	if r.P50 < 20*time.Millisecond || r.P99 > 2*time.Second {
		t.Fatalf("latencies %s %s", r.P50, r.P99)
	}
	// One connection for 100/s of 20 ms requests: they queue, and the queueing shows.
	r = LoadRate(context.Background(), slow.URL, func(int, int64) Request { return Request{Method: http.MethodGet, Path: "/"} },
		LoadOptions{Conns: 1, Duration: 300 * time.Millisecond}, 100)
	if r.P99 < 100*time.Millisecond {
		t.Fatalf("queueing not counted: p99 %s", r.P99)
	}
}

// TestLoadRateStuckServer: a server that stops answering ends the open loop rateGrace after
// its schedule, every counted request a timeout, instead of waiting for the queue to drain.
func TestLoadRateStuckServer(t *testing.T) {
	stuck := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stuck:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(stuck) })
	old := rateGrace
	rateGrace = 200 * time.Millisecond
	t.Cleanup(func() { rateGrace = old })
	t0 := time.Now()
	r := LoadRate(context.Background(), s.URL, func(int, int64) Request { return Request{Method: http.MethodGet, Path: "/"} },
		LoadOptions{Conns: 2, Duration: 300 * time.Millisecond}, 100)
	if took := time.Since(t0); took > 3*time.Second {
		t.Fatalf("took %s", took)
	}
	if r.Requests < 25 || r.Errors != r.Requests || r.ErrKinds["timeout"] != r.Errors {
		t.Fatalf("want every request a timeout: %+v", r)
	}
}

// TestWaitIndexed waits for the total to reach the minimum and hold, with an empty backlog.
func TestWaitIndexed(t *testing.T) {
	var calls atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/search", func(w http.ResponseWriter, _ *http.Request) {
		total := min(calls.Add(1)*40, 100)
		fmt.Fprintf(w, `{"items":[],"total":%d,"facets":{},"next_cursor":""}`, total)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		backlog := 0
		if calls.Load() < 4 {
			backlog = 7
		}
		fmt.Fprintf(w, "# TYPE mall_outbox_backlog gauge\nmall_outbox_backlog{db=\"main\"} %d\nmall_outbox_backlog{db=\"shard0\"} 0\n", backlog)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	if err := WaitIndexed(context.Background(), s.Client(), s.URL, 100, 10*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if calls.Load() < 5 {
		t.Fatalf("returned after %d polls", calls.Load())
	}
	if err := WaitIndexed(context.Background(), s.Client(), s.URL, 1000, time.Second, nil); err == nil || !strings.Contains(err.Error(), "100 of 1000") {
		t.Fatalf("want a timeout naming the count, got %v", err)
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct{ give, want string }{
		{give: thousands(0), want: "0"},
		{give: thousands(999.6), want: "1,000"},
		{give: thousands(1234567), want: "1,234,567"},
		{give: fmtDur(420 * time.Microsecond), want: "0.42 ms"},
		{give: fmtDur(12340 * time.Microsecond), want: "12.3 ms"},
		{give: fmtDur(1500 * time.Millisecond), want: "1.50 s"},
		{give: fmtRatio(1), want: "1.00"},
		{give: fmtRatio(0.234), want: "0.23"},
		{give: fmtRatio(0.000756), want: "0.00076"},
		{give: fmtRatio(0), want: "0"},
		{give: fmtErrors(Result{Errors: 3, ErrKinds: map[string]int64{"socket": 1, "HTTP 500": 2}}), want: "3 (HTTP 500: 2, socket: 1)"},
	}
	for _, tt := range tests {
		if tt.give != tt.want {
			t.Errorf("got %q, want %q", tt.give, tt.want)
		}
	}
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if percentile(d, 0.5) != 5 || percentile(d, 0.99) != 10 || percentile(nil, 0.5) != 0 {
		t.Error("percentile")
	}
}

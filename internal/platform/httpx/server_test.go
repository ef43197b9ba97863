package httpx_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	mlog "github.com/mallhq/mall/internal/platform/log"
)

func TestHealthz(t *testing.T) {
	h := start(t, nil)
	res := h.do(t, http.MethodGet, "/healthz", nil)
	if res.status != http.StatusOK || strings.TrimSpace(string(res.body)) != `{"status":"ok"}` {
		t.Fatalf("/healthz = %d %s", res.status, res.body)
	}
}

func TestReadiness(t *testing.T) {
	ok := httpx.Check{Name: "mysql", Check: func(context.Context) error { return nil }}
	down := httpx.Check{Name: "redis", Check: func(context.Context) error { return errors.New("dial tcp 127.0.0.1:16379: connection refused") }}
	hang := httpx.Check{Name: "kafka", Check: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	ignoresCtx := httpx.Check{Name: "stubborn", Check: func(context.Context) error { time.Sleep(time.Second); return nil }}
	panics := httpx.Check{Name: "buggy", Check: func(context.Context) error { panic("oops") }}

	tests := []struct {
		name       string
		give       []httpx.Check
		wantStatus int
		wantFailed []string
	}{
		{name: "all pass", give: []httpx.Check{ok, ok}, wantStatus: 200},
		{name: "one fails", give: []httpx.Check{ok, down}, wantStatus: 503, wantFailed: []string{"redis"}},
		{name: "timeout honouring ctx", give: []httpx.Check{ok, hang}, wantStatus: 503, wantFailed: []string{"kafka"}},
		{name: "timeout ignoring ctx", give: []httpx.Check{ignoresCtx, ok}, wantStatus: 503, wantFailed: []string{"stubborn"}},
		{name: "panicking check", give: []httpx.Check{panics}, wantStatus: 503, wantFailed: []string{"buggy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, nil, func(c *httpx.ServerConfig) {
				c.Checks = tt.give
				c.ReadinessTimeout = 150 * time.Millisecond
				c.HTTP.OpsToken = testOpsToken
			})
			// Without the ops token: ready or not, nothing about the checks.
			public := h.do(t, http.MethodGet, "/readyz", nil)
			if public.status != tt.wantStatus {
				t.Fatalf("public status = %d, want %d: %s", public.status, tt.wantStatus, public.body)
			}
			for _, leak := range []string{"mysql", "redis", "kafka", "stubborn", "buggy", "oops", "16379", "refused"} {
				if strings.Contains(string(public.body), leak) {
					t.Fatalf("public /readyz reveals %q: %s", leak, public.body)
				}
			}
			if tt.wantStatus == 200 && strings.TrimSpace(string(public.body)) != `{"status":"ok"}` {
				t.Fatalf("public /readyz = %s", public.body)
			}
			began := time.Now()
			res := h.do(t, http.MethodGet, "/readyz", nil, "Authorization", "Bearer "+testOpsToken)
			if took := time.Since(began); took > 3*time.Second {
				t.Fatalf("/readyz took %s; the timeout is 150ms", took)
			}
			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", res.status, tt.wantStatus, res.body)
			}
			if tt.wantStatus == 200 {
				var body struct {
					Status string `json:"status"`
					Checks []struct{ Name, Status string }
				}
				if err := json.Unmarshal(res.body, &body); err != nil {
					t.Fatal(err)
				}
				if body.Status != "ok" || len(body.Checks) != len(tt.give) || body.Checks[0].Status != "ok" {
					t.Fatalf("body = %s", res.body)
				}
				return
			}
			p := res.problem(t)
			if p.Code != "service.unavailable" {
				t.Fatalf("code = %q", p.Code)
			}
			var failed []string
			for _, f := range p.Errors {
				failed = append(failed, f.Field)
			}
			if strings.Join(failed, ",") != strings.Join(tt.wantFailed, ",") {
				t.Fatalf("failed checks = %v, want %v (%s)", failed, tt.wantFailed, res.body)
			}
			for _, name := range tt.wantFailed {
				if !strings.Contains(p.Detail, name) {
					t.Fatalf("detail %q does not name %s", p.Detail, name)
				}
			}
		})
	}
}

// slowRoute answers after 500 ms, flagging when it entered and finished.
func slowRoute(entered chan<- struct{}, finished *atomic.Bool) httpx.Route {
	return httpx.Route{
		Method: http.MethodGet, Path: "/slow", Summary: "Slow",
		Handler: func(c echo.Context) error {
			close(entered)
			time.Sleep(500 * time.Millisecond)
			finished.Store(true)
			return c.JSON(http.StatusOK, map[string]string{"done": "yes"})
		},
	}
}

func TestGracefulShutdownDrainsInFlightAndRefusesNew(t *testing.T) {
	entered := make(chan struct{})
	var finished atomic.Bool
	srv, addr := startBare(t, []httpx.Route{slowRoute(entered, &finished)}, 0)

	slow := make(chan response, 1)
	go func() {
		res, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			slow <- response{status: -1, body: []byte(err.Error())}
			return
		}
		defer res.Body.Close()
		var b [64]byte
		n, _ := res.Body.Read(b[:])
		slow <- response{status: res.StatusCode, body: b[:n]}
	}()
	<-entered

	shutdownDone := make(chan error, 1)
	var finishedAtShutdownReturn atomic.Bool
	go func() {
		err := srv.Shutdown(context.Background())
		finishedAtShutdownReturn.Store(finished.Load())
		shutdownDone <- err
	}()

	// The listener closes at once: new connections are refused while the slow request is
	// still being served.
	deadline := time.Now().Add(400 * time.Millisecond)
	refused := false
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			refused = true
			break
		}
		_ = conn.Close()
		time.Sleep(5 * time.Millisecond)
	}
	if !refused {
		t.Fatal("new connections still accepted after Shutdown began")
	}
	if finished.Load() {
		t.Fatal("the slow request finished before refusal was observed; the test proves nothing")
	}

	res := <-slow
	if res.status != http.StatusOK || !strings.Contains(string(res.body), "yes") {
		t.Fatalf("in-flight request: %d %s", res.status, res.body)
	}
	if err := <-shutdownDone; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if !finishedAtShutdownReturn.Load() {
		t.Fatal("Shutdown returned before the in-flight request finished")
	}
	if _, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
		t.Fatal("connection accepted after Shutdown")
	}
}

func TestReadyzFailsOnceShutdownBegins(t *testing.T) {
	srv, addr := startBare(t, nil, 600*time.Millisecond)
	get := func() (int, string) {
		res, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return -1, err.Error()
		}
		defer res.Body.Close()
		var p httpx.Problem
		_ = json.NewDecoder(res.Body).Decode(&p)
		return res.StatusCode, p.Detail
	}
	if st, _ := get(); st != http.StatusOK {
		t.Fatalf("before shutdown: %d", st)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()

	// During the drain delay the server still accepts connections and tells the load
	// balancer to go away.
	deadline := time.Now().Add(500 * time.Millisecond)
	var st int
	var detail string
	for time.Now().Before(deadline) {
		if st, detail = get(); st == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st != http.StatusServiceUnavailable || detail != "shutting down" {
		t.Fatalf("/readyz during drain = %d %q, want 503 shutting down", st, detail)
	}
	if hz, err := http.Get("http://" + addr + "/healthz"); err != nil || hz.StatusCode != 200 {
		t.Fatalf("/healthz during drain: %v", err)
	} else {
		_ = hz.Body.Close()
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if st, _ := get(); st != -1 {
		t.Fatalf("after shutdown /readyz answered %d", st)
	}
}

func TestShutdownTimeoutForcesClose(t *testing.T) {
	entered := make(chan struct{})
	var finished atomic.Bool
	srv, addr := startBare(t, []httpx.Route{slowRoute(entered, &finished)}, 0)
	go func() {
		if res, err := http.Get("http://" + addr + "/slow"); err == nil {
			_ = res.Body.Close()
		}
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown past its deadline = %v, want DeadlineExceeded", err)
	}
}

func TestStartFailsWhenPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	reg := prometheus.NewRegistry()
	cfg := testHTTPConfig()
	cfg.Addr = ln.Addr().String()
	srv, err := httpx.NewServer(httpx.ServerConfig{HTTP: cfg, Logger: mlog.NewWriter(&logBuffer{}, config.Log{Level: "info"}),
		Registerer: reg, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err == nil {
		t.Fatal("Start on a taken port succeeded")
	}
}

// startBare starts a server whose Shutdown the test drives itself.
func startBare(t *testing.T, routes []httpx.Route, drain time.Duration) (*httpx.Server, string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	srv, err := httpx.NewServer(httpx.ServerConfig{
		HTTP:            testHTTPConfig(),
		ShutdownTimeout: 5 * time.Second,
		DrainDelay:      drain,
		Logger:          mlog.NewWriter(&logBuffer{}, config.Log{Level: "info"}),
		Registerer:      reg,
		Gatherer:        reg,
		Routes:          routes,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if srv.Addr() == nil || strings.HasSuffix(srv.Addr().String(), ":0") {
		t.Fatalf("Addr = %v, want the bound port", srv.Addr())
	}
	return srv, srv.Addr().String()
}

// Two servers on one registry (a test starting the app twice) share the HTTP series
// instead of failing on duplicate registration.
func TestServersShareRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	for i := 0; i < 2; i++ {
		_, err := httpx.NewServer(httpx.ServerConfig{HTTP: testHTTPConfig(),
			Logger: mlog.NewWriter(&logBuffer{}, config.Log{Level: "info"}), Registerer: reg, Gatherer: reg})
		if err != nil {
			t.Fatalf("server %d: %v", i, err)
		}
	}
}

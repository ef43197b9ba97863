package httpx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/httpx"
	mlog "github.com/mallhq/mall/internal/platform/log"
)

// logBuffer collects JSON log lines written concurrently by the server.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// waitRecords polls until match finds at least n records (the access log line is written
// just before the response is flushed, so a client may see the response a moment earlier).
func (b *logBuffer) waitRecords(t *testing.T, n int, match func(map[string]any) bool) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		var got []map[string]any
		for _, r := range b.records(t) {
			if match(r) {
				got = append(got, r)
			}
		}
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testHTTPConfig() config.HTTP {
	return config.HTTP{
		Addr:              "127.0.0.1:0",
		ReadTimeout:       5 * time.Second,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		BodyLimit:         "1KB",
	}
}

type harness struct {
	srv  *httpx.Server
	url  string
	logs *logBuffer
	reg  *prometheus.Registry
}

// start runs a real server on a loopback port with routes and the test routes' defaults,
// stopping it when the test ends.
func start(t *testing.T, routes []httpx.Route, tweak ...func(*httpx.ServerConfig)) *harness {
	t.Helper()
	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	cfg := httpx.ServerConfig{
		HTTP:            testHTTPConfig(),
		ShutdownTimeout: 5 * time.Second,
		Logger:          mlog.NewWriter(logs, config.Log{Level: "debug", Format: "json"}),
		Registerer:      reg,
		Gatherer:        reg,
		Routes:          routes,
	}
	for _, f := range tweak {
		f(&cfg)
	}
	srv, err := httpx.NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return &harness{srv: srv, url: "http://" + srv.Addr().String(), logs: logs, reg: reg}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) problem(t *testing.T) httpx.Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != httpx.ContentTypeProblem {
		t.Fatalf("Content-Type = %q, want %q (body %s)", ct, httpx.ContentTypeProblem, r.body)
	}
	var p httpx.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %q: %v", r.body, err)
	}
	if p.Status != r.status {
		t.Fatalf("problem status %d != response status %d", p.Status, r.status)
	}
	return p
}

func (h *harness) do(t *testing.T, method, path string, body io.Reader, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, h.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return send(t, req)
}

func send(t *testing.T, req *http.Request) response {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// Test DTOs and routes shared by the tests.

type createThing struct {
	Name    string   `json:"name" validate:"required,max=20"`
	Qty     int      `json:"qty" validate:"gte=1,lte=10"`
	OwnerID httpx.ID `json:"owner_id" validate:"required"`
	Tags    []string `json:"tags,omitempty" validate:"max=3,dive,min=1"`
	Kind    string   `json:"kind,omitempty" validate:"omitempty,oneof=small large"`
	Address *struct {
		City string `json:"city" validate:"required"`
	} `json:"address,omitempty"`
}

type thing struct {
	ID      httpx.ID `json:"id"`
	Name    string   `json:"name"`
	OwnerID httpx.ID `json:"owner_id"`
}

type thingFilter struct {
	Status string `query:"status" validate:"omitempty,oneof=new old"`
}

var errInsufficient = errs.New(errs.Conflict, "stock.insufficient")

func testRoutes() []httpx.Route {
	return []httpx.Route{
		{
			Method: http.MethodPost, Path: "/things", Summary: "Create a thing", Tags: []string{"things"},
			Request: createThing{}, Response: thing{}, Status: http.StatusCreated, Auth: true, Idempotent: true,
			RateLimit: "default",
			Handler: func(c echo.Context) error {
				var in createThing
				if err := httpx.Bind(c, &in); err != nil {
					return err
				}
				return c.JSON(http.StatusCreated, thing{ID: 9007199254740993, Name: in.Name, OwnerID: in.OwnerID})
			},
		},
		{
			Method: http.MethodGet, Path: "/things", Summary: "List things", Tags: []string{"things"},
			Query: thingFilter{}, Response: httpx.List[thing]{},
			Handler: func(c echo.Context) error {
				var f thingFilter
				if err := httpx.BindQuery(c, &f); err != nil {
					return err
				}
				p, err := httpx.PageFrom(c)
				if err != nil {
					return err
				}
				rows := make([]thing, p.Fetch())
				for i := range rows {
					rows[i] = thing{ID: httpx.ID(i + 1)}
				}
				return c.JSON(http.StatusOK, httpx.PageOf(rows, p, func(last thing) []byte {
					return []byte(last.ID.String())
				}))
			},
		},
		{
			Method: http.MethodGet, Path: "/things/:id", Summary: "Get a thing", Tags: []string{"things"},
			Response: thing{},
			Handler: func(c echo.Context) error {
				id, err := httpx.ParamID(c, "id")
				if err != nil {
					return err
				}
				return c.JSON(http.StatusOK, thing{ID: id, Name: "t"})
			},
		},
		{
			Method: http.MethodGet, Path: "/boom", Summary: "Panics",
			Handler: func(echo.Context) error { panic("kaboom secret-internal-detail") },
		},
		{
			Method: http.MethodGet, Path: "/fail/:kind", Summary: "Fails by kind",
			Handler: func(c echo.Context) error {
				switch c.Param("kind") {
				case "conflict":
					return errInsufficient.WithDetail("sku 7 has 0 left")
				case "ratelimit":
					return errs.ErrRateLimited.WithRetryAfter(7)
				case "unauthenticated":
					return errs.ErrUnauthenticated
				case "forbidden":
					return errs.ErrForbidden
				case "notfound":
					return errs.New(errs.NotFound, "order.not_found")
				case "unprocessable":
					return errs.ErrIdempotencyReused
				case "unavailable":
					return errs.ErrUnavailable
				case "timeout":
					return context.DeadlineExceeded
				case "wrapped":
					return errors.Join(errors.New("context"), errInsufficient)
				default:
					return errors.New("db password=hunter2 exploded")
				}
			},
		},
		{
			Method: http.MethodGet, Path: "/ip", Summary: "Echo the client IP",
			Handler:  func(c echo.Context) error { return c.String(http.StatusOK, c.RealIP()) },
			Produces: "text/plain",
		},
	}
}

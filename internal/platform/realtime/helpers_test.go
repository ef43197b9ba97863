package realtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/realtime"
	"github.com/mallhq/mall/internal/platform/redisx/redisxtest"
)

// testConfig is the default configuration with fast timers and a key prefix of its own.
func testConfig(prefix string) realtime.Config {
	cfg := realtime.DefaultConfig()
	cfg.Prefix = prefix
	cfg.PingInterval = 2 * time.Second
	cfg.PongTimeout = 5 * time.Second
	cfg.PresenceTTL = 3 * time.Second
	return cfg
}

// replica is one hub behind its own HTTP server (the real echo chain of httpx).
type replica struct {
	Hub *realtime.Hub
	Reg *prometheus.Registry
	URL string // ws://host
	// closeErrOK: the test broke this replica's Redis on purpose.
	closeErrOK bool
}

// newReplica starts a hub on rdb and an HTTP server whose GET /ws/:room joins room.
// open may adjust the Room (nil: just the name).
func newReplica(t *testing.T, cfg realtime.Config, rdb redis.UniversalClient,
	open func(c echo.Context, who realtime.Identity, r *realtime.Room) error, mw ...httpx.Middleware) *replica {
	t.Helper()
	reg := prometheus.NewRegistry()
	h, err := realtime.NewHub(cfg, rdb, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	appCfg, err := config.LoadDev("")
	if err != nil {
		t.Fatal(err)
	}
	// The production server with short HTTP timeouts: connections must outlive them.
	hc := appCfg.HTTP
	hc.Addr = "127.0.0.1:0"
	hc.ReadTimeout, hc.ReadHeaderTimeout, hc.WriteTimeout, hc.IdleTimeout = time.Second, time.Second, time.Second, time.Second
	var mws []httpx.Middleware
	mws = append(mws, mw...)
	srv, err := httpx.NewServer(httpx.ServerConfig{HTTP: hc, Logger: slog.New(slog.DiscardHandler), Registerer: reg, Gatherer: reg,
		Middleware: mws,
		Routes: []httpx.Route{{Method: http.MethodGet, Path: "/ws/:room", Summary: "test room", Handler: h.Handler(
			func(c echo.Context, who realtime.Identity) (realtime.Room, error) {
				r := realtime.Room{Name: c.Param("room")}
				if open != nil {
					if err := open(c, who, &r); err != nil {
						return realtime.Room{}, err
					}
				}
				return r, nil
			})}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	rep := &replica{Hub: h, Reg: reg, URL: "ws://" + srv.Addr().String()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := h.Close(ctx); err != nil && !rep.closeErrOK {
			t.Errorf("close hub: %v", err)
		}
	})
	return rep
}

// dial connects to room on r; the connection is closed when the test ends.
func dial(t testing.TB, r *replica, room string, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	c, resp, err := dialErr(r, room, opts)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", room, err, status)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func dialErr(r *replica, room string, opts *websocket.DialOptions) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return websocket.Dial(ctx, r.URL+"/ws/"+room, opts)
}

// readJSON reads one message into v.
func readJSON(t testing.TB, c *websocket.Conn, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decode %q: %v", data, err)
	}
}

// waitViewers polls Viewers until it reports want.
func waitViewers(t testing.TB, h *realtime.Hub, room string, want int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got int64
	for time.Now().Before(deadline) {
		var err error
		got, err = h.Viewers(context.Background(), room)
		if err != nil {
			t.Fatal(err)
		}
		if got == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("viewers of %s = %d, want %d", room, got, want)
}

func redisClient(t testing.TB) (*redis.Client, string) {
	return redisxtest.Client(t), redisxtest.Prefix(t)
}

// smallBufferClient dials with a 4 KiB socket receive buffer.
func smallBufferClient() *http.Client {
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// wantProblem checks a refused handshake's problem+json answer.
func wantProblem(t testing.TB, resp *http.Response, status int, code string) {
	t.Helper()
	if resp == nil {
		t.Fatalf("no HTTP response, want %d %s", status, code)
	}
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d", resp.StatusCode, status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("content type %q, want problem+json", ct)
	}
	var p struct {
		Code string `json:"code"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatalf("decode problem: %v", err)
	}
	if p.Code != code {
		t.Fatalf("problem code %q, want %q", p.Code, code)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
)

var binary, devConfig string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mall-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "mall")
	// The binary's defaults are production's: every test process runs with the development
	// settings, explicitly, unless it builds its environment without them (devConfig).
	if devConfig, err = filepath.Abs("../../configs/development.yaml"); err != nil {
		panic(err)
	}
	os.Setenv("MALL_CONFIG", devConfig)
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building mall:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// env is the environment for a mall process on fresh databases.
func env(t *testing.T, extra ...string) []string {
	t.Helper()
	e, _ := envCluster(t, extra...)
	return e
}

// envCluster is env plus a connection to the same databases, for checks behind the binary.
func envCluster(t *testing.T, extra ...string) ([]string, *sqldb.Cluster) {
	t.Helper()
	cl, db := sqldbtest.NewCluster(t, sqldbtest.Options{Shards: 2})
	redisAddr := os.Getenv("MALL_TEST_REDIS_ADDR")
	if redisAddr == "" {
		t.Fatal("MALL_TEST_REDIS_ADDR is not set: run `make test`")
	}
	e := append(os.Environ(),
		"MALL_DB_MAIN="+db.Main,
		"MALL_DB_SHARDS="+strings.Join(db.Shards, ","),
		"MALL_REDIS_ADDR="+redisAddr,
		"MALL_SEARCH_BLEVE_PATH="+filepath.Join(t.TempDir(), "search"),
		"MALL_AUTH_JWT_KEYS_DIR="+filepath.Join(t.TempDir(), "jwt"),
	)
	return append(e, extra...), cl
}

func run(t *testing.T, environ []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = environ
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestVersionAndConfigPrint(t *testing.T) {
	out, _, code := run(t, os.Environ(), "version")
	if code != 0 || !strings.HasPrefix(out, "mall ") {
		t.Fatalf("version: %d %q", code, out)
	}
	out, _, code = run(t, append(os.Environ(), "MALL_DB_MAIN=mall:topsecret@tcp(db:3306)/mall"), "config", "print")
	if code != 0 || strings.Contains(out, "topsecret") || !strings.Contains(out, "db.main = mall:******@tcp(db:3306)/mall") {
		t.Fatalf("config print: %d\n%s", code, out)
	}
}

func TestBadConfigStopsStartupWithOneLine(t *testing.T) {
	_, stderr, code := run(t, append(os.Environ(), "MALL_ORDER_PAYMENT_TIMEOUT=later"), "serve")
	if code != 2 {
		t.Fatalf("exit code %d, want 2; stderr %q", code, stderr)
	}
	if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "order.payment_timeout") {
		t.Fatalf("want one line naming order.payment_timeout, got %q", stderr)
	}
}

// TestBadConfigNamesEveryKey: bad keys of three modules and of the platform stop startup
// together, a line for each.
func TestBadConfigNamesEveryKey(t *testing.T) {
	_, stderr, code := run(t, append(os.Environ(), "MALL_ORDER_PAYMENT_TIMEOUT=1ms", "MALL_LIVE_VIEWERS_INTERVAL=1ms",
		"MALL_STOCK_MAX_HOLD_PER_BUYER=0", "MALL_HTTP_ADDR=nowhere"), "serve")
	if code != 2 {
		t.Fatalf("exit code %d, want 2; stderr %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i, key := range []string{"http.addr", "stock.max_hold_per_buyer", "order.payment_timeout", "live.viewers_interval"} {
		if len(lines) != 4 || !strings.HasPrefix(lines[i], "mall: config: "+key+": ") {
			t.Fatalf("want four lines naming http.addr, stock, order and live keys, got %q", stderr)
		}
	}
}

func TestUnreachableDatabaseIsAClearStartupError(t *testing.T) {
	e := append(os.Environ(), "MALL_DB_MAIN=mall:mall@tcp("+freeAddr(t)+")/mall", "MALL_DB_SHARDS=")
	_, stderr, code := run(t, e, "serve")
	if code != 1 || !strings.Contains(stderr, "startup:") || !strings.Contains(stderr, "connect main") || strings.Contains(stderr, "mall:mall@") {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
}

func TestMigrateUpAndStatus(t *testing.T) {
	e := env(t)
	if _, stderr, code := run(t, e, "migrate", "up"); code != 0 {
		t.Fatalf("migrate up: %s", stderr)
	}
	out, stderr, code := run(t, e, "migrate", "status")
	if code != 0 || !strings.Contains(out, "0 pending") || !strings.Contains(out, "shard1") {
		t.Fatalf("migrate status %d: %s %s", code, out, stderr)
	}
}

// TestServeReadyAndGracefulStop runs the real binary: it becomes ready, serves the
// operational endpoints, and exits 0 on SIGTERM.
func TestServeReadyAndGracefulStop(t *testing.T) {
	addr := freeAddr(t)
	cmd := exec.Command(binary, "serve")
	const opsToken = "serve-test-ops-token"
	cmd.Env = env(t, "MALL_HTTP_ADDR="+addr, "MALL_HTTP_OPS_TOKEN="+opsToken)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()

	base := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("mall exited early: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 60s\n%s", logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Without the ops token: /readyz says only ready, /metrics is refused.
	if st, body := get(t, base+"/readyz", ""); st != 200 || strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Errorf("public /readyz: %d %s", st, body)
	}
	if st, body := get(t, base+"/metrics", ""); st != 401 {
		t.Errorf("/metrics without the ops token: %d %s", st, body)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"} {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if path == "/readyz" || path == "/metrics" {
			req.Header.Set("Authorization", "Bearer "+opsToken) // not an access token: authentication lets it through
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
		switch path {
		case "/metrics":
			for _, m := range []string{"mall_http_requests_total", "go_goroutines", "go_sql_open_connections", "mall_outbox_backlog"} {
				if !bytes.Contains(body, []byte(m)) {
					t.Errorf("/metrics lacks %s", m)
				}
			}
		case "/openapi.json":
			var doc map[string]any
			if err := json.Unmarshal(body, &doc); err != nil || doc["openapi"] == nil {
				t.Errorf("/openapi.json is not an OpenAPI document: %v", err)
			}
		case "/readyz":
			for _, c := range []string{"mysql:main", "mysql:shard0", "mysql:shard1", "redis", "kafka"} {
				if !bytes.Contains(body, []byte(c)) {
					t.Errorf("/readyz does not report %s: %s", c, body)
				}
			}
		}
	}
	resp, err := http.Get(base + "/no/such/route")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("unknown route: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("did not stop within 30s\n%s", logs.String())
	}
	// Every log line is JSON; the access log carries the request ID.
	sawAccess := false
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["request_id"] != nil && rec["status"] != nil {
			sawAccess = true
		}
	}
	if !sawAccess || !strings.Contains(logs.String(), "mall stopped") {
		t.Fatalf("missing access log or stop line:\n%s", logs.String())
	}
}

// get GETs url with the bearer token (when not empty): status and body.
func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

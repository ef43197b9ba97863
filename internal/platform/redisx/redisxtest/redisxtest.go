// Package redisxtest gives tests Redis: the shared instance started by scripts/services.sh
// (make test exports MALL_TEST_REDIS_ADDR) with a per-test key prefix, or a private
// redis-server process a test may stop and restart to exercise outages.
package redisxtest

import (
	"context"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/redisx"
)

// Addr returns the shared Redis address or fails the test with how to get one.
func Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("MALL_TEST_REDIS_ADDR")
	if addr == "" {
		t.Fatal("MALL_TEST_REDIS_ADDR is not set: run `make test`, or `scripts/services.sh up && eval \"$(scripts/services.sh env)\"`")
	}
	return addr
}

// Client returns a redisx client on the shared Redis, closed when the test ends. Tests
// share database 0 and keep apart by Prefix.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	c, err := redisx.New(config.Redis{Addr: Addr(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Prefix returns a key prefix unique to this test run ("test:<name>:<random>:").
func Prefix(t testing.TB) string {
	name := strings.NewReplacer(" ", "_", "/", ".").Replace(t.Name())
	return "test:" + name + ":" + rand.Text()[:10] + ":"
}

// Server is a private redis-server process.
type Server struct {
	Addr string
	port int
	dir  string
	cmd  *exec.Cmd
}

// StartServer starts a private redis-server on a free port; it is killed when the test
// ends. The binary is redis-server from PATH (or /usr/bin/redis-server).
func StartServer(t testing.TB) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), port: port, dir: t.TempDir()}
	s.Start(t)
	t.Cleanup(s.Stop)
	return s
}

// Start (re)starts the server on its port and waits until it answers PING.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if s.cmd != nil {
		t.Fatal("redisxtest: server already running")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		bin = "/usr/bin/redis-server"
	}
	s.cmd = exec.Command(bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	if err := s.cmd.Start(); err != nil {
		s.cmd = nil
		t.Fatalf("redisxtest: start %s: %v", bin, err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			s.Stop()
			t.Fatalf("redisxtest: redis-server on %s did not answer within 10s", s.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (SIGKILL: an outage, not a clean shutdown). Safe to call twice.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

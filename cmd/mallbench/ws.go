package main

// WebSocket rows: a `mallbench ws-server` process runs the realtime hub behind Mall's HTTP
// stack (httpx.NewServer: the production middleware chain, /metrics) on the bench Redis;
// the rows connect thousands of clients to one of its rooms and publish into the same Redis
// channels through the realtime package, as another replica would.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // ws-server -pprof
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/realtime"
	"github.com/mallhq/mall/internal/platform/redisx"
)

// wsPrefix keeps the bench's realtime channels and presence keys apart.
const wsPrefix = "bench:"

// wsServerCmd serves GET /ws/bench/:room (anonymous, any room) with a realtime hub, plus
// /metrics and POST /debug/memory (a GC, then the Go runtime's memory figures).
func wsServerCmd(args []string) error {
	fs := flag.NewFlagSet("ws-server", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:18084", "listen address")
	redisAddr := fs.String("redis", "127.0.0.1:16379", "Redis address")
	redisDB := fs.Int("redis-db", 9, "Redis database")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this address (empty: off)")
	_ = fs.Parse(args)
	if *pprofAddr != "" {
		go func() { _ = http.ListenAndServe(*pprofAddr, nil) }() // DefaultServeMux: net/http/pprof
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, closeServer, err := startWSServer(*addr, config.Redis{Addr: *redisAddr, DB: *redisDB, PoolSize: 50}, log)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-srv.Done():
	}
	return closeServer()
}

// startWSServer starts the ws server on addr; closeServer stops it.
func startWSServer(addr string, rc config.Redis, log *slog.Logger) (srv *httpx.Server, closeServer func() error, err error) {
	appCfg, err := config.LoadDev("") // the platform keys only; kafka.embedded is never used
	if err != nil {
		return nil, nil, err
	}
	appCfg.HTTP.Addr = addr
	rdb, err := redisx.New(rc)
	if err != nil {
		return nil, nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg := realtime.ConfigFrom(appCfg.Realtime)
	cfg.Prefix = wsPrefix
	cfg.MaxConnections, cfg.MaxRoomConnections = 100000, 100000
	// The load generator is one client network: the per-caller caps would refuse it.
	cfg.MaxConnectionsPerIP, cfg.MaxConnectionsPerUser = 100000, 100000
	hub, err := realtime.NewHub(cfg, rdb, reg, log)
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	if err := hub.Start(context.Background()); err != nil {
		rdb.Close()
		return nil, nil, err
	}
	open := func(c echo.Context, _ realtime.Identity) (realtime.Room, error) {
		return realtime.Room{Name: "bench:" + c.Param("room")}, nil
	}
	srv, err = httpx.NewServer(httpx.ServerConfig{
		HTTP: appCfg.HTTP, Logger: log, Registerer: reg, Gatherer: reg,
		Routes: []httpx.Route{
			{Method: http.MethodGet, Path: "/ws/bench/:room", Summary: "bench room", Handler: hub.Handler(open)},
			{Method: http.MethodPost, Path: "/debug/memory", Summary: "GC, then memory figures", Handler: memoryHandler},
		},
	})
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		_ = hub.Close(context.Background())
		rdb.Close()
		return nil, nil, err
	}
	return srv, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := errors.Join(srv.Shutdown(ctx), hub.Close(ctx), srv.Err())
		rdb.Close()
		return err
	}, nil
}

// memStats is the server's memory after a full GC.
type memStats struct {
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
	RSS        uint64 `json:"rss"`
	Goroutines int    `json:"goroutines"`
	// CPU is the process's user + system CPU time so far.
	CPU time.Duration `json:"cpu"`
}

func memoryHandler(c echo.Context) error {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return c.JSON(http.StatusOK, memStats{HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse, Sys: ms.Sys,
		RSS: readRSS(), Goroutines: runtime.NumGoroutine(), CPU: processCPU()})
}

// processCPU is the process's user + system CPU time, 0 when unknown.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readRSS is the process's resident set (bytes) from /proc/self/statm, 0 when unknown.
func readRSS() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, rss uint64
	if _, err := fmt.Sscan(string(b), &size, &rss); err != nil {
		return 0
	}
	return rss * uint64(os.Getpagesize())
}

// wsClients opens n connections to room on the ws server; each runs onMessage (may be nil:
// the client still reads, which answers pings) until ctx ends. It returns the connections.
func wsClients(ctx context.Context, env *Env, room string, n int, onMessage func([]byte)) ([]*websocket.Conn, error) {
	url := "ws" + strings.TrimPrefix(env.WSURL, "http") + "/ws/bench/" + room
	conns := make([]*websocket.Conn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				c, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPClient: wsDialClient})
				cancel()
				if err != nil {
					errs[w] = fmt.Errorf("connection %d: %w", i, err)
					return
				}
				conns[i] = c
				go func() {
					for {
						_, data, err := c.Read(ctx)
						if err != nil {
							return
						}
						if onMessage != nil {
							onMessage(data)
						}
					}
				}()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

// wsDialClient has no connection limit per host and no timeouts beyond the dial's context.
var wsDialClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}

func closeAll(conns []*websocket.Conn) {
	for _, c := range conns {
		if c != nil {
			c.CloseNow()
		}
	}
}

// waitViewers waits until the hub reports want viewers in room.
func waitViewers(ctx context.Context, hub *realtime.Hub, room string, want int64) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, err := hub.Viewers(ctx, room)
		if err != nil {
			return err
		}
		if n == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("room %s has %d viewers, want %d", room, n, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func serverMemory(ctx context.Context, env *Env) (memStats, error) {
	var m memStats
	err := env.Call(ctx, http.MethodPost, env.WSURL+"/debug/memory", nil, nil, &m)
	return m, err
}

// wsPublisher is a hub on the bench Redis used only to publish (like another replica).
func wsPublisher(env *Env) (*realtime.Hub, func(), error) {
	rdb, err := redisx.New(config.Redis{Addr: env.WSRedis, DB: env.WSRedisDB, PoolSize: 10})
	if err != nil {
		return nil, nil, err
	}
	cfg := realtime.DefaultConfig()
	cfg.Prefix = wsPrefix
	hub, err := realtime.NewHub(cfg, rdb, nil, nil)
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	return hub, func() { rdb.Close() }, nil
}

// wsIdleMemory opens n idle connections and reports the server's memory growth per
// connection (Go heap + goroutine stacks after a GC; the resident set for comparison).
func wsIdleMemory(n int) func(ctx context.Context, env *Env) (Result, string, error) {
	return func(ctx context.Context, env *Env) (Result, string, error) {
		pub, done, err := wsPublisher(env)
		if err != nil {
			return Result{}, "", err
		}
		defer done()
		room := fmt.Sprintf("idle-%d", time.Now().UnixNano())
		before, err := serverMemory(ctx, env)
		if err != nil {
			return Result{}, "", err
		}
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		start := time.Now()
		conns, err := wsClients(cctx, env, room, n, nil)
		if err != nil {
			return Result{}, "", err
		}
		defer closeAll(conns)
		took := time.Since(start)
		if err := waitViewers(ctx, pub, "bench:"+room, int64(n)); err != nil {
			return Result{}, "", err
		}
		time.Sleep(2 * time.Second) // let handshakes' garbage and writer goroutines go
		after, err := serverMemory(ctx, env)
		if err != nil {
			return Result{}, "", err
		}
		goHeap := (float64(after.HeapInuse+after.StackInuse) - float64(before.HeapInuse+before.StackInuse)) / float64(n)
		rss := (float64(after.RSS) - float64(before.RSS)) / float64(n)
		mark := "✗"
		if goHeap <= 24*1024 {
			mark = "✓"
		}
		goal := fmt.Sprintf("%s %.1f KiB/conn ≤ 24 KiB (Go heap + stacks after GC; RSS %.1f KiB/conn; %d goroutines for %d conns)",
			mark, goHeap/1024, rss/1024, after.Goroutines-before.Goroutines, n)
		return Result{Requests: int64(n), Duration: took}, goal, nil
	}
}

// wsBroadcast connects n subscribers to one room and publishes m messages, one every gap;
// latency is Publish -> the last subscriber's receive, per message.
func wsBroadcast(n, m int, gap time.Duration) func(ctx context.Context, env *Env) (Result, string, error) {
	return func(ctx context.Context, env *Env) (Result, string, error) {
		pub, done, err := wsPublisher(env)
		if err != nil {
			return Result{}, "", err
		}
		defer done()
		room := fmt.Sprintf("bcast-%d", time.Now().UnixNano())
		sent := make([]atomic.Int64, m)     // Publish start, Unix ns
		lastRecv := make([]atomic.Int64, m) // latest receive, Unix ns
		received := make([]atomic.Int32, m) // subscribers that got it
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		conns, err := wsClients(cctx, env, room, n, func(data []byte) {
			now := time.Now().UnixNano()
			seq := parseSeq(data)
			if seq < 0 || seq >= m {
				return
			}
			received[seq].Add(1)
			for {
				old := lastRecv[seq].Load()
				if now <= old || lastRecv[seq].CompareAndSwap(old, now) {
					return
				}
			}
		})
		if err != nil {
			return Result{}, "", err
		}
		defer closeAll(conns)
		if err := waitViewers(ctx, pub, "bench:"+room, int64(n)); err != nil {
			return Result{}, "", err
		}
		time.Sleep(time.Second)
		pad := strings.Repeat("x", 100) // a chat line's size
		// Warm-up, as the HTTP rows have: the first broadcasts to a room this size start
		// every connection's writer goroutine from scratch (later ones reuse exited ones).
		for range 3 {
			if err := pub.Publish(ctx, "bench:"+room, map[string]any{"type": "chat", "text": pad}); err != nil {
				return Result{}, "", err
			}
			time.Sleep(gap)
		}
		cpuBefore, err := serverMemory(ctx, env)
		if err != nil {
			return Result{}, "", err
		}
		start := time.Now()
		for i := range m {
			sent[i].Store(time.Now().UnixNano())
			if err := pub.Publish(ctx, "bench:"+room, map[string]any{"type": "chat", "seq": i, "text": pad}); err != nil {
				return Result{}, "", err
			}
			time.Sleep(gap)
		}
		// Wait for stragglers.
		deadline := time.Now().Add(30 * time.Second)
		for received[m-1].Load() < int32(n) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		res := Result{Requests: int64(m), Duration: time.Since(start), ErrKinds: map[string]int64{}}
		var lat []time.Duration
		for i := range m {
			if got := received[i].Load(); got < int32(n) {
				res.Errors++
				res.ErrKinds["missed deliveries"] += int64(n) - int64(got)
				continue
			}
			lat = append(lat, time.Duration(lastRecv[i].Load()-sent[i].Load()))
		}
		slices.Sort(lat)
		res.P50, res.P99 = percentile(lat, 0.50), percentile(lat, 0.99)
		cpuAfter, err := serverMemory(ctx, env)
		if err != nil {
			return Result{}, "", err
		}
		perMsg := (cpuAfter.CPU - cpuBefore.CPU) / time.Duration(m) // includes one GC per reading
		return res, fmt.Sprintf("%s; server CPU %s per message (%.1f µs per delivery); load average %s",
			p99AtMost(250*time.Millisecond)(res, Result{}), fmtDur(perMsg), float64(perMsg.Microseconds())/float64(n), loadAverage()), nil
	}
}

// wsScenarios are the WebSocket rows (after the HTTP rows).
var wsScenarios = []Scenario{
	{
		// 5,000 idle subscribers of one room; the rate column is connections opened per
		// second (16 dialers), the goal column the server's memory per connection.
		Name:    "WebSocket: 5,000 idle connections (memory per connection)",
		Target:  TargetWS,
		Measure: wsIdleMemory(5000),
	},
	{
		// 5,000 subscribers of one room, 3 warm-up messages then 40 chat-sized messages (one every 500 ms) published
		// into Redis as another replica would; latency is Publish -> the 5,000th receive, per
		// message (the bench's 5,000 readers share the CPUs with the server).
		Name:    "WebSocket: broadcast to 5,000 subscribers (publish -> last receive)",
		Target:  TargetWS,
		Measure: wsBroadcast(5000, 40, 500*time.Millisecond),
	},
}

// parseSeq reads the "seq" number of a broadcast message without a JSON decoder (5,000
// clients decode every message on the machine being measured); -1 when there is none.
func parseSeq(data []byte) int {
	_, rest, ok := bytes.Cut(data, []byte(`"seq":`))
	if !ok {
		return -1
	}
	n, digits := 0, 0
	for _, b := range rest {
		if b < '0' || b > '9' {
			break
		}
		n = n*10 + int(b-'0')
		digits++
	}
	if digits == 0 || digits > 9 {
		return -1
	}
	return n
}

// loadAverage is the 1-minute load average ("?" when unknown): on a shared 2-core machine
// the latency rows mostly measure the other work.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

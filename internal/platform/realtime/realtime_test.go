package realtime_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/metrics"
	"github.com/mallhq/mall/internal/platform/realtime"
	"github.com/mallhq/mall/internal/platform/redisx"
	"github.com/mallhq/mall/internal/platform/redisx/redisxtest"
)

type numbered struct {
	Type string `json:"type"`
	From string `json:"from,omitempty"`
	N    int    `json:"n"`
}

func TestSingleReplicaDelivery(t *testing.T) {
	rdb, prefix := redisClient(t)
	r := newReplica(t, testConfig(prefix), rdb, nil)
	a := dial(t, r, "live:1", nil)
	b := dial(t, r, "live:1", nil)
	other := dial(t, r, "live:2", nil)
	waitViewers(t, r.Hub, "live:1", 2)
	waitViewers(t, r.Hub, "live:2", 1)

	for i := range 10 {
		if err := r.Hub.Publish(context.Background(), "live:1", numbered{Type: "n", N: i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Hub.Publish(context.Background(), "live:2", numbered{Type: "other", N: 99}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*websocket.Conn{a, b} {
		for i := range 10 {
			var m numbered
			readJSON(t, c, &m)
			if m.N != i || m.Type != "n" {
				t.Fatalf("message %d: got %+v", i, m)
			}
		}
	}
	var m numbered
	readJSON(t, other, &m)
	if m.N != 99 {
		t.Fatalf("room live:2 got %+v, want only its own message", m)
	}
	// The counter moves after the write returns, which can be just after the client read it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, _ := metrics.Value(r.Reg, realtime.MetricMessages, map[string]string{"direction": "out"})
		if n == 21 {
			break
		}
		if n > 21 || time.Now().After(deadline) {
			t.Fatalf("%s{out} = %v, want 21", realtime.MetricMessages, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n, _ := metrics.Value(r.Reg, realtime.MetricConnections, nil); n != 3 {
		t.Fatalf("%s = %v, want 3", realtime.MetricConnections, n)
	}
}

// TestWelcomeFirst: open's Welcome messages precede every room message, and a connection
// that leaves is no longer counted.
func TestWelcomeFirst(t *testing.T) {
	rdb, prefix := redisClient(t)
	r := newReplica(t, testConfig(prefix), rdb, func(_ echo.Context, _ realtime.Identity, rm *realtime.Room) error {
		rm.Welcome = []any{numbered{Type: "state", N: -2}, numbered{Type: "state", N: -1}}
		return nil
	})
	c := dial(t, r, "auction:7", nil)
	if err := r.Hub.Publish(context.Background(), "auction:7", numbered{Type: "bid", N: 1}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int{-2, -1, 1} {
		var m numbered
		readJSON(t, c, &m)
		if m.N != want {
			t.Fatalf("got %+v, want n=%d", m, want)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	waitViewers(t, r.Hub, "auction:7", 0)
}

// TestTwoReplicasSameOrder is the cross-replica contract: two hubs on one Redis, clients on
// both, 500 messages published concurrently from both; every client sees the same 500
// messages in the same order, and the viewer count adds up on either replica.
func TestTwoReplicasSameOrder(t *testing.T) {
	rdb, prefix := redisClient(t)
	cfg := testConfig(prefix)
	cfg.SendQueue = 1024 // this test is about order, not about slow clients
	ra := newReplica(t, cfg, rdb, nil)
	rb := newReplica(t, cfg, redisxtest.Client(t), nil)
	const room, perReplica, clientsPer = "live:42", 250, 3
	var clients []*websocket.Conn
	for range clientsPer {
		clients = append(clients, dial(t, ra, room, nil), dial(t, rb, room, nil))
	}
	waitViewers(t, ra.Hub, room, 2*clientsPer)
	waitViewers(t, rb.Hub, room, 2*clientsPer)

	got := make([][]numbered, len(clients))
	var readers sync.WaitGroup
	for i, c := range clients {
		readers.Add(1)
		go func() {
			defer readers.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for range 2 * perReplica {
				var m numbered
				if err := readCtx(ctx, c, &m); err != nil {
					t.Errorf("client %d after %d messages: %v", i, len(got[i]), err)
					return
				}
				got[i] = append(got[i], m)
			}
		}()
	}
	// Four publishers per replica, each publishing its share in order.
	var pubs sync.WaitGroup
	for _, r := range []struct {
		name string
		rep  *replica
	}{{"a", ra}, {"b", rb}} {
		for p := range 4 {
			pubs.Add(1)
			go func() {
				defer pubs.Done()
				for n := p; n < perReplica; n += 4 {
					if err := r.rep.Hub.Publish(context.Background(), room, numbered{Type: "n", From: r.name, N: n}); err != nil {
						t.Errorf("publish: %v", err)
						return
					}
				}
			}()
		}
	}
	pubs.Wait()
	readers.Wait()
	if t.Failed() {
		return
	}
	for i := range got {
		if len(got[i]) != 2*perReplica {
			t.Fatalf("client %d got %d messages, want %d", i, len(got[i]), 2*perReplica)
		}
		for j := range got[i] {
			if got[i][j] != got[0][j] {
				t.Fatalf("client %d message %d = %+v, client 0 saw %+v: order differs", i, j, got[i][j], got[0][j])
			}
		}
	}
	// Every message exactly once, each publisher's in its own order.
	seen := map[string]bool{}
	last := map[string]int{}
	for _, m := range got[0] {
		k := fmt.Sprintf("%s%d", m.From, m.N)
		if seen[k] {
			t.Fatalf("message %s delivered twice", k)
		}
		seen[k] = true
		pub := fmt.Sprintf("%s%d", m.From, m.N%4)
		if prev, ok := last[pub]; ok && prev > m.N {
			t.Fatalf("publisher %s: %d after %d", pub, m.N, prev)
		}
		last[pub] = m.N
	}
}

func readCtx(ctx context.Context, c *websocket.Conn, v any) error {
	_, data, err := c.Read(ctx)
	if err != nil {
		return err
	}
	return jsonUnmarshal(data, v)
}

// TestViewersAcrossReplicas: counts add up across replicas, follow leaves, and a replica
// that stops refreshing (crashed, or cut off from Redis) drops out after PresenceTTL.
func TestViewersAcrossReplicas(t *testing.T) {
	rdb, prefix := redisClient(t)
	cfg := testConfig(prefix)
	ra := newReplica(t, cfg, rdb, nil)
	doomedRedis := redisxtest.Client(t)
	rb := newReplica(t, cfg, doomedRedis, nil)
	rb.closeErrOK = true
	const room = "live:9"
	a1 := dial(t, ra, room, nil)
	dial(t, ra, room, nil)
	for range 3 {
		dial(t, rb, room, nil)
	}
	waitViewers(t, ra.Hub, room, 5)
	waitViewers(t, rb.Hub, room, 5)
	a1.Close(websocket.StatusNormalClosure, "")
	waitViewers(t, rb.Hub, room, 4)

	// Replica b loses Redis for good: its three viewers must expire from a's count.
	doomedRedis.Close()
	start := time.Now()
	waitViewers(t, ra.Hub, room, 1)
	if took := time.Since(start); took < cfg.PresenceTTL/2 {
		t.Fatalf("b's viewers vanished after %v, before its last refresh could expire (ttl %v)", took, cfg.PresenceTTL)
	}
}

func TestForeignOriginRefused(t *testing.T) {
	rdb, prefix := redisClient(t)
	cfg := testConfig(prefix)
	cfg.AllowedOrigins = []string{"shop.example.com", "https://*.mall.example"}
	r := newReplica(t, cfg, rdb, nil)
	for _, tt := range []struct {
		origin string
		ok     bool
	}{
		{"", true}, // not a browser
		{"http://" + strings.TrimPrefix(r.URL, "ws://"), true}, // same host
		{"https://shop.example.com", true},
		{"https://live.mall.example", true},
		{"http://live.mall.example", false}, // scheme pinned by the pattern
		{"https://evil.example", false},
		{"https://shop.example.com.evil.example", false},
		{"null", false},
	} {
		t.Run(tt.origin, func(t *testing.T) {
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			c, resp, err := dialErr(r, "live:1", &websocket.DialOptions{HTTPHeader: h})
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				c.CloseNow()
				return
			}
			if err == nil {
				c.CloseNow()
				t.Fatal("foreign origin accepted")
			}
			wantProblem(t, resp, http.StatusForbidden, "realtime.origin_refused")
		})
	}
	if n, _ := metrics.Value(r.Reg, realtime.MetricRefused, map[string]string{"reason": "origin"}); n != 4 {
		t.Fatalf("refused{origin} = %v, want 4", n)
	}
}

func TestOversizedFrameClosesConnection(t *testing.T) {
	rdb, prefix := redisClient(t)
	cfg := testConfig(prefix)
	cfg.MaxMessageBytes = 1024
	var mu sync.Mutex
	var handled []string
	r := newReplica(t, cfg, rdb, func(_ echo.Context, _ realtime.Identity, rm *realtime.Room) error {
		rm.OnMessage = func(_ context.Context, _ realtime.Identity, data []byte) error {
			mu.Lock()
			defer mu.Unlock()
			handled = append(handled, string(data))
			return nil
		}
		return nil
	})
	c := dial(t, r, "live:1", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(strings.Repeat("a", 1024))); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(strings.Repeat("b", 1025))); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
		t.Fatalf("read after oversized frame: %v (status %d), want close %d", err, got, websocket.StatusMessageTooBig)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(handled) != 1 || len(handled[0]) != 1024 {
		t.Fatalf("handled %d messages, want only the 1024-byte one", len(handled))
	}
	waitViewers(t, r.Hub, "live:1", 0)
}

// TestSlowConsumerDropped: a client that never reads is dropped once SendQueue messages
// wait for it; the others in the room still get every message, in order.
func TestSlowConsumerDropped(t *testing.T) {
	rdb, prefix := redisClient(t)
	cfg := testConfig(prefix)
	cfg.SendQueue = 16
	cfg.PingInterval = time.Hour // the drop must come from the queue, not a missed pong
	r := newReplica(t, cfg, rdb, nil)
	const room = "live:5"
	// A small receive buffer so the kernel does not absorb megabytes for the client that
	// never reads.
	dial(t, r, room, &websocket.DialOptions{HTTPClient: smallBufferClient()})
	var fast []*websocket.Conn
	for range 3 {
		c := dial(t, r, room, nil)
		c.SetReadLimit(-1)
		fast = append(fast, c)
	}
	waitViewers(t, r.Hub, room, 4)

	type msg struct {
		N   int    `json:"n"`
		End bool   `json:"end"`
		Pad string `json:"pad"`
	}
	counts := make([]atomic.Int64, len(fast))
	var readers sync.WaitGroup
	for i, c := range fast {
		readers.Add(1)
		go func() {
			defer readers.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			for n := 0; ; n++ {
				var m msg
				if err := readCtx(ctx, c, &m); err != nil {
					t.Errorf("fast client %d at %d: %v", i, n, err)
					return
				}
				if m.End {
					return
				}
				if m.N != n {
					t.Errorf("fast client %d: got %d, want %d", i, m.N, n)
					return
				}
				counts[i].Add(1)
			}
		}()
	}
	dropped := func() float64 {
		d, _ := metrics.Value(r.Reg, realtime.MetricDrops, map[string]string{"reason": "slow_consumer"})
		w, _ := metrics.Value(r.Reg, realtime.MetricDrops, map[string]string{"reason": "write_failed"})
		return d + w
	}
	pad := strings.Repeat("x", 16<<10)
	start := time.Now()
	sent, after := 0, 0
	for ; after < 50; sent++ {
		if sent > 20000 {
			t.Fatalf("the client that never reads was not dropped after %d messages", sent)
		}
		if err := r.Hub.Publish(context.Background(), room, msg{N: sent, Pad: pad}); err != nil {
			t.Fatal(err)
		}
		if dropped() > 0 {
			after++ // keep going: the others must not notice
		}
		// The reading clients stay at most 4 messages behind (well inside SendQueue, even on
		// a loaded machine); only the one that never reads falls further back.
		for !t.Failed() {
			behind := false
			for i := range counts {
				if int64(sent)-counts[i].Load() > 4 {
					behind = true
				}
			}
			if !behind {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	if err := r.Hub.Publish(context.Background(), room, msg{End: true}); err != nil {
		t.Fatal(err)
	}
	t.Logf("dropped the client that never reads after %d messages of 16 KiB, %v", sent-after, time.Since(start))
	readers.Wait()
	for i := range counts {
		if n := counts[i].Load(); n != int64(sent) {
			t.Fatalf("fast client %d got %d of %d messages", i, n, sent)
		}
	}
	waitViewers(t, r.Hub, room, 3)
	if d := dropped(); d != 1 {
		t.Fatalf("drops = %v, want 1", d)
	}
}

func TestConnectionCaps(t *testing.T) {
	rdb, prefix := redisClient(t)
	cfg := testConfig(prefix)
	cfg.MaxConnections = 3
	cfg.MaxRoomConnections = 2
	r := newReplica(t, cfg, rdb, nil)
	dial(t, r, "live:1", nil)
	c2 := dial(t, r, "live:1", nil)
	_, resp, err := dialErr(r, "live:1", nil)
	if err == nil {
		t.Fatal("third connection to a room capped at 2 was accepted")
	}
	wantProblem(t, resp, http.StatusServiceUnavailable, "realtime.room_full")
	dial(t, r, "live:2", nil)
	_, resp, err = dialErr(r, "live:3", nil)
	if err == nil {
		t.Fatal("fourth connection to a replica capped at 3 was accepted")
	}
	wantProblem(t, resp, http.StatusServiceUnavailable, "realtime.too_many_connections")
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	// A place frees up when a connection leaves.
	c2.Close(websocket.StatusNormalClosure, "")
	waitViewers(t, r.Hub, "live:1", 1)
	dial(t, r, "live:3", nil)
}

// TestCapsUnderConcurrency: 40 clients race for a replica capped at 10; exactly 10 get in.
func TestCapsUnderConcurrency(t *testing.T) {
	rdb, prefix := redisClient(t)
	cfg := testConfig(prefix)
	cfg.MaxConnections = 10
	r := newReplica(t, cfg, rdb, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, resp, err := dialErr(r, "live:1", nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
				t.Cleanup(func() { c.CloseNow() })
			case resp != nil && resp.StatusCode == http.StatusServiceUnavailable:
				refused++
			default:
				t.Errorf("dial: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 10 || refused != 30 {
		t.Fatalf("accepted %d, refused %d; want 10 and 30", ok, refused)
	}
	waitViewers(t, r.Hub, "live:1", 10)
}

func TestOnMessageErrorGoesToSender(t *testing.T) {
	rdb, prefix := redisClient(t)
	limited := errs.New(errs.TooManyRequests, "live.chat_rate_limited")
	r := newReplica(t, testConfig(prefix), rdb, func(_ echo.Context, _ realtime.Identity, rm *realtime.Room) error {
		rm.OnMessage = func(ctx context.Context, who realtime.Identity, data []byte) error {
			switch string(data) {
			case "spam":
				return limited.WithDetail("slow down")
			case "boom":
				return errors.New("database on fire")
			}
			return nil
		}
		return nil
	})
	c := dial(t, r, "live:1", nil)
	bystander := dial(t, r, "live:1", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, tt := range []struct{ give, code, detail string }{
		{"spam", "live.chat_rate_limited", "slow down"},
		{"boom", "internal", "the message could not be handled"},
	} {
		if err := c.Write(ctx, websocket.MessageText, []byte(tt.give)); err != nil {
			t.Fatal(err)
		}
		var got struct{ Type, Code, Detail string }
		readJSON(t, c, &got)
		if got.Type != "error" || got.Code != tt.code || got.Detail != tt.detail {
			t.Fatalf("%s: got %+v", tt.give, got)
		}
	}
	if err := c.Write(ctx, websocket.MessageBinary, []byte("spam")); err != nil {
		t.Fatal(err)
	}
	var bin struct{ Type, Code string }
	readJSON(t, c, &bin)
	if bin.Type != "error" || bin.Code != "realtime.text_only" {
		t.Fatalf("binary frame: got %+v", bin)
	}
	// Still open, and the errors went to the sender only.
	if err := r.Hub.Publish(ctx, "live:1", numbered{Type: "after", N: 1}); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*websocket.Conn{c, bystander} {
		var m numbered
		readJSON(t, cl, &m)
		if m.Type != "after" {
			t.Fatalf("got %+v, want the room message", m)
		}
	}
}

// TestPingClosesSilentClient: a client that never answers pings (it never reads, so its
// library never sends a pong) is closed after PongTimeout.
func TestPingClosesSilentClient(t *testing.T) {
	rdb, prefix := redisClient(t)
	cfg := testConfig(prefix)
	cfg.PingInterval = 500 * time.Millisecond
	cfg.PongTimeout = time.Second
	r := newReplica(t, cfg, rdb, nil)
	live := dial(t, r, "live:1", nil)
	// The live client reads in the background, which answers pings.
	go func() {
		for {
			if _, _, err := live.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	dial(t, r, "live:1", nil) // never reads
	waitViewers(t, r.Hub, "live:1", 1)
	if n, _ := metrics.Value(r.Reg, realtime.MetricDrops, map[string]string{"reason": "pong_timeout"}); n != 1 {
		t.Fatalf("drops{pong_timeout} = %v, want 1", n)
	}
	// Several ping rounds later the answering client is still there.
	time.Sleep(2 * cfg.PingInterval)
	waitViewers(t, r.Hub, "live:1", 1)
}

func TestShutdownClosesWithGoingAway(t *testing.T) {
	rdb, prefix := redisClient(t)
	r := newReplica(t, testConfig(prefix), rdb, nil)
	c := dial(t, r, "live:1", nil)
	silent := dial(t, r, "live:1", nil) // never answers the close handshake
	waitViewers(t, r.Hub, "live:1", 2)
	closed := make(chan error, 1)
	go func() {
		_, _, err := c.Read(context.Background())
		closed <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := r.Hub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("Close took %v with a silent client", took)
	}
	if err := <-closed; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("read after shutdown: %v, want close %d", err, websocket.StatusGoingAway)
	}
	if _, _, err := silent.Read(ctx); err == nil {
		t.Fatal("silent client still open after shutdown")
	}
	if n, _ := rdb.HLen(ctx, prefix+"rt:presence:live:1").Result(); n != 0 {
		t.Fatalf("presence hash keeps %d fields after shutdown", n)
	}
	if _, resp, err := dialErr(r, "live:1", nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after shutdown: %v, want 503", err)
	}
}

func TestPlainHTTPRefused(t *testing.T) {
	rdb, prefix := redisClient(t)
	r := newReplica(t, testConfig(prefix), rdb, nil)
	resp, err := http.Get("http" + strings.TrimPrefix(r.URL, "ws") + "/ws/live:1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	wantProblem(t, resp, http.StatusBadRequest, "realtime.websocket_required")
}

func TestOpenErrorRefusesBeforeUpgrade(t *testing.T) {
	rdb, prefix := redisClient(t)
	r := newReplica(t, testConfig(prefix), rdb, func(echo.Context, realtime.Identity, *realtime.Room) error {
		return errs.ErrNotFound.WithDetail("no such room")
	})
	_, resp, err := dialErr(r, "live:404", nil)
	if err == nil {
		t.Fatal("accepted")
	}
	wantProblem(t, resp, http.StatusNotFound, "not_found")
	if n, _ := metrics.Value(r.Reg, realtime.MetricConnections, nil); n != 0 {
		t.Fatalf("%s = %v after a refused open, want 0", realtime.MetricConnections, n)
	}
}

// TestStuckWriteDropped: with a queue too long to fill, a client that stops reading is
// dropped by the write timeout instead.
func TestStuckWriteDropped(t *testing.T) {
	rdb, prefix := redisClient(t)
	cfg := testConfig(prefix)
	cfg.SendQueue = 100000
	cfg.WriteTimeout = time.Second
	cfg.PingInterval = time.Hour
	r := newReplica(t, cfg, rdb, nil)
	dial(t, r, "live:1", &websocket.DialOptions{HTTPClient: smallBufferClient()})
	waitViewers(t, r.Hub, "live:1", 1)
	pad := strings.Repeat("x", 16<<10)
	for i := range 2000 {
		if err := r.Hub.Publish(context.Background(), "live:1", map[string]any{"n": i, "pad": pad}); err != nil {
			t.Fatal(err)
		}
		if n, _ := metrics.Value(r.Reg, realtime.MetricDrops, map[string]string{"reason": "write_failed"}); n == 1 {
			waitViewers(t, r.Hub, "live:1", 0)
			return
		}
		if i%50 == 49 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Fatal("a client whose writes block was not dropped")
}

// TestOutlivesHTTPTimeouts: the server's read and write timeouts (1 s in these tests) do not
// cut an upgraded connection.
func TestOutlivesHTTPTimeouts(t *testing.T) {
	rdb, prefix := redisClient(t)
	got := make(chan string, 1)
	r := newReplica(t, testConfig(prefix), rdb, func(_ echo.Context, _ realtime.Identity, rm *realtime.Room) error {
		rm.OnMessage = func(_ context.Context, _ realtime.Identity, data []byte) error {
			got <- string(data)
			return nil
		}
		return nil
	})
	c := dial(t, r, "live:1", nil)
	time.Sleep(2500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != "still here" {
		t.Fatalf("got %q", m)
	}
	if err := r.Hub.Publish(ctx, "live:1", numbered{Type: "late", N: 1}); err != nil {
		t.Fatal(err)
	}
	var m numbered
	readJSON(t, c, &m)
	if m.Type != "late" {
		t.Fatalf("got %+v", m)
	}
}

// TestRedisRestartHeals: Redis restarts (losing every subscription and presence hash); the
// hub re-subscribes by itself, later messages arrive again and presence is rewritten. What
// was published during the outage is lost (at most once).
func TestRedisRestartHeals(t *testing.T) {
	srv := redisxtest.StartServer(t)
	rdb, err := redisx.New(config.Redis{Addr: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	r := newReplica(t, testConfig("rt:"), rdb, nil)
	c := dial(t, r, "live:1", nil)
	waitViewers(t, r.Hub, "live:1", 1)

	srv.Stop()
	srv.Start(t)

	received := make(chan numbered, 100)
	go func() {
		for {
			var m numbered
			if err := readCtx(context.Background(), c, &m); err != nil {
				return
			}
			received <- m
		}
	}()
	deadline := time.After(60 * time.Second)
	for n := 0; ; n++ {
		// Publish fails while Redis is down or the client reconnects; keep trying.
		_ = r.Hub.Publish(context.Background(), "live:1", numbered{Type: "after-restart", N: n})
		select {
		case m := <-received:
			if m.Type != "after-restart" {
				t.Fatalf("got %+v", m)
			}
			for i := 0; ; i++ {
				n, _ := rdb.HLen(context.Background(), "rt:rt:presence:live:1").Result()
				if n == 1 {
					break
				}
				if i == 100 {
					t.Fatalf("presence hash has %d fields 10 s after the restart, want 1 (rewritten)", n)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if subs, _ := metrics.Value(r.Reg, realtime.MetricSubscriptions, nil); subs < 2 {
				t.Fatalf("%s = %v, want a re-subscription", realtime.MetricSubscriptions, subs)
			}
			return
		case <-deadline:
			t.Fatal("no message reached the client within 60 s of the Redis restart")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestRedisDownRefuses: without Redis a room cannot be subscribed; the handshake is refused
// with 503 instead of a connection that would never receive anything.
func TestRedisDownRefuses(t *testing.T) {
	srv := redisxtest.StartServer(t)
	rdb, err := redisx.New(config.Redis{Addr: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	r := newReplica(t, testConfig("rt:"), rdb, nil)
	r.closeErrOK = true
	srv.Stop()
	_, resp, err := dialErr(r, "live:1", nil)
	if err == nil {
		t.Fatal("accepted without Redis")
	}
	wantProblem(t, resp, http.StatusServiceUnavailable, "service.unavailable")
	if n, _ := metrics.Value(r.Reg, realtime.MetricConnections, nil); n != 0 {
		t.Fatalf("%s = %v after the refusal, want 0", realtime.MetricConnections, n)
	}
	// Redis back: the room opens.
	srv.Start(t)
	dial(t, r, "live:1", nil)
}

// TestPingsSpreadOverTheInterval: every connection is pinged once per PingInterval, but
// not all at once: 60 connections of one room get their pings in many distinct moments
// across the interval (slots), so no burst of pings and pongs delays the room's messages.
func TestPingsSpreadOverTheInterval(t *testing.T) {
	rdb, prefix := redisClient(t)
	cfg := testConfig(prefix)
	cfg.PingInterval = 1500 * time.Millisecond
	r := newReplica(t, cfg, rdb, nil)
	const n = 60
	var (
		mu    sync.Mutex
		pings = map[int][]time.Time{}
	)
	for i := range n {
		c := dial(t, r, "spread:1", &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
			mu.Lock()
			pings[i] = append(pings[i], time.Now())
			mu.Unlock()
			return true // answer with a pong
		}})
		go func() { // reading is what processes (and answers) pings
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
			}
		}()
	}
	waitViewers(t, r.Hub, "spread:1", n)
	time.Sleep(2*cfg.PingInterval + cfg.PingInterval/2)
	mu.Lock()
	defer mu.Unlock()
	moments := map[int64]bool{} // pings rounded to 25 ms
	for i := range n {
		ps := pings[i]
		if len(ps) < 2 {
			t.Fatalf("connection %d got %d pings in 2.5 intervals, want at least 2", i, len(ps))
		}
		for j := 1; j < len(ps); j++ {
			if gap := ps[j].Sub(ps[j-1]); gap < cfg.PingInterval*8/10 || gap > cfg.PingInterval*12/10 {
				t.Fatalf("connection %d: pings %s apart, want about %s", i, gap, cfg.PingInterval)
			}
		}
		for _, p := range ps {
			moments[p.UnixMilli()/25] = true
		}
	}
	// All at once would be one or two moments per round; in slots, up to 30 per round.
	if len(moments) < 20 {
		t.Fatalf("pings of %d connections fell in %d moments: not spread", n, len(moments))
	}
	t.Logf("pings of %d connections in %d distinct 25 ms moments", n, len(moments))
}

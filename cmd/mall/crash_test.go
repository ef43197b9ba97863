package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/platform/sqldb"
)

// TestCrashSafetyUnderOrderTraffic kills the real binary (SIGKILL) several times while
// buyers place orders, restarts it on the same port and databases, and then checks that
// nothing acknowledged was lost and that the stock converges:
//
//   - every order acknowledged with 201 exists (GET as its buyer: 200) and is pending or
//     cancelled;
//   - every reservation belongs to a live pending order or is released once its hold
//     (order.payment_timeout + order.hold_grace) has passed: a kill between stock.Reserve
//     and the order insert on the buyer's shard leaves a hold without an order, which only
//     the stock sweeper releases;
//   - no counter is negative, on_hand = available + reserved + sold, reserved matches the
//     held reservations, and `mall stock check` exits 0.
//
// The embedded Kafka broker (kafka.embedded, kfake) lives in the process and dies with it.
// The outbox makes publishing durable: an event not yet published is published after the
// restart. But an event already published (its outbox row marked) and not yet consumed is
// lost with the broker. For the order->stock reactions this means an order.cancelled may
// never reach stock.Release: the cancelled order's units stay held until the hold expires
// and the stock sweeper releases them. The sweeper is the safety net, so the checks below
// wait one whole hold period and do not require prompt releases. The same loss of an
// order.paid would leave a paid order's hold to expire and be released instead of
// confirmed (the units sold twice; the counters stay consistent, so `mall stock check`
// cannot see it): this test pays nothing, and config validation refuses kafka.embedded in
// production, where a real cluster keeps published events and redelivers them.
func TestCrashSafetyUnderOrderTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the server several times")
	}
	const (
		paymentTimeout = 3 * time.Second
		holdGrace      = 2 * time.Second
		kills          = 4
		clients        = 20 // four per buyer
		scarceUnits    = 6
	)
	started := time.Now()
	addr := freeAddr(t)
	e, cl := envCluster(t, "MALL_HTTP_ADDR="+addr,
		"MALL_CATALOG_REVIEW_REQUIRED=false",
		"MALL_RATELIMIT_ENABLED=false",
		"MALL_ORDER_PAYMENT_TIMEOUT="+paymentTimeout.String(),
		"MALL_ORDER_HOLD_GRACE="+holdGrace.String(),
		"MALL_STOCK_SWEEP_INTERVAL=500ms",
		// A killed request leaves its Idempotency-Key in flight; a retry takes it over
		// after the lock timeout (60s by default).
		"MALL_IDEMPOTENCY_LOCK_TIMEOUT=3s",
	)
	if out, stderr, code := run(t, e, "seed", "--products", "8"); code != 0 {
		t.Fatalf("seed: exit %d\n%s\n%s", code, out, stderr)
	}
	t.Logf("seeded in %s", time.Since(started).Round(time.Millisecond))
	ctx := context.Background()
	mainDB := cl.Main()

	// Eight SKUs; the first four get scarce stock (set before the server runs, while no
	// reservation exists), so checkouts run out of them and answer 409.
	var skus []int64
	if err := mainDB.SelectContext(ctx, &skus, `SELECT sku_id FROM stock_levels ORDER BY sku_id LIMIT 8`); err != nil {
		t.Fatal(err)
	}
	if len(skus) < 8 {
		t.Fatalf("the seed made %d SKUs, want 8", len(skus))
	}
	for _, id := range skus[:4] {
		if _, err := mainDB.ExecContext(ctx, `UPDATE stock_levels SET on_hand = ?, available = ? WHERE sku_id = ? AND reserved = 0 AND sold = 0`,
			scarceUnits, scarceUnits, id); err != nil {
			t.Fatal(err)
		}
	}
	onHand := map[int64]int64{}
	var levels []struct {
		SKU    int64 `db:"sku_id"`
		OnHand int64 `db:"on_hand"`
	}
	if err := mainDB.SelectContext(ctx, &levels, `SELECT sku_id, on_hand FROM stock_levels`); err != nil {
		t.Fatal(err)
	}
	for _, l := range levels {
		onHand[l.SKU] = l.OnHand
	}

	srv := &crashServer{t: t, env: e, base: "http://" + addr}
	srv.start()
	t.Cleanup(srv.kill)

	// Buyers with an address each (password hashing under -race is slow: a few at a time).
	buyers := make([]*crashBuyer, clients/4)
	var setup sync.WaitGroup
	sem := make(chan struct{}, 3)
	for i := range buyers {
		buyers[i] = &crashBuyer{base: srv.base, email: fmt.Sprintf("crash%d@mall.test", i)}
		setup.Add(1)
		go func() {
			defer setup.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			buyers[i].setup()
		}()
	}
	setup.Wait()
	for _, b := range buyers {
		if b.err != nil {
			t.Fatal(b.err)
		}
	}

	t.Logf("buyers ready %s after the start", time.Since(started).Round(time.Millisecond))

	// Traffic: every client places 2-SKU checkouts with an Idempotency-Key, retries the same
	// key after a transport error (the server may be down) or 409 idempotency.in_progress
	// (the killed request's key, until the lock timeout), and cancels some of its orders.
	var (
		mu       sync.Mutex
		acked    = map[int64]*crashBuyer{} // order ID -> buyer, from 201 answers
		placed   atomic.Int64
		refused  atomic.Int64 // 409 stock.insufficient
		replayed atomic.Int64 // answers replayed for a retried key
		takeover atomic.Int64 // retries after 409 idempotency.in_progress
		connErrs atomic.Int64
		other    = map[string]int{}
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	stopTraffic := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	t.Cleanup(stopTraffic) // also when the test fails half-way
	for c := range clients {
		b := buyers[c%len(buyers)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(b.id), uint64(c)))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := r.IntN(len(skus))
				j := (i + 1 + r.IntN(len(skus)-1)) % len(skus)
				body := fmt.Sprintf(`{"items":[{"sku_id":"%d","quantity":%d},{"sku_id":"%d","quantity":%d}],"address_id":"%d"}`,
					skus[i], 1+r.IntN(2), skus[j], 1+r.IntN(2), b.address)
				key := fmt.Sprintf("crash-%d-%d", c, n)
				var status int
				var resp []byte
				var hdr http.Header
				// Retry for longer than a restart (slow under -race on a busy machine) plus
				// the idempotency lock timeout.
				for giveUp := time.Now().Add(30 * time.Second); ; {
					var err error
					status, resp, hdr, err = b.doHeader("POST", "/api/v1/orders", body, key)
					inProgress := status == http.StatusConflict && bytes.Contains(resp, []byte(`"idempotency.in_progress"`))
					if (err == nil && !inProgress) || time.Now().After(giveUp) {
						break
					}
					if err != nil {
						connErrs.Add(1)
					} else {
						takeover.Add(1)
					}
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
				if hdr.Get("Idempotent-Replayed") != "" {
					replayed.Add(1)
				}
				switch {
				case status == http.StatusCreated:
					var c struct {
						Orders []struct {
							ID string `json:"id"`
						} `json:"orders"`
					}
					if err := json.Unmarshal(resp, &c); err != nil || len(c.Orders) == 0 {
						mu.Lock()
						other["bad 201: "+string(resp)]++
						mu.Unlock()
						continue
					}
					placed.Add(1)
					mu.Lock()
					for _, o := range c.Orders {
						id, _ := strconv.ParseInt(o.ID, 10, 64)
						acked[id] = b
					}
					mu.Unlock()
					if r.IntN(4) == 0 {
						_, _, _ = b.do("POST", "/api/v1/orders/"+c.Orders[0].ID+"/cancel", "", "")
					}
				case status == http.StatusConflict && bytes.Contains(resp, []byte(`"stock.insufficient"`)):
					refused.Add(1)
				default:
					// 409 idempotency.in_progress (the killed request still owns the key),
					// 503 while starting or stopping, ...: tolerated, counted for the log.
					var p struct {
						Code string `json:"code"`
					}
					_ = json.Unmarshal(resp, &p)
					mu.Lock()
					other[fmt.Sprintf("%d %s", status, p.Code)]++
					mu.Unlock()
				}
			}
		}()
	}

	for k := 0; k < kills; k++ {
		time.Sleep(time.Second + rand.N(2*time.Second))
		srv.kill()
		srv.start()
	}
	time.Sleep(2 * time.Second)
	stopTraffic()
	trafficDone := time.Now()

	mu.Lock()
	t.Logf("%d kills; %d checkouts acknowledged (%d orders), %d refused for stock, %d replayed; retries: %d after transport errors, %d after idempotency.in_progress; other answers %v; traffic ended %s after the start",
		kills, placed.Load(), len(acked), refused.Load(), replayed.Load(), connErrs.Load(), takeover.Load(), other, trafficDone.Sub(started).Round(time.Millisecond))
	mu.Unlock()
	if placed.Load() == 0 {
		t.Fatal("no checkout was acknowledged")
	}
	if refused.Load() == 0 {
		t.Error("the scarce SKUs never ran out: the test did not exercise stock.insufficient")
	}
	for k := range other {
		if strings.HasPrefix(k, "bad 201") || strings.HasPrefix(k, "500") {
			t.Errorf("unexpected answers: %v", other)
			break
		}
	}

	// Every acknowledged order exists, for its buyer.
	for id, b := range acked {
		status, resp, err := b.do("GET", "/api/v1/orders/"+strconv.FormatInt(id, 10), "", "")
		if err != nil {
			t.Fatalf("GET order %d: %v", id, err)
		}
		var o struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(resp, &o)
		if status != http.StatusOK || (o.Status != "pending_payment" && o.Status != "cancelled") {
			t.Errorf("acknowledged order %d: %d %s", id, status, resp)
		}
	}

	// Every hold expires by trafficDone + paymentTimeout + holdGrace; the order sweeper
	// cancels every unpaid order and the stock sweeper releases every expired hold, whether
	// or not the order exists and whether or not its order.cancelled reached the stock
	// consumer. Wait for that state (a few sweep intervals of slack), checking the
	// invariants on the way.
	deadline := trafficDone.Add(paymentTimeout + holdGrace + 20*time.Second)
	for {
		held := crashHeldReservations(t, cl)
		stale := 0
		for _, r := range held {
			if r.orderStatus != "pending_payment" && time.Since(r.expiresAt) > 3*time.Second {
				stale++ // the sweeper should have released it by now
			}
		}
		crashCheckLevels(t, cl, onHand)
		if len(held) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d reservations still held %s after the traffic (%d past expiry without a pending order): %+v",
				len(held), time.Since(trafficDone).Round(time.Millisecond), stale, held[:min(len(held), 10)])
		}
		time.Sleep(500 * time.Millisecond)
	}
	total := 0
	for _, db := range cl.Shards() {
		var n int
		if err := db.GetContext(ctx, &n, `SELECT COUNT(*) FROM order_orders`); err != nil {
			t.Fatal(err)
		}
		total += n
	}
	// Orders no client saw: their request was killed after the shard transaction committed
	// and before the answer was stored for its Idempotency-Key. A retry after the lock
	// timeout runs the checkout again, so such an order may have a twin; unpaid, it times
	// out like any other.
	t.Logf("%d orders exist, %d of them acknowledged", total, len(acked))
	orphans, swept := crashOrphans(t, cl, paymentTimeout+holdGrace)
	t.Logf("every hold released %s after the traffic; %d reserved orders never became orders, %d of them released by the stock sweeper at expiry (killed between Reserve and the order insert) and the rest by their failed checkout",
		time.Since(trafficDone).Round(time.Millisecond), orphans, swept)

	// Unpaid orders all time out: the payment-timeout sweeper (every 5s) cancels every
	// acknowledged order. Each hold is the order's payment deadline plus order.hold_grace.
	for id := range acked {
		for {
			var o struct {
				Status    string    `db:"status"`
				ExpiresAt time.Time `db:"expires_at"`
			}
			if err := cl.ForID(id).GetContext(ctx, &o, `SELECT status, expires_at FROM order_orders WHERE id = ?`, id); err != nil {
				t.Fatalf("order %d on its shard: %v", id, err)
			}
			var holds []time.Time
			if err := mainDB.SelectContext(ctx, &holds, `SELECT expires_at FROM stock_reservations WHERE order_id = ?`, id); err != nil {
				t.Fatal(err)
			}
			for _, h := range holds {
				if !h.Equal(o.ExpiresAt.Add(holdGrace)) {
					t.Fatalf("order %d expires at %s but its hold at %s, want + %s", id, o.ExpiresAt, h, holdGrace)
				}
			}
			if o.Status == "cancelled" {
				break
			}
			if o.Status != "pending_payment" || time.Now().After(deadline) {
				t.Fatalf("order %d is still %s %s after the traffic", id, o.Status, time.Since(trafficDone).Round(time.Millisecond))
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	// Nothing written before a kill stays unpublished: every database's outbox drains, and
	// no event went dead.
	for _, db := range cl.All() {
		for {
			var pending, dead int
			if err := db.GetContext(ctx, &pending, `SELECT COUNT(*) FROM platform_outbox WHERE status = 0`); err != nil {
				t.Fatal(err)
			}
			if err := db.GetContext(ctx, &dead, `SELECT COUNT(*) FROM platform_outbox WHERE status = 2`); err != nil {
				t.Fatal(err)
			}
			if dead > 0 {
				t.Fatalf("%s: %d dead outbox events", db.Name, dead)
			}
			if pending == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d outbox events still pending %s after the traffic", db.Name, pending, time.Since(trafficDone).Round(time.Millisecond))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	if out, stderr, code := run(t, e, "stock", "check"); code != 0 || !strings.Contains(out, "no violation") {
		t.Fatalf("mall stock check: exit %d\n%s\n%s", code, out, stderr)
	}
	srv.stop()
	t.Logf("done in %s", time.Since(started).Round(time.Millisecond))
}

// crashServer is `mall serve` as a subprocess that can be killed and restarted.
type crashServer struct {
	t    *testing.T
	env  []string
	base string
	cmd  *exec.Cmd
	done chan error
	logs *bytes.Buffer
	runs int
}

func (s *crashServer) start() {
	t := s.t
	t.Helper()
	s.runs++
	begun := time.Now()
	defer func() { t.Logf("run %d ready in %s", s.runs, time.Since(begun).Round(time.Millisecond)) }()
	s.cmd = exec.Command(binary, "serve")
	s.cmd.Env = s.env
	s.logs = &bytes.Buffer{}
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.done = make(chan error, 1)
	go func(cmd *exec.Cmd, done chan error) { done <- cmd.Wait() }(s.cmd, s.done)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("run %d: mall exited early: %v\n%s", s.runs, err, s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %d: not ready after 60s\n%s", s.runs, s.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone; a data race reported before
// the kill fails the test.
func (s *crashServer) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.cmd = nil
	s.checkLogs()
}

// stop ends the last run with SIGTERM: it must stop cleanly.
func (s *crashServer) stop() {
	t := s.t
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		s.cmd = nil
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, s.logs.String())
		}
	case <-time.After(20 * time.Second):
		// Before the binary's own shutdown timeout (25s): SIGQUIT makes the Go runtime
		// print every goroutine, which shows what the stop waits for.
		_ = s.cmd.Process.Signal(syscall.SIGQUIT)
		<-s.done
		s.cmd = nil
		t.Errorf("did not stop within 20s of SIGTERM; its goroutines at SIGQUIT:\n%s", s.logs.String())
	}
	s.checkLogs()
}

func (s *crashServer) checkLogs() {
	if out := s.logs.String(); strings.Contains(out, "DATA RACE") || strings.Contains(out, "panic:") {
		s.t.Errorf("run %d logged a race or panic:\n%s", s.runs, out)
	}
}

// crashBuyer is one registered buyer with an address.
type crashBuyer struct {
	base, email, token string
	id, address        int64
	err                error // of setup
}

var crashClient = &http.Client{Timeout: 20 * time.Second}

func (b *crashBuyer) do(method, path, body, idemKey string) (int, []byte, error) {
	status, out, _, err := b.doHeader(method, path, body, idemKey)
	return status, out, err
}

func (b *crashBuyer) doHeader(method, path, body, idemKey string) (int, []byte, http.Header, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, b.base+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := crashClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, resp.Header, err
}

func (b *crashBuyer) setup() {
	const password = "crash-test-password"
	call := func(want int, method, path, body string, dst any) error {
		status, resp, err := b.do(method, path, body, "")
		if err != nil || status != want {
			return fmt.Errorf("%s %s: %d %v %s", method, path, status, err, resp)
		}
		return json.Unmarshal(resp, dst)
	}
	var u, a struct {
		ID httpID `json:"id"`
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	creds := fmt.Sprintf(`{"email":%q,"password":%q}`, b.email, password)
	if b.err = call(http.StatusCreated, "POST", "/api/v1/auth/register", creds, &u); b.err != nil {
		return
	}
	if b.err = call(http.StatusOK, "POST", "/api/v1/auth/login", creds, &tok); b.err != nil {
		return
	}
	b.token = tok.AccessToken
	b.err = call(http.StatusCreated, "POST", "/api/v1/me/addresses",
		`{"name":"Crash","phone":"13800000000","province":"Zhejiang","city":"Hangzhou","district":"Xihu","detail":"1 Test Road"}`, &a)
	b.id, b.address = int64(u.ID), int64(a.ID)
}

// httpID decodes an ID serialized as a string.
type httpID int64

func (id *httpID) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	*id = httpID(n)
	return err
}

type crashHold struct {
	orderID     int64
	expiresAt   time.Time
	orderStatus string // "" when the order does not exist
}

// crashHeldReservations lists the held reservations with their order's status.
func crashHeldReservations(t *testing.T, cl *sqldb.Cluster) []crashHold {
	t.Helper()
	ctx := context.Background()
	var rows []struct {
		OrderID   int64     `db:"order_id"`
		ExpiresAt time.Time `db:"expires_at"`
	}
	if err := cl.Main().SelectContext(ctx, &rows,
		`SELECT order_id, MAX(expires_at) AS expires_at FROM stock_reservations WHERE status = 0 GROUP BY order_id`); err != nil {
		t.Fatal(err)
	}
	out := make([]crashHold, 0, len(rows))
	for _, r := range rows {
		h := crashHold{orderID: r.OrderID, expiresAt: r.ExpiresAt}
		err := cl.ForID(r.OrderID).GetContext(ctx, &h.orderStatus, `SELECT status FROM order_orders WHERE id = ?`, r.OrderID)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	return out
}

// crashOrphans counts the reserved order IDs without an order on their shard, and among
// them those released no earlier than their hold's lifetime after they were taken: by the
// stock sweeper, not by the checkout's own release on failure.
func crashOrphans(t *testing.T, cl *sqldb.Cluster, hold time.Duration) (orphans, swept int) {
	t.Helper()
	ctx := context.Background()
	var rows []struct {
		OrderID  int64     `db:"order_id"`
		Created  time.Time `db:"created"`
		Released time.Time `db:"released"`
	}
	if err := cl.Main().SelectContext(ctx, &rows,
		`SELECT order_id, MIN(created_at) AS created, MAX(updated_at) AS released FROM stock_reservations GROUP BY order_id`); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		var c int
		if err := cl.ForID(r.OrderID).GetContext(ctx, &c, `SELECT COUNT(*) FROM order_orders WHERE id = ?`, r.OrderID); err != nil {
			t.Fatal(err)
		}
		if c == 0 {
			orphans++
			if r.Released.Sub(r.Created) >= hold {
				swept++
			}
		}
	}
	return orphans, swept
}

// crashCheckLevels asserts the stock invariants directly: no negative counter, on_hand
// unchanged and equal to available + reserved + sold, reserved equal to the held units.
func crashCheckLevels(t *testing.T, cl *sqldb.Cluster, onHand map[int64]int64) {
	t.Helper()
	var rows []struct {
		SKU       int64 `db:"sku_id"`
		OnHand    int64 `db:"on_hand"`
		Available int64 `db:"available"`
		Reserved  int64 `db:"reserved"`
		Sold      int64 `db:"sold"`
		Held      int64 `db:"held"`
	}
	err := cl.Main().SelectContext(context.Background(), &rows, `
		SELECT l.sku_id, l.on_hand, l.available, l.reserved, l.sold,
		       COALESCE((SELECT SUM(r.quantity) FROM stock_reservations r WHERE r.sku_id = l.sku_id AND r.status = 0), 0) AS held
		FROM stock_levels l`)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Available < 0 || r.Reserved < 0 || r.Sold < 0 || r.OnHand != onHand[r.SKU] ||
			r.OnHand != r.Available+r.Reserved+r.Sold || r.Reserved != r.Held {
			t.Fatalf("SKU %d violates the stock invariants: %+v (on_hand was %d)", r.SKU, r, onHand[r.SKU])
		}
	}
}

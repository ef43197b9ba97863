package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// TestFlashSaleCrashSafety kills the real binary (SIGKILL) while accepted flash-sale
// attempts wait in Kafka for the intake (the broker, a kfake cluster of the test's, lives
// on outside the binary, as a real cluster would), once with the queue full and once in
// the middle of the intake, then restarts it and checks, with MySQL as the judge:
//
//   - every accepted ticket (202) becomes final (ordered or failed) after the restart;
//   - never more flash orders than units, nor a buyer above the limit, and every ordered
//     ticket has its order;
//   - no unit lost: the pool's remaining plus the units held for its orders is the
//     sale's quantity (nothing is paid here), and `mall stock check` passes.
func TestFlashSaleCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the server")
	}
	const (
		units   = 30
		buyers  = 40
		keys    = 2
		kills   = 2
		waiting = 4 // intake orders per second while the tickets should stay queued
	)
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(6))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	addr := freeAddr(t)
	e, cl := envCluster(t, "MALL_HTTP_ADDR="+addr,
		"MALL_KAFKA_EMBEDDED=false",
		"MALL_KAFKA_BROKERS="+broker.ListenAddrs()[0],
		"MALL_CATALOG_REVIEW_REQUIRED=false",
		"MALL_RATELIMIT_ENABLED=false",
		"MALL_FLASH_SALE_INTAKE_BATCH=4",
		// A killed replica's partitions move to its restarted self after this (45s by default).
		"MALL_KAFKA_SESSION_TIMEOUT=6s",
		// A replica killed while its groups rebalance holds them up this long.
		"MALL_KAFKA_REBALANCE_TIMEOUT=8s",
	)
	out, stderr, code := run(t, e, "seed", "--products", "2")
	if code != 0 {
		t.Fatalf("seed: exit %d\n%s\n%s", code, out, stderr)
	}
	m := regexp.MustCompile(`owner1@mall\.local\s+(\S+).*merchant (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no owner in the seed's output:\n%s", out)
	}
	ctx := context.Background()
	mainDB := cl.Main()
	var sku int64
	if err := mainDB.GetContext(ctx, &sku, `SELECT sku_id FROM stock_levels WHERE merchant_id = ? AND available >= ?
		ORDER BY sku_id LIMIT 1`, m[2], units); err != nil {
		t.Fatal(err)
	}

	slow := append(append([]string{}, e...), fmt.Sprintf("MALL_FLASH_SALE_INTAKE_RATE=%d", waiting))
	srv := &crashServer{t: t, env: slow, base: "http://" + addr}
	srv.start()
	t.Cleanup(srv.kill)

	owner := &crashBuyer{base: srv.base}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	status, resp, err := owner.do("POST", "/api/v1/auth/login", fmt.Sprintf(`{"email":"owner1@mall.local","password":%q}`, m[1]), "")
	if err != nil || status != http.StatusOK || json.Unmarshal(resp, &tok) != nil {
		t.Fatalf("owner login: %d %v %s", status, err, resp)
	}
	owner.token = tok.AccessToken
	status, resp, err = owner.do("POST", "/api/v1/merchant/flash-sales", fmt.Sprintf(`{"sku_id":"%d","price":1,"quantity":%d,
		"per_user_limit":1,"starts_at":%q,"ends_at":%q}`, sku, units, time.Now().UTC().Add(-time.Second).Format(time.RFC3339Nano),
		time.Now().UTC().Add(time.Hour).Format(time.RFC3339Nano)), "")
	var sale struct {
		ID httpID `json:"id"`
	}
	if err != nil || status != http.StatusCreated || json.Unmarshal(resp, &sale) != nil {
		t.Fatalf("create the sale: %d %v %s", status, err, resp)
	}
	saleID := int64(sale.ID)

	bs := make([]*crashBuyer, buyers)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 3) // password hashing under -race is slow
	for i := range bs {
		bs[i] = &crashBuyer{base: srv.base, email: fmt.Sprintf("flash%d@mall.test", i)}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			bs[i].setup()
		})
	}
	wg.Wait()
	for _, b := range bs {
		if b.err != nil {
			t.Fatal(b.err)
		}
	}

	// Every buyer tries with several keys at once: exactly `units` accepted.
	var (
		mu       sync.Mutex
		accepted = map[int64]int64{} // ticket -> buyer
		answers  = map[string]int{}
	)
	for i := range buyers * keys {
		b := bs[i%buyers]
		wg.Go(func() {
			status, resp, err := b.do("POST", fmt.Sprintf("/api/v1/flash-sales/%d/attempts", saleID),
				fmt.Sprintf(`{"quantity":1,"address_id":"%d"}`, b.address), fmt.Sprintf("crash-%d", i))
			var p struct {
				ID   httpID `json:"ticket_id"`
				Code string `json:"code"`
			}
			_ = json.Unmarshal(resp, &p)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("attempt %d: %v", i, err)
			case status == http.StatusAccepted:
				accepted[int64(p.ID)] = b.id
			default:
				answers[fmt.Sprint(status, " ", p.Code)]++
			}
		})
	}
	wg.Wait()
	if len(accepted) != units {
		t.Fatalf("%d attempts accepted for %d units (other answers %v)", len(accepted), units, answers)
	}
	final := func() int {
		var n int
		if err := mainDB.GetContext(ctx, &n, `SELECT COUNT(*) FROM flashsale_tickets WHERE sale_id = ?`, saleID); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Killed with the queue full; then again with the intake under way.
	for k := range kills {
		time.Sleep(time.Second)
		if k > 0 {
			// The restarted intake has taken over the partitions and placed more orders.
			before, until := final(), time.Now().Add(30*time.Second)
			for final() == before && time.Now().Before(until) {
				time.Sleep(100 * time.Millisecond)
			}
		}
		srv.kill()
		t.Logf("kill %d: %d of %d tickets final", k+1, final(), units)
		if k < kills-1 {
			srv.start()
		}
	}
	if final() == units {
		t.Fatalf("every ticket was final before the last kill: the test killed nothing that was queued")
	}
	srv.env = append(append([]string{}, e...), "MALL_FLASH_SALE_INTAKE_RATE=1000")
	srv.start()
	deadline := time.Now().Add(30 * time.Second)
	for final() < units {
		if time.Now().After(deadline) {
			n := final()
			srv.kill()
			t.Fatalf("%d of %d tickets final 30s after the restart; the server logged:\n%s", n, units, srv.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	srv.stop()

	var tickets []struct {
		ID      int64  `db:"id"`
		BuyerID int64  `db:"buyer_id"`
		Status  string `db:"status"`
		Code    string `db:"code"`
		OrderID int64  `db:"order_id"`
	}
	if err := mainDB.SelectContext(ctx, &tickets, `SELECT id, buyer_id, status, code, order_id FROM flashsale_tickets
		WHERE sale_id = ?`, saleID); err != nil {
		t.Fatal(err)
	}
	ordersOf := map[int64]int{}
	orders := map[int64]bool{}
	seen := map[any]bool{}
	for _, db := range cl.Shards() {
		if seen[db] {
			continue
		}
		seen[db] = true
		var rows []struct {
			ID    int64 `db:"id"`
			Buyer int64 `db:"buyer_id"`
		}
		if err := db.SelectContext(ctx, &rows, `SELECT id, buyer_id FROM order_orders WHERE flash_sale_id = ?`, saleID); err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			ordersOf[r.Buyer]++
			orders[r.ID] = true
		}
	}
	codes := map[string]int{}
	for _, tk := range tickets {
		if _, ok := accepted[tk.ID]; !ok {
			t.Errorf("ticket %d was never accepted", tk.ID)
		}
		codes[tk.Status+" "+tk.Code]++
		if tk.Status == "ordered" && !orders[tk.OrderID] {
			t.Errorf("ticket %d ordered without its order %d", tk.ID, tk.OrderID)
		}
	}
	if len(orders) > units || len(orders) != codes["ordered "] {
		t.Errorf("%d flash orders for %d units, %d tickets ordered", len(orders), units, codes["ordered "])
	}
	for b, n := range ordersOf {
		if n > 1 {
			t.Errorf("buyer %d has %d flash orders (limit 1)", b, n)
		}
	}
	var pool struct {
		Remaining int64 `db:"remaining"`
		Held      int64 `db:"held"`
	}
	if err := mainDB.GetContext(ctx, &pool, `SELECT p.remaining, COALESCE((SELECT SUM(r.quantity) FROM stock_reservations r
		WHERE r.pool_id = p.pool_id AND r.status = 0), 0) AS held FROM stock_pools p WHERE p.pool_id = ?`, saleID); err != nil {
		t.Fatal(err)
	}
	if pool.Remaining+pool.Held != units || pool.Held != int64(len(orders)) {
		t.Errorf("units: %d remaining + %d held for %d orders, want %d in all", pool.Remaining, pool.Held, len(orders), units)
	}
	t.Logf("%d kills; tickets %v; %d orders; pool %d remaining, %d held; other answers %v", kills, codes, len(orders),
		pool.Remaining, pool.Held, answers)
	if out, stderr, code := run(t, e, "stock", "check"); code != 0 {
		t.Fatalf("mall stock check: exit %d\n%s\n%s", code, out, stderr)
	}
}

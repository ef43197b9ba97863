package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAuctionCrashSafety kills the real binary (SIGKILL) several times while bidders bid on
// one lot — once just after the lot's end — restarts it on the same port and databases,
// and checks that no acknowledged bid was lost and the lot ended exactly once:
//
//   - every bid answered 201 is in auction_bids with its bidder and amount;
//   - the lot's bids are numbered 1..n without a gap and their amounts strictly increase;
//   - exactly one auction.ended event was written and exactly one order exists (on the
//     winner's shard, pending_payment, at the final price), with one unit held for it.
func TestAuctionCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the server several times")
	}
	const (
		bidders = 6
		kills   = 3
	)
	addr := freeAddr(t)
	e, cl := envCluster(t, "MALL_HTTP_ADDR="+addr,
		"MALL_RATELIMIT_ENABLED=false",
		"MALL_AUCTION_SCHEDULE_INTERVAL=200ms",
		"MALL_IDEMPOTENCY_LOCK_TIMEOUT=3s",
	)
	if out, stderr, code := run(t, e, "migrate", "up"); code != 0 {
		t.Fatalf("migrate: exit %d\n%s\n%s", code, out, stderr)
	}
	ctx := context.Background()
	mainDB := cl.Main()
	// A merchant's SKU with stock: the lot sells one unit of it. The lot is inserted as
	// `POST /api/v1/merchant/auctions` would (that route's own tests cover it).
	skuID, merchantID := time.Now().UnixNano()/1000, int64(770001)
	if _, err := mainDB.ExecContext(ctx, `INSERT INTO stock_levels (sku_id, merchant_id, on_hand, available, reserved, sold, version, updated_at)
		VALUES (?, ?, 5, 5, 0, 0, 1, NOW(6))`, skuID, merchantID); err != nil {
		t.Fatal(err)
	}
	srv := &crashServer{t: t, env: e, base: "http://" + addr}
	srv.start()
	t.Cleanup(srv.kill)

	buyers := make([]*crashBuyer, bidders)
	var setup sync.WaitGroup
	for i := range buyers {
		buyers[i] = &crashBuyer{base: srv.base, email: fmt.Sprintf("bidder%d@mall.test", i)}
		setup.Add(1)
		go func() { defer setup.Done(); buyers[i].setup() }()
	}
	setup.Wait()
	for _, b := range buyers {
		if b.err != nil {
			t.Fatal(b.err)
		}
	}

	// A fresh ID per run: Redis (the bid gate, the watchers' last version) is shared by
	// every test process, and a real lot ID is unique (idgen).
	lotID := time.Now().UnixNano()
	endsAt := time.Now().UTC().Add(10 * time.Second).Truncate(time.Microsecond)
	if _, err := mainDB.ExecContext(ctx, `INSERT INTO auction_lots (id, merchant_id, product_id, sku_id, title, status,
		start_price, increment, ladder, starts_at, ends_at, version, order_state, created_at, updated_at)
		VALUES (?, ?, 0, ?, 'Crash lot', 'scheduled', 100, 10, '[]', ?, ?, 1, 'none', NOW(6), NOW(6))`,
		lotID, merchantID, skuID, time.Now().UTC().Add(-time.Second), endsAt); err != nil {
		t.Fatal(err)
	}
	lot := strconv.FormatInt(lotID, 10)

	type ack struct {
		bidder, amount int64
		bidID          string
	}
	var (
		mu       sync.Mutex
		acked    []ack
		connErrs atomic.Int64
		other    = map[string]int{}
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c, b := range buyers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 9))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				status, resp, err := b.do("GET", "/api/v1/auctions/"+lot, "", "")
				var l struct {
					MinNext int64  `json:"min_next_bid"`
					Status  string `json:"status"`
				}
				if err != nil || status != http.StatusOK || json.Unmarshal(resp, &l) != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				if l.Status == "ended" {
					return
				}
				amount := l.MinNext + 10*int64(r.IntN(3))
				key := fmt.Sprintf("crash-bid-%d-%d", c, n)
				body := fmt.Sprintf(`{"amount":%d}`, amount)
				for giveUp := time.Now().Add(30 * time.Second); ; {
					status, resp, err = b.do("POST", "/api/v1/auctions/"+lot+"/bids", body, key)
					inProgress := status == http.StatusConflict && bytes.Contains(resp, []byte(`"idempotency.in_progress"`))
					if (err == nil && !inProgress) || time.Now().After(giveUp) {
						break
					}
					if err != nil {
						connErrs.Add(1)
					}
					time.Sleep(100 * time.Millisecond)
				}
				var p struct {
					BidID  string `json:"bid_id"`
					Amount int64  `json:"amount"`
					Code   string `json:"code"`
				}
				_ = json.Unmarshal(resp, &p)
				mu.Lock()
				if status == http.StatusCreated {
					acked = append(acked, ack{b.id, p.Amount, p.BidID})
				} else {
					other[fmt.Sprintf("%d %s", status, p.Code)]++
				}
				mu.Unlock()
			}
		}()
	}
	for k := 0; k < kills-1; k++ {
		time.Sleep(time.Second + rand.N(2*time.Second))
		srv.kill()
		srv.start()
	}
	// The last kill lands just after the end: whichever step of ending the lot was under
	// way, the restarted process must finish it once.
	time.Sleep(time.Until(endsAt.Add(150 * time.Millisecond)))
	srv.kill()
	srv.start()
	deadline := time.Now().Add(60 * time.Second)
	var state struct {
		Status     string `db:"status"`
		OrderState string `db:"order_state"`
		OrderID    int64  `db:"winner_order_id"`
		Leader     int64  `db:"leader_id"`
		Price      int64  `db:"current_price"`
		BidCount   int64  `db:"bid_count"`
	}
	for {
		if err := mainDB.GetContext(ctx, &state, `SELECT status, order_state, winner_order_id, leader_id, current_price, bid_count
			FROM auction_lots WHERE id = ?`, lotID); err != nil {
			t.Fatal(err)
		}
		if state.Status == "ended" && state.OrderState != "pending" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lot did not end with its order: %+v", state)
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	srv.stop()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d kills; %d bids acknowledged, %d retries after transport errors; other answers %v; lot %+v",
		kills, len(acked), connErrs.Load(), other, state)
	if len(acked) == 0 {
		t.Fatal("no bid was acknowledged")
	}
	if other["500 "] > 0 {
		t.Errorf("500 answers: %v", other)
	}

	var bids []struct {
		ID     int64 `db:"id"`
		Seq    int64 `db:"seq"`
		Bidder int64 `db:"bidder_id"`
		Amount int64 `db:"amount"`
	}
	if err := mainDB.SelectContext(ctx, &bids, `SELECT id, seq, bidder_id, amount FROM auction_bids WHERE lot_id = ? ORDER BY seq`, lotID); err != nil {
		t.Fatal(err)
	}
	byID := map[string]int{}
	for i, b := range bids {
		if b.Seq != int64(i+1) || (i > 0 && b.Amount <= bids[i-1].Amount) {
			t.Fatalf("bid %d: %+v", i, b)
		}
		byID[strconv.FormatInt(b.ID, 10)] = i
	}
	if int64(len(bids)) != state.BidCount || bids[len(bids)-1].Amount != state.Price {
		t.Fatalf("%d bids, lot %+v", len(bids), state)
	}
	for _, a := range acked {
		i, ok := byID[a.bidID]
		if !ok || bids[i].Bidder != a.bidder || bids[i].Amount != a.amount {
			t.Fatalf("acknowledged bid %+v lost", a)
		}
	}
	var ended int
	if err := mainDB.GetContext(ctx, &ended, `SELECT COUNT(*) FROM platform_outbox WHERE topic = 'mall.auction.v1'
		AND event_type = 'auction.ended' AND aggregate_id = ?`, lot); err != nil {
		t.Fatal(err)
	}
	if ended != 1 || state.OrderState != "placed" {
		t.Fatalf("%d ended events, order state %q", ended, state.OrderState)
	}
	orders := 0
	for _, db := range cl.Shards() {
		var os []struct {
			ID     int64  `db:"id"`
			Buyer  int64  `db:"buyer_id"`
			Status string `db:"status"`
			Total  int64  `db:"total_amount"`
		}
		if err := db.SelectContext(ctx, &os, `SELECT id, buyer_id, status, total_amount FROM order_orders`); err != nil {
			t.Fatal(err)
		}
		for _, o := range os {
			orders++
			if o.ID != state.OrderID || o.Buyer != state.Leader || o.Status != "pending_payment" || o.Total != state.Price {
				t.Fatalf("order %+v for lot %+v", o, state)
			}
		}
	}
	var reserved int64
	if err := mainDB.GetContext(ctx, &reserved, `SELECT reserved FROM stock_levels WHERE sku_id = ?`, skuID); err != nil {
		t.Fatal(err)
	}
	if orders != 1 || reserved != 1 {
		t.Fatalf("%d orders, %d units reserved", orders, reserved)
	}
}

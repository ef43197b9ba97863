package auction_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mallhq/mall/internal/app/apptest"
)

// FuzzAuctionBodies feeds arbitrary bodies to the merchant's lot creation and to the bid
// route (with a fresh Idempotency-Key each time) through the real server: the answer is
// the route's success status or a 4xx problem with a code, never a panic or a 5xx. In a
// body "$PRODUCT" becomes the merchant's product and "$START"/"$END" times around now, so
// seeds reach the service. Seeds live in testdata/fuzz/FuzzAuctionBodies/.
func FuzzAuctionBodies(f *testing.F) {
	h := newHarness(f)
	mid, _, owner := h.Merchant(h.admin)
	pid, _ := h.product(mid, 1000)
	b := h.bidders(1)[0]
	lot := h.create(owner, map[string]any{"title": "Fuzz lot", "start_price": 100, "increment": 10,
		"starts_at": rfc(time.Now().Add(-time.Second)), "ends_at": rfc(time.Now().Add(time.Hour))})
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, body []byte) {
		body = bytes.ReplaceAll(body, []byte("$PRODUCT"), []byte(strconv.FormatInt(pid, 10)))
		body = bytes.ReplaceAll(body, []byte("$START"), []byte(rfc(time.Now().Add(-time.Second))))
		body = bytes.ReplaceAll(body, []byte("$END"), []byte(rfc(time.Now().Add(time.Hour))))
		key := "fuzz-" + strconv.FormatInt(n.Add(1), 10) + "-" + apptest.RandomIP()
		apptest.CheckOutcome(t, serve(h, http.MethodPost, "/api/v1/merchant/auctions", body, owner, ""), body, http.StatusCreated)
		apptest.CheckOutcome(t, serve(h, http.MethodPost, "/api/v1/auctions/"+lot+"/bids", body, b.token, key), body,
			http.StatusCreated)
	})
}

func serve(h *harness, method, path string, body []byte, token, key string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Forwarded-For", h.IP)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	rec := httptest.NewRecorder()
	h.Server.Handler().ServeHTTP(rec, req)
	return rec
}

// TestGateAfterRedisLoss: the Redis gate is a cache of MySQL's state. Lost, it is rebuilt
// on the next bid; stale (an older version, a lower price), it lets a valid bid through
// and MySQL still refuses a low one; it never turns away a bid MySQL would take.
func TestGateAfterRedisLoss(t *testing.T) {
	h := newHarness(t)
	_, _, owner := h.Merchant(h.admin)
	bs := h.bidders(2)
	lot := h.create(owner, map[string]any{"title": "Gate lot", "start_price": 100, "increment": 10,
		"starts_at": rfc(time.Now().Add(-time.Second)), "ends_at": rfc(time.Now().Add(time.Hour))})
	rdb := redis.NewClient(&redis.Options{Addr: h.Cfg.Redis.Addr, DB: h.Cfg.Redis.DB})
	defer rdb.Close()
	ctx := context.Background()
	key := "auction:gate:{" + lot + "}"
	want := func(r response, err error, status int, code string) {
		t.Helper()
		if err != nil || r.Status != status || (code != "" && r.Code() != code) {
			t.Fatalf("got %v %s, want %d %s", err, r, status, code)
		}
	}
	r, err := h.bid(bs[0].token, lot, 100, 0)
	want(r, err, http.StatusCreated, "")
	if v, _ := rdb.HGet(ctx, key, "price").Int64(); v != 100 {
		t.Fatalf("gate price %d after the first bid", v)
	}
	// A bid too low for the lot's last state this replica committed is refused before Redis.
	r, err = h.bid(bs[1].token, lot, 105, 0)
	want(r, err, http.StatusConflict, "auction.bid_too_low")
	// Redis loses the lot: the next bid that gets past that state rebuilds it from MySQL
	// (the leader bidding again is not final before the lot's lock: MySQL refuses it).
	if err := rdb.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	r, err = h.bid(bs[0].token, lot, 120, 0)
	want(r, err, http.StatusConflict, "auction.already_leading")
	if v, _ := rdb.HGet(ctx, key, "price").Int64(); v != 100 {
		t.Fatalf("gate price %d after the rebuild", v)
	}
	r, err = h.bid(bs[1].token, lot, 110, 0)
	want(r, err, http.StatusCreated, "")
	// A stale gate (an older version with a lower price) lets a valid bid through...
	if err := rdb.HSet(ctx, key, "price", 0, "cnt", 0, "ver", 1).Err(); err != nil {
		t.Fatal(err)
	}
	r, err = h.bid(bs[0].token, lot, 120, 0)
	want(r, err, http.StatusCreated, "")
	// ...and is caught up by the commit; MySQL refuses a bid the stale gate passed.
	if err := rdb.HSet(ctx, key, "price", 0, "cnt", 0, "ver", 1).Err(); err != nil {
		t.Fatal(err)
	}
	r, err = h.bid(bs[0].token, lot, 130, 0)
	want(r, err, http.StatusConflict, "auction.already_leading")
	if v, _ := rdb.HGet(ctx, key, "price").Int64(); v != 120 {
		t.Fatalf("gate price %d after MySQL refused a bid the gate passed", v)
	}
	if l := h.lot(lot); l.CurrentPrice != 120 || l.BidCount != 3 {
		t.Fatalf("lot %+v", l)
	}
}

// TestStaleBidsStopBeforeMySQL: a bid too low for the lot's committed state is turned away
// without MySQL — by the replica that committed it from its own last state, and by another
// replica through the Redis gate the commit updated.
func TestStaleBidsStopBeforeMySQL(t *testing.T) {
	h := newHarness(t)
	cfg2 := h.Cfg
	cfg2.App.NodeID = h.Cfg.App.NodeID%200 + 1 + 50 // another replica
	cfg2.Search.Bleve.Path = filepath.Join(t.TempDir(), "search")
	b := apptest.Start(t, cfg2, apptest.Options{})
	_, _, owner := h.Merchant(h.admin)
	bs := h.bidders(2)
	lot := h.create(owner, map[string]any{"title": "Stale lot", "start_price": 100, "increment": 10,
		"starts_at": rfc(time.Now().Add(-time.Second)), "ends_at": rfc(time.Now().Add(time.Hour))})
	r, err := h.bid(bs[0].token, lot, 200, 0)
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("first bid: %v %s", err, r)
	}
	outcome := func(a *apptest.App, o string) float64 {
		return a.Metric(t, `mall_auction_bids_total{outcome="`+o+`"}`)
	}
	mysqlA, batchesB := outcome(h.App, "rejected"), b.Metric(t, "mall_auction_bid_batch_size_count")
	for i, a := range []*apptest.App{h.App, b} {
		r, err := a.Do(http.MethodPost, "/api/v1/auctions/"+lot+"/bids", map[string]any{"amount": 150},
			"Authorization", "Bearer "+bs[1].token, "Idempotency-Key", newKey())
		if err != nil || r.Status != http.StatusConflict || r.Code() != "auction.bid_too_low" {
			t.Fatalf("replica %d: stale bid answered %v %s", i, err, r)
		}
	}
	if got := outcome(h.App, "known_rejected"); got != 1 {
		t.Errorf("replica 0 refused %v bids from its own state, want 1", got)
	}
	if got := outcome(b, "gate_rejected"); got != 1 {
		t.Errorf("replica 1 refused %v bids at the Redis gate, want 1", got)
	}
	if outcome(h.App, "rejected") != mysqlA || b.Metric(t, "mall_auction_bid_batch_size_count") != batchesB {
		t.Error("a stale bid reached MySQL")
	}
	if l := h.lot(lot); l.CurrentPrice != 200 || l.BidCount != 1 {
		t.Fatalf("lot %+v", l)
	}
}

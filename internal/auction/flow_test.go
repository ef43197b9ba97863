package auction_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/auction"
	"github.com/mallhq/mall/internal/user"
)

// TestAuctionFlow walks one lot through the contract: validation, the bid errors, a proxy
// bid outbidding a lower bid in the same transaction, the reserve, the soft close, the
// end, and the winner's order at the final price shipped to the latest address.
func TestAuctionFlow(t *testing.T) {
	h := newHarness(t)
	mid, _, owner := h.Merchant(h.admin)
	other, _, otherOwner := h.Merchant(h.admin)
	_, staff := h.MerchantUser("staff", user.RoleMerchantStaff, mid)
	pid, sku := h.product(mid, 3)
	otherPID, _ := h.product(other, 1)
	bs := h.bidders(3)
	b1, b2, b3 := bs[0], bs[1], bs[2]
	h.Address(b3.token)
	latest := map[string]string{"name": "Li Lei", "phone": "13700000000", "province": "Jiangsu", "city": "Nanjing",
		"district": "Gulou", "detail": "9 Latest Road"}
	h.req(http.MethodPost, "/api/v1/me/addresses", latest, b3.token).Want(t, http.StatusCreated, "")

	now := time.Now().UTC()
	body := func(over map[string]any) map[string]any {
		b := map[string]any{"title": "Song vase", "product_id": strconv.FormatInt(pid, 10), "start_price": 1000,
			"increment": 100, "reserve_price": 1500, "starts_at": rfc(now.Add(-time.Second)), "ends_at": rfc(now.Add(5 * time.Second)),
			"extend_window_seconds": 4, "extend_seconds": 3}
		for k, v := range over {
			if v == nil {
				delete(b, k)
			} else {
				b[k] = v
			}
		}
		return b
	}
	// Validation and scoping.
	h.req(http.MethodPost, "/api/v1/merchant/auctions", body(map[string]any{"title": nil}), owner).Want(t, http.StatusBadRequest, "request.validation")
	h.req(http.MethodPost, "/api/v1/merchant/auctions", body(map[string]any{"ends_at": rfc(now.Add(-2 * time.Second))}), owner).
		Want(t, http.StatusBadRequest, "request.validation")
	h.req(http.MethodPost, "/api/v1/merchant/auctions", body(map[string]any{"current_price": 5}), owner).Want(t, http.StatusBadRequest, "")
	h.req(http.MethodPost, "/api/v1/merchant/auctions", body(map[string]any{"product_id": strconv.FormatInt(otherPID, 10)}), owner).
		Want(t, http.StatusNotFound, "")
	h.req(http.MethodPost, "/api/v1/merchant/auctions", body(nil), b1.token).Want(t, http.StatusForbidden, "")
	h.req(http.MethodPost, "/api/v1/merchant/auctions", body(nil), "").Want(t, http.StatusUnauthorized, "")
	now = time.Now().UTC()
	lot := h.create(owner, body(map[string]any{"ends_at": rfc(now.Add(10 * time.Second))}))

	// Bids.
	path := "/api/v1/auctions/" + lot + "/bids"
	if r, _ := h.bid(owner, lot, 1000, 0); r.Status != http.StatusForbidden || r.Code() != "auction.own_auction" {
		t.Fatalf("the owner's bid: %s", r)
	}
	if r, _ := h.bid(staff.AccessToken, lot, 1000, 0); r.Status != http.StatusForbidden || r.Code() != "auction.own_auction" {
		t.Fatalf("the staff's bid: %s", r)
	}
	if r, _ := h.bid(otherOwner, lot, 1000, 0); r.Status != http.StatusCreated {
		t.Fatalf("another merchant's owner may bid: %s", r)
	}
	h.req(http.MethodPost, path, map[string]any{"amount": 1100}, b1.token).Want(t, http.StatusBadRequest, "idempotency.key_required")
	h.req(http.MethodPost, path, map[string]any{"amount": 1050}, b1.token, "Idempotency-Key", newKey()).
		Want(t, http.StatusConflict, "auction.bid_too_low")
	h.req(http.MethodPost, path, map[string]any{"amount": 1200, "max_amount": 1100}, b1.token, "Idempotency-Key", newKey()).
		Want(t, http.StatusBadRequest, "request.validation")
	// More than one payment can carry (the winner's order could never be paid).
	h.req(http.MethodPost, path, map[string]any{"amount": auction.MaxAmount + 1}, b1.token, "Idempotency-Key", newKey()).
		Want(t, http.StatusBadRequest, "request.validation")
	h.req(http.MethodPost, path, map[string]any{"amount": 1100, "max_amount": auction.MaxAmount + 1}, b1.token,
		"Idempotency-Key", newKey()).Want(t, http.StatusBadRequest, "request.validation")
	h.req(http.MethodPost, "/api/v1/auctions/123/bids", map[string]any{"amount": 1100}, b1.token, "Idempotency-Key", newKey()).
		Want(t, http.StatusNotFound, "auction.not_found")

	key := newKey()
	var r1 bidBody
	h.req(http.MethodPost, path, map[string]any{"amount": 1100, "max_amount": 2000}, b1.token, "Idempotency-Key", key).
		Want(t, http.StatusCreated, "").Decode(t, &r1)
	if r1.CurrentPrice != 1500 || !r1.Leading || r1.Amount != 1500 {
		t.Fatalf("a maximum over the reserve pays the reserve: %+v", r1)
	}
	replay := h.req(http.MethodPost, path, map[string]any{"amount": 1100, "max_amount": 2000}, b1.token, "Idempotency-Key", key)
	var again bidBody
	replay.Want(t, http.StatusCreated, "").Decode(t, &again)
	if again.BidID != r1.BidID {
		t.Fatalf("the replay placed another bid: %+v vs %+v", again, r1)
	}
	if r, _ := h.bid(b1.token, lot, 1700, 0); r.Code() != "auction.already_leading" {
		t.Fatalf("the leader bidding again: %s", r)
	}
	var r2 bidBody
	r, _ := h.bid(b2.token, lot, 1600, 0)
	r.Want(t, http.StatusCreated, "").Decode(t, &r2)
	if r2.Amount != 1600 || r2.Leading || r2.CurrentPrice != 1700 {
		t.Fatalf("a bid under the leader's maximum is outbid at once: %+v", r2)
	}
	r, _ = h.bid(b2.token, lot, 1800, 2500)
	r.Want(t, http.StatusCreated, "").Decode(t, &r2)
	if !r2.Leading || r2.CurrentPrice != 2100 || r2.Kind != "proxy" {
		t.Fatalf("a higher maximum leads at the old maximum plus one increment: %+v", r2)
	}
	l := h.lot(lot)
	if l.Status != "running" || l.CurrentPrice != 2100 || l.LeaderID != strconv.FormatInt(b2.id, 10) || !l.ReserveMet || l.MinNextBid != 2200 {
		t.Fatalf("lot %+v", l)
	}

	// Soft close: a bid in the last 4 s pushes the end by exactly 3 s (the bids above may
	// have extended it already: the end is read now).
	ends := l.EndsAt
	time.Sleep(time.Until(ends.Add(-3 * time.Second)))
	var r3 bidBody
	r, _ = h.bid(b3.token, lot, 2600, 0)
	r.Want(t, http.StatusCreated, "").Decode(t, &r3)
	if !r3.Leading || r3.CurrentPrice != 2600 || !r3.EndsAt.Equal(ends.Add(3*time.Second)) {
		t.Fatalf("soft close: %+v, ends was %s", r3, ends)
	}

	h.eventually("the end", 20*time.Second, func() bool { return h.lot(lot).Status == "ended" })
	if r, _ := h.bid(b1.token, lot, 5000, 0); r.Code() != "auction.not_running" {
		t.Fatalf("a bid after the end: %s", r)
	}
	hist := h.history(lot)
	want := []int64{1000, 1500, 1600, 1700, 2000, 2100, 2500, 2600}
	if len(hist) != len(want) {
		t.Fatalf("history %+v", hist)
	}
	for i, b := range hist {
		if b.Amount != want[i] || b.Seq != int64(i+1) {
			t.Fatalf("bid %d = %+v, want amount %d", i, b, want[i])
		}
	}
	h.eventually("the winner's order", 20*time.Second, func() bool { return h.lot(lot).OrderState == "placed" })
	l = h.lot(lot)
	var o struct {
		ID          string `json:"id"`
		Status      string `json:"status"`
		TotalAmount int64  `json:"total_amount"`
		MerchantID  string `json:"merchant_id"`
		Address     struct {
			Detail string `json:"detail"`
		} `json:"address"`
		Items []struct {
			SKUID    string `json:"sku_id"`
			Quantity int64  `json:"quantity"`
			Price    int64  `json:"price"`
		} `json:"items"`
	}
	h.req(http.MethodGet, "/api/v1/orders/"+l.WinnerOrderID, nil, b3.token).Want(t, http.StatusOK, "").Decode(t, &o)
	if o.Status != "pending_payment" || o.TotalAmount != 2600 || o.Address.Detail != "9 Latest Road" ||
		o.MerchantID != strconv.FormatInt(mid, 10) || len(o.Items) != 1 || o.Items[0].SKUID != strconv.FormatInt(sku, 10) ||
		o.Items[0].Price != 2600 || o.Items[0].Quantity != 1 {
		t.Fatalf("winner's order %+v", o)
	}
	if lv, err := h.stock.Get(context.Background(), mid, sku); err != nil || lv.Reserved != 1 || lv.Available != 2 {
		t.Fatalf("the lot's unit is held for the order: %+v %v", lv, err)
	}
	ended := apptest.Events[auction.EndedEvent](h.App, auction.Topic, auction.EventEnded, lot)
	if len(ended) != 1 || ended[0].WinnerID != b3.id || ended[0].FinalPrice != 2600 || !ended[0].ReserveMet {
		t.Fatalf("ended events %+v", ended)
	}
	if n := len(apptest.Events[auction.OrderPlacedEvent](h.App, auction.Topic, auction.EventOrderPlaced, lot)); n != 1 {
		t.Fatalf("%d order_placed events", n)
	}

	// A reserve not met: the lot ends without an order.
	lot2 := h.create(owner, body(map[string]any{"reserve_price": 9000, "ends_at": rfc(time.Now().Add(4 * time.Second)),
		"extend_window_seconds": nil, "extend_seconds": nil}))
	if r, _ := h.bid(b1.token, lot2, 1000, 0); r.Status != http.StatusCreated {
		t.Fatalf("bid: %s", r)
	}
	h.eventually("the second end", 20*time.Second, func() bool { return h.lot(lot2).Status == "ended" })
	l2 := h.lot(lot2)
	if l2.ReserveMet || l2.OrderState != "none" || l2.WinnerOrderID != "" {
		t.Fatalf("reserve not met: %+v", l2)
	}
	ended = apptest.Events[auction.EndedEvent](h.App, auction.Topic, auction.EventEnded, lot2)
	if len(ended) != 1 || ended[0].WinnerID != 0 || ended[0].ReserveMet {
		t.Fatalf("ended events %+v", ended)
	}

	// A lot without a product: the winner still gets an order at the final price (no stock
	// line), and paying it leaves the order's stock reaction with nothing to do (not stuck).
	lot3 := h.create(owner, body(map[string]any{"product_id": nil, "title": "Private viewing", "reserve_price": nil,
		"ends_at": rfc(time.Now().Add(4 * time.Second)), "extend_window_seconds": nil, "extend_seconds": nil}))
	if r, _ := h.bid(b3.token, lot3, 1200, 0); r.Status != http.StatusCreated {
		t.Fatalf("bid: %s", r)
	}
	h.eventually("the third lot's order", 20*time.Second, func() bool { return h.lot(lot3).OrderState == "placed" })
	l3 := h.lot(lot3)
	h.req(http.MethodGet, "/api/v1/orders/"+l3.WinnerOrderID, nil, b3.token).Want(t, http.StatusOK, "").Decode(t, &o)
	if o.Status != "pending_payment" || o.TotalAmount != 1200 || len(o.Items) != 1 || o.Items[0].Price != 1200 {
		t.Fatalf("order of a lot without a product %+v", o)
	}
	var pay struct {
		ID string `json:"id"`
	}
	h.req(http.MethodPost, "/api/v1/payments", map[string]string{"checkout_id": l3.WinnerOrderID, "provider": "sandbox"},
		b3.token, "Idempotency-Key", "pay-"+lot3).Want(t, http.StatusCreated, "").Decode(t, &pay)
	h.req(http.MethodPost, "/api/v1/payments/"+pay.ID+"/sandbox/complete", nil, b3.token).Want(t, http.StatusOK, "")
	h.req(http.MethodGet, "/api/v1/orders/"+l3.WinnerOrderID, nil, b3.token).Want(t, http.StatusOK, "").Decode(t, &o)
	if o.Status != "paid" {
		t.Fatalf("paid order %+v", o)
	}
	stockGroup := `group="mall.order.stock"`
	h.eventually("the order.paid reaction", 20*time.Second, func() bool {
		return metricLine(h, "mall_kafka_consumer_applied_total", stockGroup) >= 1
	})
	if n := metricLine(h, "mall_kafka_consumer_errors_total", stockGroup); n != 0 {
		t.Fatalf("the order stock consumer failed %v times on an order without stock", n)
	}

	// Lists.
	var page struct {
		Items []lotBody `json:"items"`
	}
	h.req(http.MethodGet, "/api/v1/auctions?status=ended&limit=100", nil, "").Want(t, http.StatusOK, "").Decode(t, &page)
	if len(page.Items) < 3 || page.Items[0].ID != lot3 || page.Items[1].ID != lot2 {
		t.Fatalf("ended lots %+v", page.Items)
	}
	h.req(http.MethodGet, "/api/v1/auctions?status=bogus", nil, "").Want(t, http.StatusBadRequest, "")
	h.req(http.MethodGet, "/api/v1/auctions/"+lot+"/bids?cursor=AAAA", nil, "").Want(t, http.StatusBadRequest, "")
	h.req(http.MethodGet, "/api/v1/auctions/abc", nil, "").Want(t, http.StatusBadRequest, "")
	h.req(http.MethodGet, "/api/v1/auctions/42", nil, "").Want(t, http.StatusNotFound, "auction.not_found")
}

// metricLine is the value of the sample of name whose labels contain label (0 when absent).
func metricLine(h *harness, name, label string) float64 {
	h.t.Helper()
	body := string(h.req(http.MethodGet, "/metrics", nil, "").Body)
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, label) {
			f, err := strconv.ParseFloat(strings.TrimSpace(line[strings.LastIndexByte(line, ' ')+1:]), 64)
			if err != nil {
				h.t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

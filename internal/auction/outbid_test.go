package auction_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestOutbidOnOwnChannel: the bidder whose lead is overtaken hears auction.outbid with the
// new price on /ws/me; the new leader does not.
func TestOutbidOnOwnChannel(t *testing.T) {
	h := newHarness(t)
	mid, _, owner := h.Merchant(h.admin)
	pid, _ := h.product(mid, 1)
	bs := h.bidders(2)
	lot := h.create(owner, map[string]any{"title": "Jade", "product_id": strconv.FormatInt(pid, 10), "start_price": 1000,
		"increment": 100, "starts_at": rfc(time.Now().Add(-time.Second)), "ends_at": rfc(time.Now().Add(time.Minute))})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	dial := func(tok string) *websocket.Conn {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.URL, "http")+"/ws/me?access_token="+tok, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first, second := dial(bs[0].token), dial(bs[1].token)
	defer first.CloseNow()
	defer second.CloseNow()
	if r, _ := h.bid(bs[0].token, lot, 1000, 0); r.Status != http.StatusCreated {
		t.Fatalf("first bid: %s", r)
	}
	if r, _ := h.bid(bs[1].token, lot, 1300, 0); r.Status != http.StatusCreated {
		t.Fatalf("second bid: %s", r)
	}
	_, data, err := first.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Type         string `json:"type"`
		AuctionID    string `json:"auction_id"`
		CurrentPrice int64  `json:"current_price"`
	}
	if err := json.Unmarshal(data, &m); err != nil || m.Type != "auction.outbid" || m.AuctionID != lot || m.CurrentPrice != 1300 {
		t.Fatalf("outbid message %s", data)
	}
	rctx, rcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer rcancel()
	if _, data, err := second.Read(rctx); err == nil {
		t.Fatalf("the leader was told %s", data)
	}
}

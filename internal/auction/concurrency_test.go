package auction_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/auction"
)

type wsMsg struct {
	Type       string    `json:"type"`
	Amount     int64     `json:"amount"`
	BidCount   int64     `json:"bid_count"`
	EndsAt     time.Time `json:"ends_at"`
	Version    int64     `json:"version"`
	WinnerID   string    `json:"winner_id"`
	FinalPrice int64     `json:"final_price"`
	ReserveMet bool      `json:"reserve_met"`
	Status     string    `json:"status"`
}

// watch reads a lot's WebSocket until the ended message (or the deadline) and returns
// every message, the welcome first.
func watch(t *testing.T, baseURL, lot string, within time.Duration) (<-chan []wsMsg, *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(baseURL, "http")+"/ws/auctions/"+lot, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(1 << 20)
	out := make(chan []wsMsg, 1)
	go func() {
		var msgs []wsMsg
		defer func() { out <- msgs }()
		rctx, rcancel := context.WithTimeout(context.Background(), within)
		defer rcancel()
		for {
			_, data, err := c.Read(rctx)
			if err != nil {
				return
			}
			var m wsMsg
			if json.Unmarshal(data, &m) != nil {
				continue
			}
			msgs = append(msgs, m)
			if m.Type == "ended" {
				return
			}
		}
	}()
	return out, c
}

// TestConcurrentBidders: 200 bidders on two replicas bid on one lot at once, a quarter of
// them with proxy maxima, each up to a private budget, while a watcher on each replica
// follows the lot. Then, counted: bid amounts strictly increase in commit order with no
// gap in the sequence, every acknowledged bid is in the history, the winner and the final
// price are what eBay's rules give for the accepted bids, no bid was accepted at or after
// the end in force, every soft-close extension is exact, the lot ended once with one
// order, and each watcher saw versions and prices only going up, ending with the result.
func TestConcurrentBidders(t *testing.T) {
	const (
		n         = 200
		start     = 100
		increment = 10
		window    = 1 * time.Second
		extend    = 1 * time.Second
	)
	h := newHarness(t)
	cfg2 := h.Cfg
	cfg2.App.NodeID = h.Cfg.App.NodeID%200 + 1 + 50 // another replica: its own ID node and search index
	cfg2.Search.Bleve.Path = filepath.Join(t.TempDir(), "search")
	b := apptest.Start(t, cfg2, apptest.Options{})
	mid, _, owner := h.Merchant(h.admin)
	pid, _ := h.product(mid, 1)
	bs := h.bidders(n, true)

	ends0 := time.Now().UTC().Add(8 * time.Second).Truncate(time.Microsecond)
	lot := h.create(owner, map[string]any{"title": "Hot lot", "product_id": strconv.FormatInt(pid, 10), "start_price": start,
		"increment": increment, "starts_at": rfc(time.Now().Add(-time.Second)), "ends_at": rfc(ends0),
		"extend_window_seconds": int(window / time.Second), "extend_seconds": int(extend / time.Second)})
	watchA, ca := watch(t, h.URL, lot, 90*time.Second)
	defer ca.CloseNow()
	watchB, cb := watch(t, b.URL, lot, 90*time.Second)
	defer cb.CloseNow()

	type ack struct {
		bidder, amount, max int64
		bidID               string
	}
	var (
		mu       sync.Mutex
		acks     []ack
		hint     atomic.Int64 // the highest current price any bidder saw
		attempts atomic.Int64
		fails    atomic.Int64
	)
	hint.Store(start - increment)
	var codes sync.Map
	defer codes.Range(func(k, v any) bool { t.Logf("code %v", k); return true })
	apps := []*apptest.App{h.App, b}
	var wg sync.WaitGroup
	for i, bd := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			app := apps[i%2]
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			budget := int64(300 + rng.IntN(2500))
			proxy := i%4 == 0
			for try := 0; try < 60; try++ {
				amount := hint.Load() + increment*int64(1+rng.IntN(5))
				if amount > budget {
					return
				}
				maxAmount := int64(0)
				if proxy {
					maxAmount = min(budget, amount+increment*int64(rng.IntN(20)))
				}
				body := map[string]any{"amount": amount}
				if maxAmount > 0 {
					body["max_amount"] = maxAmount
				}
				attempts.Add(1)
				r, err := app.Do(http.MethodPost, "/api/v1/auctions/"+lot+"/bids", body, "Authorization", "Bearer "+bd.token,
					"Idempotency-Key", newKey())
				if err != nil {
					fails.Add(1)
					return
				}
				if _, loaded := codes.LoadOrStore(r.Code()+strconv.Itoa(r.Status), time.Now()); !loaded && r.Status != 201 {
					t.Logf("first %s at %s before the end: %s", r.Code(), time.Until(ends0), r)
				}
				switch {
				case r.Status == http.StatusCreated:
					var out bidBody
					if json.Unmarshal(r.Body, &out) != nil {
						fails.Add(1)
						return
					}
					mu.Lock()
					acks = append(acks, ack{bd.id, amount, maxAmount, out.BidID})
					mu.Unlock()
					for p := hint.Load(); out.CurrentPrice > p && !hint.CompareAndSwap(p, out.CurrentPrice); p = hint.Load() {
					}
				case r.Code() == "auction.bid_too_low":
					var p struct {
						Detail string `json:"detail"`
					}
					_ = json.Unmarshal(r.Body, &p)
					next, err := strconv.ParseInt(strings.TrimPrefix(p.Detail, "the lowest acceptable bid is "), 10, 64)
					if err != nil {
						t.Errorf("bid_too_low without the lowest bid: %s", r)
						return
					}
					for p := hint.Load(); next-increment > p && !hint.CompareAndSwap(p, next-increment); p = hint.Load() {
					}
				case r.Code() == "auction.already_leading":
					time.Sleep(time.Duration(20+rng.IntN(50)) * time.Millisecond)
				case r.Code() == "auction.not_running":
					return
				default:
					t.Errorf("bid: %s", r)
					fails.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("bidding done: %d attempts, %d acknowledged", attempts.Load(), len(acks))
	if fails.Load() > 0 {
		t.Fatalf("%d bidders failed", fails.Load())
	}
	// Concurrent bids on one replica shared transactions: fewer batches than bids decided.
	var batched, batches float64
	for _, a := range apps {
		batched += a.Metric(t, "mall_auction_bid_batch_size_sum")
		batches += a.Metric(t, "mall_auction_bid_batch_size_count")
	}
	t.Logf("%v bids reached MySQL in %v transactions", batched, batches)
	if batches >= batched {
		t.Fatalf("%v bids took %v transactions: no bid shared one", batched, batches)
	}

	// Keep bidding past the end: every late bid is refused.
	l := h.lot(lot)
	time.Sleep(time.Until(l.EndsAt.Add(50 * time.Millisecond)))
	var late sync.WaitGroup
	var lateAccepted atomic.Int64
	for i := range 20 {
		late.Add(1)
		go func() {
			defer late.Done()
			r, err := apps[i%2].Do(http.MethodPost, "/api/v1/auctions/"+lot+"/bids", map[string]any{"amount": 1_000_000 + i},
				"Authorization", "Bearer "+bs[i].token, "Idempotency-Key", newKey())
			if err != nil || r.Status == http.StatusCreated {
				lateAccepted.Add(1)
			} else if r.Code() != "auction.not_running" {
				t.Errorf("late bid: %s", r)
			}
		}()
	}
	late.Wait()
	if lateAccepted.Load() > 0 {
		t.Fatalf("%d bids accepted after the end", lateAccepted.Load())
	}
	h.eventually("the end", 30*time.Second, func() bool { return h.lot(lot).Status == "ended" })
	h.eventually("the order", 30*time.Second, func() bool { return h.lot(lot).OrderState != "pending" })
	l = h.lot(lot)

	// The history: seq 1..n without gaps, amounts strictly increasing.
	hist := h.history(lot)
	if int64(len(hist)) != l.BidCount || len(hist) == 0 {
		t.Fatalf("%d bids in the history, bid_count %d", len(hist), l.BidCount)
	}
	seqOf := map[string]bidItem{}
	for i, x := range hist {
		if x.Seq != int64(i+1) || (i > 0 && x.Amount <= hist[i-1].Amount) {
			t.Fatalf("bid %d: %+v after %+v", i, x, hist[max(i-1, 0)])
		}
		seqOf[x.ID] = x
	}
	if last := hist[len(hist)-1]; l.CurrentPrice != last.Amount {
		t.Fatalf("price %d, last bid %d", l.CurrentPrice, last.Amount)
	}
	// Every acknowledged bid is there, as the bidder's own.
	for _, a := range acks {
		x, ok := seqOf[a.bidID]
		if !ok || x.BidderID != strconv.FormatInt(a.bidder, 10) {
			t.Fatalf("acknowledged bid %+v missing from the history (%+v)", a, x)
		}
	}
	// eBay's rule over the accepted submissions in commit order.
	type sub struct{ bidder, amount, top, seq int64 }
	best := map[int64]sub{}
	mine := map[int64]int64{} // highest amount each bidder stated
	for _, a := range acks {
		s := sub{a.bidder, a.amount, max(a.amount, a.max), seqOf[a.bidID].Seq}
		if cur, ok := best[a.bidder]; !ok || s.top > cur.top || (s.top == cur.top && s.seq < cur.seq) {
			best[a.bidder] = s
		}
		mine[a.bidder] = max(mine[a.bidder], a.amount)
	}
	var win sub
	for _, s := range best {
		if win.bidder == 0 || s.top > win.top || (s.top == win.top && s.seq < win.seq) {
			win = s
		}
	}
	second := int64(-1)
	for id, s := range best {
		if id != win.bidder {
			second = max(second, s.top)
		}
	}
	want := mine[win.bidder]
	if second >= 0 {
		want = max(want, min(win.top, second+increment))
	}
	if l.LeaderID != strconv.FormatInt(win.bidder, 10) || l.CurrentPrice != want {
		t.Fatalf("leader %s at %d, want %d at %d (max %d, second max %d)", l.LeaderID, l.CurrentPrice, win.bidder, want, win.top, second)
	}

	// No bid at or after the end in force; each extension exact.
	evs := apptest.Events[auction.BidEvent](h.App, auction.Topic, auction.EventBid, lot)
	if len(evs) != len(hist) {
		t.Fatalf("%d bid events for %d bids", len(evs), len(hist))
	}
	ends, extensions := ends0, 0
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		if !e.OccurredAt.Before(ends) {
			t.Fatalf("bid %d at %s, the lot ended at %s", e.Seq, e.OccurredAt, ends)
		}
		wantEnds := ends
		if ends.Sub(e.OccurredAt) <= window {
			wantEnds = ends.Add(extend)
		}
		if !e.EndsAt.Equal(wantEnds) {
			t.Fatalf("bid %d at %s: ends %s, want %s (was %s)", e.Seq, e.OccurredAt, e.EndsAt, wantEnds, ends)
		}
		if !wantEnds.Equal(ends) {
			extensions++
		}
		ends = wantEnds
	}
	if !l.EndsAt.Equal(ends) {
		t.Fatalf("lot ends %s, the events say %s", l.EndsAt, ends)
	}
	ended := apptest.Events[auction.EndedEvent](h.App, auction.Topic, auction.EventEnded, lot)
	if len(ended) != 1 || ended[0].WinnerID != win.bidder || ended[0].FinalPrice != want {
		t.Fatalf("ended events %+v", ended)
	}
	if l.OrderState != "placed" || len(l.OrderError) > 0 || len(apptest.Events[auction.OrderPlacedEvent](h.App, auction.Topic, auction.EventOrderPlaced, lot)) != 1 {
		t.Fatalf("order state %q: %s", l.OrderState, l.OrderError)
	}

	// The watchers.
	for name, ch := range map[string]<-chan []wsMsg{"A": watchA, "B": watchB} {
		msgs := <-ch
		if len(msgs) < 2 || msgs[0].Type != "state" {
			t.Fatalf("watcher %s: %+v", name, msgs)
		}
		var v, amount int64
		bids := 0
		for _, m := range msgs[1:] {
			if m.Version < v {
				t.Fatalf("watcher %s: version %d after %d", name, m.Version, v)
			}
			v = m.Version
			if m.Type == "bid" {
				if m.Amount <= amount {
					t.Fatalf("watcher %s: price %d after %d", name, m.Amount, amount)
				}
				amount = m.Amount
				bids++
			}
		}
		endMsg := msgs[len(msgs)-1]
		if endMsg.Type != "ended" || endMsg.WinnerID != strconv.FormatInt(win.bidder, 10) || endMsg.FinalPrice != want {
			t.Fatalf("watcher %s: last message %+v", name, endMsg)
		}
		t.Logf("watcher %s: %d messages, %d bids", name, len(msgs), bids)
	}
	t.Logf("%d attempts, %d acknowledged, %d bids, %d extensions, final %d by %d", attempts.Load(), len(acks), len(hist),
		extensions, l.CurrentPrice, win.bidder)
}

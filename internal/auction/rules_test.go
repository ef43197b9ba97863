package auction

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func running() Lot {
	return Lot{ID: 1, MerchantID: 9, Status: StatusRunning, StartPrice: 100, Increment: 10,
		StartsAt: t0.Add(-time.Hour), EndsAt: t0.Add(time.Hour), Version: 1}
}

type step struct {
	bidder, amount, max int64
}

// run applies the steps in order and fails on a rejection.
func run(t *testing.T, l Lot, steps ...step) (Lot, [][]Bid) {
	t.Helper()
	var all [][]Bid
	for i, s := range steps {
		p, err := apply(l, PlaceBid{LotID: l.ID, BidderID: s.bidder, Amount: s.amount, MaxAmount: s.max}, t0)
		if err != nil {
			t.Fatalf("step %d %+v: %v", i, s, err)
		}
		l = p.lot
		all = append(all, p.rows)
	}
	return l, all
}

func TestApplyProxyRules(t *testing.T) {
	tests := []struct {
		name       string
		lot        func(Lot) Lot
		give       []step
		wantPrice  int64
		wantLeader int64
		wantRows   []Bid // rows of the last step (BidderID, Amount, Kind)
	}{
		{name: "first bid sets the price", give: []step{{1, 100, 0}}, wantPrice: 100, wantLeader: 1,
			wantRows: []Bid{{BidderID: 1, Amount: 100, Kind: KindBid}}},
		{name: "a higher plain bid leads", give: []step{{1, 100, 0}, {2, 110, 0}}, wantPrice: 110, wantLeader: 2,
			wantRows: []Bid{{BidderID: 2, Amount: 110, Kind: KindBid}}},
		{name: "a bid below the leader's maximum is outbid by proxy at once",
			give: []step{{1, 100, 500}, {2, 200, 0}}, wantPrice: 210, wantLeader: 1,
			wantRows: []Bid{{BidderID: 2, Amount: 200, Kind: KindBid}, {BidderID: 1, Amount: 210, Kind: KindProxy}}},
		{name: "the proxy is capped at its maximum",
			give: []step{{1, 100, 205}, {2, 200, 0}}, wantPrice: 205, wantLeader: 1,
			wantRows: []Bid{{BidderID: 2, Amount: 200, Kind: KindBid}, {BidderID: 1, Amount: 205, Kind: KindProxy}}},
		{name: "a tie goes to the earlier maximum",
			give: []step{{1, 100, 300}, {2, 300, 0}}, wantPrice: 300, wantLeader: 1,
			wantRows: []Bid{{BidderID: 2, Amount: 300, Kind: KindBid}}},
		{name: "a higher maximum leads at the old maximum plus one increment",
			give: []step{{1, 100, 300}, {2, 110, 1000}}, wantPrice: 310, wantLeader: 2,
			wantRows: []Bid{{BidderID: 1, Amount: 300, Kind: KindProxy}, {BidderID: 2, Amount: 310, Kind: KindProxy}}},
		{name: "a new leader pays at least what it bid",
			give: []step{{1, 100, 300}, {2, 800, 1000}}, wantPrice: 800, wantLeader: 2,
			wantRows: []Bid{{BidderID: 1, Amount: 300, Kind: KindProxy}, {BidderID: 2, Amount: 800, Kind: KindBid}}},
		{name: "two proxies: the lower one bids its whole maximum",
			give: []step{{1, 100, 1000}, {2, 110, 400}}, wantPrice: 410, wantLeader: 1,
			wantRows: []Bid{{BidderID: 2, Amount: 400, Kind: KindProxy}, {BidderID: 1, Amount: 410, Kind: KindProxy}}},
		{name: "a leader whose maximum reaches the reserve pays the reserve",
			lot: func(l Lot) Lot { l.ReservePrice = 500; return l }, give: []step{{1, 100, 800}},
			wantPrice: 500, wantLeader: 1, wantRows: []Bid{{BidderID: 1, Amount: 500, Kind: KindProxy}}},
		{name: "the reserve lifts a new leader's price",
			lot: func(l Lot) Lot { l.ReservePrice = 500; return l }, give: []step{{1, 100, 0}, {3, 110, 400}, {2, 120, 800}},
			wantPrice: 500, wantLeader: 2,
			wantRows: []Bid{{BidderID: 3, Amount: 400, Kind: KindProxy}, {BidderID: 2, Amount: 500, Kind: KindProxy}}},
		{name: "a proxy below the reserve holds without lifting",
			lot: func(l Lot) Lot { l.ReservePrice = 500; return l }, give: []step{{1, 100, 0}, {3, 110, 400}, {4, 120, 0}},
			wantPrice: 130, wantLeader: 3,
			wantRows: []Bid{{BidderID: 4, Amount: 120, Kind: KindBid}, {BidderID: 3, Amount: 130, Kind: KindProxy}}},
		{name: "the ladder sets the increment by price band",
			lot:  func(l Lot) Lot { l.Ladder = []Band{{From: 200, Increment: 50}}; return l },
			give: []step{{1, 100, 1000}, {2, 250, 0}}, wantPrice: 300, wantLeader: 1,
			wantRows: []Bid{{BidderID: 2, Amount: 250, Kind: KindBid}, {BidderID: 1, Amount: 300, Kind: KindProxy}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := running()
			if tt.lot != nil {
				l = tt.lot(l)
			}
			got, rows := run(t, l, tt.give...)
			if got.CurrentPrice != tt.wantPrice || got.LeaderID != tt.wantLeader {
				t.Fatalf("price %d leader %d, want %d %d", got.CurrentPrice, got.LeaderID, tt.wantPrice, tt.wantLeader)
			}
			last := rows[len(rows)-1]
			if len(last) != len(tt.wantRows) {
				t.Fatalf("rows %+v, want %+v", last, tt.wantRows)
			}
			for i, r := range last {
				w := tt.wantRows[i]
				if r.BidderID != w.BidderID || r.Amount != w.Amount || r.Kind != w.Kind {
					t.Fatalf("row %d = %+v, want %+v", i, r, w)
				}
			}
			var n int64
			for _, rs := range rows {
				n += int64(len(rs))
			}
			if got.BidCount != n || got.Version != l.Version+int64(len(tt.give)) {
				t.Fatalf("bid_count %d version %d, want %d %d", got.BidCount, got.Version, n, l.Version+int64(len(tt.give)))
			}
		})
	}
}

func TestApplyRejections(t *testing.T) {
	l := running()
	led, _ := run(t, l, step{1, 100, 0})
	scheduled := l
	scheduled.Status, scheduled.StartsAt = StatusScheduled, t0.Add(time.Minute)
	ended := l
	ended.Status = StatusEnded
	late := l
	late.EndsAt = t0
	tests := []struct {
		name string
		lot  Lot
		give PlaceBid
		want error
	}{
		{"below the start price", l, PlaceBid{BidderID: 1, Amount: 99}, ErrBidTooLow},
		{"below one increment over the price", led, PlaceBid{BidderID: 2, Amount: 109}, ErrBidTooLow},
		{"before the start", scheduled, PlaceBid{BidderID: 1, Amount: 100}, ErrNotRunning},
		{"ended", ended, PlaceBid{BidderID: 1, Amount: 100}, ErrNotRunning},
		{"at the end", late, PlaceBid{BidderID: 1, Amount: 100}, ErrNotRunning},
		{"own auction", l, PlaceBid{BidderID: 1, BidderMerchantID: 9, Amount: 100}, ErrOwnAuction},
		{"the leader again", led, PlaceBid{BidderID: 1, Amount: 200}, ErrAlreadyLeading},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := apply(tt.lot, tt.give, t0); !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestApplyStartsAndExtends(t *testing.T) {
	l := running()
	l.Status, l.StartsAt = StatusScheduled, t0
	l.ExtendWindow, l.Extend = 30*time.Second, 20*time.Second
	l.EndsAt = t0.Add(31 * time.Second)
	p, err := apply(l, PlaceBid{BidderID: 1, Amount: 100}, t0)
	if err != nil || !p.started || p.extended || p.lot.Status != StatusRunning {
		t.Fatalf("outside the window: %+v %v", p, err)
	}
	l = p.lot
	p, err = apply(l, PlaceBid{BidderID: 2, Amount: 110}, t0.Add(time.Second))
	if err != nil || !p.extended || !p.lot.EndsAt.Equal(t0.Add(51*time.Second)) {
		t.Fatalf("inside the window: ends %s extended %v err %v", p.lot.EndsAt, p.extended, err)
	}
}

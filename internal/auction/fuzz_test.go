package auction

import (
	"testing"
)

// FuzzApply drives a lot with bids decoded from the input and checks the invariants after
// every accepted one: bid amounts strictly increase, the price is the last bid's amount
// and within the leader's maximum, and the final price follows eBay's rule — the winner is
// the highest maximum (earliest on a tie) and pays the second-highest maximum plus one
// increment, capped at its maximum, never less than it bid, and at least the reserve when
// its maximum reaches it.
func FuzzApply(f *testing.F) {
	f.Add([]byte{1, 10, 0, 2, 20, 50, 3, 30, 0, 1, 40, 90}, uint16(0))
	f.Add([]byte{1, 0, 200, 2, 5, 200, 3, 100, 255}, uint16(300))
	f.Fuzz(func(t *testing.T, in []byte, reserve uint16) {
		l := running()
		l.ReservePrice = int64(reserve)
		l.Ladder = []Band{{From: 1000, Increment: 25}, {From: 2000, Increment: 100}}
		type sub struct{ bidder, amount, top, seq int64 }
		var accepted []sub
		last := int64(0)
		for i := 0; i+2 < len(in) && i < 300; i += 3 {
			bidder := int64(in[i]%8) + 1
			amount := l.MinNext() + int64(in[i+1])%40*5 - 20 // some too low
			maxAmt := int64(0)
			if in[i+2] > 0 {
				maxAmt = amount + int64(in[i+2])*7
			}
			p, err := apply(l, PlaceBid{LotID: 1, BidderID: bidder, Amount: amount, MaxAmount: maxAmt}, t0)
			if err != nil {
				continue
			}
			for _, r := range p.rows {
				if r.Amount <= last {
					t.Fatalf("bid amounts not increasing: %d after %d", r.Amount, last)
				}
				last = r.Amount
			}
			l = p.lot
			if l.CurrentPrice != last || l.CurrentPrice > l.LeaderMax {
				t.Fatalf("price %d, last bid %d, leader max %d", l.CurrentPrice, last, l.LeaderMax)
			}
			accepted = append(accepted, sub{bidder, amount, max(amount, maxAmt), int64(len(accepted))})
		}
		if len(accepted) == 0 {
			return
		}
		// The model: best maximum per bidder, first reached.
		best := map[int64]sub{}
		for _, s := range accepted {
			if b, ok := best[s.bidder]; !ok || s.top > b.top {
				best[s.bidder] = s
			}
		}
		var win sub
		for _, s := range best {
			if win.bidder == 0 || s.top > win.top || (s.top == win.top && s.seq < win.seq) {
				win = s
			}
		}
		if l.LeaderID != win.bidder || l.LeaderMax != win.top {
			t.Fatalf("leader %d (max %d), want %d (max %d)", l.LeaderID, l.LeaderMax, win.bidder, win.top)
		}
		want := int64(0)
		for _, s := range accepted {
			if s.bidder == win.bidder {
				want = max(want, s.amount)
			}
		}
		second := int64(-1)
		for b, s := range best {
			if b != win.bidder {
				second = max(second, s.top)
			}
		}
		if second >= 0 {
			want = max(want, min(win.top, second+l.IncrementAt(second)))
		}
		if l.ReservePrice > 0 && win.top >= l.ReservePrice {
			want = max(want, l.ReservePrice)
		}
		if l.CurrentPrice != want {
			t.Fatalf("final price %d, want %d (winner max %d, second max %d)", l.CurrentPrice, want, win.top, second)
		}
	})
}

package auction

import "time"

// proposal is what one accepted bid does to a lot: the rows to write, in order, and the
// lot after them. apply is pure so the rules are tested without a database.
type proposal struct {
	rows     []Bid // LotID, BidderID, Amount, Kind set; IDs and Seq by the caller
	mine     int   // index in rows of the caller's own row
	lot      Lot
	extended bool
	started  bool
}

// apply validates the bid against the locked lot at now and applies eBay's proxy rules:
// the leader is the highest maximum (the earlier on a tie) and pays the second-highest
// maximum plus one increment, capped at their own maximum and never below what they bid.
func apply(l Lot, in PlaceBid, now time.Time) (proposal, error) {
	p := proposal{lot: l}
	switch {
	case l.Status == StatusEnded,
		l.Status == StatusScheduled && now.Before(l.StartsAt),
		!now.Before(l.EndsAt):
		return p, ErrNotRunning
	}
	if in.BidderMerchantID != 0 && in.BidderMerchantID == l.MerchantID {
		return p, ErrOwnAuction
	}
	if in.Amount <= 0 || in.Amount > MaxAmount || in.MaxAmount < 0 || in.MaxAmount > MaxAmount {
		return p, ErrBidTooLow.WithDetail("amounts must be 1 to %d", MaxAmount)
	}
	if min := l.MinNext(); in.Amount < min {
		return p, ErrBidTooLow.WithDetail("the lowest acceptable bid is %d", min)
	}
	if l.LeaderID == in.BidderID {
		return p, ErrAlreadyLeading
	}
	top := max(in.Amount, in.MaxAmount)
	row := func(bidder, amount int64, own bool, stated int64) {
		k := KindProxy
		if amount == stated {
			k = KindBid
		}
		if own {
			p.mine = len(p.rows)
		}
		p.rows = append(p.rows, Bid{LotID: l.ID, BidderID: bidder, Amount: amount, Kind: k})
	}
	nl := l
	switch {
	case l.BidCount == 0 || l.LeaderID == 0:
		row(in.BidderID, in.Amount, true, in.Amount)
		nl.CurrentPrice, nl.LeaderID, nl.LeaderMax = in.Amount, in.BidderID, top
	case top > l.LeaderMax:
		price := max(in.Amount, min(top, l.LeaderMax+l.IncrementAt(l.LeaderMax)))
		if l.LeaderMax > l.CurrentPrice {
			row(l.LeaderID, l.LeaderMax, false, -1) // the old leader's proxy went to its maximum
		}
		row(in.BidderID, price, true, in.Amount)
		nl.CurrentPrice, nl.LeaderID, nl.LeaderMax = price, in.BidderID, top
	default: // the leader's maximum holds (a tie goes to the earlier bidder)
		row(in.BidderID, top, true, in.Amount)
		price := min(l.LeaderMax, top+l.IncrementAt(top))
		if price > top {
			row(l.LeaderID, price, false, -1)
		}
		nl.CurrentPrice = price
	}
	// A leader whose maximum reaches the reserve pays at least the reserve.
	if l.ReservePrice > 0 && nl.CurrentPrice < l.ReservePrice && nl.LeaderMax >= l.ReservePrice {
		nl.CurrentPrice = l.ReservePrice
		if last := &p.rows[len(p.rows)-1]; last.BidderID == nl.LeaderID {
			last.Amount, last.Kind = l.ReservePrice, KindProxy
		} else {
			row(nl.LeaderID, l.ReservePrice, false, -1)
		}
	}
	if l.Status == StatusScheduled {
		nl.Status, p.started = StatusRunning, true
	}
	if l.ExtendWindow > 0 && l.Extend > 0 && l.EndsAt.Sub(now) <= l.ExtendWindow {
		nl.EndsAt, p.extended = l.EndsAt.Add(l.Extend), true
	}
	nl.BidCount += int64(len(p.rows))
	nl.Version++
	nl.UpdatedAt = now
	p.lot = nl
	return p, nil
}

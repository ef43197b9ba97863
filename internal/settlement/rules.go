package settlement

import (
	"time"

	"github.com/mallhq/mall/internal/order"
)

// Commission is the platform's commission on n units of a line at price (fen) and rate
// (basis points): price*n*rate/10000 rounded half up to a whole fen, per line (ADR 0026).
// Prices, quantities and rates are never negative; a negative product yields 0.
func Commission(price, n int64, rateBP int) int64 {
	v := price * n * int64(rateBP)
	if v <= 0 {
		return 0
	}
	return (v + 5000) / 10000
}

// Accounts of the double-entry journal. Merchant accounts carry the merchant's ID, the
// platform's carry 0.
const (
	AccountPending    = "merchant_pending"
	AccountAvailable  = "merchant_available"
	AccountPaidOut    = "merchant_paid_out"
	AccountCommission = "platform_commission"
	AccountClearing   = "platform_clearing"
)

// Posting kinds, and the fact keys that make each fact post once.
const (
	PostingCompletion = "completion"
	PostingRefund     = "refund"
	PostingRelease    = "release"
	PostingPayout     = "payout"
)

// amounts is what one fact moves, from the merchant's side: income (+), commission (−),
// refund (−), commission refund (+).
type amounts struct {
	Income, Commission, Refund, CommissionRefund int64
}

func (a amounts) net() int64 { return a.Income + a.Commission + a.Refund + a.CommissionRefund }

// completionAmounts is what order.completed posts: each line's units not refunded before
// completion at its price, less the commission on them.
func completionAmounts(items []order.EventItem) amounts {
	var a amounts
	for _, it := range items {
		units := it.Quantity - it.RefundedQuantity
		if units <= 0 {
			continue
		}
		a.Income += it.Price * units
		a.Commission -= Commission(it.Price, units, it.CommissionRateBP)
	}
	return a
}

// refundAmounts is what a refund after completion posts: per refunded item (k units of a
// line of q units with R refunded in all, this refund included) −price*k and the
// commission back, comm(q−(R−k)) − comm(q−R). The commission refunds of a line telescope:
// whatever the split, the commission kept is comm(q − every unit refunded).
func refundAmounts(items []order.EventItem, refund []order.RefundItem) amounts {
	lines := make(map[int64]order.EventItem, len(items))
	for _, it := range items {
		lines[it.SKUID] = it
	}
	var a amounts
	for _, r := range refund {
		it, ok := lines[r.SKUID]
		if !ok || r.Quantity <= 0 {
			continue
		}
		q, rq, k := it.Quantity, it.RefundedQuantity, r.Quantity
		a.Refund -= it.Price * k
		a.CommissionRefund += Commission(it.Price, q-(rq-k), it.CommissionRateBP) - Commission(it.Price, q-rq, it.CommissionRateBP)
	}
	return a
}

// availableAt is when an order's money becomes available: completion + hold period.
func availableAt(ev order.OrderEvent, hold time.Duration) time.Time {
	at := ev.OccurredAt
	if ev.CompletedAt != nil {
		at = *ev.CompletedAt
	}
	return at.UTC().Add(hold)
}

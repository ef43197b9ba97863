package settlement

import (
	"math/rand/v2"
	"testing"

	"github.com/mallhq/mall/internal/order"
)

func TestCommissionRounding(t *testing.T) {
	tests := []struct {
		name     string
		price, n int64
		bp       int
		want     int64
	}{
		{"exact", 10000, 1, 500, 500},
		{"half a fen rounds up", 10, 1, 500, 1},       // 0.5
		{"just under half rounds down", 9, 1, 500, 0}, // 0.45
		{"just over half rounds up", 11, 1, 500, 1},   // 0.55
		{"1.5 fen rounds up", 30, 1, 500, 2},
		{"2.5 fen rounds up", 50, 1, 500, 3},
		{"1 fen line", 1, 1, 500, 0},
		{"1 fen line at 50%", 1, 1, 5000, 1}, // 0.5
		{"1 fen line at 100%", 1, 1, 10000, 1},
		{"0 bp", 999999, 7, 0, 0},
		{"10000 bp is the whole line", 1999, 3, 10000, 5997},
		{"per line, not per unit", 10, 3, 500, 2}, // 1.5, where per unit would be 3×1
		{"zero units", 1999, 0, 500, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Commission(tt.price, tt.n, tt.bp); got != tt.want {
				t.Fatalf("Commission(%d, %d, %d) = %d, want %d", tt.price, tt.n, tt.bp, got, tt.want)
			}
		})
	}
}

// TestRefundCommissionTelescopes: however a line's units are refunded after completion,
// in how many refunds, the commission kept is the commission on the units left, and the
// money the merchant keeps is their price less it.
func TestRefundCommissionTelescopes(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 26))
	for range 2000 {
		price, q := 1+rng.Int64N(5000), 1+rng.Int64N(12)
		bp := []int{0, 1, 333, 500, 2500, 5000, 9999, 10000}[rng.IntN(8)]
		pre := rng.Int64N(q) // refunded before completion
		it := order.EventItem{SKUID: 7, Price: price, Quantity: q, CommissionRateBP: bp, RefundedQuantity: pre}
		got := completionAmounts([]order.EventItem{it})
		refunded := pre
		for refunded < q && rng.IntN(4) > 0 {
			k := 1 + rng.Int64N(q-refunded)
			refunded += k
			it.RefundedQuantity = refunded
			a := refundAmounts([]order.EventItem{it}, []order.RefundItem{{SKUID: 7, Quantity: k}})
			got.Refund += a.Refund
			got.CommissionRefund += a.CommissionRefund
		}
		left := q - refunded
		if c := -(got.Commission + got.CommissionRefund); c != Commission(price, left, bp) {
			t.Fatalf("p=%d q=%d bp=%d pre=%d refunded=%d: commission kept %d, want %d", price, q, bp, pre, refunded, c,
				Commission(price, left, bp))
		}
		if net := got.net(); net != price*left-Commission(price, left, bp) {
			t.Fatalf("p=%d q=%d bp=%d: net %d, want %d", price, q, bp, net, price*left-Commission(price, left, bp))
		}
	}
}

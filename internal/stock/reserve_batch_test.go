package stock_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/stock"
)

// TestReserveHoldsTogether: the holds of one call (a checkout's orders) are all made or none.
func TestReserveHoldsTogether(t *testing.T) {
	h := newStockHarness(t, stock.ConfigSection.Default())
	ctx := context.Background()
	h.initSKU(3001, merchantA, 5)
	h.initSKU(3002, merchantB, 1)
	later := time.Now().Add(time.Hour)

	err := h.stock.Reserve(ctx,
		hold(1, 7, later, stock.Line{SKUID: 3001, Quantity: 2}),
		hold(2, 7, later, stock.Line{SKUID: 3002, Quantity: 2}))
	if !errors.Is(err, stock.ErrInsufficient) {
		t.Fatalf("second hold short: %v, want stock.insufficient", err)
	}
	h.wantLevel(3001, 5, 0, 0) // the first hold was not made either
	h.wantLevel(3002, 1, 0, 0)
	for _, id := range []int64{1, 2} {
		if rs, err := h.stock.Reservations(ctx, id); err != nil || len(rs) != 0 {
			t.Fatalf("order %d: reservations %v, %v; want none", id, rs, err)
		}
	}

	ok := []stock.Hold{hold(3, 7, later, stock.Line{SKUID: 3001, Quantity: 2}), hold(4, 7, later, stock.Line{SKUID: 3002, Quantity: 1})}
	if err := h.stock.Reserve(ctx, ok...); err != nil {
		t.Fatal(err)
	}
	if err := h.stock.Reserve(ctx, ok...); err != nil { // a repeat changes nothing
		t.Fatalf("repeat: %v", err)
	}
	h.wantLevel(3001, 3, 2, 0)
	h.wantLevel(3002, 0, 1, 0)
	if err := h.stock.Reserve(ctx, ok[0], ok[0]); err == nil {
		t.Fatal("one order twice in a call was accepted")
	}
	h.mustCheck()
}

// TestReserveBatchIsolatesRequests: many concurrent calls share transactions, and a call
// that cannot be served (short stock, over the buyer's cap, an order already holding other
// lines, an unknown SKU) fails alone: every other call of its batch succeeds, and the
// counters equal exactly what the successful calls asked for.
func TestReserveBatchIsolatesRequests(t *testing.T) {
	cfg := stock.ConfigSection.Default()
	cfg.MaxHoldPerBuyer = 3
	h := newStockHarness(t, cfg)
	ctx := context.Background()
	h.initSKU(3101, merchantA, 1_000)
	h.initSKU(3102, merchantB, 100)
	later := time.Now().Add(time.Hour)
	// Order 999 already holds other lines: a Reserve of it with these lines is a conflict.
	if err := h.stock.Reserve(ctx, hold(999, 1, later, stock.Line{SKUID: 3101, Quantity: 1})); err != nil {
		t.Fatal(err)
	}

	const calls = 300
	type outcome struct {
		err        error
		a, b       int64 // units asked of 3101 and 3102
		unknownSKU bool
	}
	results := make([]outcome, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			buyer := int64(100 + i%50) // 6 calls per buyer: some go over the cap of 3
			o := outcome{a: 1, b: int64(1 + i%2)}
			hs := []stock.Hold{
				hold(int64(10_000+2*i), buyer, later, stock.Line{SKUID: 3101, Quantity: o.a}),
				hold(int64(10_001+2*i), buyer, later, stock.Line{SKUID: 3102, Quantity: o.b}),
			}
			switch i % 37 {
			case 5:
				hs[0] = hold(999, 1, later, stock.Line{SKUID: 3102, Quantity: 1}) // conflict
			case 11:
				hs[1].Lines = []stock.Line{{SKUID: 3999, Quantity: 1}} // unknown SKU
				o.unknownSKU = true
			}
			o.err = h.stock.Reserve(ctx, hs...)
			results[i] = o
		})
	}
	wg.Wait()

	var gotA, gotB int64
	counts := map[string]int{}
	for i, o := range results {
		switch {
		case o.err == nil:
			if o.unknownSKU {
				t.Fatalf("call %d with an unknown SKU succeeded", i)
			}
			gotA += o.a
			gotB += o.b
			counts["ok"]++
		case errors.Is(o.err, stock.ErrInsufficient):
			counts["insufficient"]++
		case errors.Is(o.err, stock.ErrHoldLimit):
			counts["hold_limit"]++
		case errors.Is(o.err, stock.ErrReservationConflict):
			if i%37 != 5 {
				t.Fatalf("call %d: unexpected conflict", i)
			}
			counts["conflict"]++
		case errors.Is(o.err, stock.ErrNotFound):
			if !o.unknownSKU {
				t.Fatalf("call %d: unexpected not found", i)
			}
			counts["not_found"]++
		default:
			t.Fatalf("call %d: %v", i, o.err)
		}
	}
	t.Logf("outcomes: %v", counts)
	if counts["ok"] == 0 || counts["insufficient"] == 0 || counts["hold_limit"] == 0 || counts["conflict"] == 0 || counts["not_found"] == 0 {
		t.Fatalf("every kind of outcome should occur: %v", counts)
	}
	// The calls shared transactions: fewer batches than calls.
	sum, count := h.Metric(t, "mall_stock_reserve_batch_requests_sum"), h.Metric(t, "mall_stock_reserve_batch_requests_count")
	t.Logf("%v calls in %v batches", sum, count)
	if count >= sum {
		t.Fatalf("%v calls took %v batches: no call shared a transaction", sum, count)
	}
	h.wantLevel(3101, 1_000-1-gotA, 1+gotA, 0)
	h.wantLevel(3102, 100-gotB, gotB, 0)
	h.mustCheck()
}

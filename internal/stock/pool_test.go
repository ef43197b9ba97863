package stock_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/stock"
)

// TestPoolUnitsAreTheSalesOnly: a pool of 100 of 150 units; 300 concurrent one-unit
// reservations from it win exactly 100 and never touch the 50 others, which ordinary
// orders still get (and no more); released lines go back to the pool, paid ones are sold,
// a late payment retakes from the pool only; closing returns the rest. The invariants
// hold at every step.
func TestPoolUnitsAreTheSalesOnly(t *testing.T) {
	cfg := stock.ConfigSection.Default()
	cfg.MaxHoldPerBuyer = 1000
	h := newStockHarness(t, cfg)
	ctx := context.Background()
	const sku, pool = 3001, 9001
	h.initSKU(sku, merchantA, 150)
	later := time.Now().Add(time.Hour)

	if err := h.stock.OpenPool(ctx, stock.Pool{ID: pool, SKUID: sku, MerchantID: merchantB, Quantity: 100,
		ExpiresAt: later}); !errors.Is(err, stock.ErrNotFound) {
		t.Fatalf("another merchant's SKU: %v", err)
	}
	if err := h.stock.OpenPool(ctx, stock.Pool{ID: pool, SKUID: sku, MerchantID: merchantA, Quantity: 151,
		ExpiresAt: later}); !errors.Is(err, stock.ErrInsufficient) {
		t.Fatalf("more than available: %v", err)
	}
	p := stock.Pool{ID: pool, SKUID: sku, MerchantID: merchantA, Quantity: 100, ExpiresAt: later}
	for range 2 { // idempotent
		if err := h.stock.OpenPool(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	h.wantLevel(sku, 50, 100, 0)
	h.mustCheck()

	var won atomic.Int64
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Go(func() {
			err := h.stock.ReserveFromPool(ctx, pool, hold(int64(10_000+i), int64(1+i), later, stock.Line{SKUID: sku, Quantity: 1}))
			switch {
			case err == nil:
				won.Add(1)
			case !errors.Is(err, stock.ErrInsufficient):
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 100 {
		t.Fatalf("%d reservations from a pool of 100", won.Load())
	}
	h.wantLevel(sku, 50, 100, 0)
	h.mustCheck()
	if got, _ := h.stock.PoolOf(ctx, pool); got.Remaining != 0 || !got.Open {
		t.Fatalf("pool %+v", got)
	}

	// Ordinary orders get the 50 others, not one more.
	if err := h.stock.Reserve(ctx, hold(1, 1, later, stock.Line{SKUID: sku, Quantity: 51})); !errors.Is(err, stock.ErrInsufficient) {
		t.Fatalf("an ordinary order took the sale's units: %v", err)
	}
	if err := h.stock.Reserve(ctx, hold(1, 1, later, stock.Line{SKUID: sku, Quantity: 50})); err != nil {
		t.Fatal(err)
	}
	h.wantLevel(sku, 0, 150, 0)

	// Find the winners: release 10 (back to the pool), pay 10.
	var winners []int64
	for i := range 300 {
		rs, err := h.stock.Reservations(ctx, int64(10_000+i))
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 1 {
			if rs[0].PoolID != pool {
				t.Fatalf("reservation %+v", rs[0])
			}
			winners = append(winners, rs[0].OrderID)
		}
	}
	for _, id := range winners[:10] {
		if err := h.stock.Release(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range winners[10:20] {
		if err := h.stock.Confirm(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	h.wantLevel(sku, 0, 140, 10)
	h.mustCheck()
	if got, _ := h.stock.PoolOf(ctx, pool); got.Remaining != 10 {
		t.Fatalf("pool after 10 releases: %+v", got)
	}
	// A released order paid late retakes from the pool.
	if err := h.stock.Confirm(ctx, winners[0]); err != nil {
		t.Fatal(err)
	}
	h.wantLevel(sku, 0, 139, 11)
	h.mustCheck()
	// Repeats change nothing; a released order cannot be reserved again.
	if err := h.stock.ReserveFromPool(ctx, pool, hold(winners[1], 2, later, stock.Line{SKUID: sku, Quantity: 1})); !errors.Is(err, stock.ErrReservationReleased) {
		t.Fatalf("re-reserving a released line: %v", err)
	}

	// Close: the 9 left return to available; held lines stay, and released later they go to
	// available; a late payment of a line released after the close is stock lost.
	closed, err := h.stock.ClosePool(ctx, pool)
	if err != nil || closed.Remaining != 9 {
		t.Fatalf("close: %+v %v", closed, err)
	}
	if _, err := h.stock.ClosePool(ctx, pool); err != nil {
		t.Fatal(err)
	}
	h.wantLevel(sku, 9, 130, 11)
	h.mustCheck()
	if err := h.stock.ReserveFromPool(ctx, pool, hold(99, 99, later, stock.Line{SKUID: sku, Quantity: 1})); !errors.Is(err, stock.ErrPoolClosed) {
		t.Fatalf("reserve from a closed pool: %v", err)
	}
	held := winners[20]
	if err := h.stock.Release(ctx, held); err != nil {
		t.Fatal(err)
	}
	h.wantLevel(sku, 10, 129, 11)
	if err := h.stock.Confirm(ctx, held); !errors.Is(err, stock.ErrInsufficient) {
		t.Fatalf("late payment after the close: %v", err)
	}
	h.mustCheck()
}

// TestPoolSweeper: an open pool past its expiry is closed by the sweeper, and an expired
// hold from an open pool goes back to the pool, not to available.
func TestPoolSweeper(t *testing.T) {
	h := newStockHarness(t, stock.ConfigSection.Default())
	ctx := context.Background()
	const sku = 3002
	h.initSKU(sku, merchantA, 10)
	soon, later := time.Now().Add(150*time.Millisecond), time.Now().Add(time.Hour)
	if err := h.stock.OpenPool(ctx, stock.Pool{ID: 1, SKUID: sku, MerchantID: merchantA, Quantity: 4, ExpiresAt: later}); err != nil {
		t.Fatal(err)
	}
	if err := h.stock.OpenPool(ctx, stock.Pool{ID: 2, SKUID: sku, MerchantID: merchantA, Quantity: 3, ExpiresAt: soon}); err != nil {
		t.Fatal(err)
	}
	if err := h.stock.ReserveFromPool(ctx, 1, hold(50, 5, soon, stock.Line{SKUID: sku, Quantity: 2})); err != nil {
		t.Fatal(err)
	}
	h.wantLevel(sku, 3, 7, 0)
	time.Sleep(200 * time.Millisecond)
	if _, err := stock.SweepExpired(ctx, h.stock, 100); err != nil {
		t.Fatal(err)
	}
	h.wantLevel(sku, 6, 4, 0) // pool 2's 3 back to available; order 50's 2 back to pool 1
	if p, _ := h.stock.PoolOf(ctx, 1); p.Remaining != 4 || !p.Open {
		t.Fatalf("pool 1: %+v", p)
	}
	if p, _ := h.stock.PoolOf(ctx, 2); p.Open {
		t.Fatalf("pool 2 still open: %+v", p)
	}
	h.mustCheck()
}

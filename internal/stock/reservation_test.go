package stock_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/stock"
	"github.com/mallhq/mall/internal/user"
)

// newStockHarness runs user and stock only, with cfg for the reservations.
func newStockHarness(t testing.TB, cfg stock.Config) *harness {
	t.Helper()
	h := &harness{t: t}
	h.App = apptest.New(t, apptest.Options{
		Modules:  []fx.Option{user.Module, stock.Module, fx.Replace(cfg)},
		Populate: []any{&h.stock},
	})
	return h
}

func hold(order, buyer int64, expires time.Time, lines ...stock.Line) stock.Hold {
	return stock.Hold{OrderID: order, BuyerID: buyer, Lines: lines, ExpiresAt: expires}
}

// mustCheck fails the test when `mall stock check` would.
func (h *harness) mustCheck() stock.Report {
	h.t.Helper()
	rep, err := h.stock.Check(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	if !rep.OK() {
		h.t.Fatalf("stock check: %d violations: %+v", rep.ViolationCount, rep.Violations)
	}
	return rep
}

func (h *harness) wantLevel(skuID, available, reserved, sold int64) {
	h.t.Helper()
	l, err := h.stock.Levels(context.Background(), skuID)
	if err != nil {
		h.t.Fatal(err)
	}
	got := l[skuID]
	if got.Available != available || got.Reserved != reserved || got.Sold != sold {
		h.t.Fatalf("SKU %d: available/reserved/sold = %d/%d/%d, want %d/%d/%d", skuID,
			got.Available, got.Reserved, got.Sold, available, reserved, sold)
	}
	if got.OnHand != got.Available+got.Reserved+got.Sold {
		h.t.Fatalf("SKU %d: on_hand %d != %d", skuID, got.OnHand, got.Available+got.Reserved+got.Sold)
	}
}

// TestReservationLifecycle: reserve, confirm, return and release, each idempotent, each
// moving the counters once and writing the level events.
func TestReservationLifecycle(t *testing.T) {
	h := newStockHarness(t, stock.ConfigSection.Default())
	ctx := context.Background()
	h.initSKU(2001, merchantA, 10)
	h.initSKU(2002, merchantA, 5)
	later := time.Now().Add(time.Hour)

	// Lines arrive in any order; both SKUs are held, all or nothing.
	order := hold(1, 42, later, stock.Line{SKUID: 2002, Quantity: 2}, stock.Line{SKUID: 2001, Quantity: 3})
	for range 2 {
		if err := h.stock.Reserve(ctx, order); err != nil {
			t.Fatal(err)
		}
	}
	h.wantLevel(2001, 7, 3, 0)
	h.wantLevel(2002, 3, 2, 0)
	// The same order with other lines, or a short SKU in a new order: refused, nothing moves.
	if err := h.stock.Reserve(ctx, hold(1, 42, later, stock.Line{SKUID: 2001, Quantity: 4})); !errors.Is(err, stock.ErrReservationConflict) {
		t.Fatalf("other lines for the same order: %v", err)
	}
	err := h.stock.Reserve(ctx, hold(2, 43, later, stock.Line{SKUID: 2001, Quantity: 1}, stock.Line{SKUID: 2002, Quantity: 4}))
	if !errors.Is(err, stock.ErrInsufficient) {
		t.Fatalf("short SKU: %v", err)
	}
	if err := h.stock.Reserve(ctx, hold(3, 43, later, stock.Line{SKUID: 9999, Quantity: 1})); !errors.Is(err, stock.ErrNotFound) {
		t.Fatalf("unknown SKU: %v", err)
	}
	h.wantLevel(2001, 7, 3, 0)
	h.wantLevel(2002, 3, 2, 0)

	// Paid: held -> sold, twice is once; a late Release leaves bought lines alone.
	for range 2 {
		if err := h.stock.Confirm(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.stock.Release(ctx, 1); err != nil {
		t.Fatal(err)
	}
	h.wantLevel(2001, 7, 0, 3)
	h.wantLevel(2002, 3, 0, 2)

	// Refund of one unit of 2001, repeated; then everything; more than bought is refused.
	for range 2 {
		if err := h.stock.Return(ctx, 1, []stock.Line{{SKUID: 2001, Quantity: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	h.wantLevel(2001, 8, 0, 2)
	if err := h.stock.Return(ctx, 1, []stock.Line{{SKUID: 2001, Quantity: 4}}); !errors.Is(err, stock.ErrReservationConflict) {
		t.Fatalf("return more than bought: %v", err)
	}
	if err := h.stock.Return(ctx, 1, nil); err != nil {
		t.Fatal(err)
	}
	h.wantLevel(2001, 10, 0, 0)
	h.wantLevel(2002, 5, 0, 0)
	// A smaller total (an older refund event replayed after a newer one) returns nothing
	// and takes nothing back.
	if err := h.stock.Return(ctx, 1, []stock.Line{{SKUID: 2001, Quantity: 2}}); err != nil {
		t.Fatalf("older, smaller total: %v", err)
	}
	h.wantLevel(2001, 10, 0, 0)

	// Cancelled: released twice is once; a retry of the checkout cannot resurrect it.
	second := hold(4, 42, later, stock.Line{SKUID: 2001, Quantity: 10})
	if err := h.stock.Reserve(ctx, second); err != nil {
		t.Fatal(err)
	}
	h.wantLevel(2001, 0, 10, 0)
	for range 2 {
		if err := h.stock.Release(ctx, 4); err != nil {
			t.Fatal(err)
		}
	}
	h.wantLevel(2001, 10, 0, 0)
	if err := h.stock.Reserve(ctx, second); !errors.Is(err, stock.ErrReservationReleased) {
		t.Fatalf("reserve after release: %v", err)
	}
	if err := h.stock.Confirm(ctx, 999); !errors.Is(err, stock.ErrReservationNotFound) {
		t.Fatalf("confirm of an unknown order: %v", err)
	}
	rs, err := h.stock.Reservations(ctx, 1)
	if err != nil || len(rs) != 2 || rs[0].SKUID != 2001 || rs[0].Status != stock.Bought || rs[0].Returned != 3 {
		t.Fatalf("reservations of order 1 = %+v, %v", rs, err)
	}
	h.mustCheck()
	// Level events of SKU 2001: init, reserve, confirm, return one, return the rest, reserve, release.
	// Each says what moved the counters; only sales and refunds may move the units sold.
	evs := apptest.Events[stock.LevelChanged](h.App, stock.Topic, stock.EventLevelChanged, "2001")
	var causes, sold []string
	for _, e := range evs {
		causes = append(causes, e.Cause)
		if e.SoldChanged() {
			sold = append(sold, e.Cause)
		}
	}
	if want := []string{"set", "hold", "confirm", "return", "return", "hold", "release"}; !slices.Equal(causes, want) {
		t.Fatalf("level events of SKU 2001 by cause: %v, want %v", causes, want)
	}
	if want := []string{"confirm", "return", "return"}; !slices.Equal(sold, want) {
		t.Fatalf("events that may move the units sold: %v, want %v", sold, want)
	}
	if !(stock.LevelChanged{}).SoldChanged() || !(stock.LevelChanged{Cause: stock.CauseRetake}).SoldChanged() {
		t.Fatal("an event of unknown cause or a retake may move the units sold")
	}
}

// TestReserveValidation: malformed holds change nothing.
func TestReserveValidation(t *testing.T) {
	h := newStockHarness(t, stock.ConfigSection.Default())
	ctx := context.Background()
	h.initSKU(2101, merchantA, 10)
	later := time.Now().Add(time.Hour)
	for name, hd := range map[string]stock.Hold{
		"no lines":      hold(1, 1, later),
		"zero quantity": hold(1, 1, later, stock.Line{SKUID: 2101}),
		"too many":      hold(1, 1, later, stock.Line{SKUID: 2101, Quantity: stock.MaxQuantity + 1}),
		"duplicate SKU": hold(1, 1, later, stock.Line{SKUID: 2101, Quantity: 1}, stock.Line{SKUID: 2101, Quantity: 1}),
		"no order":      hold(0, 1, later, stock.Line{SKUID: 2101, Quantity: 1}),
		"no buyer":      hold(1, 0, later, stock.Line{SKUID: 2101, Quantity: 1}),
		"no expiry":     hold(1, 1, time.Time{}, stock.Line{SKUID: 2101, Quantity: 1}),
	} {
		if err := h.stock.Reserve(ctx, hd); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	h.wantLevel(2101, 10, 0, 0)
}

// TestConcurrentReserveNeverOversells: 200 buyers race for 50 units of one SKU; exactly 50
// win, then concurrent payments, cancellations and refunds keep every invariant.
func TestConcurrentReserveNeverOversells(t *testing.T) {
	h := newStockHarness(t, stock.ConfigSection.Default())
	ctx := context.Background()
	const units, buyers = 50, 200
	h.initSKU(2201, merchantA, units)
	later := time.Now().Add(time.Hour)

	var won, short atomic.Int64
	var wg sync.WaitGroup
	for b := range int64(buyers) {
		wg.Go(func() {
			err := h.stock.Reserve(ctx, hold(1000+b, 5000+b, later, stock.Line{SKUID: 2201, Quantity: 1}))
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, stock.ErrInsufficient):
				short.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won.Load() != units || short.Load() != buyers-units {
		t.Fatalf("%d reservations succeeded and %d were short, want %d and %d", won.Load(), short.Load(), units, buyers-units)
	}
	h.wantLevel(2201, 0, units, 0)
	h.mustCheck()

	// Every winner now pays, cancels, or pays and is refunded, twice over, all at once.
	var paid, refunded atomic.Int64
	for b := range int64(buyers) {
		order := 1000 + b
		wg.Go(func() {
			for range 2 {
				var err error
				switch order % 3 {
				case 0:
					err = h.stock.Release(ctx, order)
				case 1:
					if err = h.stock.Confirm(ctx, order); err == nil {
						paid.Add(1)
					}
				case 2:
					if err = h.stock.Confirm(ctx, order); err == nil {
						err = h.stock.Return(ctx, order, nil)
						refunded.Add(1)
					}
				}
				if err != nil && !errors.Is(err, stock.ErrReservationNotFound) {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	rep := h.mustCheck()
	l, err := h.stock.Levels(ctx, 2201)
	if err != nil {
		t.Fatal(err)
	}
	got := l[2201]
	if got.Reserved != 0 || got.OnHand != units || got.Sold != paid.Load()/2 {
		t.Fatalf("after settling: %+v (paid %d, refunded %d)", got, paid.Load()/2, refunded.Load()/2)
	}
	t.Logf("%d winners of %d buyers; %d sold, %d available; checked %d SKUs", won.Load(), buyers, got.Sold, got.Available, rep.Rows)
}

// TestConcurrentMultiSKUOrders: orders over several SKUs, lines in random order, reserved,
// confirmed, released and refunded concurrently: no deadlock escapes the retries, no counter
// goes negative, and the reservations always match the counters.
func TestConcurrentMultiSKUOrders(t *testing.T) {
	h := newStockHarness(t, stock.ConfigSection.Default())
	ctx := context.Background()
	skus := []int64{2301, 2302, 2303, 2304, 2305}
	for _, s := range skus {
		h.initSKU(s, merchantA, 40)
	}
	later := time.Now().Add(time.Hour)
	var ok, short atomic.Int64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for i := range 25 {
				order := int64(10_000 + w*100 + i)
				perm := rng.Perm(len(skus))[:1+rng.IntN(len(skus))]
				var lines []stock.Line
				for _, p := range perm {
					lines = append(lines, stock.Line{SKUID: skus[p], Quantity: 1 + rng.Int64N(3)})
				}
				err := h.stock.Reserve(ctx, hold(order, int64(w+1), later, lines...))
				if errors.Is(err, stock.ErrInsufficient) {
					short.Add(1)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				ok.Add(1)
				switch rng.IntN(3) {
				case 0:
					err = h.stock.Release(ctx, order)
				case 1:
					err = h.stock.Confirm(ctx, order)
				default:
					if err = h.stock.Confirm(ctx, order); err == nil {
						err = h.stock.Return(ctx, order, lines[:1])
					}
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	rep := h.mustCheck()
	levels, err := h.stock.Levels(ctx, skus...)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range skus {
		if l := levels[s]; l.OnHand != 40 || l.Reserved != 0 {
			t.Errorf("SKU %d: %+v", s, l)
		}
	}
	if ok.Load() == 0 || short.Load() == 0 {
		t.Fatalf("%d orders reserved, %d short: the race did not sell out", ok.Load(), short.Load())
	}
	t.Logf("%d orders reserved, %d short; %d SKUs checked", ok.Load(), short.Load(), rep.Rows)
}

// TestConcurrentReserveOfOneOrder: a retried checkout racing itself holds the stock once.
func TestConcurrentReserveOfOneOrder(t *testing.T) {
	h := newStockHarness(t, stock.ConfigSection.Default())
	ctx := context.Background()
	h.initSKU(2401, merchantA, 100)
	h.initSKU(2402, merchantA, 100)
	hd := hold(7, 8, time.Now().Add(time.Hour), stock.Line{SKUID: 2401, Quantity: 5}, stock.Line{SKUID: 2402, Quantity: 1})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := h.stock.Reserve(ctx, hd); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	h.wantLevel(2401, 95, 5, 0)
	h.wantLevel(2402, 99, 1, 0)
	h.mustCheck()
}

// TestHoldCapPerBuyer: one buyer's unpaid units of a SKU are capped, exactly, under races;
// paying frees the cap.
func TestHoldCapPerBuyer(t *testing.T) {
	h := newStockHarness(t, stock.Config{MaxHoldPerBuyer: 3})
	ctx := context.Background()
	h.initSKU(2501, merchantA, 100)
	later := time.Now().Add(time.Hour)
	var won atomic.Int64
	var wg sync.WaitGroup
	for i := range int64(20) {
		wg.Go(func() {
			err := h.stock.Reserve(ctx, hold(100+i, 77, later, stock.Line{SKUID: 2501, Quantity: 1}))
			switch {
			case err == nil:
				won.Add(1)
			case !errors.Is(err, stock.ErrHoldLimit):
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 3 {
		t.Fatalf("buyer holds %d units, cap 3", won.Load())
	}
	// Another buyer is not affected; the first buyer pays one order and may hold one more.
	if err := h.stock.Reserve(ctx, hold(200, 78, later, stock.Line{SKUID: 2501, Quantity: 3})); err != nil {
		t.Fatal(err)
	}
	rs, err := h.reservationsOf(77)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.stock.Confirm(ctx, rs[0]); err != nil {
		t.Fatal(err)
	}
	if err := h.stock.Reserve(ctx, hold(300, 77, later, stock.Line{SKUID: 2501, Quantity: 1})); err != nil {
		t.Fatal(err)
	}
	if err := h.stock.Reserve(ctx, hold(301, 77, later, stock.Line{SKUID: 2501, Quantity: 1})); !errors.Is(err, stock.ErrHoldLimit) {
		t.Fatalf("over the cap after paying one: %v", err)
	}
	h.wantLevel(2501, 100-3-3-1, 3-1+3+1, 1)
	h.mustCheck()
}

// reservationsOf lists the orders holding units for buyer.
func (h *harness) reservationsOf(buyer int64) ([]int64, error) {
	var ids []int64
	err := h.Cluster.Main().SelectContext(context.Background(), &ids,
		`SELECT order_id FROM stock_reservations WHERE buyer_id = ? AND status = 0 ORDER BY order_id`, buyer)
	return ids, err
}

// TestSweeperReleasesExpiredHolds: an unpaid hold past its expiry goes back to available;
// a payment arriving after that takes the stock again when it is still there and fails
// cleanly (nothing changes) when it is not.
func TestSweeperReleasesExpiredHolds(t *testing.T) {
	h := newStockHarness(t, stock.Config{MaxHoldPerBuyer: 100}) // sweeper off: the test sweeps
	ctx := context.Background()
	h.initSKU(2601, merchantA, 5)
	past, later := time.Now().Add(-time.Second), time.Now().Add(time.Hour)
	if err := h.stock.Reserve(ctx, hold(1, 1, past, stock.Line{SKUID: 2601, Quantity: 2})); err != nil {
		t.Fatal(err)
	}
	if err := h.stock.Reserve(ctx, hold(2, 2, past, stock.Line{SKUID: 2601, Quantity: 3})); err != nil {
		t.Fatal(err)
	}
	if err := h.stock.Reserve(ctx, hold(3, 3, later, stock.Line{SKUID: 2601, Quantity: 1})); !errors.Is(err, stock.ErrInsufficient) {
		t.Fatalf("sold out: %v", err)
	}
	n, err := stock.SweepExpired(ctx, h.stock, 10)
	if err != nil || n != 2 {
		t.Fatalf("sweep released %d lines (%v), want 2", n, err)
	}
	if n, err := stock.SweepExpired(ctx, h.stock, 10); err != nil || n != 0 {
		t.Fatalf("second sweep released %d lines (%v)", n, err)
	}
	h.wantLevel(2601, 5, 0, 0)
	// Order 3 takes 4 units; order 1's late payment retakes its 2? Only 1 is left: refused.
	if err := h.stock.Reserve(ctx, hold(3, 3, later, stock.Line{SKUID: 2601, Quantity: 4})); err != nil {
		t.Fatal(err)
	}
	if err := h.stock.Confirm(ctx, 1); !errors.Is(err, stock.ErrInsufficient) {
		t.Fatalf("late payment with the stock gone: %v", err)
	}
	h.wantLevel(2601, 1, 4, 0)
	if err := h.stock.Release(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := h.stock.Confirm(ctx, 2); err != nil { // 3 units back: the late payment keeps its stock
		t.Fatal(err)
	}
	h.wantLevel(2601, 2, 0, 3)
	h.mustCheck()
}

// TestSweeperRunsInTheApplication: with a short interval the module's sweeper releases an
// expired hold by itself.
func TestSweeperRunsInTheApplication(t *testing.T) {
	h := newStockHarness(t, stock.Config{MaxHoldPerBuyer: 100, SweepInterval: 50 * time.Millisecond})
	h.initSKU(2701, merchantA, 5)
	if err := h.stock.Reserve(context.Background(), hold(1, 1, time.Now().Add(200*time.Millisecond),
		stock.Line{SKUID: 2701, Quantity: 5})); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		l, err := h.stock.Levels(context.Background(), 2701)
		if err != nil {
			t.Fatal(err)
		}
		if l[2701].Available == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sweeper did not release the expired hold: %+v", l[2701])
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.mustCheck()
}

// TestCheckFindsReservationMismatch: counters that disagree with the reservations, or an
// on_hand that does not add up, are violations.
func TestCheckFindsReservationMismatch(t *testing.T) {
	h := newStockHarness(t, stock.ConfigSection.Default())
	ctx := context.Background()
	h.initSKU(2801, merchantA, 10)
	h.initSKU(2802, merchantA, 10)
	if err := h.stock.Reserve(ctx, hold(1, 1, time.Now().Add(time.Hour), stock.Line{SKUID: 2801, Quantity: 2})); err != nil {
		t.Fatal(err)
	}
	h.mustCheck()
	db := h.Cluster.Main()
	// Moving a unit between counters keeps on_hand but breaks reserved = held.
	if _, err := db.ExecContext(ctx, `UPDATE stock_levels SET reserved = reserved - 1, available = available + 1 WHERE sku_id = 2801`); err != nil {
		t.Fatal(err)
	}
	// A unit appearing from nowhere breaks on_hand.
	if _, err := db.ExecContext(ctx, `UPDATE stock_levels SET available = available + 1 WHERE sku_id = 2802`); err != nil {
		t.Fatal(err)
	}
	rep, err := h.stock.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ViolationCount != 2 || len(rep.Violations) != 2 || rep.Violations[0].Level.SKUID != 2801 ||
		rep.Violations[0].Problem != "reserved 1 != 2 held by reservations" ||
		rep.Violations[1].Problem != "on_hand 10 != available + reserved + sold = 11" {
		t.Fatalf("Check = %+v", rep)
	}
}

package order_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/stock"
)

// TestStockCallsNeverJoinAnOrderTransaction: the stock module, called from inside a
// transaction of the order module on the database both use (db.main, where the stock
// consumer's inbox transaction used to be), runs in its own transaction: the order
// transaction's rollback does not undo the stock change, and stock's refusal does not
// undo the order's work. The order module's handles are h.Cluster.For("order"): a scope is
// its name, so these are the handles order.Module decorates the cluster with.
func TestStockCallsNeverJoinAnOrderTransaction(t *testing.T) {
	h := newHarness(t, testConfig())
	m, _ := h.merchant()
	sku := h.sku(m, 300, 5)
	b := h.buyer()
	held := h.place(b, line{sku, 2}).Orders[0].ID
	if l := h.level(sku); l.Available != 3 || l.Reserved != 2 {
		t.Fatalf("after the checkout %+v", l)
	}
	ctx := context.Background()
	main := h.Cluster.For("order").Main()
	if _, err := main.ExecContext(ctx, `CREATE TABLE order_seam_probe (id INT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	probe := func(ctx context.Context, id int) error {
		_, err := sqldb.Ext(ctx, main).ExecContext(ctx, `INSERT INTO order_seam_probe VALUES (?)`, id)
		return err
	}
	probed := func(id int) bool {
		var n int
		if err := h.Cluster.Main().GetContext(ctx, &n, `SELECT COUNT(*) FROM order_seam_probe WHERE id = ?`, id); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}

	boom := errors.New("boom")
	err := main.WithinTx(ctx, func(ctx context.Context) error {
		if err := probe(ctx, 1); err != nil {
			return err
		}
		if sqldb.InTx(ctx, h.Cluster.For("stock").Main()) {
			t.Error("the stock module's handle sees the order module's transaction")
		}
		if err := h.stock.Release(ctx, mustInt(t, held)); err != nil {
			return err
		}
		return boom
	}, sqldb.ReadCommitted())
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if probed(1) {
		t.Error("the order transaction was not rolled back")
	}
	if l := h.level(sku); l.Available != 5 || l.Reserved != 0 {
		t.Fatalf("the release rolled back with the order transaction: %+v", l)
	}

	err = main.WithinTx(ctx, func(ctx context.Context) error {
		if err := probe(ctx, 2); err != nil {
			return err
		}
		if err := h.stock.Confirm(ctx, 1); !errors.Is(err, stock.ErrReservationNotFound) {
			t.Errorf("Confirm of an unknown order: %v", err)
		}
		return probe(ctx, 3)
	})
	if err != nil || !probed(2) || !probed(3) {
		t.Fatalf("the stock refusal touched the order transaction: err=%v 2=%v 3=%v", err, probed(2), probed(3))
	}
	h.checkStock()
}

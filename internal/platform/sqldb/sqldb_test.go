package sqldb_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
)

func TestShardRouting(t *testing.T) {
	tests := []struct {
		give     int // logical shard
		physical int
		want     int
	}{
		{0, 2, 0}, {511, 2, 0}, {512, 2, 1}, {1023, 2, 1},
		{0, 1, 0}, {1023, 1, 0},
		{341, 3, 0}, {342, 3, 1}, {683, 3, 2}, {1023, 3, 2},
	}
	for _, tt := range tests {
		if got := sqldb.ShardIndex(tt.give, tt.physical); got != tt.want {
			t.Errorf("ShardIndex(%d, %d) = %d, want %d", tt.give, tt.physical, got, tt.want)
		}
	}
	if got := sqldb.LogicalShard(1024 + 7); got != 7 {
		t.Errorf("LogicalShard = %d", got)
	}
}

func TestClusterRoutesUsersAndIDsToTheSameShard(t *testing.T) {
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{Shards: 2})
	if len(cl.Shards()) != 2 || len(cl.All()) != 3 {
		t.Fatalf("shards=%d all=%d", len(cl.Shards()), len(cl.All()))
	}
	g, _ := idgen.New(1)
	counts := map[string]int{}
	for uid := int64(1); uid <= 2048; uid++ {
		id := g.Next(sqldb.LogicalShard(uid))
		if cl.ForID(id) != cl.ForUser(uid) {
			t.Fatalf("user %d: ID %d routes to %s, user to %s", uid, id, cl.ForID(id).Name, cl.ForUser(uid).Name)
		}
		counts[cl.ForUser(uid).Name]++
	}
	if counts["shard0"] != 1024 || counts["shard1"] != 1024 {
		t.Fatalf("uneven routing: %v", counts)
	}
}

func TestWithinTx(t *testing.T) {
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{})
	db := cl.Main()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE platform_t (id INT PRIMARY KEY, n INT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		if err := db.GetContext(ctx, &n, `SELECT COUNT(*) FROM platform_t`); err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("nested calls join and commit once", func(t *testing.T) {
		err := db.WithinTx(ctx, func(ctx context.Context) error {
			if _, err := sqldb.Ext(ctx, db).ExecContext(ctx, `INSERT INTO platform_t VALUES (1, 0)`); err != nil {
				return err
			}
			return db.WithinTx(ctx, func(ctx context.Context) error {
				if !sqldb.InTx(ctx, db) {
					t.Error("nested call not in tx")
				}
				_, err := sqldb.Ext(ctx, db).ExecContext(ctx, `INSERT INTO platform_t VALUES (2, 0)`)
				return err
			})
		})
		if err != nil || count() != 2 {
			t.Fatalf("err=%v count=%d", err, count())
		}
	})

	t.Run("an error in a nested call rolls back everything", func(t *testing.T) {
		boom := errors.New("boom")
		err := db.WithinTx(ctx, func(ctx context.Context) error {
			_, _ = sqldb.Ext(ctx, db).ExecContext(ctx, `INSERT INTO platform_t VALUES (3, 0)`)
			return db.WithinTx(ctx, func(ctx context.Context) error { return boom })
		})
		if !errors.Is(err, boom) || count() != 2 {
			t.Fatalf("err=%v count=%d", err, count())
		}
	})

	t.Run("a panic rolls back", func(t *testing.T) {
		func() {
			defer func() { _ = recover() }()
			_ = db.WithinTx(ctx, func(ctx context.Context) error {
				_, _ = sqldb.Ext(ctx, db).ExecContext(ctx, `INSERT INTO platform_t VALUES (4, 0)`)
				panic("x")
			})
		}()
		if count() != 2 {
			t.Fatalf("count=%d", count())
		}
	})

	t.Run("deadlocks are retried", func(t *testing.T) {
		// Two rows, transactions locking them in opposite orders: InnoDB kills one of each
		// colliding pair with 1213 and WithinTx runs it again, so every increment lands.
		const workers, rounds = 8, 25
		var wg sync.WaitGroup
		var failed atomic.Int64
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				first, second := 1, 2
				if w%2 == 1 {
					first, second = 2, 1
				}
				for r := 0; r < rounds; r++ {
					err := db.WithinTx(ctx, func(ctx context.Context) error {
						for _, id := range []int{first, second} {
							if _, err := sqldb.Ext(ctx, db).ExecContext(ctx, `UPDATE platform_t SET n = n + 1 WHERE id = ?`, id); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						failed.Add(1)
						t.Errorf("tx: %v", err)
					}
				}
			}(w)
		}
		wg.Wait()
		var sum int
		_ = db.GetContext(ctx, &sum, `SELECT SUM(n) FROM platform_t`)
		if want := 2 * workers * rounds; sum != want-2*int(failed.Load()) || failed.Load() != 0 {
			t.Fatalf("sum=%d want %d (failed %d)", sum, want, failed.Load())
		}
	})
}

func TestMigrateIsIdempotentAndReportsStatus(t *testing.T) {
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{Shards: 2})
	ctx := context.Background()
	ms := []sqldb.Migrations{}
	if err := cl.Migrate(ctx, append(ms, platformMigrations()), discard()); err != nil {
		t.Fatal(err)
	}
	st, err := cl.Status(ctx, []sqldb.Migrations{platformMigrations()})
	if err != nil {
		t.Fatal(err)
	}
	if len(st) == 0 {
		t.Fatal("no status rows")
	}
	perDB := map[string]int{}
	for _, s := range st {
		if !s.Applied {
			t.Errorf("%s %s %d not applied", s.DB, s.Module, s.Version)
		}
		perDB[s.DB]++
	}
	if len(perDB) != 3 {
		t.Fatalf("platform tables must be on every database: %v", perDB)
	}
}

// TestScopesDoNotShareTransactions: two modules' handles of one database share its pool
// but not a transaction. A call from inside one module's transaction into another module
// (its own scope) commits on its own, whatever the caller's transaction does; handles of
// the same scope join as before, and outbox-style platform code still finds the caller's
// transaction with CurrentTx. After-commit hooks run at the commit of their own transaction.
func TestScopesDoNotShareTransactions(t *testing.T) {
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{Shards: 2})
	ctx := context.Background()
	orders, stock := cl.For("order"), cl.For("stock")
	if _, err := cl.Main().ExecContext(ctx, `CREATE TABLE platform_scoped (id INT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	has := func(id int) bool {
		var n int
		if err := cl.Main().GetContext(ctx, &n, `SELECT COUNT(*) FROM platform_scoped WHERE id = ?`, id); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	insert := func(ctx context.Context, d *sqldb.DB, id int) error {
		_, err := sqldb.Ext(ctx, d).ExecContext(ctx, `INSERT INTO platform_scoped VALUES (?)`, id)
		return err
	}

	if orders.Scope() != "order" || orders.For("order") != orders || cl.Scope() != "" {
		t.Fatalf("scopes %q %q", orders.Scope(), cl.Scope())
	}
	if len(orders.All()) != 3 || orders.ForUser(1) == orders.ForUser(1023) || orders.Main().Name != "main" ||
		orders.ForUser(1023).DB != cl.ForUser(1023).DB || orders.ForUser(1023).Name != cl.ForUser(1023).Name {
		t.Fatal("a scoped cluster routes differently from its source")
	}

	boom := errors.New("boom")
	var stockCommitted, orderCommitted bool
	err := orders.Main().WithinTx(ctx, func(ctx context.Context) error {
		if err := sqldb.AfterCommit(ctx, func(context.Context) { orderCommitted = true }); err != nil {
			return err
		}
		if err := insert(ctx, orders.Main(), 1); err != nil {
			return err
		}
		if sqldb.InTx(ctx, stock.Main()) || sqldb.InTx(ctx, cl.Main()) || !sqldb.InTx(ctx, cl.For("order").Main()) {
			t.Error("InTx: only a handle of the same scope is in the transaction")
		}
		// Another module, called from inside the transaction: its own transaction.
		if err := stock.Main().WithinTx(ctx, func(ctx context.Context) error {
			if ext, db, ok := sqldb.CurrentTx(ctx); !ok || db.Scope() != "stock" || ext == nil {
				t.Error("CurrentTx inside the stock transaction")
			}
			if err := sqldb.AfterCommit(ctx, func(context.Context) { stockCommitted = true }); err != nil {
				return err
			}
			return insert(ctx, stock.Main(), 2)
		}); err != nil {
			return err
		}
		// Another module without a transaction of its own: the pool, committed at once.
		if err := insert(ctx, stock.Main(), 3); err != nil {
			return err
		}
		if !stockCommitted {
			t.Error("the stock transaction's after-commit hook did not run at its own commit")
		}
		if _, db, ok := sqldb.CurrentTx(ctx); !ok || db.Scope() != "order" {
			t.Error("CurrentTx after the stock call is not order's transaction")
		}
		// The same scope, even through another For, joins.
		again := cl.For("order").Main()
		return again.WithinTx(ctx, func(ctx context.Context) error {
			if err := insert(ctx, again, 4); err != nil {
				return err
			}
			return boom
		})
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if orderCommitted {
		t.Error("the rolled-back order transaction ran its after-commit hook")
	}
	if has(1) || has(4) || !has(2) || !has(3) {
		t.Fatalf("after the order rollback: 1=%v 4=%v (want false), 2=%v 3=%v (want true)", has(1), has(4), has(2), has(3))
	}

	// The inner module's rollback leaves the outer transaction alone.
	err = orders.Main().WithinTx(ctx, func(ctx context.Context) error {
		if err := insert(ctx, orders.Main(), 5); err != nil {
			return err
		}
		if err := stock.Main().WithinTx(ctx, func(ctx context.Context) error {
			if err := insert(ctx, stock.Main(), 6); err != nil {
				return err
			}
			return boom
		}); !errors.Is(err, boom) {
			t.Errorf("stock tx: %v", err)
		}
		return nil
	})
	if err != nil || !has(5) || has(6) {
		t.Fatalf("err=%v 5=%v (want true) 6=%v (want false)", err, has(5), has(6))
	}
}

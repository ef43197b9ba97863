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

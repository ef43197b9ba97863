package sqldb_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
)

func TestAfterCommit(t *testing.T) {
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{Shards: 2})
	db, shard := cl.Main(), cl.Shards()[1]
	ctx := context.Background()
	errBoom := errors.New("boom")

	t.Run("outside a transaction", func(t *testing.T) {
		if err := sqldb.AfterCommit(ctx, func(context.Context) {}); !errors.Is(err, sqldb.ErrNoTx) {
			t.Fatalf("err = %v, want ErrNoTx", err)
		}
	})

	t.Run("runs once after the outermost commit, in order", func(t *testing.T) {
		var got []string
		err := db.WithinTx(ctx, func(ctx context.Context) error {
			if err := sqldb.AfterCommit(ctx, func(context.Context) { got = append(got, "outer") }); err != nil {
				return err
			}
			err := db.WithinTx(ctx, func(ctx context.Context) error {
				return sqldb.AfterCommit(ctx, func(ctx context.Context) {
					if _, _, inTx := sqldb.CurrentTx(ctx); inTx {
						t.Error("the hook's context still carries the committed transaction")
					}
					got = append(got, "inner")
				})
			})
			if len(got) != 0 {
				t.Errorf("hooks ran before the outermost commit: %v", got)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"outer", "inner"}; !slices.Equal(got, want) {
			t.Fatalf("ran %v, want %v", got, want)
		}
	})

	t.Run("never on rollback", func(t *testing.T) {
		ran := false
		err := db.WithinTx(ctx, func(ctx context.Context) error {
			if err := sqldb.AfterCommit(ctx, func(context.Context) { ran = true }); err != nil {
				return err
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) || ran {
			t.Fatalf("err = %v, ran = %v; want boom and no run", err, ran)
		}
	})

	t.Run("only the attempt that commits", func(t *testing.T) {
		var ran []int
		attempt := 0
		err := db.WithinTx(ctx, func(ctx context.Context) error {
			attempt++
			n := attempt
			if err := sqldb.AfterCommit(ctx, func(context.Context) { ran = append(ran, n) }); err != nil {
				return err
			}
			if n < 3 {
				return &mysql.MySQLError{Number: sqldb.ErLockDeadlock, Message: "Deadlock found (test)"}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if attempt != 3 || !slices.Equal(ran, []int{3}) {
			t.Fatalf("%d attempts, hooks of attempts %v ran; want 3 attempts and only the third's hook", attempt, ran)
		}
	})

	t.Run("registers on the innermost transaction", func(t *testing.T) {
		var got []string
		err := db.WithinTx(ctx, func(ctx context.Context) error {
			err := shard.WithinTx(ctx, func(ctx context.Context) error {
				return sqldb.AfterCommit(ctx, func(context.Context) { got = append(got, "shard") })
			})
			if err != nil {
				return err
			}
			if !slices.Equal(got, []string{"shard"}) {
				t.Errorf("after the shard's commit ran %v, want [shard]", got)
			}
			if err := sqldb.AfterCommit(ctx, func(context.Context) { got = append(got, "main") }); err != nil {
				return err
			}
			return errBoom // main rolls back; the shard's transaction is already committed
		})
		if !errors.Is(err, errBoom) || !slices.Equal(got, []string{"shard"}) {
			t.Fatalf("err = %v, ran %v; want boom and [shard]", err, got)
		}
	})
}

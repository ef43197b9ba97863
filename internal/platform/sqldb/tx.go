package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
)

type txKey struct{}

type txState struct {
	db *DB
	tx *sqlx.Tx

	mu          sync.Mutex
	afterCommit []func(ctx context.Context)
}

// joins reports whether a call through d belongs to the transaction: same physical
// database, same module scope (see Cluster.For). Any other handle, including another
// module's handle of the same database, uses its own connection.
func (st *txState) joins(d *DB) bool { return st.db.DB == d.DB && st.db.scope == d.scope }

// txOf returns the transaction in ctx that a call through d joins.
func txOf(ctx context.Context, d *DB) (*txState, bool) {
	st, ok := ctx.Value(txKey{}).(*txState)
	if !ok || !st.joins(d) {
		return nil, false
	}
	return st, true
}

// ErrNoTx is returned by operations that must run inside a transaction.
var ErrNoTx = errors.New("sqldb: no transaction in context")

// TxOption adjusts a transaction.
type TxOption func(*sql.TxOptions)

// ReadCommitted runs the transaction at READ COMMITTED (no gap locks on locking reads).
func ReadCommitted() TxOption {
	return func(o *sql.TxOptions) { o.Isolation = sql.LevelReadCommitted }
}

// MaxTxAttempts bounds retries of a transaction that hit a deadlock or lock-wait timeout.
const MaxTxAttempts = 10

// WithinTx runs fn in a transaction on d carried in the context. A nested call through a
// handle of the same database and module scope joins the outer transaction (another
// module's handle opens its own, see Cluster.For); the outermost call commits, or rolls
// back when fn returns an error or panics. The outermost call retries fn on deadlock
// (1213) and lock wait timeout (1205), so fn must not have effects outside the transaction.
func (d *DB) WithinTx(ctx context.Context, fn func(ctx context.Context) error, opts ...TxOption) error {
	if _, ok := txOf(ctx, d); ok {
		return fn(ctx)
	}
	var txo sql.TxOptions
	for _, o := range opts {
		o(&txo)
	}
	var err error
	for attempt := 1; ; attempt++ {
		err = d.runTx(ctx, &txo, fn)
		if err == nil || !Retryable(err) || attempt >= MaxTxAttempts {
			return err
		}
		// Jittered exponential backoff (2ms, 4ms, ... capped at 100ms) spreads colliding transactions.
		back := min(time.Duration(1<<attempt)*time.Millisecond, 100*time.Millisecond)
		back += time.Duration(rand.Int64N(int64(back)))
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(back):
		}
	}
}

func (d *DB) runTx(ctx context.Context, txo *sql.TxOptions, fn func(ctx context.Context) error) (err error) {
	tx, err := d.BeginTxx(ctx, txo)
	if err != nil {
		return fmt.Errorf("sqldb: begin on %s: %w", d.Name, err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
	}()
	st := &txState{db: d, tx: tx}
	if err = fn(context.WithValue(ctx, txKey{}, st)); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("sqldb: commit on %s: %w", d.Name, err)
	}
	st.runAfterCommit(ctx)
	return nil
}

// AfterCommit registers fn to run once the transaction in ctx (the innermost one, as
// CurrentTx) has committed: after the outermost WithinTx's commit, with the context that
// call was given (without the committed transaction). It never runs when the transaction rolls back, and an
// attempt retried after a deadlock discards what it registered, so fn runs at most once,
// for the attempt that committed. Outside a transaction it returns ErrNoTx. fn runs on
// the committing goroutine before WithinTx returns, so it must be quick (a wake-up, a
// metric), and it must not fail: the transaction is already durable.
func AfterCommit(ctx context.Context, fn func(ctx context.Context)) error {
	st, ok := ctx.Value(txKey{}).(*txState)
	if !ok {
		return ErrNoTx
	}
	st.mu.Lock()
	st.afterCommit = append(st.afterCommit, fn)
	st.mu.Unlock()
	return nil
}

func (st *txState) runAfterCommit(ctx context.Context) {
	st.mu.Lock()
	fns := st.afterCommit
	st.afterCommit = nil
	st.mu.Unlock()
	for _, fn := range fns {
		fn(ctx)
	}
}

// Ext returns the transaction in ctx when d joins it (same database and scope), otherwise
// d's pool. Stores call it so they work both inside and outside WithinTx.
func Ext(ctx context.Context, d *DB) sqlx.ExtContext {
	if st, ok := txOf(ctx, d); ok {
		return st.tx
	}
	return d.DB
}

// CurrentTx returns the innermost transaction in ctx and the handle that opened it,
// whatever its scope: for platform code that writes with the caller's transaction
// (outbox.Add).
func CurrentTx(ctx context.Context) (sqlx.ExtContext, *DB, bool) {
	st, ok := ctx.Value(txKey{}).(*txState)
	if !ok {
		return nil, nil, false
	}
	return st.tx, st.db, true
}

// InTx reports whether ctx carries a transaction that d joins.
func InTx(ctx context.Context, d *DB) bool {
	_, ok := txOf(ctx, d)
	return ok
}

// MySQL error numbers used across the code base.
const (
	ErDupEntry        = 1062
	ErLockWaitTimeout = 1205
	ErLockDeadlock    = 1213
)

// Retryable reports whether err is a deadlock or lock-wait timeout.
func Retryable(err error) bool {
	return IsMySQLError(err, ErLockDeadlock) || IsMySQLError(err, ErLockWaitTimeout)
}

// IsDuplicate reports whether err is a unique-key violation.
func IsDuplicate(err error) bool { return IsMySQLError(err, ErDupEntry) }

// IsMySQLError reports whether err carries the MySQL error number.
func IsMySQLError(err error, number uint16) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == number
}

package outbox

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"time"
)

func (r *Relay) run() {
	defer close(r.done)
	wait := time.Duration(0)
	for !r.isStopping() {
		if wait > 0 && !r.pause(wait, false) {
			return
		}
		wait = r.o.followerPoll
		conn, err := r.acquire()
		if err != nil {
			r.m.errors.Inc()
			r.log.Warn("outbox relay could not try the leader lock", "error", err)
			continue
		}
		if conn == nil {
			continue // another replica leads
		}
		if crashed := r.lead(conn); crashed {
			return
		}
		// After losing the lock this replica's connection or network is suspect: give the
		// others a head start.
		wait = 2 * r.o.followerPoll
	}
}

const lockPrefix = "mall.outbox.relay:"

// acquire tries the leader lock on a dedicated connection; it returns nil, nil when
// another session holds it.
func (r *Relay) acquire() (*sql.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r.lockName == "" {
		// Lock names are server-wide, and several databases (shards, test databases) may
		// share a server: name the lock after the database. MySQL limits names to 64
		// characters.
		var name string
		if err := r.db.GetContext(ctx, &name, `SELECT DATABASE()`); err != nil {
			return nil, err
		}
		if len(lockPrefix)+len(name) > 64 {
			sum := sha256.Sum256([]byte(name))
			name = hex.EncodeToString(sum[:])[:64-len(lockPrefix)]
		}
		r.lockName = lockPrefix + name
	}
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(?, 0)`, r.lockName).Scan(&got); err != nil {
		discard(conn)
		return nil, err
	}
	if got.Int64 != 1 {
		_ = conn.Close() // back to the pool: it holds nothing
		return nil, nil
	}
	return conn, nil
}

// discard closes conn instead of returning it to the pool, so a lock it may hold dies with
// it rather than following the connection to another user.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

func (r *Relay) release(conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Releasing explicitly frees the lock at once even if closing the socket is slow.
	_, _ = conn.ExecContext(ctx, `DO RELEASE_LOCK(?)`, r.lockName)
	discard(conn)
}

// lead relays batches while conn holds the lock. It returns when stopping, after losing the
// lock, or (crashed) when the test hook killed the relay.
func (r *Relay) lead(conn *sql.Conn) (crashed bool) {
	r.leader.Store(true)
	r.m.leader.Set(1)
	r.log.Info("outbox relay is the leader")
	mctx, cancel := context.WithCancel(context.Background())
	maintained := make(chan struct{})
	go func() {
		defer close(maintained)
		r.maintain(mctx)
	}()
	defer func() {
		cancel()
		<-maintained
		if crashed {
			discard(conn)
		} else {
			r.release(conn)
		}
		r.leader.Store(false)
		r.m.leader.Set(0)
		r.m.backlog.Set(0)
		r.m.oldestAge.Set(0)
		r.m.deadRows.Set(0)
	}()
	for !r.isStopping() {
		n, err := r.relayBatch(conn)
		switch {
		case errors.Is(err, errCrashed):
			return true
		case errors.Is(err, errNotLeader):
			r.m.errors.Inc()
			r.log.Warn("outbox relay lost the leader lock", "error", err)
			return false
		case err != nil:
			r.m.errors.Inc()
			r.log.Error("outbox relay batch failed", "error", err)
			if !r.pause(max(r.cfg.PollInterval, time.Second), false) {
				return false
			}
			continue
		case n >= r.cfg.BatchSize:
			continue // more may be waiting
		}
		if !r.pause(r.cfg.PollInterval, true) {
			return false
		}
	}
	return false
}

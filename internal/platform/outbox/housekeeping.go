package outbox

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/mallhq/mall/internal/platform/sqldb"
)

// maintain refreshes the gauges and deletes old rows while this relay leads. It uses the
// pool, not the lock connection, so the gauges keep moving while a batch waits on a broker.
func (r *Relay) maintain(ctx context.Context) {
	stats := time.NewTicker(r.o.statsInterval)
	defer stats.Stop()
	house := time.NewTicker(r.o.housekeeping)
	defer house.Stop()
	r.refreshStats(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-stats.C:
			r.refreshStats(ctx)
		case <-house.C:
			r.housekeep(ctx)
		}
	}
}

func (r *Relay) refreshStats(ctx context.Context) {
	var backlog, dead int64
	var oldest sql.NullTime
	err := r.db.GetContext(ctx, &backlog, `SELECT COUNT(*) FROM platform_outbox WHERE status = 0`)
	if err == nil {
		// The lowest pending ID is, but for commit-order jitter, the oldest row; this
		// reads one index entry where MIN(created_at) would read every pending row.
		err = r.db.GetContext(ctx, &oldest, `SELECT created_at FROM platform_outbox FORCE INDEX (ix_platform_outbox_claim) WHERE status = 0 ORDER BY id LIMIT 1`)
		if errors.Is(err, sql.ErrNoRows) {
			err = nil
		}
	}
	if err == nil {
		err = r.db.GetContext(ctx, &dead, `SELECT COUNT(*) FROM platform_outbox WHERE status = 2`)
	}
	if err != nil {
		if ctx.Err() == nil {
			r.m.errors.Inc()
			r.log.Warn("outbox stats query failed", "error", err)
		}
		return
	}
	r.m.backlog.Set(float64(backlog))
	r.m.deadRows.Set(float64(dead))
	age := 0.0
	if oldest.Valid {
		age = max(time.Since(oldest.Time).Seconds(), 0)
	}
	r.m.oldestAge.Set(age)
}

// housekeep deletes published outbox rows and inbox rows past their retention, a small
// batch per transaction so it never holds many locks, and a bounded number of batches per
// round so a large first cleanup spreads over several rounds.
func (r *Relay) housekeep(ctx context.Context) {
	now := time.Now().UTC()
	jobs := []struct {
		what, query string
		before      time.Time
	}{
		{"outbox", `DELETE FROM platform_outbox WHERE status = 1 AND published_at < ? LIMIT ?`, now.Add(-r.o.retention)},
		{"inbox", `DELETE FROM platform_inbox WHERE processed_at < ? LIMIT ?`, now.Add(-r.o.inboxRetention)},
	}
	for _, j := range jobs {
		for range 20 {
			var n int64
			err := r.db.WithinTx(ctx, func(ctx context.Context) error {
				res, err := sqldb.Ext(ctx, r.db).ExecContext(ctx, j.query, j.before, r.o.deleteBatchSize)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			}, sqldb.ReadCommitted()) // no gap locks: inserts of new rows go on
			if err != nil {
				if ctx.Err() == nil {
					r.m.errors.Inc()
					r.log.Warn("outbox housekeeping failed", "table", j.what, "error", err)
				}
				break
			}
			if n < int64(r.o.deleteBatchSize) {
				break
			}
		}
	}
}

package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/worker"
)

// maintenance runs the gauges' refresh and the deletion of old rows while this relay
// leads: two workers, started by lead and stopped (waiting for a run in flight) when the
// lead ends. They use the pool, not the lock connection, so the gauges keep moving while a
// batch waits on a broker.
func (r *Relay) maintenance() (*worker.Runner, error) {
	return worker.New(worker.Params{Log: r.log, Registry: r.m.reg, Workers: []worker.Spec{
		{Name: "outbox.stats." + r.db.Name, Interval: r.o.statsInterval, RunAtStart: true, Run: r.refreshStats},
		{Name: "outbox.housekeeping." + r.db.Name, Interval: r.o.housekeeping, Run: r.housekeep},
	}})
}

func (r *Relay) refreshStats(ctx context.Context) error {
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
		}
		return fmt.Errorf("outbox: stats of %s: %w", r.db.Name, err)
	}
	r.m.backlog.Set(float64(backlog))
	r.m.deadRows.Set(float64(dead))
	age := 0.0
	if oldest.Valid {
		age = max(time.Since(oldest.Time).Seconds(), 0)
	}
	r.m.oldestAge.Set(age)
	return nil
}

// housekeep deletes published outbox rows and inbox rows past their retention, a small
// batch per transaction so it never holds many locks, and a bounded number of batches per
// round so a large first cleanup spreads over several rounds.
func (r *Relay) housekeep(ctx context.Context) error {
	var errs []error
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
				}
				errs = append(errs, fmt.Errorf("outbox: housekeeping of %s on %s: %w", j.what, r.db.Name, err))
				break
			}
			if n < int64(r.o.deleteBatchSize) {
				break
			}
		}
	}
	return errors.Join(errs...)
}

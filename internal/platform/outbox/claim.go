package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

type outboxRow struct {
	ID          int64
	EventID     string
	Topic       string
	AggregateID string
	EventType   string
	Envelope    []byte
	Attempts    int
}

// claimRows takes the oldest available pending rows. By status, never by "id > last seen":
// IDs are assigned at insert and transactions commit in another order, so a row can appear
// behind one already published. The NOT EXISTS holds back rows whose aggregate has an
// earlier row waiting out a retry backoff, so a failing event is not overtaken by its
// successors (ix_platform_outbox_aggregate makes it one index probe per row). The index
// hint matters: for ORDER BY id LIMIT the optimizer likes to walk the primary key, which
// means stepping over every published row still kept for the retention period. SKIP LOCKED
// can leave a hole in an aggregate's sequence (a row its writer is still committing):
// dropOvertakers removes the rows behind such a hole before anything is produced.
const claimRows = `
SELECT o.id, o.event_id, o.topic, o.aggregate_id, o.event_type, o.envelope, o.attempts
FROM platform_outbox o FORCE INDEX (ix_platform_outbox_claim)
WHERE o.status = 0 AND o.available_at <= ?
  AND NOT EXISTS (
    SELECT 1 FROM platform_outbox b
    WHERE b.aggregate_id = o.aggregate_id AND b.status = 0 AND b.available_at > ? AND b.id < o.id)
ORDER BY o.id
LIMIT ?
FOR UPDATE SKIP LOCKED`

// firstPendingOutside finds, per aggregate of a claimed batch, the lowest pending row the
// claim did not take. It is a plain (non-locking) read, and under READ COMMITTED a new
// statement sees every row committed before it started.
const firstPendingOutside = `
SELECT aggregate_id, MIN(id)
FROM platform_outbox FORCE INDEX (ix_platform_outbox_aggregate)
WHERE aggregate_id IN (%s) AND status = 0 AND id NOT IN (%s)
GROUP BY aggregate_id`

// dropOvertakers removes from a claimed batch every row with an older pending row of its
// aggregate that the claim did not take; those rows stay pending (and locked by this
// transaction only until it ends) for a later batch.
//
// SKIP LOCKED alone does not keep order: a locking read in READ COMMITTED reads each row as
// it reaches it, so the claim skips a row whose writer has not committed yet (its insert
// lock) and, further along the same scan, takes a row of the same aggregate that a later
// transaction committed meanwhile. Any other holder of an older row's lock (a previous
// leader's session still being torn down) is caught the same way. A row still uncommitted
// when this check runs is not a problem: its aggregate's later rows commit after it.
func (r *Relay) dropOvertakers(ctx context.Context, tx *sql.Tx, rows []outboxRow) ([]outboxRow, error) {
	aggs := map[string]bool{}
	args := make([]any, 0, 2*len(rows))
	for _, row := range rows {
		if !aggs[row.AggregateID] {
			aggs[row.AggregateID] = true
			args = append(args, row.AggregateID)
		}
	}
	nAggs := len(args)
	for _, row := range rows {
		args = append(args, row.ID)
	}
	q := fmt.Sprintf(firstPendingOutside,
		"?"+strings.Repeat(", ?", nAggs-1), "?"+strings.Repeat(", ?", len(rows)-1))
	rs, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("outbox: check claim on %s: %w", r.db.Name, err)
	}
	defer rs.Close()
	first := map[string]int64{}
	for rs.Next() {
		var agg string
		var id int64
		if err := rs.Scan(&agg, &id); err != nil {
			return nil, fmt.Errorf("outbox: check claim on %s: %w", r.db.Name, err)
		}
		first[agg] = id
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("outbox: check claim on %s: %w", r.db.Name, err)
	}
	if len(first) == 0 {
		return rows, nil
	}
	kept := rows[:0]
	for _, row := range rows {
		if id, ok := first[row.AggregateID]; ok && id < row.ID {
			continue
		}
		kept = append(kept, row)
	}
	if dropped := len(rows) - len(kept); dropped > 0 {
		r.log.Debug("outbox relay held back rows behind an older row it could not claim", "rows", dropped)
	}
	return kept, nil
}

func (r *Relay) claim(ctx context.Context, tx *sql.Tx, now time.Time) ([]outboxRow, error) {
	rs, err := tx.QueryContext(ctx, claimRows, now, now, r.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("outbox: claim on %s: %w", r.db.Name, err)
	}
	defer rs.Close()
	var rows []outboxRow
	for rs.Next() {
		var o outboxRow
		if err := rs.Scan(&o.ID, &o.EventID, &o.Topic, &o.AggregateID, &o.EventType, &o.Envelope, &o.Attempts); err != nil {
			return nil, fmt.Errorf("outbox: claim on %s: %w", r.db.Name, err)
		}
		rows = append(rows, o)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("outbox: claim on %s: %w", r.db.Name, err)
	}
	return rows, nil
}

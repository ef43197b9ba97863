package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mallhq/mall/internal/platform/backoff"
	"github.com/mallhq/mall/internal/platform/text"
)

// mark records the outcome of a batch: produced rows become published, failed rows wait
// out a backoff or, at their last attempt, become dead. Rows held back or failed because
// the producer closed under them (shutdown) stay as they were.
func (r *Relay) mark(ctx context.Context, tx *sql.Tx, rows []outboxRow, results []error, now time.Time) (published, dead int, err error) {
	var ok []any
	var retrying int
	var firstErr error
	for i, row := range rows {
		res := results[i]
		switch {
		case res == nil:
			ok = append(ok, row.ID)
			continue
		case errors.Is(res, errHeldBack), errors.Is(res, kgo.ErrClientClosed):
			continue
		}
		r.m.errors.Inc()
		attempts := row.Attempts + 1
		msg := text.Truncate(res.Error(), 1000)
		if attempts >= r.cfg.MaxAttempts {
			_, err = tx.ExecContext(ctx, `UPDATE platform_outbox SET status = 2, attempts = ?, last_error = ? WHERE id = ?`,
				attempts, msg, row.ID)
			dead++
			r.log.Error("outbox row is dead: giving up publishing it", "id", row.ID, "event_id", row.EventID,
				"topic", row.Topic, "aggregate_id", row.AggregateID, "event_type", row.EventType,
				"attempts", attempts, "error", res)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE platform_outbox SET attempts = ?, last_error = ?, available_at = ? WHERE id = ?`,
				attempts, msg, now.Add(backoff.Exponential(attempts, r.cfg.BackoffBase, r.cfg.BackoffMax)), row.ID)
			retrying++
			if firstErr == nil {
				firstErr = res
			}
		}
		if err != nil {
			return 0, 0, fmt.Errorf("outbox: mark failed row on %s: %w", r.db.Name, err)
		}
	}
	if retrying > 0 {
		r.log.Warn("outbox rows failed to publish; retrying with backoff", "rows", retrying, "first_error", firstErr)
	}
	if len(ok) > 0 {
		q := `UPDATE platform_outbox SET status = 1, published_at = ? WHERE id IN (?` + strings.Repeat(", ?", len(ok)-1) + `)`
		if _, err := tx.ExecContext(ctx, q, append([]any{now}, ok...)...); err != nil {
			return 0, 0, fmt.Errorf("outbox: mark published on %s: %w", r.db.Name, err)
		}
	}
	return len(ok), dead, nil
}

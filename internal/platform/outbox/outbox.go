// Package outbox is Mall's transactional outbox. A module writes its events with Add in the
// same transaction as its rows, so an event exists exactly when the change it announces
// was committed. A Relay per physical database publishes pending rows to Kafka keyed by
// aggregate ID, at least once; consumers deduplicate with the inbox (see kafkax.Runner).
//
// Per-aggregate order: the relay publishes rows in ID order, so events of one aggregate
// keep their order as long as they get their IDs in commit order. A module achieves that
// by taking the aggregate's row lock (the UPDATE of the aggregate) before Add in the same
// transaction; events of different aggregates carry no order.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

var (
	// ErrNoTx means Add was called without a transaction in ctx: an event written outside
	// the transaction of its change could announce a change that never commits.
	// errors.Is(ErrNoTx, sqldb.ErrNoTx) holds.
	ErrNoTx = fmt.Errorf("outbox: %w", sqldb.ErrNoTx)
	// ErrInvalidEvent means an event lacks a topic, aggregate ID or type, or one is too
	// long for its column.
	ErrInvalidEvent = errors.New("outbox: invalid event")
)

// Event is one event to publish.
type Event struct {
	// Topic is the full topic name, kafkax.Topic(module).
	Topic string
	// AggregateID is the record key: one aggregate's events share a partition.
	AggregateID string
	// Type is the event type, "<module>.<thing>.<happened>", e.g. "order.placed".
	Type string
	// Payload is marshalled to JSON.
	Payload any
}

// Writer writes events in the caller's transaction. Modules depend on it (see Module) so
// their tests can swap it.
type Writer interface {
	Add(ctx context.Context, events ...Event) error
}

// NewWriter returns the Writer backed by Add. When the transaction of an Add commits, the
// writer wakes the relays among relays that publish that transaction's database, so its
// events go out at once rather than at the relay's next poll (outbox.poll_interval). A
// relay only acts on the wake while it leads: with several replicas, events written on a
// replica whose relay does not lead wait for the leader's poll. Without relays (tests,
// modules built without fx) every event waits for the poll.
//
// Relays are matched by connection pool (the *sqlx.DB inside a *sqldb.DB), not by the
// *sqldb.DB pointer, so any handle on the same pool finds its database's relay.
func NewWriter(relays ...*Relay) Writer {
	w := writer{relays: map[*sqlx.DB][]*Relay{}}
	for _, r := range relays {
		w.relays[r.db.DB] = append(w.relays[r.db.DB], r)
	}
	return w
}

// WriterOr returns w, or NewWriter() when w is nil (modules take an optional Writer).
func WriterOr(w Writer) Writer {
	if w == nil {
		return NewWriter()
	}
	return w
}

type writer struct {
	relays map[*sqlx.DB][]*Relay // read-only after NewWriter
}

var _ Writer = writer{}

func (w writer) Add(ctx context.Context, events ...Event) error {
	if err := Add(ctx, events...); err != nil || len(events) == 0 {
		return err
	}
	_, db, _ := sqldb.CurrentTx(ctx) // Add succeeded: ctx carries a transaction
	relays := w.relays[db.DB]
	if len(relays) == 0 {
		return nil
	}
	// Several Adds in one transaction wake the relay several times; Notify coalesces them.
	return sqldb.AfterCommit(ctx, func(context.Context) {
		for _, r := range relays {
			r.Notify()
		}
	})
}

// Status of an outbox row.
const (
	StatusPending   = 0
	StatusPublished = 1
	StatusDead      = 2
)

// maxColumn is the length of the topic, aggregate_id and event_type columns.
const maxColumn = 200

// rowsPerInsert keeps one INSERT well below MySQL's 65,535 placeholders.
const rowsPerInsert = 500

const insertPrefix = `INSERT INTO platform_outbox
	(event_id, topic, aggregate_id, event_type, envelope, status, attempts, available_at, created_at) VALUES `

// Add writes events to platform_outbox through the transaction in ctx, on that
// transaction's database. Outside a transaction it returns ErrNoTx. Add wakes no relay:
// modules write through a Writer (NewWriter), which does.
func Add(ctx context.Context, events ...Event) error {
	ext, db, ok := sqldb.CurrentTx(ctx)
	if !ok {
		return ErrNoTx
	}
	if len(events) == 0 {
		return nil
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	args := make([]any, 0, min(len(events), rowsPerInsert)*9)
	for start := 0; start < len(events); start += rowsPerInsert {
		batch := events[start:min(start+rowsPerInsert, len(events))]
		args = args[:0]
		for _, e := range batch {
			if err := e.validate(); err != nil {
				return err
			}
			env, err := kafkax.NewEnvelope(e.Type, e.AggregateID, e.Payload)
			if err != nil {
				return fmt.Errorf("outbox: %w", err)
			}
			env.OccurredAt = now
			raw, err := json.Marshal(env)
			if err != nil {
				return fmt.Errorf("outbox: envelope: %w", err)
			}
			args = append(args, env.ID, e.Topic, e.AggregateID, e.Type, raw, StatusPending, 0, now, now)
		}
		q := insertPrefix + strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?), ", len(batch)), ", ")
		if _, err := ext.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("outbox: insert on %s: %w", db.Name, err)
		}
	}
	return nil
}

func (e Event) validate() error {
	switch {
	case e.Topic == "" || e.AggregateID == "" || e.Type == "":
		return fmt.Errorf("%w: topic %q, aggregate %q and type %q must not be empty", ErrInvalidEvent, e.Topic, e.AggregateID, e.Type)
	case len(e.Topic) > maxColumn || len(e.AggregateID) > maxColumn || len(e.Type) > maxColumn:
		return fmt.Errorf("%w: topic, aggregate ID and type are limited to %d bytes", ErrInvalidEvent, maxColumn)
	}
	return nil
}

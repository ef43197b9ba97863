package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
)

var errRollback = errors.New("roll back")

func TestAddNeedsATransaction(t *testing.T) {
	err := outbox.Add(context.Background(), outbox.Event{Topic: "mall.t.v1", AggregateID: "1", Type: "t.x"})
	if !errors.Is(err, outbox.ErrNoTx) || !errors.Is(err, sqldb.ErrNoTx) {
		t.Fatalf("Add outside a transaction: %v, want ErrNoTx", err)
	}
	if err := outbox.NewWriter().Add(context.Background()); !errors.Is(err, outbox.ErrNoTx) {
		t.Fatalf("Writer.Add outside a transaction: %v, want ErrNoTx", err)
	}
}

func TestAddWritesEnvelopesInTheCallersTransaction(t *testing.T) {
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{Shards: 2})
	ctx := context.Background()
	shard := cl.Shards()[1]
	topic := kafkax.Topic("addtest")

	t.Run("invalid events are refused", func(t *testing.T) {
		tests := []struct {
			name string
			give outbox.Event
		}{
			{"no topic", outbox.Event{AggregateID: "1", Type: "x"}},
			{"no aggregate", outbox.Event{Topic: topic, Type: "x"}},
			{"no type", outbox.Event{Topic: topic, AggregateID: "1"}},
			{"aggregate too long", outbox.Event{Topic: topic, AggregateID: strings.Repeat("a", 201), Type: "x"}},
		}
		for _, tt := range tests {
			err := shard.WithinTx(ctx, func(ctx context.Context) error { return outbox.Add(ctx, tt.give) })
			if !errors.Is(err, outbox.ErrInvalidEvent) {
				t.Errorf("%s: %v, want ErrInvalidEvent", tt.name, err)
			}
		}
	})

	t.Run("rolled back events vanish", func(t *testing.T) {
		err := shard.WithinTx(ctx, func(ctx context.Context) error {
			if err := outbox.Add(ctx, outbox.Event{Topic: topic, AggregateID: "1", Type: "t.x", Payload: 1}); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatal(err)
		}
		if n := count(t, shard, `SELECT COUNT(*) FROM platform_outbox`); n != 0 {
			t.Fatalf("%d rows after rollback", n)
		}
	})

	t.Run("committed events land on the transaction's database", func(t *testing.T) {
		const n = 1203 // more than one multi-row INSERT
		before := time.Now().UTC().Add(-time.Second)
		err := shard.WithinTx(ctx, func(ctx context.Context) error {
			var evs []outbox.Event
			for i := range n {
				evs = append(evs, outbox.Event{Topic: topic, AggregateID: fmt.Sprint(i % 10), Type: "t.happened", Payload: map[string]int{"i": i}})
			}
			return outbox.NewWriter().Add(ctx, evs...)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := count(t, shard, `SELECT COUNT(*) FROM platform_outbox WHERE status = 0 AND attempts = 0 AND available_at = created_at`); got != n {
			t.Fatalf("%d pending rows on %s, want %d", got, shard.Name, n)
		}
		for _, other := range []*sqldb.DB{cl.Main(), cl.Shards()[0]} {
			if got := count(t, other, `SELECT COUNT(*) FROM platform_outbox`); got != 0 {
				t.Fatalf("%d rows on %s, which was not in the transaction", got, other.Name)
			}
		}
		rows := outboxRows(t, shard)
		for i, r := range rows {
			var env kafkax.Envelope
			if err := json.Unmarshal(r.Envelope, &env); err != nil {
				t.Fatal(err)
			}
			id, err := uuid.Parse(env.ID)
			switch {
			case err != nil || id.Version() != 7 || env.ID != r.EventID:
				t.Fatalf("row %d: envelope id %q, column %q, want the same UUIDv7", i, env.ID, r.EventID)
			case env.Type != "t.happened" || env.AggregateID != fmt.Sprint(i%10):
				t.Fatalf("row %d: envelope %+v", i, env)
			case string(env.Payload) != fmt.Sprintf(`{"i":%d}`, i):
				t.Fatalf("row %d: payload %s", i, env.Payload)
			case env.OccurredAt.Before(before) || env.OccurredAt.Location() != time.UTC:
				t.Fatalf("row %d: occurred_at %v", i, env.OccurredAt)
			}
		}
	})
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		give     int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{10, 500 * time.Millisecond, time.Second},
		{1000, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		for range 100 {
			if got := outbox.Backoff(tt.give, 100*time.Millisecond, time.Second); got < tt.min || got > tt.max {
				t.Fatalf("Backoff(%d) = %s, want in [%s, %s]", tt.give, got, tt.min, tt.max)
			}
		}
	}
	if got := outbox.Truncate("ab\u00e9", 3); got != "ab" {
		t.Fatalf("Truncate cut a rune: %q", got)
	}
}

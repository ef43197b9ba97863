package outbox_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/kafkax/kafkaxtest"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
)

// TestRelayDoesNotSkipPastALockedRow: the claim uses SKIP LOCKED, so a pending row whose
// lock another session holds (a writer still committing it, a previous leader's session
// being torn down) is not claimed. The rows of its aggregate behind it must then wait too,
// or they overtake it in Kafka.
func TestRelayDoesNotSkipPastALockedRow(t *testing.T) {
	ctx := context.Background()
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{})
	db := cl.Main()
	b := kafkaxtest.Broker(t, 1)
	topic := kafkax.Topic("skiplockedtest")
	if err := b.EnsureTopics(ctx, topic); err != nil {
		t.Fatal(err)
	}
	m, _ := newMetrics(t)
	producer := newProducer(t, b)
	for seq := 1; seq <= 3; seq++ {
		agg := "agg-1"
		if seq == 3 {
			agg = "agg-2" // another aggregate: not held back
		}
		if err := db.WithinTx(ctx, func(ctx context.Context) error {
			return outbox.Add(ctx, outbox.Event{Topic: topic, AggregateID: agg, Type: "test.sequenced",
				Payload: seqPayload{Aggregate: agg, Seq: seq}})
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Another session holds agg-1's first row.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck
	var first int64
	if err := tx.QueryRowContext(ctx, `SELECT id FROM platform_outbox ORDER BY id LIMIT 1 FOR UPDATE`).Scan(&first); err != nil {
		t.Fatal(err)
	}
	r := startRelay(t, db, producer, fastConfig(), m, nil)
	eventually(t, 10*time.Second, "agg-2's event to be published", func() bool {
		return count(t, db, `SELECT COUNT(*) FROM platform_outbox WHERE aggregate_id = 'agg-2' AND status = 1`) == 1
	})
	time.Sleep(300 * time.Millisecond) // several more polls
	if !r.IsLeader() {
		t.Fatal("the relay is not the leader")
	}
	if n := count(t, db, `SELECT COUNT(*) FROM platform_outbox WHERE aggregate_id = 'agg-1' AND status = 1`); n != 0 {
		t.Fatalf("%d rows of agg-1 published while its first row was locked", n)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the backlog to drain", func() bool {
		return count(t, db, `SELECT COUNT(*) FROM platform_outbox WHERE status <> 1`) == 0
	})
	recs := readTopic(t, b, topic, 10*time.Second, func(recs []*kgo.Record) bool { return len(recs) >= 3 })
	last := 0
	for _, rec := range recs {
		ev, err := kafkax.DecodeEnvelope(rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		var p seqPayload
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.Aggregate != "agg-1" {
			continue
		}
		if p.Seq != last+1 {
			t.Fatalf("agg-1: seq %d delivered after seq %d", p.Seq, last)
		}
		last = p.Seq
	}
}

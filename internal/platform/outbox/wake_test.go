package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
)

// recordingProducer acknowledges every record at once and hands it to the test.
type recordingProducer struct{ got chan *kgo.Record }

func (p recordingProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.got <- r
	promise(r, nil)
}

func (p recordingProducer) ProduceSync(_ context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	var res kgo.ProduceResults
	for _, r := range rs {
		p.got <- r
		res = append(res, kgo.ProduceResult{Record: r})
	}
	return res
}

// TestWriterWakesRelay: with a poll interval of a minute, an event committed through the
// Writer reaches the producer within a second, because the commit wakes the relay of the
// transaction's database.
func TestWriterWakesRelay(t *testing.T) {
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{})
	db := cl.Main()
	m, _ := newMetrics(t)
	cfg := fastConfig()
	cfg.PollInterval = time.Minute
	p := recordingProducer{got: make(chan *kgo.Record, 100)}
	r := startRelay(t, db, p, cfg, m, nil)
	w := outbox.NewWriter(r)
	eventually(t, 5*time.Second, "the relay leads", r.IsLeader)

	topic := kafkax.Topic("waketest")
	add := func(ctx context.Context, agg string) error {
		return w.Add(ctx, outbox.Event{Topic: topic, AggregateID: agg, Type: "waketest.written", Payload: agg})
	}
	// expect waits for the records of aggs, in order, each within a second of the previous.
	expect := func(aggs ...string) {
		t.Helper()
		for _, want := range aggs {
			select {
			case rec := <-p.got:
				if got := string(rec.Key); got != want {
					t.Fatalf("produced %q, want %q", got, want)
				}
			case <-time.After(time.Second):
				t.Fatalf("%q not produced within a second of its commit (poll interval %s)", want, cfg.PollInterval)
			}
		}
	}
	commit := func(agg string) {
		t.Helper()
		if err := db.WithinTx(context.Background(), func(ctx context.Context) error { return add(ctx, agg) }); err != nil {
			t.Fatal(err)
		}
	}

	// The first may go out with the relay's first batch; each later one only because its
	// commit woke the relay, which otherwise sleeps for a minute after every batch.
	for _, agg := range []string{"a", "b", "c"} {
		commit(agg)
		expect(agg)
	}

	// Two transactions, the first retried after a deadlock with an Add in each attempt: one
	// wake per commit, and the rolled-back attempt's row does not exist.
	attempt := 0
	err := db.WithinTx(context.Background(), func(ctx context.Context) error {
		attempt++
		if err := add(ctx, "d"); err != nil {
			return err
		}
		if attempt == 1 {
			return &mysql.MySQLError{Number: sqldb.ErLockDeadlock, Message: "Deadlock found (test)"}
		}
		return add(ctx, "e") // two Adds, one commit: the wakes coalesce
	})
	if err != nil {
		t.Fatal(err)
	}
	expect("d", "e")

	if n := count(t, db, `SELECT COUNT(*) FROM platform_outbox`); n != 5 {
		t.Fatalf("%d outbox rows, want 5 (a to e; the rolled-back attempt's d is gone)", n)
	}
}

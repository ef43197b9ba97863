package outbox_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/kafkax/kafkaxtest"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
)

// writeEvents commits a transaction of n events for aggregate agg every pause until stop is
// closed, and returns how many events it committed.
func writeEvents(db *sqldb.DB, topic, agg string, n int, pause time.Duration, stop <-chan struct{}) (int, error) {
	committed := 0
	for seq := 0; ; seq += n {
		select {
		case <-stop:
			return committed, nil
		case <-time.After(pause):
		}
		err := db.WithinTx(context.Background(), func(ctx context.Context) error {
			evs := make([]outbox.Event, n)
			for i := range evs {
				evs[i] = outbox.Event{Topic: topic, AggregateID: agg, Type: "test.written", Payload: map[string]int{"seq": seq + i}}
			}
			return outbox.Add(ctx, evs...)
		})
		if err != nil {
			return committed, err
		}
		committed += n
	}
}

// TestRelayLeaderElection: two replicas' relays on one database; exactly one leads; when the
// leader's lock connection is killed the other takes over and no event is lost.
func TestRelayLeaderElection(t *testing.T) {
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{})
	db := cl.Main()
	b := kafkaxtest.Broker(t, 3)
	topic := kafkax.Topic("leadertest")
	mA, regA := newMetrics(t)
	mB, regB := newMetrics(t)
	labels := map[string]string{"db": db.Name}

	stop := make(chan struct{})
	var committed atomic.Int64
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := writeEvents(db, topic, fmt.Sprint("agg-", w), 3, 5*time.Millisecond, stop)
			committed.Add(int64(n))
			if err != nil {
				t.Error(err)
			}
		}()
	}

	a := startRelay(t, db, newProducer(t, b), fastConfig(), mA, nil)
	eventually(t, 15*time.Second, "relay A to lead", a.IsLeader)
	bRelay := startRelay(t, db, newProducer(t, b), fastConfig(), mB, nil)
	// B polls for the lock every 100ms: over a second it tries ~10 times and must fail each time.
	for range 50 {
		if !a.IsLeader() || bRelay.IsLeader() {
			t.Fatalf("leaders: A=%v B=%v, want A alone", a.IsLeader(), bRelay.IsLeader())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if metric(t, regA, "mall_outbox_relay_leader", labels) != 1 || metric(t, regB, "mall_outbox_relay_leader", labels) != 0 {
		t.Fatal("leader gauge does not match")
	}

	// Kill A's lock connection, as a network partition or a database failover would.
	var connID int64
	if err := db.QueryRowContext(context.Background(), `SELECT IS_USED_LOCK(?)`, outbox.LockName(a)).Scan(&connID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(context.Background(), fmt.Sprintf("KILL CONNECTION %d", connID)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "relay B to take over", func() bool { return bRelay.IsLeader() && !a.IsLeader() })
	for range 25 {
		if a.IsLeader() || !bRelay.IsLeader() {
			t.Fatalf("leaders after takeover: A=%v B=%v, want B alone", a.IsLeader(), bRelay.IsLeader())
		}
		time.Sleep(20 * time.Millisecond)
	}

	close(stop)
	wg.Wait()
	total := int(committed.Load())
	eventually(t, 10*time.Second, "backlog to drain", func() bool {
		return count(t, db, `SELECT COUNT(*) FROM platform_outbox WHERE status <> 1`) == 0
	})
	recs := readTopic(t, b, topic, 10*time.Second, func(recs []*kgo.Record) bool { return len(eventIDs(recs)) >= total })
	ids := eventIDs(recs)
	for _, r := range outboxRows(t, db) {
		if ids[r.EventID] == 0 {
			t.Fatalf("event %s never reached Kafka", r.EventID)
		}
	}
	if len(ids) != total {
		t.Fatalf("%d distinct events in Kafka, %d committed", len(ids), total)
	}
	t.Logf("%d events, %d records (A published %v, B %v)", total, len(recs),
		metric(t, regA, "mall_outbox_published_total", labels), metric(t, regB, "mall_outbox_published_total", labels))
	if metric(t, regB, "mall_outbox_published_total", labels) == 0 {
		t.Fatal("B published nothing after taking over")
	}
}

package outbox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/kafkax/kafkaxtest"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
)

type seqPayload struct {
	Aggregate string `json:"agg"`
	Seq       int    `json:"seq"`
	Nonce     string `json:"nonce"` // the writing transaction
}

// TestRelayDeliversEveryCommittedEventInOrder is the outbox's end-to-end contract. 20 writers
// commit 10,000 events of 100 aggregates (sequence 1..100 each) on three physical databases,
// one in eight transactions rolling back, while each database's relay is stopped and
// replaced at random and killed between produce and commit several times. Then: every
// committed event is in Kafka and no rolled-back one; the first delivery of each aggregate's
// events comes in sequence order; each database's own relay published its events; and a
// consumer behind the inbox applies every event exactly once, in order, despite the
// duplicates the crashes left in Kafka.
func TestRelayDeliversEveryCommittedEventInOrder(t *testing.T) {
	const aggregates, perAggregate, writers = 100, 100, 20
	total := aggregates * perAggregate
	start := time.Now()
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{Shards: 2})
	dbs := cl.All()
	if len(dbs) != 3 {
		t.Fatalf("want 3 physical databases, got %d", len(dbs))
	}
	b := kafkaxtest.Broker(t, 6)
	topic := kafkax.Topic("ordertest")
	if err := b.EnsureTopics(context.Background(), topic); err != nil {
		t.Fatal(err)
	}
	m, reg := newMetrics(t)
	producer := newProducer(t, b)
	cfg := fastConfig()
	cfg.BatchSize = 100

	// The consumer: counts side effects on main and checks each aggregate's order as it applies.
	main := cl.Main()
	if _, err := main.Exec(`CREATE TABLE test_applied (
		id BIGINT AUTO_INCREMENT PRIMARY KEY, event_id CHAR(36) NOT NULL,
		aggregate_id VARCHAR(200) NOT NULL, seq INT NOT NULL, KEY (aggregate_id, seq))`); err != nil {
		t.Fatal(err)
	}
	var outOfOrder atomic.Int64
	const group = "mall.ordertest.apply"
	handler := kafkax.Handler{Group: group, Topics: []string{topic}, DB: main,
		Handle: func(ctx context.Context, ev kafkax.Envelope) error {
			var p seqPayload
			if err := json.Unmarshal(ev.Payload, &p); err != nil {
				return err
			}
			var last sql.NullInt64
			if err := sqldb.Ext(ctx, main).QueryRowxContext(ctx,
				`SELECT MAX(seq) FROM test_applied WHERE aggregate_id = ?`, p.Aggregate).Scan(&last); err != nil {
				return err
			}
			if int64(p.Seq) != last.Int64+1 {
				outOfOrder.Add(1)
			}
			_, err := sqldb.Ext(ctx, main).ExecContext(ctx,
				`INSERT INTO test_applied (event_id, aggregate_id, seq) VALUES (?, ?, ?)`, ev.ID, p.Aggregate, p.Seq)
			return err
		}}
	regC := prometheus.NewRegistry()
	cm, err := kafkax.NewConsumerMetrics(regC)
	if err != nil {
		t.Fatal(err)
	}
	runner, err := kafkax.NewRunner(b, []kafkax.Handler{handler}, nil, kafkaxtest.Logger(), cm, kafkax.RunnerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := runner.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = runner.Stop(context.Background()) })

	// Relays: one per database, replaced at random; some crash between produce and commit.
	var crashes atomic.Int64
	newRelay := func(i int, crashOnBatch int64) *outbox.Relay {
		r := outbox.NewRelay(dbs[i], producer, cfg, kafkaxtest.Logger(), m,
			outbox.WithFollowerPoll(50*time.Millisecond), outbox.WithStatsInterval(100*time.Millisecond))
		if crashOnBatch > 0 {
			var batches atomic.Int64
			outbox.SetCrashHook(r, func() bool {
				if batches.Add(1) == crashOnBatch {
					crashes.Add(1)
					return true
				}
				return false
			})
		}
		r.Start()
		return r
	}
	stopRelay := func(r *outbox.Relay) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Stop(ctx); err != nil {
			t.Error(err)
		}
	}
	relays := make([]*outbox.Relay, len(dbs))
	for i := range dbs {
		relays[i] = newRelay(i, 2) // every database's first relay dies on its second batch
	}
	t.Cleanup(func() {
		for _, r := range relays {
			stopRelay(r)
		}
	})
	// The supervisor restarts crashed relays (as a process supervisor would) until the backlog
	// has drained; while the writers run it also replaces healthy relays at random. A relay
	// armed to crash on a later batch may die after the writers are done, so supervision must
	// outlive them.
	writersDone := make(chan struct{})
	drained := make(chan struct{})
	supervisorDone := make(chan struct{})
	var stopSupervisor sync.Once
	endSupervision := func() {
		stopSupervisor.Do(func() { close(drained) })
		<-supervisorDone
	}
	t.Cleanup(endSupervision) // before the relays are stopped, should the test fail early
	var restarts int
	go func() {
		defer close(supervisorDone)
		rng := rand.New(rand.NewPCG(1, 2))
		chaos, writing := true, writersDone
		for {
			select {
			case <-drained:
				return
			case <-writing:
				chaos, writing = false, nil
			case <-time.After(time.Duration(150+rng.IntN(250)) * time.Millisecond):
			}
			for i, r := range relays {
				select {
				case <-outbox.Done(r): // crashed: a supervisor restarts the process
					relays[i] = newRelay(i, 0)
				default:
				}
			}
			if !chaos {
				continue
			}
			i := rng.IntN(len(dbs))
			stopRelay(relays[i])
			crashAt := int64(0)
			if rng.IntN(3) == 0 {
				crashAt = 1 + rng.Int64N(3)
			}
			relays[i] = newRelay(i, crashAt)
			restarts++
		}
	}()

	// Writers: each owns five aggregates and commits their events in sequence order, one to
	// four per transaction; a rolled-back transaction is retried with the same sequence
	// numbers under a new nonce.
	var (
		mu         sync.Mutex
		rolledBack = map[string]bool{}
		wg         sync.WaitGroup
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			next := map[int]int{}
			var owned []int
			for a := w; a < aggregates; a += writers {
				owned = append(owned, a)
				next[a] = 1
			}
			for txn := 0; len(owned) > 0; txn++ {
				k := rng.IntN(len(owned))
				a := owned[k]
				n := min(1+rng.IntN(4), perAggregate-next[a]+1)
				rollback := rng.IntN(8) == 0
				nonce := fmt.Sprintf("w%d-t%d", w, txn)
				agg := fmt.Sprintf("agg-%03d", a)
				db := dbs[a%len(dbs)]
				err := db.WithinTx(context.Background(), func(ctx context.Context) error {
					evs := make([]outbox.Event, n)
					for i := range evs {
						evs[i] = outbox.Event{Topic: topic, AggregateID: agg, Type: "test.sequenced",
							Payload: seqPayload{Aggregate: agg, Seq: next[a] + i, Nonce: nonce}}
					}
					if err := outbox.Add(ctx, evs...); err != nil {
						return err
					}
					if rollback {
						return errRollback
					}
					return nil
				}, sqldb.ReadCommitted())
				switch {
				case rollback && errors.Is(err, errRollback):
					mu.Lock()
					rolledBack[nonce] = true
					mu.Unlock()
					continue
				case err != nil:
					t.Error(err)
					return
				}
				next[a] += n
				if next[a] > perAggregate {
					owned = append(owned[:k], owned[k+1:]...)
				}
			}
		}()
	}
	wg.Wait()
	close(writersDone)
	written := time.Since(start)

	// Every committed event is published, and by its own database's relay.
	committed := map[string]seqPayload{}
	for _, db := range dbs {
		db := db
		eventually(t, 90*time.Second, "the backlog of "+db.Name+" to drain", func() bool {
			return count(t, db, `SELECT COUNT(*) FROM platform_outbox WHERE status <> 1`) == 0
		})
		rows := outboxRows(t, db)
		for _, r := range rows {
			var env kafkax.Envelope
			var p seqPayload
			if err := json.Unmarshal(r.Envelope, &env); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(env.Payload, &p); err != nil {
				t.Fatal(err)
			}
			committed[r.EventID] = p
		}
		if got := metric(t, reg, "mall_outbox_published_total", map[string]string{"db": db.Name}); got < float64(len(rows)) {
			t.Errorf("%s: published_total %v < %d rows: another database's relay published them", db.Name, got, len(rows))
		}
	}
	if len(committed) != total {
		t.Fatalf("%d committed events, want %d", len(committed), total)
	}

	endSupervision()
	t.Logf("drained at %s", time.Since(start))
	recs := readTopic(t, b, topic, 90*time.Second, func(recs []*kgo.Record) bool { return len(eventIDs(recs)) >= total })
	lastSeq := map[string]int{}
	seen := map[string]bool{}
	for _, r := range recs {
		id := kafkax.Header(r, kafkax.HeaderEventID)
		ev, err := kafkax.DecodeEnvelope(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		var p seqPayload
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			t.Fatal(err)
		}
		switch want, ok := committed[id]; {
		case rolledBack[p.Nonce]:
			t.Fatalf("event %s of rolled-back transaction %s reached Kafka", id, p.Nonce)
		case !ok || want != p || ev.ID != id || string(r.Key) != p.Aggregate:
			t.Fatalf("record %s (key %s, %+v) does not match a committed event", id, r.Key, p)
		}
		if seen[id] {
			continue // a redelivery after a crash: allowed, the inbox absorbs it
		}
		seen[id] = true
		if p.Seq != lastSeq[p.Aggregate]+1 {
			t.Fatalf("%s: first delivery of seq %d follows seq %d", p.Aggregate, p.Seq, lastSeq[p.Aggregate])
		}
		lastSeq[p.Aggregate] = p.Seq
	}
	duplicates := len(recs) - total
	if crashes.Load() == 0 || duplicates == 0 {
		t.Fatalf("%d crashes left %d duplicates: the crash path was not exercised", crashes.Load(), duplicates)
	}

	t.Logf("read at %s; consumer applied %v so far", time.Since(start), metric(t, regC, "mall_kafka_consumer_applied_total", map[string]string{"group": group}))
	// The consumer applies each event once and in order, skipping every duplicate.
	labels := map[string]string{"group": group}
	eventually(t, 90*time.Second, "the consumer to reach the end of the topic", func() bool {
		return metric(t, regC, "mall_kafka_consumer_applied_total", labels)+
			metric(t, regC, "mall_kafka_consumer_duplicates_total", labels) >= float64(len(recs))
	})
	if err := runner.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	var rows, distinct int
	if err := main.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT event_id) FROM test_applied`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != total || distinct != total {
		t.Fatalf("side effects: %d rows, %d distinct events, want %d once each", rows, distinct, total)
	}
	if n := outOfOrder.Load(); n != 0 {
		t.Fatalf("the consumer applied %d events out of their aggregate's order", n)
	}
	if got := metric(t, regC, "mall_kafka_consumer_duplicates_total", labels); got != float64(duplicates) {
		t.Fatalf("inbox skipped %v duplicates, Kafka holds %d", got, duplicates)
	}
	t.Logf("%d events written in %s (%d rolled-back transactions), %d relay restarts, %d crashes, %d duplicates in Kafka absorbed by the inbox; total %s",
		total, written.Round(time.Millisecond), len(rolledBack), restarts, crashes.Load(), duplicates, time.Since(start).Round(time.Millisecond))
}

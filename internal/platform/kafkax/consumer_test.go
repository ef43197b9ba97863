package kafkax_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/kafkax/kafkaxtest"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
)

const appliedTable = `CREATE TABLE test_applied (
	id BIGINT AUTO_INCREMENT PRIMARY KEY,
	event_id CHAR(36) NOT NULL,
	aggregate_id VARCHAR(200) NOT NULL,
	n INT NOT NULL
)`

type payload struct {
	N int `json:"n"`
}

// produceEvents publishes n envelopes for aggregates agg-0..agg-(aggs-1) and returns their IDs.
func produceEvents(t *testing.T, cl *kgo.Client, topic string, n, aggs int) []string {
	t.Helper()
	ids, err := tryProduceEvents(cl, topic, n, aggs)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func tryProduceEvents(cl *kgo.Client, topic string, n, aggs int) ([]string, error) {
	var ids []string
	var recs []*kgo.Record
	for i := range n {
		agg := fmt.Sprintf("agg-%d", i%aggs)
		ev, err := kafkax.NewEnvelope("test.happened", agg, payload{N: i})
		if err != nil {
			return nil, err
		}
		raw, _ := json.Marshal(ev)
		ids = append(ids, ev.ID)
		recs = append(recs, kafkax.NewRecord(topic, agg, ev.Type, ev.ID, raw))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return ids, cl.ProduceSync(ctx, recs...).FirstErr()
}

// appliedHandler counts side effects in test_applied; failFor makes Handle fail the first
// failures times it sees that event.
type appliedHandler struct {
	db       *sqldb.DB
	calls    atomic.Int64
	failFor  string
	failures int64
	failed   atomic.Int64
}

func (h *appliedHandler) handle(ctx context.Context, ev kafkax.Envelope) error {
	h.calls.Add(1)
	if ev.ID == h.failFor && h.failed.Add(1) <= h.failures {
		return errors.New("transient failure")
	}
	var p payload
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		return err
	}
	_, err := sqldb.Ext(ctx, h.db).ExecContext(ctx,
		`INSERT INTO test_applied (event_id, aggregate_id, n) VALUES (?, ?, ?)`, ev.ID, ev.AggregateID, p.N)
	return err
}

func appliedCounts(t *testing.T, db *sqldb.DB) (rows, distinct int) {
	t.Helper()
	if err := db.QueryRowContext(context.Background(),
		`SELECT COUNT(*), COUNT(DISTINCT event_id) FROM test_applied`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	return rows, distinct
}

func startRunner(t *testing.T, b *kafkax.Broker, h kafkax.Handler, reg prometheus.Registerer) *kafkax.Runner {
	t.Helper()
	m, err := kafkax.NewConsumerMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := kafkax.NewRunner(b, []kafkax.Handler{h}, nil, kafkaxtest.Logger(), m,
		kafkax.RunnerOptions{RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return r
}

// TestRunnerRetriesAndInboxAbsorbsRedelivery: a failing handler is retried in place until it
// succeeds, an undecodable record is skipped, each event is applied once, and after the
// group's offsets are lost a restarted runner gets every record again and the inbox
// absorbs all of them.
func TestRunnerRetriesAndInboxAbsorbsRedelivery(t *testing.T) {
	db, b, topic, client := runnerSetup(t, 3, "runnertest")
	const n = 60
	ids := produceEvents(t, client, topic, n/2, 7)
	// An undecodable record in the middle of a partition must not stop the ones behind it.
	if err := client.ProduceSync(ctxTimeout(t, 5*time.Second), &kgo.Record{Topic: topic, Key: []byte("agg-1"), Value: []byte("not json")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, produceEvents(t, client, topic, n/2, 7)...)

	const group = "mall.test.apply"
	h := &appliedHandler{db: db, failFor: ids[3], failures: 3}
	handler := kafkax.Handler{Group: group, Topics: []string{topic}, DB: db, Handle: h.handle}
	reg := prometheus.NewRegistry()
	r := startRunner(t, b, handler, reg)
	labels := map[string]string{"group": group}

	eventually(t, 20*time.Second, "every event applied", func() bool {
		return metric(t, reg, "mall_kafka_consumer_applied_total", labels) == n
	})
	if err := r.Stop(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if rows, distinct := appliedCounts(t, db); rows != n || distinct != n {
		t.Fatalf("side effects: %d rows, %d distinct, want %d once each", rows, distinct, n)
	}
	if got := metric(t, reg, "mall_kafka_consumer_errors_total", labels); got != 3 {
		t.Errorf("errors_total = %v, want 3 (the failing handler's attempts)", got)
	}
	if got := metric(t, reg, "mall_kafka_consumer_undecodable_total", labels); got != 1 {
		t.Errorf("undecodable_total = %v, want 1", got)
	}
	// One lag sample per decoded event, however often it was retried; the test's events are
	// stamped moments before producing, so they all arrive in well under a minute.
	if cnt, sum := histogram(t, reg, "mall_kafka_consumer_event_lag_seconds", labels); cnt != n || sum <= 0 || sum/float64(cnt) > 60 {
		t.Errorf("event lag: %d samples, sum %.3fs; want %d samples with a positive mean under a minute", cnt, sum, n)
	}
	if got := h.calls.Load(); got != n+3 {
		t.Errorf("Handle ran %d times, want %d (once per event plus 3 retries)", got, n+3)
	}

	// The graceful stop committed everything it applied.
	adm := kadm.NewClient(client)
	ctx := ctxTimeout(t, 10*time.Second)
	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(e kadm.ListedOffset) {
		got, _ := offsets.Lookup(topic, e.Partition)
		if got.At != e.Offset {
			t.Errorf("partition %d: committed %d, end %d", e.Partition, got.At, e.Offset)
		}
	})

	// Lose the committed offsets, as a crash before the commit would: everything comes again.
	if _, err := adm.DeleteOffsets(ctx, group, kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}}); err != nil {
		t.Fatal(err)
	}
	reg2 := prometheus.NewRegistry()
	r2 := startRunner(t, b, handler, reg2)
	eventually(t, 20*time.Second, "every event redelivered", func() bool {
		return metric(t, reg2, "mall_kafka_consumer_duplicates_total", labels) == n
	})
	if err := r2.Stop(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := metric(t, reg2, "mall_kafka_consumer_applied_total", labels); got != 0 {
		t.Errorf("redelivery applied %v events again", got)
	}
	if rows, distinct := appliedCounts(t, db); rows != n || distinct != n {
		t.Fatalf("after redelivery: %d rows, %d distinct, want %d once each", rows, distinct, n)
	}
	if got := h.calls.Load(); got != n+3 {
		t.Errorf("Handle ran %d times, want %d: the inbox must skip redelivered events before Handle", got, n+3)
	}
}

// TestRunnerRebalanceLosesNothing: while events stream in, a second member joins the group and
// then the first leaves; every event is applied exactly once.
func TestRunnerRebalanceLosesNothing(t *testing.T) {
	db, b, topic, client := runnerSetup(t, 6, "rebalancetest")
	const group = "mall.test.rebalance"
	h := &appliedHandler{db: db}
	handler := kafkax.Handler{Group: group, Topics: []string{topic}, DB: db, Handle: h.handle}

	var produced atomic.Int64
	stopProducing := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stopProducing:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := tryProduceEvents(client, topic, 10, 13); err != nil {
				t.Error(err)
				return
			}
			produced.Add(10)
		}
	}()

	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	a := startRunner(t, b, handler, regA)
	if _, err := b.Fake().WaitGroupStable(ctxTimeout(t, 10*time.Second), group, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let A apply some
	bRunner := startRunner(t, b, handler, regB)
	if _, err := b.Fake().WaitGroupStable(ctxTimeout(t, 10*time.Second), group, 2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let both apply some
	if err := a.Stop(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	close(stopProducing)
	wg.Wait()
	// A has left: these can only be applied by B, on partitions it took over from A.
	produceEvents(t, client, topic, 100, 13)
	total := int(produced.Load()) + 100
	eventually(t, 30*time.Second, "every event applied", func() bool {
		rows, _ := appliedCounts(t, db)
		return rows >= total
	})
	if err := bRunner.Stop(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	rows, distinct := appliedCounts(t, db)
	if rows != total || distinct != total {
		t.Fatalf("side effects: %d rows, %d distinct, want %d once each", rows, distinct, total)
	}
	labels := map[string]string{"group": group}
	if got := metric(t, regB, "mall_kafka_consumer_applied_total", labels); got < 100 {
		t.Errorf("B applied %v events, want at least the 100 produced after A left", got)
	}
	t.Logf("%d events; member A applied %v, member B %v, duplicates skipped %v", total,
		metric(t, regA, "mall_kafka_consumer_applied_total", labels),
		metric(t, regB, "mall_kafka_consumer_applied_total", labels),
		metric(t, regA, "mall_kafka_consumer_duplicates_total", labels)+metric(t, regB, "mall_kafka_consumer_duplicates_total", labels))
}

// TestRunnerPassesOverOtherTypes: with Handler.Types set, events of other types neither run
// Handle nor write the inbox; the handled ones are applied as usual.
func TestRunnerPassesOverOtherTypes(t *testing.T) {
	db, b, topic, client := runnerSetup(t, 3, "typestest")
	const handled, others = 12, 7
	produceEvents(t, client, topic, handled, 5) // type test.happened
	var recs []*kgo.Record
	for i := range others {
		ev, err := kafkax.NewEnvelope("test.other", fmt.Sprintf("agg-%d", i), payload{N: i})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(ev)
		recs = append(recs, kafkax.NewRecord(topic, ev.AggregateID, ev.Type, ev.ID, raw))
	}
	if err := client.ProduceSync(ctxTimeout(t, 5*time.Second), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	const group = "mall.test.types"
	h := &appliedHandler{db: db}
	reg := prometheus.NewRegistry()
	startRunner(t, b, kafkax.Handler{Group: group, Topics: []string{topic}, DB: db, Handle: h.handle,
		Types: []string{"test.happened"}}, reg)
	labels := map[string]string{"group": group}
	eventually(t, 20*time.Second, "every event consumed", func() bool {
		return metric(t, reg, "mall_kafka_consumer_applied_total", labels) == handled &&
			metric(t, reg, "mall_kafka_consumer_ignored_total", labels) == others
	})
	if got := h.calls.Load(); got != handled {
		t.Errorf("Handle ran %d times, want %d", got, handled)
	}
	var inbox int
	if err := db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM platform_inbox WHERE consumer = ?`, group).Scan(&inbox); err != nil {
		t.Fatal(err)
	}
	if inbox != handled {
		t.Errorf("%d inbox rows, want %d (none for passed-over events)", inbox, handled)
	}
}

// TestRunnerWantsWithoutInbox: Handler.Wants passes over the events it refuses (no Handle,
// no inbox, counted as ignored); with NoInbox the wanted ones run Handle outside any
// transaction (the handler's own statement commits alone) and leave no inbox row.
func TestRunnerWantsWithoutInbox(t *testing.T) {
	db, b, topic, client := runnerSetup(t, 3, "wantstest")
	const n = 30
	produceEvents(t, client, topic, n, 5) // payload n = 0..29
	const group = "mall.test.wants"
	h := &appliedHandler{db: db}
	even := func(ev kafkax.Envelope) bool {
		var p payload
		return json.Unmarshal(ev.Payload, &p) == nil && p.N%2 == 0
	}
	reg := prometheus.NewRegistry()
	startRunner(t, b, kafkax.Handler{Group: group, Topics: []string{topic}, DB: db, Handle: h.handle,
		Wants: even, NoInbox: true}, reg)
	labels := map[string]string{"group": group}
	eventually(t, 20*time.Second, "every event consumed", func() bool {
		return metric(t, reg, "mall_kafka_consumer_applied_total", labels) == n/2 &&
			metric(t, reg, "mall_kafka_consumer_ignored_total", labels) == n/2
	})
	if got := h.calls.Load(); got != n/2 {
		t.Errorf("Handle ran %d times, want %d", got, n/2)
	}
	var odd, inbox int
	if err := db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM test_applied WHERE n % 2 = 1`).Scan(&odd); err != nil {
		t.Fatal(err)
	}
	if rows, _ := appliedCounts(t, db); rows != n/2 || odd != 0 {
		t.Errorf("%d rows applied (%d odd), want %d even ones", rows, odd, n/2)
	}
	if err := db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM platform_inbox WHERE consumer = ?`, group).Scan(&inbox); err != nil {
		t.Fatal(err)
	}
	if inbox != 0 {
		t.Errorf("%d inbox rows without an inbox", inbox)
	}
}

// runnerSetup gives a runner test a fresh database with the applied table, a broker with
// partitions, the topic mall.<name>.v1 and a client.
func runnerSetup(t *testing.T, partitions int, name string) (*sqldb.DB, *kafkax.Broker, string, *kgo.Client) {
	t.Helper()
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{})
	db := cl.Main()
	if _, err := db.Exec(appliedTable); err != nil {
		t.Fatal(err)
	}
	b := kafkaxtest.Broker(t, partitions)
	topic := kafkax.Topic(name)
	if err := b.EnsureTopics(ctxTimeout(t, 5*time.Second), topic); err != nil {
		t.Fatal(err)
	}
	return db, b, topic, newClient(t, b)
}

// TestRunnerBatches: with Batch, a partition's events are applied many to a transaction
// (Begin and Flush bracket each; Flush sees that transaction's events), an event that
// fails once rolls its batch back and the events go one by one; every event is applied
// exactly once, an undecodable record is skipped, and redelivery is absorbed.
func TestRunnerBatches(t *testing.T) {
	db, b, topic, client := runnerSetup(t, 3, "batchtest")
	const n = 300
	ids := produceEvents(t, client, topic, n/2, 11)
	if err := client.ProduceSync(ctxTimeout(t, 5*time.Second), &kgo.Record{Topic: topic, Key: []byte("agg-1"),
		Value: []byte("not json")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, produceEvents(t, client, topic, n/2, 11)...)

	type txKey struct{}
	var txs, flushed atomic.Int64
	h := &appliedHandler{db: db, failFor: ids[40], failures: 1}
	handle := func(ctx context.Context, ev kafkax.Envelope) error {
		*ctx.Value(txKey{}).(*int)++
		return h.handle(ctx, ev)
	}
	const group = "mall.test.batch"
	handler := kafkax.Handler{Group: group, Topics: []string{topic}, DB: db, Handle: handle, Batch: 50,
		Begin: func(ctx context.Context) context.Context { return context.WithValue(ctx, txKey{}, new(int)) },
		Flush: func(ctx context.Context) error {
			txs.Add(1)
			flushed.Add(int64(*ctx.Value(txKey{}).(*int)))
			return nil
		}}
	reg := prometheus.NewRegistry()
	r := startRunner(t, b, handler, reg)
	labels := map[string]string{"group": group}
	eventually(t, 20*time.Second, "every event applied", func() bool {
		return metric(t, reg, "mall_kafka_consumer_applied_total", labels) == n
	})
	if err := r.Stop(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if rows, distinct := appliedCounts(t, db); rows != n || distinct != n {
		t.Fatalf("side effects: %d rows, %d distinct, want %d once each", rows, distinct, n)
	}
	// Committed transactions' Flush saw every event once (a failed batch's Flush never ran).
	if got := flushed.Load(); got != n {
		t.Errorf("Flush saw %d events, want %d", got, n)
	}
	if got := txs.Load(); got >= n/2 {
		t.Errorf("%d transactions for %d events: not batched", got, n)
	}
	if got := metric(t, reg, "mall_kafka_consumer_undecodable_total", labels); got != 1 {
		t.Errorf("undecodable_total = %v, want 1", got)
	}
	if cnt, _ := histogram(t, reg, "mall_kafka_consumer_event_lag_seconds", labels); cnt < n {
		t.Errorf("event lag: %d samples, want at least %d", cnt, n)
	}

	// Every offset again: the inbox absorbs each event, batched too.
	adm := kadm.NewClient(client)
	if _, err := adm.DeleteOffsets(ctxTimeout(t, 10*time.Second), group, kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}}); err != nil {
		t.Fatal(err)
	}
	reg2 := prometheus.NewRegistry()
	r2 := startRunner(t, b, handler, reg2)
	eventually(t, 20*time.Second, "every event redelivered", func() bool {
		return metric(t, reg2, "mall_kafka_consumer_duplicates_total", labels) == n
	})
	if err := r2.Stop(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if rows, distinct := appliedCounts(t, db); rows != n || distinct != n {
		t.Fatalf("after redelivery: %d rows, %d distinct", rows, distinct)
	}
}

// TestRunnerNoInboxBatches: a NoInbox handler with HandleBatch gets a partition's events in
// batches (no transaction, no inbox); a batch that fails is applied again event by event
// with Handle; every event is applied, in far fewer calls than events.
func TestRunnerNoInboxBatches(t *testing.T) {
	db, b, topic, client := runnerSetup(t, 3, "nibatchtest")
	const n = 300
	ids := produceEvents(t, client, topic, n, 11)
	var (
		mu                 sync.Mutex
		applied            = map[string]int{}
		batches, singles   int
		failedOnce, maxLen int
	)
	const group = "mall.test.nibatch"
	handler := kafkax.Handler{Group: group, Topics: []string{topic}, DB: db, NoInbox: true, Batch: 50,
		Handle: func(ctx context.Context, ev kafkax.Envelope) error {
			mu.Lock()
			defer mu.Unlock()
			singles++
			applied[ev.ID]++
			return nil
		},
		HandleBatch: func(ctx context.Context, evs []kafkax.Envelope) error {
			mu.Lock()
			defer mu.Unlock()
			if len(evs) > 50 {
				t.Errorf("a batch of %d, over Batch", len(evs))
			}
			for _, ev := range evs {
				if ev.ID == ids[40] && failedOnce == 0 {
					failedOnce++
					return errors.New("transient failure")
				}
			}
			batches++
			maxLen = max(maxLen, len(evs))
			for _, ev := range evs {
				applied[ev.ID]++
			}
			return nil
		}}
	reg := prometheus.NewRegistry()
	r := startRunner(t, b, handler, reg)
	eventually(t, 20*time.Second, "every event applied", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(applied) == n
	})
	if err := r.Stop(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if applied[id] != 1 {
			t.Fatalf("event %s applied %d times", id, applied[id])
		}
	}
	if failedOnce != 1 || singles == 0 || batches == 0 || maxLen < 2 || batches+singles >= n/2 {
		t.Fatalf("%d batches (largest %d), %d single events, %d failed batches for %d events",
			batches, maxLen, singles, failedOnce, n)
	}
	if got := metric(t, reg, "mall_kafka_consumer_applied_total", map[string]string{"group": group}); got != n {
		t.Errorf("applied_total = %v, want %d", got, n)
	}
}

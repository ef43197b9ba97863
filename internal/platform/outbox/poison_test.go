package outbox_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/kafkax/kafkaxtest"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
)

// Markers the broker control looks for in produce requests (the producer does not compress).
// The broker rejects every request carrying poisonMarker, with the innocent records in it.
const (
	poisonMarker         = "XPOISONX"
	poisonSuccessor      = "XPOISONSUCCESSORX"
	oversizedSuccessor   = "XOVERSIZEDSUCCESSORX"
	innocentAggregates   = 10
	innocentPerAggregate = 10
)

func addOne(t *testing.T, db *sqldb.DB, topic, agg string, payload any) int64 {
	t.Helper()
	err := db.WithinTx(context.Background(), func(ctx context.Context) error {
		return outbox.Add(ctx, outbox.Event{Topic: topic, AggregateID: agg, Type: "test.poison", Payload: payload})
	})
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := db.GetContext(context.Background(), &id, `SELECT MAX(id) FROM platform_outbox`); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestRelayParksPoisonRows: a row the broker rejects non-retriably and a row too large to
// produce both become dead after MaxAttempts, with the dead metric; the innocent rows that
// shared the poison's produce request are retried and published; other aggregates flow
// while the poison is retried; and the poison aggregates' next events wait until their
// predecessor is dead, so they never overtake it.
func TestRelayParksPoisonRows(t *testing.T) {
	const maxAttempts = 5
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{})
	db := cl.Main()
	b := kafkaxtest.Broker(t, 4)
	topic := kafkax.Topic("poisontest")
	m, reg := newMetrics(t)
	labels := map[string]string{"db": db.Name}

	poisonID := addOne(t, db, topic, "agg-poison", map[string]string{"m": poisonMarker})
	oversizedID := addOne(t, db, topic, "agg-oversized", map[string]string{"m": strings.Repeat("x", 1_100_000)})
	for i := range innocentAggregates * innocentPerAggregate {
		addOne(t, db, topic, fmt.Sprint("agg-", i%innocentAggregates), map[string]int{"i": i})
	}
	addOne(t, db, topic, "agg-poison", map[string]string{"m": poisonSuccessor})
	addOne(t, db, topic, "agg-oversized", map[string]string{"m": oversizedSuccessor})

	var (
		mu               sync.Mutex
		poisonRequests   int
		successorsSeenAt = map[string]int{} // marker -> status of its predecessor then
	)
	predecessorStatus := func(id int64) int {
		return count(t, db, `SELECT status FROM platform_outbox WHERE id = ?`, id)
	}
	fake := b.Fake()
	fake.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		fake.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		var poisoned bool
		for _, rt := range req.Topics {
			for _, rp := range rt.Partitions {
				poisoned = poisoned || bytes.Contains(rp.Records, []byte(poisonMarker))
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if poisoned {
			poisonRequests++
		} else {
			// What the broker accepts: a successor must not get here before its predecessor is dead.
			for _, rt := range req.Topics {
				for _, rp := range rt.Partitions {
					for marker, pred := range map[string]int64{poisonSuccessor: poisonID, oversizedSuccessor: oversizedID} {
						if _, seen := successorsSeenAt[marker]; !seen && bytes.Contains(rp.Records, []byte(marker)) {
							successorsSeenAt[marker] = predecessorStatus(pred)
						}
					}
				}
			}
		}
		if !poisoned {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.InvalidRecord.Code // not retriable: the client fails the batch
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	cfg := fastConfig()
	cfg.MaxAttempts = maxAttempts
	cfg.BackoffBase, cfg.BackoffMax = 300*time.Millisecond, 600*time.Millisecond
	p := newProducer(t, b, kgo.ProducerBatchCompression(kgo.NoCompression()))
	startRelay(t, db, p, cfg, m, nil)
	t0 := time.Now()

	// Innocent rows flow while the poison is still being retried (it lives >= 1s).
	innocents := `SELECT COUNT(*) FROM platform_outbox WHERE aggregate_id NOT IN ('agg-poison', 'agg-oversized') AND status = 1`
	eventually(t, 10*time.Second, "innocent rows to be published", func() bool {
		return count(t, db, innocents) == innocentAggregates*innocentPerAggregate
	})
	t.Logf("innocents through after %s", time.Since(t0))
	if s := predecessorStatus(poisonID); s != outbox.StatusPending {
		t.Fatalf("the poison row is already %d when the innocent rows are through; they did not flow around it", s)
	}

	eventually(t, 20*time.Second, "every row settled", func() bool {
		return count(t, db, `SELECT COUNT(*) FROM platform_outbox WHERE status = 0`) == 0
	})
	t.Logf("all settled after %s", time.Since(t0))
	rows := outboxRows(t, db)
	var collateral int
	for _, r := range rows {
		switch r.ID {
		case poisonID, oversizedID:
			if r.Status != outbox.StatusDead || r.Attempts != maxAttempts || r.LastError == nil {
				t.Errorf("poison row %d: status %d, attempts %d, want dead after %d", r.ID, r.Status, r.Attempts, maxAttempts)
			}
		default:
			if r.Status != outbox.StatusPublished {
				t.Errorf("row %d (%s): status %d, want published", r.ID, r.AggregateID, r.Status)
			}
			if r.Attempts > 0 {
				collateral++
			}
		}
	}
	if le := *rows[0].LastError; !strings.Contains(le, "INVALID_RECORD") {
		t.Errorf("poison last_error = %q", le)
	}
	if le := *rows[1].LastError; !strings.Contains(le, outbox.ErrTooLarge.Error()) {
		t.Errorf("oversized last_error = %q", le)
	}
	if got := metric(t, reg, "mall_outbox_dead_total", labels); got != 2 {
		t.Errorf("dead_total = %v, want 2", got)
	}
	eventually(t, 10*time.Second, "the dead rows gauge", func() bool { return metric(t, reg, "mall_outbox_dead_rows", labels) == 2 })
	mu.Lock()
	if poisonRequests != maxAttempts {
		t.Errorf("the broker saw the poison %d times, want %d (one per attempt)", poisonRequests, maxAttempts)
	}
	for _, marker := range []string{poisonSuccessor, oversizedSuccessor} {
		st, seen := successorsSeenAt[marker]
		if !seen || st != outbox.StatusDead {
			t.Errorf("%s reached the broker (%v) while its predecessor had status %d: it overtook it", marker, seen, st)
		}
	}
	mu.Unlock()

	published := len(rows) - 2
	recs := readTopic(t, b, topic, 10*time.Second, func(recs []*kgo.Record) bool { return len(eventIDs(recs)) >= published })
	ids := eventIDs(recs)
	if ids[rows[0].EventID] > 0 || ids[rows[1].EventID] > 0 || len(ids) != published {
		t.Fatalf("Kafka has %d events (poison present: %v, %v), want the %d published", len(ids), ids[rows[0].EventID], ids[rows[1].EventID], published)
	}
	t.Logf("%d innocent rows failed alongside the poison and were retried alone", collateral)
}

package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/platform/kafkax/kafkaxtest"
	"github.com/mallhq/mall/internal/platform/metrics"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

func newProducer(t testing.TB, b *kafkax.Broker, opts ...kgo.Opt) *kafkax.Producer {
	t.Helper()
	p, err := kafkax.NewProducer(b, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func newMetrics(t testing.TB) (*outbox.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := outbox.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// fastConfig polls often and backs off briefly so tests run in seconds.
func fastConfig() config.Outbox {
	return config.Outbox{
		BatchSize:    200,
		PollInterval: 20 * time.Millisecond,
		MaxAttempts:  20,
		BackoffBase:  20 * time.Millisecond,
		BackoffMax:   200 * time.Millisecond,
	}
}

// startRelay starts a relay stopped at the end of the test.
func startRelay(t testing.TB, db *sqldb.DB, p outbox.Producer, cfg config.Outbox, m *outbox.Metrics, hook func() bool, opts ...outbox.RelayOption) *outbox.Relay {
	t.Helper()
	opts = append([]outbox.RelayOption{outbox.WithFollowerPoll(100 * time.Millisecond), outbox.WithStatsInterval(100 * time.Millisecond)}, opts...)
	r := outbox.NewRelay(db, p, cfg, kafkaxtest.Logger(), m, opts...)
	if hook != nil {
		outbox.SetCrashHook(r, hook)
	}
	r.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.Stop(ctx)
	})
	return r
}

func metric(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, err := metrics.Value(reg, name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func count(t testing.TB, db *sqldb.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// outboxRow is what a test reads back from platform_outbox.
type outboxRow struct {
	ID          int64   `db:"id"`
	EventID     string  `db:"event_id"`
	AggregateID string  `db:"aggregate_id"`
	Envelope    []byte  `db:"envelope"`
	Status      int     `db:"status"`
	Attempts    int     `db:"attempts"`
	LastError   *string `db:"last_error"`
}

func outboxRows(t testing.TB, db *sqldb.DB) []outboxRow {
	t.Helper()
	var rows []outboxRow
	if err := db.SelectContext(context.Background(), &rows,
		`SELECT id, event_id, aggregate_id, envelope, status, attempts, last_error FROM platform_outbox ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	return rows
}

// readTopic consumes topic from the start until done(records so far) holds or timeout.
// Records come in partition order.
func readTopic(t testing.TB, b *kafkax.Broker, topic string, timeout time.Duration, done func([]*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Seeds()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var recs []*kgo.Record
	for !done(recs) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: timed out after %s with %d records", topic, timeout, len(recs))
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("read %s: %v", topic, err) })
		recs = append(recs, fs.Records()...)
	}
	return recs
}

func eventIDs(recs []*kgo.Record) map[string]int {
	ids := map[string]int{}
	for _, r := range recs {
		ids[kafkax.Header(r, kafkax.HeaderEventID)]++
	}
	return ids
}

package settlement_test

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/kafkax"
)

// The settlement figures of issue 12 (done-when 5), measured on the test services; run with
// MALL_SETTLEMENT_BENCH=1 (they take a while and load the machine).
func benchOnly(t *testing.T) {
	if os.Getenv("MALL_SETTLEMENT_BENCH") == "" {
		t.Skip("set MALL_SETTLEMENT_BENCH=1 to measure")
	}
}

// TestLedgerPostingThroughput: order.completed events consumed (and posted) per second by
// the ledger consumer, inbox included. Goal: at least 2,000/s.
func TestLedgerPostingThroughput(t *testing.T) {
	benchOnly(t)
	a := newApp(t)
	const n, merchants = 20000, 1000
	p, err := kafkax.NewProducer(a.broker)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	at := time.Now().UTC()
	recs := make([]*kgo.Record, n)
	for i := range n {
		oid := int64(1_000_000 + i)
		ev, err := kafkax.NewEnvelope(order.EventCompleted, strconv.FormatInt(oid, 10), order.OrderEvent{OrderID: oid,
			MerchantID: int64(1 + i%merchants), Status: order.StatusCompleted, CompletedAt: &at, OccurredAt: at,
			Items: []order.EventItem{{SKUID: 1, Price: 1999, Quantity: 2, CommissionRateBP: 500},
				{SKUID: 2, Price: 35, Quantity: 1, CommissionRateBP: 250}}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(ev)
		recs[i] = kafkax.NewRecord(order.Topic, ev.AggregateID, ev.Type, ev.ID, b)
	}
	start := time.Now()
	if err := p.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produced := time.Since(start)
	deadline := time.Now().Add(5 * time.Minute)
	for a.count(`SELECT COUNT(*) FROM settlement_postings WHERE kind = 'completion'`) < n {
		if time.Now().After(deadline) {
			t.Fatal("not all posted within 5 minutes")
		}
		time.Sleep(250 * time.Millisecond)
	}
	d := time.Since(start)
	t.Logf("ledger posting: %d order.completed events in %v (produced in %v): %.0f events/s", n, d.Round(time.Millisecond),
		produced.Round(time.Millisecond), float64(n)/d.Seconds())
}

// TestStatementGenerationScale: statements for 1,000 merchants × 100 available lines.
// Goal: under 10 s.
func TestStatementGenerationScale(t *testing.T) {
	benchOnly(t)
	l := newLedger(t)
	ctx := context.Background()
	const merchants, lines = 1000, 100
	at := time.Now().Add(-time.Hour).UTC()
	var b strings.Builder
	var args []any
	id := int64(1)
	flush := func() {
		if len(args) == 0 {
			return
		}
		if _, err := l.db.ExecContext(ctx, `INSERT INTO settlement_entries (id, merchant_id, posting_id, kind, order_id,
			amount, status, available_at, created_at) VALUES `+strings.TrimSuffix(b.String(), ","), args...); err != nil {
			t.Fatal(err)
		}
		b.Reset()
		args = args[:0]
	}
	for m := range merchants {
		for k := range lines {
			kind, amount := "income", int64(1000+k)
			if k%10 == 9 {
				kind, amount = "commission", -50
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, 'available', ?, ?),")
			args = append(args, id, m+1, id, kind, id, amount, at, at)
			id++
			if len(args) >= 8*1000 {
				flush()
			}
		}
	}
	flush()
	start := time.Now()
	sts, err := l.svc.GenerateStatements(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	if len(sts) != merchants {
		t.Fatalf("%d statements, want %d", len(sts), merchants)
	}
	t.Logf("statement generation: %d merchants × %d lines in %v", merchants, lines, d.Round(time.Millisecond))
	if d > 10*time.Second {
		t.Errorf("statement generation took %v, goal < 10s", d)
	}
}

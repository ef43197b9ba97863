package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/settlement"
)

// The settlement rows (issue 12): order.completed events produced straight onto the running
// server's order topic (its embedded broker, kafka.embedded_port), for settlementMerchants
// merchants of this run, each event two lines, completed before the hold period so every
// entry is available at once. The ledger row counts the events the server's ledger group
// took up per second (its lag histogram, observed after each batch commits); the
// statements row then has the operator issue a period's statements over HTTP: one per
// merchant, each over settlementEventsPer × 2 entries (income and commission per event).
const (
	settlementMerchants = 1000
	settlementEventsPer = 50 // 100 entries per merchant
	settlementGroup     = settlement.LedgerGroup
)

var settlementScenarios = []Scenario{
	{
		Name:    fmt.Sprintf("settlement ledger: %d order.completed events posted", settlementMerchants*settlementEventsPer),
		Target:  TargetMall,
		Measure: ledgerPosting,
	},
	{
		Name:    fmt.Sprintf("settlement statements: %d merchants × %d lines", settlementMerchants, 2*settlementEventsPer),
		Target:  TargetMall,
		Measure: statementGeneration,
	},
}

// settlementEvents produces the run's events once (both rows share them) and returns how
// long the ledger took to take them all up, with the lag quantiles.
func settlementEvents(ctx context.Context, env *Env) (Result, error) {
	v, err := env.Once("settlement-events", func() (any, error) { return produceCompletions(ctx, env) })
	if err != nil {
		return Result{}, err
	}
	return v.(Result), nil
}

func produceCompletions(ctx context.Context, env *Env) (Result, error) {
	if env.Kafka == "" {
		return Result{}, fmt.Errorf("no -kafka address of the server's embedded broker")
	}
	// Start from a drained outbox: other rows' events would count in the lag histogram.
	if err := WaitIndexed(ctx, env.Client, env.MallURL, 0, time.Minute, nil); err != nil {
		return Result{}, err
	}
	before, err := readLag(ctx, env.Client, env.MallURL, settlementGroup)
	if err != nil {
		return Result{}, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.Kafka), kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		return Result{}, err
	}
	defer cl.Close()
	// IDs of this run only: the bench database keeps earlier runs' ledgers.
	base := time.Now().UnixMilli() * 1_000_000
	completed := time.Now().UTC().Add(-30 * 24 * time.Hour) // past any hold period
	n := settlementMerchants * settlementEventsPer
	recs := make([]*kgo.Record, 0, n)
	start := time.Now()
	for i := range n {
		oid := base + int64(i)
		at := time.Now().UTC()
		ev, err := kafkax.NewEnvelope(order.EventCompleted, strconv.FormatInt(oid, 10), order.OrderEvent{OrderID: oid,
			CheckoutID: oid, BuyerID: 1, MerchantID: base + int64(i%settlementMerchants), Status: order.StatusCompleted,
			TotalAmount: 2*1999 + 35, Currency: order.Currency, CompletedAt: &completed, OccurredAt: at,
			Items: []order.EventItem{{SKUID: 1, Price: 1999, Quantity: 2, CommissionRateBP: 500},
				{SKUID: 2, Price: 35, Quantity: 1, CommissionRateBP: 250}}})
		if err != nil {
			return Result{}, err
		}
		b, err := json.Marshal(ev)
		if err != nil {
			return Result{}, err
		}
		recs = append(recs, kafkax.NewRecord(order.Topic, ev.AggregateID, ev.Type, ev.ID, b))
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return Result{}, fmt.Errorf("produce to %s: %w", env.Kafka, err)
	}
	var delta histogram
	for deadline := time.Now().Add(5 * time.Minute); ; {
		after, err := readLag(ctx, env.Client, env.MallURL, settlementGroup)
		if err != nil {
			return Result{}, err
		}
		delta = after.Sub(before)
		if int64(delta.Count()) >= int64(n) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := int64(delta.Count())
	res := Result{Requests: got, Duration: time.Since(start), P50: delta.Quantile(0.50), P99: delta.Quantile(0.99),
		ErrKinds: map[string]int64{}}
	if missing := int64(n) - got; missing > 0 {
		res.Errors, res.ErrKinds["events not posted"] = missing, missing
	}
	return res, nil
}

// ledgerPosting: events per second from the first produce to the last event taken up;
// p50/p99 are the events' lag (occurred_at to their batch's commit).
func ledgerPosting(ctx context.Context, env *Env) (Result, string, error) {
	res, err := settlementEvents(ctx, env)
	if err != nil {
		return Result{}, "", err
	}
	mark := "✗"
	if res.Rate() >= 2000 && res.Errors == 0 {
		mark = "✓"
	}
	return res, fmt.Sprintf("%s ≥ 2,000 events/s (%.0f/s; inbox, postings, entries and balances in batches)",
		mark, res.Rate()), nil
}

// statementGeneration: the operator's POST /api/v1/admin/settlement/statements over the
// ledger row's merchants (one request; its duration is the figure).
func statementGeneration(ctx context.Context, env *Env) (Result, string, error) {
	if _, err := settlementEvents(ctx, env); err != nil {
		return Result{}, "", err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	creds := map[string]string{"email": "admin@mall.local", "password": env.SeedPassword}
	if err := env.Call(ctx, http.MethodPost, env.MallURL+"/api/v1/auth/login", nil, creds, &tok); err != nil {
		return Result{}, "", fmt.Errorf("log in as the seeded admin: %w", err)
	}
	var out struct {
		Items []json.RawMessage `json:"items"`
	}
	h := http.Header{"Authorization": {"Bearer " + tok.AccessToken}}
	start := time.Now()
	err := env.Call(ctx, http.MethodPost, env.MallURL+"/api/v1/admin/settlement/statements", h,
		map[string]string{"period_end": time.Now().UTC().Format(time.RFC3339)}, &out)
	d := time.Since(start)
	if err != nil {
		return Result{}, "", err
	}
	res := Result{Requests: 1, Duration: d, P50: d, P99: d, ErrKinds: map[string]int64{}}
	mark := "✗"
	if d < 10*time.Second && len(out.Items) >= settlementMerchants {
		mark = "✓"
	}
	return res, fmt.Sprintf("%s < 10 s (%s for %d statements)", mark, fmtDur(d), len(out.Items)), nil
}

package settlement_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
	"github.com/mallhq/mall/internal/settlement"
)

// fakeOrders is the order module as the check sees it: the completed orders.
type fakeOrders struct {
	order.Service
	completed []order.Order
}

func (f *fakeOrders) CompletedOrders(_ context.Context, after int64, limit int) ([]order.Order, error) {
	var out []order.Order
	for _, o := range f.completed {
		if o.ID > after && len(out) < limit {
			out = append(out, o)
		}
	}
	return out, nil
}

type ledger struct {
	t      *testing.T
	svc    settlement.Service
	db     *sqldb.DB
	orders *fakeOrders
	offset atomic.Int64 // the settlement clock's lead over time.Now
}

const hold = 168 * time.Hour

func newLedger(t *testing.T) *ledger {
	t.Helper()
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{Migrations: []sqldb.Migrations{settlement.Migrations}})
	ids, err := idgen.New(3)
	if err != nil {
		t.Fatal(err)
	}
	l := &ledger{t: t, db: cl.Main(), orders: &fakeOrders{}}
	l.svc, err = settlement.New(settlement.Params{DB: cl, IDs: ids, Orders: l.orders,
		Config: settlement.Config{DefaultCommissionBP: 500, HoldPeriod: hold},
		Clock:  func() time.Time { return time.Now().Add(time.Duration(l.offset.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *ledger) now() time.Time { return time.Now().Add(time.Duration(l.offset.Load())) }

func envelope(t *testing.T, typ string, p order.OrderEvent) kafkax.Envelope {
	t.Helper()
	ev, err := kafkax.NewEnvelope(typ, strconv.FormatInt(p.OrderID, 10), p)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func (l *ledger) feed(evs []kafkax.Envelope) {
	l.t.Helper()
	for _, ev := range evs {
		if err := settlement.Handle(context.Background(), l.svc, ev); err != nil {
			l.t.Fatal(err)
		}
	}
}

func (l *ledger) check() settlement.Report {
	l.t.Helper()
	rep, err := l.svc.Check(context.Background())
	if err != nil {
		l.t.Fatal(err)
	}
	return rep
}

func (l *ledger) wantOK() {
	l.t.Helper()
	if rep := l.check(); !rep.OK() {
		l.t.Fatalf("check: %d differences: %v", rep.DifferenceCount, rep.Differences)
	}
}

func (l *ledger) balance(mid int64) settlement.Balance {
	l.t.Helper()
	b, err := l.svc.Balance(context.Background(), mid)
	if err != nil {
		l.t.Fatal(err)
	}
	return b
}

// TestPartialRefundsTelescopeThroughEvents: an order of four lines (rounding edges: a
// half-fen commission, a 1-fen line at 50%, a line at 10000 bp, one at 0 bp) with a refund
// before completion and two partial refunds after it, every event delivered three times
// in a shuffled order, twice under new event IDs: the ledger posts each fact once, the
// merchant keeps exactly the units left less the commission on them, the check reconciles,
// and a refund before completion posts nothing.
func TestPartialRefundsTelescopeThroughEvents(t *testing.T) {
	l := newLedger(t)
	const mid = 42
	completed := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	lines := []order.EventItem{
		{SKUID: 1, Price: 10, Quantity: 3, CommissionRateBP: 500}, // 1.5 fen of commission on 3 units
		{SKUID: 2, Price: 1, Quantity: 1, CommissionRateBP: 5000}, // 0.5 fen
		{SKUID: 3, Price: 1999, Quantity: 2, CommissionRateBP: 10000},
		{SKUID: 4, Price: 777, Quantity: 4, CommissionRateBP: 0},
	}
	const orderID = 1001
	with := func(refunded map[int64]int64) []order.EventItem {
		out := append([]order.EventItem(nil), lines...)
		for i := range out {
			out[i].RefundedQuantity = refunded[out[i].SKUID]
		}
		return out
	}
	ev := func(typ string, items []order.EventItem, r *order.EventRefund, withCompletion bool) kafkax.Envelope {
		p := order.OrderEvent{OrderID: orderID, MerchantID: mid, BuyerID: 7, Status: order.StatusCompleted, Items: items,
			Refund: r, Currency: order.Currency, OccurredAt: time.Now().UTC()}
		if withCompletion {
			p.CompletedAt = &completed
		}
		return envelope(t, typ, p)
	}
	// Before completion: one unit of line 4 (posts nothing; completion leaves it out).
	r0 := ev(order.EventRefunded, with(map[int64]int64{4: 1}), &order.EventRefund{RefundID: 2001, Amount: 777,
		Items: []order.RefundItem{{SKUID: 4, Quantity: 1}}}, false)
	done := ev(order.EventCompleted, with(map[int64]int64{4: 1}), nil, true)
	r1 := ev(order.EventRefunded, with(map[int64]int64{4: 1, 1: 1}), &order.EventRefund{RefundID: 2002, Amount: 10,
		Items: []order.RefundItem{{SKUID: 1, Quantity: 1}}, AfterCompletion: true}, true)
	r2 := ev(order.EventRefunded, with(map[int64]int64{4: 1, 1: 3, 3: 1}), &order.EventRefund{RefundID: 2003,
		Amount: 20 + 1999, Items: []order.RefundItem{{SKUID: 1, Quantity: 2}, {SKUID: 3, Quantity: 1}},
		AfterCompletion: true}, true)

	all := []kafkax.Envelope{r0, done, r1, r2}
	var deliveries []kafkax.Envelope
	for round := range 3 {
		for _, e := range all {
			if round > 0 {
				e.ID = uuid.NewString() // the same fact under another event
			}
			deliveries = append(deliveries, e)
		}
	}
	rand.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })
	l.feed(deliveries)

	// By hand: line 1 all refunded (0 kept), line 2: 1 fen − 1 (0.5 rounds up) = 0,
	// line 3: 1 unit left at 100% = 0, line 4: 3 units × 777 at 0 bp = 2331.
	b := l.balance(mid)
	if b.Pending != 2331 || b.Available != 0 || b.PaidOut != 0 {
		t.Fatalf("balance %+v, want pending 2331", b)
	}
	var postings int
	if err := l.db.GetContext(context.Background(), &postings, `SELECT COUNT(*) FROM settlement_postings`); err != nil {
		t.Fatal(err)
	}
	if postings != 3 {
		t.Fatalf("%d postings, want 3 (completion, two refunds after it)", postings)
	}
	// Income 1×10·3 + 1 + 2×1999 + 3×777 = 6360, commission 2 (1.5) + 1 + 3998 + 0 = 4001,
	// refunds 30 + 1999, commission refunds: line 1 comm(3)−comm(2)=2−1=1 then comm(2)−0=1,
	// line 3 comm(2)−comm(1) = 1999.
	want := map[settlement.Kind]int64{settlement.KindIncome: 6360, settlement.KindCommission: -4001,
		settlement.KindRefund: -2029, settlement.KindCommissionRefund: 2001}
	es, err := l.svc.Entries(context.Background(), mid, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	got := map[settlement.Kind]int64{}
	for _, e := range es {
		got[e.Kind] += e.Amount
		if e.Status != settlement.StatusPending || !e.AvailableAt.Equal(completed.Add(hold)) {
			t.Fatalf("entry %+v: want pending until %v", e, completed.Add(hold))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("entries by kind %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("entries by kind %v, want %v", got, want)
		}
	}
	if s, err := l.svc.Summary(context.Background()); err != nil || s.CommissionEarned != 2000 || s.PayableToMerchants != 2331 {
		t.Fatalf("summary %+v %v, want commission 2000 (4001 − 2001), payable 2331", s, err)
	}

	// The check against the order as the order module has it.
	o := order.Order{ID: orderID, MerchantID: mid, Status: order.StatusCompleted, CompletedAt: completed,
		Refunds: []order.Refund{
			{ID: 2001, OrderID: orderID, Amount: 777, Items: []order.RefundItem{{SKUID: 4, Quantity: 1}}},
			{ID: 2002, OrderID: orderID, Amount: 10, Items: []order.RefundItem{{SKUID: 1, Quantity: 1}}, AfterCompletion: true},
			{ID: 2003, OrderID: orderID, Amount: 2019, Items: []order.RefundItem{{SKUID: 1, Quantity: 2}, {SKUID: 3, Quantity: 1}},
				AfterCompletion: true},
		}}
	for _, it := range with(map[int64]int64{4: 1, 1: 3, 3: 1}) {
		o.Items = append(o.Items, order.Item{SKUID: it.SKUID, Price: it.Price, Quantity: it.Quantity,
			CommissionRateBP: it.CommissionRateBP, RefundedQuantity: it.RefundedQuantity})
	}
	l.orders.completed = []order.Order{o}
	l.wantOK()

	// An order the ledger never heard of is reported.
	l.orders.completed = append(l.orders.completed, order.Order{ID: 1002, MerchantID: mid, CompletedAt: completed,
		Items: []order.Item{{SKUID: 9, Price: 100, Quantity: 1, CommissionRateBP: 500}}})
	if rep := l.check(); rep.DifferenceCount != 2 { // not posted; the platform commission is 5 short
		t.Fatalf("check with an unposted order: %+v", rep)
	}
}

// TestStatementsAndPayouts: pending until the hold period passes, then available; a
// statement takes the available entries; a payout is recorded once; a refund after the
// payout makes the balance negative, and a non-positive total waits for the next period.
func TestStatementsAndPayouts(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	completed := time.Now().UTC().Truncate(time.Microsecond)
	var evs []kafkax.Envelope
	var os []order.Order
	for i, m := range []int64{1, 1, 2} {
		id := int64(100 + i)
		items := []order.EventItem{{SKUID: 5, Price: 1000, Quantity: 2, CommissionRateBP: 500}}
		evs = append(evs, envelope(t, order.EventCompleted, order.OrderEvent{OrderID: id, MerchantID: m,
			Status: order.StatusCompleted, Items: items, CompletedAt: &completed, OccurredAt: completed}))
		os = append(os, order.Order{ID: id, MerchantID: m, CompletedAt: completed,
			Items: []order.Item{{SKUID: 5, Price: 1000, Quantity: 2, CommissionRateBP: 500}}})
	}
	l.orders.completed = os
	l.feed(evs)
	if n, err := l.svc.Release(ctx); err != nil || n != 0 {
		t.Fatalf("release within the hold period: %d %v", n, err)
	}
	if sts, err := l.svc.GenerateStatements(ctx, l.now()); err != nil || len(sts) != 0 {
		t.Fatalf("statements of pending money: %+v %v", sts, err)
	}
	l.offset.Store(int64(hold + time.Minute))
	if n, err := l.svc.Release(ctx); err != nil || n != 6 {
		t.Fatalf("release after the hold period: %d %v, want 6 entries", n, err)
	}
	if b := l.balance(1); b.Pending != 0 || b.Available != 2*1900 {
		t.Fatalf("merchant 1 after release: %+v", b)
	}
	l.wantOK()
	sts, err := l.svc.GenerateStatements(ctx, l.now())
	if err != nil || len(sts) != 2 {
		t.Fatalf("statements: %+v %v", sts, err)
	}
	if again, err := l.svc.GenerateStatements(ctx, l.now()); err != nil || len(again) != 0 {
		t.Fatalf("a second run: %+v %v", again, err)
	}
	s1 := sts[0]
	if s1.MerchantID != 1 || s1.Income != 4000 || s1.Commission != 200 || s1.Refunds != 0 || s1.NetAmount != 3800 {
		t.Fatalf("merchant 1's statement %+v", s1)
	}
	if _, err := l.svc.MerchantStatement(ctx, 2, s1.ID); !errors.Is(err, settlement.ErrStatementNotFound) {
		t.Fatalf("another merchant's statement: %v", err)
	}
	full, err := l.svc.MerchantStatement(ctx, 1, s1.ID)
	if err != nil || len(full.Lines) != 4 {
		t.Fatalf("statement with lines: %+v %v", full, err)
	}
	paid, err := l.svc.MarkPaid(ctx, s1.ID, "BANK-1")
	if err != nil || paid.Status != settlement.StatementPaid || paid.Reference != "BANK-1" {
		t.Fatalf("mark paid: %+v %v", paid, err)
	}
	if _, err := l.svc.MarkPaid(ctx, s1.ID, "BANK-2"); !errors.Is(err, settlement.ErrAlreadyPaid) {
		t.Fatalf("second mark-paid: %v", err)
	}
	if b := l.balance(1); b.Available != 0 || b.PaidOut != 3800 {
		t.Fatalf("merchant 1 after the payout: %+v", b)
	}
	l.wantOK()

	// A refund of both units of order 100 after the payout: −2000 + 100 commission back.
	refunded := []order.EventItem{{SKUID: 5, Price: 1000, Quantity: 2, CommissionRateBP: 500, RefundedQuantity: 2}}
	l.feed([]kafkax.Envelope{envelope(t, order.EventRefunded, order.OrderEvent{OrderID: 100, MerchantID: 1,
		Status: order.StatusRefunded, Items: refunded, CompletedAt: &completed, OccurredAt: l.now(),
		Refund: &order.EventRefund{RefundID: 900, Amount: 2000, Items: []order.RefundItem{{SKUID: 5, Quantity: 2}},
			AfterCompletion: true}})})
	l.orders.completed[0].Refunds = []order.Refund{{ID: 900, OrderID: 100, Amount: 2000,
		Items: []order.RefundItem{{SKUID: 5, Quantity: 2}}, AfterCompletion: true}}
	l.orders.completed[0].Items[0].RefundedQuantity = 2
	if b := l.balance(1); b.Available != -1900 || b.PaidOut != 3800 || b.Pending != 0 {
		t.Fatalf("merchant 1 after a refund after the payout: %+v, want available −1900 at once", b)
	}
	if sts, err := l.svc.GenerateStatements(ctx, l.now()); err != nil || len(sts) != 0 {
		t.Fatalf("a negative balance got a statement: %+v %v", sts, err)
	}
	l.wantOK()
	if s, err := l.svc.Summary(ctx); err != nil || s.CommissionEarned != 200 || s.PaidOut != 3800 ||
		s.PayableToMerchants != -1900+1900 {
		t.Fatalf("summary %+v %v", s, err)
	}

	// Corruptions the check reports: a line's amount, an entry's amount, a balance.
	for _, q := range []string{
		`UPDATE settlement_lines SET amount = amount + 1 ORDER BY id LIMIT 1`,
		`UPDATE settlement_entries SET amount = amount - 1 ORDER BY id LIMIT 1`,
		`UPDATE settlement_balances SET available = available + 1 WHERE merchant_id = 2`,
	} {
		if _, err := l.db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
		rep := l.check()
		if rep.OK() {
			t.Fatalf("after %s the check found nothing", q)
		}
		t.Logf("after %s: %v", q, rep.Differences)
	}
}

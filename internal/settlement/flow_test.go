package settlement_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/merchant"
	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/settlement"
	"github.com/mallhq/mall/internal/stock"
	"github.com/mallhq/mall/internal/user"
)

// app is the application with the settlement module and a settlement clock the test moves.
type app struct {
	*apptest.App
	t        testing.TB
	admin    string
	catalog  catalog.Service
	orders   order.Service
	svc      settlement.Service
	broker   *kafkax.Broker
	category int64
	offset   atomic.Int64
}

func newApp(t testing.TB) *app {
	t.Helper()
	a := &app{t: t}
	cfg := catalog.ConfigSection.With(apptest.Config(t), func(c *catalog.Config) { c.ReviewRequired = false })
	cfg = settlement.ConfigSection.With(cfg, func(c *settlement.Config) { c.ReleaseInterval = 0 }) // the test releases
	a.App = apptest.Start(t, cfg, apptest.Options{
		Modules: []fx.Option{user.Module, merchant.Module, stock.Module, catalog.Module, order.Module, order.Gateways,
			settlement.Module,
			fx.Supply(settlement.Clock(func() time.Time { return time.Now().Add(time.Duration(a.offset.Load())) }))},
		Populate: []any{&a.catalog, &a.orders, &a.svc, &a.broker},
	})
	_, tk := a.Admin()
	a.admin = tk.AccessToken
	ctx := context.Background()
	id, err := a.catalog.CreateCategory(ctx, catalog.NewCategory{Name: "cups"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.catalog.SetAttributes(ctx, id, catalog.Template{Sale: []catalog.Attribute{{Name: "color"}}}); err != nil {
		t.Fatal(err)
	}
	a.category = id
	return a
}

func (a *app) now() time.Time { return time.Now().Add(time.Duration(a.offset.Load())) }

func (a *app) sku(merchantID, price int64) int64 {
	a.t.Helper()
	ctx := context.Background()
	p, err := a.catalog.CreateProduct(ctx, merchantID, catalog.ProductInput{Title: "Cup " + strconv.FormatInt(price, 10),
		Description: "a cup", CategoryID: a.category,
		SKUs: []catalog.SKUInput{{Code: "c1", Attrs: map[string]string{"color": "red"}, Price: price, Stock: 1000}}})
	if err != nil {
		a.t.Fatal(err)
	}
	if _, err := a.catalog.Submit(ctx, merchantID, p.ID); err != nil {
		a.t.Fatal(err)
	}
	return p.SKUs[0].ID
}

// eventually polls cond until it holds or 60 s pass.
func (a *app) eventually(what string, cond func() bool) {
	a.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			a.t.Fatalf("%s did not happen within 60s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (a *app) count(q string, args ...any) int {
	a.t.Helper()
	var n int
	if err := a.Cluster.Main().GetContext(context.Background(), &n, q, args...); err != nil {
		a.t.Fatal(err)
	}
	return n
}

// metric reads a counter from /metrics, 0 when it has no sample yet.
func (a *app) metric(name string) float64 {
	a.t.Helper()
	for line := range strings.Lines(string(a.Req(http.MethodGet, "/metrics", nil).Body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				a.t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// orderEnvelopes are the settlement events of every shard's outbox.
func (a *app) orderEnvelopes() []kafkax.Envelope {
	a.t.Helper()
	var out []kafkax.Envelope
	for _, db := range a.Cluster.Shards() {
		var raws [][]byte
		if err := db.SelectContext(context.Background(), &raws, `SELECT envelope FROM platform_outbox
			WHERE topic = ? AND event_type IN (?, ?) ORDER BY id`, order.Topic, order.EventCompleted, order.EventRefunded); err != nil {
			a.t.Fatal(err)
		}
		for _, raw := range raws {
			ev, err := kafkax.DecodeEnvelope(raw)
			if err != nil {
				a.t.Fatal(err)
			}
			out = append(out, ev)
		}
	}
	return out
}

// redeliver produces every envelope again, shuffled: once as it was (the inbox absorbs
// it) and once under a new event ID (the fact key absorbs it), then waits until the ledger
// consumer has seen them all.
func (a *app) redeliver(evs []kafkax.Envelope) {
	a.t.Helper()
	inbox0 := a.metric(`mall_kafka_consumer_duplicates_total{group="` + settlement.LedgerGroup + `"}`)
	facts0 := a.metric("mall_settlement_duplicate_facts_total")
	var all []kafkax.Envelope
	for _, ev := range evs {
		again := ev
		again.ID = uuid.NewString()
		all = append(all, ev, again)
	}
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	p, err := kafkax.NewProducer(a.broker)
	if err != nil {
		a.t.Fatal(err)
	}
	defer p.Close()
	for _, ev := range all {
		b, err := json.Marshal(ev)
		if err != nil {
			a.t.Fatal(err)
		}
		// Keyed by a random string, not the order: the two copies of a fact and an order's
		// events land on different partitions, in no particular order.
		if err := p.ProduceSync(context.Background(), kafkax.NewRecord(order.Topic, uuid.NewString(), ev.Type, ev.ID, b)).FirstErr(); err != nil {
			a.t.Fatal(err)
		}
	}
	n := float64(len(evs))
	a.eventually("the redelivered events consumed", func() bool {
		return a.metric(`mall_kafka_consumer_duplicates_total{group="`+settlement.LedgerGroup+`"}`)-inbox0 >= n &&
			a.metric("mall_settlement_duplicate_facts_total")-facts0 >= n
	})
}

func (a *app) check() settlement.Report {
	a.t.Helper()
	rep, err := a.svc.Check(context.Background())
	if err != nil {
		a.t.Fatal(err)
	}
	return rep
}

func (a *app) wantOK() {
	a.t.Helper()
	if rep := a.check(); !rep.OK() {
		a.t.Fatalf("check: %d differences: %v", rep.DifferenceCount, rep.Differences)
	}
}

// handComm is the commission rule written out independently: x/10000 rounded half up.
func handComm(price, n int64, bp int) int64 { return (price*n*int64(bp)*2 + 10000) / 20000 }

type testLine struct {
	sku, price, qty, refunded int64
	bp                        int
}

type testOrder struct {
	id, buyer, merchant int64
	lines               []testLine
}

// net is what the merchant keeps of the order: the units not refunded less the commission
// on them (the telescoping rule), and that commission.
func (o *testOrder) net() (net, commission int64) {
	for _, l := range o.lines {
		left := l.qty - l.refunded
		c := handComm(l.price, left, l.bp)
		net += l.price*left - c
		commission += c
	}
	return net, commission
}

// TestSettlementEndToEnd is issue 12's settlement scenario: 200 orders of 20 merchants
// placed, paid through the sandbox, shipped and confirmed concurrently; their events
// delivered again twice and out of order; refunds (whole and partial) after the money
// became available, statements and payouts, refunds after the payouts; the check finds no
// difference, every merchant's balance is the hand-computed one and the platform's
// commission is the sum of the commissions. A corrupted line is then reported.
func TestSettlementEndToEnd(t *testing.T) {
	a := newApp(t)
	ctx := context.Background()
	const merchants, buyers, perBuyer = 20, 20, 10
	prices := []int64{1, 9, 10, 11, 30, 50, 1999, 12345}
	type shop struct {
		id    int64
		token string
		skus  [2]int64
		price [2]int64
	}
	shops := make([]shop, merchants)
	for i := range shops {
		id, _, tok := a.Merchant(a.admin)
		shops[i] = shop{id: id, token: tok}
		for k := range 2 {
			shops[i].price[k] = prices[(i*2+k)%len(prices)]
			shops[i].skus[k] = a.sku(id, shops[i].price[k])
		}
	}
	type buyerAcc struct {
		id      int64
		address int64
	}
	bs := make([]buyerAcc, buyers)
	for i := range bs {
		acc, tk := a.NewUser("buyer")
		bid, _ := strconv.ParseInt(acc.ID, 10, 64)
		addr, _ := strconv.ParseInt(a.Address(tk.AccessToken), 10, 64)
		bs[i] = buyerAcc{id: bid, address: addr}
	}

	// 200 orders through their whole lifecycle, one goroutine per buyer.
	orders := make([]*testOrder, buyers*perBuyer)
	var wg sync.WaitGroup
	errs := make(chan error, buyers)
	for b := range buyers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(b), 12))
			for k := range perBuyer {
				i := b*perBuyer + k
				sh := shops[i%merchants]
				in := []order.LineInput{{SKUID: sh.skus[0], Quantity: 1 + rng.Int64N(3)}}
				if rng.IntN(2) == 0 {
					in = append(in, order.LineInput{SKUID: sh.skus[1], Quantity: 1 + rng.Int64N(3)})
				}
				err := func() error {
					c, err := a.orders.Place(ctx, order.PlaceOrder{BuyerID: bs[b].id, AddressID: bs[b].address, Items: in,
						IdempotencyKey: fmt.Sprintf("settle-%d", i)})
					if err != nil {
						return fmt.Errorf("place: %w", err)
					}
					o := c.Orders[0]
					to := &testOrder{id: o.ID, buyer: bs[b].id, merchant: sh.id}
					for _, it := range o.Items {
						to.lines = append(to.lines, testLine{sku: it.SKUID, price: it.Price, qty: it.Quantity, bp: it.CommissionRateBP})
					}
					orders[i] = to
					p, err := a.orders.CreatePayment(ctx, bs[b].id, c.ID, "sandbox")
					if err != nil {
						return fmt.Errorf("payment: %w", err)
					}
					if _, err := a.orders.SandboxComplete(ctx, bs[b].id, p.ID); err != nil {
						return fmt.Errorf("pay: %w", err)
					}
					if _, err := a.orders.Ship(ctx, sh.id, o.ID, "SF", "SF"+strconv.Itoa(i)); err != nil {
						return fmt.Errorf("ship: %w", err)
					}
					if _, err := a.orders.ConfirmReceipt(ctx, bs[b].id, o.ID); err != nil {
						return fmt.Errorf("confirm: %w", err)
					}
					return nil
				}()
				if err != nil {
					errs <- fmt.Errorf("order %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	a.eventually("200 completions posted", func() bool {
		return a.count(`SELECT COUNT(*) FROM settlement_postings WHERE kind = 'completion'`) == len(orders)
	})

	expect := func() (map[int64]int64, int64) {
		per, total := map[int64]int64{}, int64(0)
		for _, o := range orders {
			n, c := o.net()
			per[o.merchant] += n
			total += c
		}
		return per, total
	}
	per, _ := expect()
	for _, sh := range shops {
		b, err := a.svc.Balance(ctx, sh.id)
		if err != nil || b.Pending != per[sh.id] || b.Available != 0 {
			t.Fatalf("merchant %d after completion: %+v %v, want pending %d", sh.id, b, err, per[sh.id])
		}
	}
	a.wantOK()

	// The hold period passes: everything becomes available.
	a.offset.Store(int64(168*time.Hour + time.Minute))
	if n, err := a.svc.Release(ctx); err != nil || n == 0 {
		t.Fatalf("release: %d %v", n, err)
	}
	if n := a.count(`SELECT COUNT(*) FROM settlement_entries WHERE status <> 'available'`); n != 0 {
		t.Fatalf("%d entries not available after the hold period", n)
	}

	// Refunds after the money became available: whole orders, and one unit of a line
	// (twice, on lines of 3 units).
	refunds := 0
	refund := func(o *testOrder, items []order.RefundItem) {
		t.Helper()
		if _, err := a.orders.RequestRefund(ctx, o.buyer, o.id, "broken", items); err != nil {
			t.Fatalf("refund request of %d: %v", o.id, err)
		}
		if _, err := a.orders.ApproveRefund(ctx, o.merchant, o.id); err != nil {
			t.Fatalf("refund approval of %d: %v", o.id, err)
		}
		for i := range o.lines {
			if items == nil {
				o.lines[i].refunded = o.lines[i].qty
			}
			for _, it := range items {
				if it.SKUID == o.lines[i].sku {
					o.lines[i].refunded += it.Quantity
				}
			}
		}
		refunds++
	}
	for i, o := range orders {
		switch {
		case i%9 == 0:
			refund(o, nil)
		case i%9 == 1 && o.lines[0].qty == 3:
			refund(o, []order.RefundItem{{SKUID: o.lines[0].sku, Quantity: 1}})
			refund(o, []order.RefundItem{{SKUID: o.lines[0].sku, Quantity: 1}})
		}
	}
	a.eventually("the refunds posted", func() bool {
		return a.count(`SELECT COUNT(*) FROM settlement_postings WHERE kind = 'refund'`) == refunds
	})
	if n := a.count(`SELECT COUNT(*) FROM settlement_entries WHERE status <> 'available'`); n != 0 {
		t.Fatalf("%d refund entries not available at once after the hold period", n)
	}
	a.redeliver(a.orderEnvelopes())
	a.wantOK()

	// Statements and payouts.
	var stmts apptest.Response
	stmts = a.Req(http.MethodPost, "/api/v1/admin/settlement/statements",
		map[string]any{"period_end": a.now().Format(time.RFC3339Nano)}, apptest.Bearer(a.admin)...).
		Want(t, http.StatusCreated, "")
	var issued struct {
		Items []struct {
			ID         string `json:"id"`
			MerchantID string `json:"merchant_id"`
			NetAmount  int64  `json:"net_amount"`
			Status     string `json:"status"`
		} `json:"items"`
	}
	stmts.Decode(t, &issued)
	per, _ = expect()
	positive := 0
	for _, sh := range shops {
		if per[sh.id] > 0 {
			positive++
		}
	}
	if len(issued.Items) != positive {
		t.Fatalf("%d statements, want %d (merchants with a positive balance)", len(issued.Items), positive)
	}
	paidOut := map[int64]int64{}
	for _, st := range issued.Items {
		mid, _ := strconv.ParseInt(st.MerchantID, 10, 64)
		if st.NetAmount != per[mid] || st.Status != "issued" {
			t.Fatalf("statement %+v, want net %d", st, per[mid])
		}
		a.Req(http.MethodPost, "/api/v1/admin/settlement/statements/"+st.ID+"/mark-paid",
			map[string]string{"reference": "BANK-" + st.ID}, apptest.Bearer(a.admin)...).Want(t, http.StatusOK, "")
		paidOut[mid] = st.NetAmount
	}
	a.Req(http.MethodPost, "/api/v1/admin/settlement/statements/"+issued.Items[0].ID+"/mark-paid",
		map[string]string{"reference": "again"}, apptest.Bearer(a.admin)...).Want(t, http.StatusConflict, "settlement.already_paid")
	a.wantOK()

	// Refunds after the payouts: the balances go negative and no statement is issued for them.
	after := 0
	for i, o := range orders {
		if i%9 == 2 {
			refund(o, nil)
			after++
		}
	}
	a.eventually("the refunds after payout posted", func() bool {
		return a.count(`SELECT COUNT(*) FROM settlement_postings WHERE kind = 'refund'`) == refunds
	})
	var none struct {
		Items []json.RawMessage `json:"items"`
	}
	a.Req(http.MethodPost, "/api/v1/admin/settlement/statements",
		map[string]any{"period_end": a.now().Format(time.RFC3339Nano)}, apptest.Bearer(a.admin)...).
		Want(t, http.StatusCreated, "").Decode(t, &none)
	if len(none.Items) != 0 {
		t.Fatalf("statements of negative balances: %s", none.Items)
	}
	a.redeliver(a.orderEnvelopes())

	rep := a.check()
	if !rep.OK() {
		t.Fatalf("check: %d differences: %v", rep.DifferenceCount, rep.Differences)
	}
	if rep.Orders != len(orders) || rep.Statements != positive {
		t.Fatalf("check covered %+v", rep)
	}
	per, commission := expect()
	negative := 0
	for _, sh := range shops {
		b, err := a.svc.Balance(ctx, sh.id)
		if err != nil {
			t.Fatal(err)
		}
		if b.Pending != 0 || b.PaidOut != paidOut[sh.id] || b.Available != per[sh.id]-paidOut[sh.id] {
			t.Fatalf("merchant %d: %+v, want paid out %d, available %d", sh.id, b, paidOut[sh.id], per[sh.id]-paidOut[sh.id])
		}
		if b.Available < 0 {
			negative++
		}
	}
	if negative == 0 {
		t.Fatal("no merchant's balance went negative after the refunds after payout")
	}
	var sum struct {
		CommissionEarned   int64 `json:"commission_earned"`
		PayableToMerchants int64 `json:"payable_to_merchants"`
		PaidOut            int64 `json:"paid_out"`
	}
	a.Req(http.MethodGet, "/api/v1/admin/settlement/summary", nil, apptest.Bearer(a.admin)...).Want(t, http.StatusOK, "").Decode(t, &sum)
	var wantPaid, wantPayable int64
	for _, sh := range shops {
		wantPaid += paidOut[sh.id]
		wantPayable += per[sh.id] - paidOut[sh.id]
	}
	if sum.CommissionEarned != commission || sum.PaidOut != wantPaid || sum.PayableToMerchants != wantPayable {
		t.Fatalf("summary %+v, want commission %d, paid out %d, payable %d", sum, commission, wantPaid, wantPayable)
	}
	t.Logf("%d orders, %d refunds (%d after payout), %d statements, commission %d, %d merchants negative",
		len(orders), refunds, after, positive, commission, negative)

	// Merchant views: the balance, another merchant's statement is 404, the CSV.
	mine, other := issued.Items[0], issued.Items[1]
	var owner string
	for _, sh := range shops {
		if strconv.FormatInt(sh.id, 10) == mine.MerchantID {
			owner = sh.token
		}
	}
	var bal struct {
		Available int64 `json:"available_amount"`
		PaidOut   int64 `json:"paid_out_amount"`
	}
	a.Req(http.MethodGet, "/api/v1/merchant/settlement/balance", nil, apptest.Bearer(owner)...).Want(t, http.StatusOK, "").Decode(t, &bal)
	if mid, _ := strconv.ParseInt(mine.MerchantID, 10, 64); bal.PaidOut != paidOut[mid] {
		t.Fatalf("balance over HTTP %+v", bal)
	}
	a.Req(http.MethodGet, "/api/v1/merchant/settlement/statements/"+other.ID, nil, apptest.Bearer(owner)...).
		Want(t, http.StatusNotFound, "settlement.statement_not_found")
	a.Req(http.MethodGet, "/api/v1/merchant/settlement/statements/"+other.ID+"/lines.csv", nil, apptest.Bearer(owner)...).
		Want(t, http.StatusNotFound, "settlement.statement_not_found")
	csv := a.Req(http.MethodGet, "/api/v1/merchant/settlement/statements/"+mine.ID+"/lines.csv", nil, apptest.Bearer(owner)...).
		Want(t, http.StatusOK, "")
	if !strings.HasPrefix(string(csv.Body), "entry_id,kind,order_id,amount,status") || strings.Count(string(csv.Body), "\n") < 2 {
		t.Fatalf("lines.csv: %s", csv.Body)
	}

	// A corrupted posting is reported.
	if _, err := a.Cluster.Main().ExecContext(ctx, `UPDATE settlement_lines SET amount = amount + 7 ORDER BY id DESC LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if rep := a.check(); rep.OK() {
		t.Fatal("the check found no difference after a line was corrupted")
	} else {
		t.Logf("after corruption: %v", rep.Differences)
	}
}

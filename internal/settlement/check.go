package settlement

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/jmoiron/sqlx"

	"github.com/mallhq/mall/internal/order"
)

// Report is the outcome of Check.
type Report struct {
	// Orders, Postings, Merchants and Statements are how many were checked.
	Orders, Postings, Merchants, Statements int
	// Differences describe what does not reconcile (at most MaxDifferences);
	// DifferenceCount counts them all.
	Differences     []string
	DifferenceCount int
}

// OK reports whether everything reconciles.
func (r Report) OK() bool { return r.DifferenceCount == 0 }

func (r *Report) add(format string, args ...any) {
	r.DifferenceCount++
	if len(r.Differences) < MaxDifferences {
		r.Differences = append(r.Differences, fmt.Sprintf(format, args...))
	}
}

// fact is what a completion or refund posted (or must post) for a merchant.
type fact struct {
	MerchantID int64
	amounts
}

// checkPage is how many completed orders Check reads at a time.
const checkPage = 500

// Check reconciles the ledger: every completed order posted once with the income and
// commission its lines make, every refund after completion reversed with its refund and
// commission refund, nothing posted for anything else; every posting sums to zero and its
// merchant lines equal its entries; every merchant's counters equal its journal lines and
// its entries; every statement equals its entries (and a paid one its payout).
func (s *service) Check(ctx context.Context) (Report, error) {
	var rep Report
	want, err := s.expectedFacts(ctx, &rep)
	if err != nil {
		return rep, err
	}
	got, err := s.postedFacts(ctx)
	if err != nil {
		return rep, err
	}
	var wantCommission int64
	for _, key := range slices.Sorted(maps.Keys(want)) {
		w := want[key]
		wantCommission -= w.Commission + w.CommissionRefund
		g, ok := got[key]
		switch {
		case !ok:
			if w.amounts != (amounts{}) {
				rep.add("%s: not posted (want %+v)", key, w.amounts)
			}
		case g != w:
			rep.add("%s: posted merchant %d %+v, want merchant %d %+v", key, g.MerchantID, g.amounts, w.MerchantID, w.amounts)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[key]; !ok {
			rep.add("%s: posted %+v for no completed order or refund after completion", key, got[key].amounts)
		}
	}
	ext := s.st.ext(ctx)
	// Every posting sums to zero, and its merchant lines equal its entries.
	var bad []struct {
		FactKey string `db:"fact_key"`
		Lines   int64  `db:"line_total"`
		Merch   int64  `db:"merch"`
		Entries int64  `db:"entries"`
	}
	if err := sqlx.SelectContext(ctx, ext, &bad, `SELECT p.fact_key,
			CAST(COALESCE(l.total, 0) AS SIGNED) AS line_total, CAST(COALESCE(l.merch, 0) AS SIGNED) AS merch,
			CAST(COALESCE(e.total, 0) AS SIGNED) AS entries
		FROM settlement_postings p
		LEFT JOIN (SELECT posting_id, SUM(amount) AS total,
				SUM(CASE WHEN account IN ('merchant_pending', 'merchant_available', 'merchant_paid_out') THEN amount ELSE 0 END) AS merch
			FROM settlement_lines GROUP BY posting_id) l ON l.posting_id = p.id
		LEFT JOIN (SELECT posting_id, SUM(amount) AS total FROM settlement_entries GROUP BY posting_id) e ON e.posting_id = p.id
		WHERE COALESCE(l.total, 0) <> 0 OR COALESCE(l.merch, 0) <> COALESCE(e.total, 0)
		ORDER BY p.id`); err != nil {
		return rep, fmt.Errorf("settlement check: postings: %w", err)
	}
	for _, b := range bad {
		if b.Lines != 0 {
			rep.add("posting %s: lines sum to %d, not 0", b.FactKey, b.Lines)
		}
		if b.Merch != b.Entries {
			rep.add("posting %s: merchant lines %d, entries %d", b.FactKey, b.Merch, b.Entries)
		}
	}
	if err := sqlx.GetContext(ctx, ext, &rep.Postings, `SELECT COUNT(*) FROM settlement_postings`); err != nil {
		return rep, fmt.Errorf("settlement check: postings: %w", err)
	}
	if err := s.checkBalances(ctx, &rep); err != nil {
		return rep, err
	}
	if err := s.checkStatements(ctx, &rep); err != nil {
		return rep, err
	}
	t, err := s.st.accountTotals(ctx)
	if err != nil {
		return rep, fmt.Errorf("settlement check: %w", err)
	}
	if t[AccountCommission] != wantCommission {
		rep.add("platform commission %d, the orders make %d", t[AccountCommission], wantCommission)
	}
	return rep, nil
}

// expectedFacts recomputes from the completed orders what each must have posted.
func (s *service) expectedFacts(ctx context.Context, rep *Report) (map[string]fact, error) {
	want := map[string]fact{}
	var after int64
	for {
		os, err := s.orders.CompletedOrders(ctx, after, checkPage)
		if err != nil {
			return nil, fmt.Errorf("settlement check: completed orders: %w", err)
		}
		for _, o := range os {
			rep.Orders++
			after = max(after, o.ID)
			for k, f := range orderFacts(o) {
				want[k] = f
			}
		}
		if len(os) < checkPage {
			return want, nil
		}
	}
}

// orderFacts are the completion and refund facts of one completed order: the refunds
// before completion reduce the units completion posts; each refund after it reverses its
// units with the cumulative refunded quantity as of that refund (refunds oldest first).
func orderFacts(o order.Order) map[string]fact {
	out := map[string]fact{}
	refunded := map[int64]int64{}
	for _, r := range o.Refunds {
		if !r.AfterCompletion {
			for _, it := range r.Items {
				refunded[it.SKUID] += it.Quantity
			}
		}
	}
	items := func() []order.EventItem {
		out := make([]order.EventItem, len(o.Items))
		for i, it := range o.Items {
			out[i] = order.EventItem{SKUID: it.SKUID, Price: it.Price, Quantity: it.Quantity,
				CommissionRateBP: it.CommissionRateBP, RefundedQuantity: refunded[it.SKUID]}
		}
		return out
	}
	out[completionKey(o.ID)] = fact{MerchantID: o.MerchantID, amounts: completionAmounts(items())}
	for _, r := range o.Refunds {
		if !r.AfterCompletion {
			continue
		}
		for _, it := range r.Items {
			refunded[it.SKUID] += it.Quantity
		}
		out[refundKey(r.ID)] = fact{MerchantID: o.MerchantID, amounts: refundAmounts(items(), r.Items)}
	}
	return out
}

// postedFacts sums the entries of every completion and refund posting by kind.
func (s *service) postedFacts(ctx context.Context) (map[string]fact, error) {
	var rows []struct {
		FactKey    string  `db:"fact_key"`
		MerchantID int64   `db:"merchant_id"`
		Kind       *string `db:"kind"`
		Total      int64   `db:"total"`
	}
	if err := sqlx.SelectContext(ctx, s.st.ext(ctx), &rows, `SELECT p.fact_key, p.merchant_id, e.kind,
			CAST(COALESCE(SUM(e.amount), 0) AS SIGNED) AS total
		FROM settlement_postings p LEFT JOIN settlement_entries e ON e.posting_id = p.id
		WHERE p.kind IN ('completion', 'refund') GROUP BY p.id, p.fact_key, p.merchant_id, e.kind`); err != nil {
		return nil, fmt.Errorf("settlement check: posted facts: %w", err)
	}
	got := map[string]fact{}
	for _, r := range rows {
		f := got[r.FactKey]
		f.MerchantID = r.MerchantID
		if r.Kind != nil {
			switch Kind(*r.Kind) {
			case KindIncome:
				f.Income += r.Total
			case KindCommission:
				f.Commission += r.Total
			case KindRefund:
				f.Refund += r.Total
			case KindCommissionRefund:
				f.CommissionRefund += r.Total
			}
		}
		got[r.FactKey] = f
	}
	return got, nil
}

// checkBalances compares each merchant's counters with its journal lines by account and
// its entries by status.
func (s *service) checkBalances(ctx context.Context, rep *Report) error {
	type bal struct{ counter, lines, entries [3]int64 }
	all := map[int64]*bal{}
	get := func(m int64) *bal {
		if all[m] == nil {
			all[m] = &bal{}
		}
		return all[m]
	}
	ext := s.st.ext(ctx)
	var counters []struct {
		MerchantID int64 `db:"merchant_id"`
		Pending    int64 `db:"pending"`
		Available  int64 `db:"available"`
		PaidOut    int64 `db:"paid_out"`
	}
	if err := sqlx.SelectContext(ctx, ext, &counters, `SELECT merchant_id, pending, available, paid_out FROM settlement_balances`); err != nil {
		return fmt.Errorf("settlement check: balances: %w", err)
	}
	for _, c := range counters {
		get(c.MerchantID).counter = [3]int64{c.Pending, c.Available, c.PaidOut}
	}
	var sums []struct {
		MerchantID int64  `db:"merchant_id"`
		Key        string `db:"k"`
		Total      int64  `db:"total"`
	}
	if err := sqlx.SelectContext(ctx, ext, &sums, `SELECT merchant_id, account AS k, CAST(SUM(amount) AS SIGNED) AS total
		FROM settlement_lines WHERE account IN ('merchant_pending', 'merchant_available', 'merchant_paid_out')
		GROUP BY merchant_id, account`); err != nil {
		return fmt.Errorf("settlement check: lines: %w", err)
	}
	idx := map[string]int{AccountPending: 0, AccountAvailable: 1, AccountPaidOut: 2,
		string(StatusPending): 0, string(StatusAvailable): 1, string(StatusPaidOut): 2}
	for _, r := range sums {
		get(r.MerchantID).lines[idx[r.Key]] = r.Total
	}
	sums = sums[:0]
	if err := sqlx.SelectContext(ctx, ext, &sums, `SELECT merchant_id, status AS k, CAST(SUM(amount) AS SIGNED) AS total
		FROM settlement_entries GROUP BY merchant_id, status`); err != nil {
		return fmt.Errorf("settlement check: entries: %w", err)
	}
	for _, r := range sums {
		get(r.MerchantID).entries[idx[r.Key]] = r.Total
	}
	for _, m := range slices.Sorted(maps.Keys(all)) {
		b := all[m]
		rep.Merchants++
		if b.counter != b.lines || b.lines != b.entries {
			rep.add("merchant %d: balance [pending available paid_out] %v, journal %v, entries %v", m, b.counter, b.lines, b.entries)
		}
	}
	return nil
}

// checkStatements compares each statement with its entries: the totals, the entries'
// status (available while issued, paid_out once paid) and a paid statement's payout.
func (s *service) checkStatements(ctx context.Context, rep *Report) error {
	ext := s.st.ext(ctx)
	var sts []statementRow
	if err := sqlx.SelectContext(ctx, ext, &sts, `SELECT `+statementColumns+` FROM settlement_statements ORDER BY id`); err != nil {
		return fmt.Errorf("settlement check: statements: %w", err)
	}
	var rows []struct {
		StatementID int64  `db:"statement_id"`
		MerchantID  int64  `db:"merchant_id"`
		Kind        string `db:"kind"`
		Status      string `db:"status"`
		Total       int64  `db:"total"`
	}
	if err := sqlx.SelectContext(ctx, ext, &rows, `SELECT statement_id, merchant_id, kind, status,
			CAST(SUM(amount) AS SIGNED) AS total
		FROM settlement_entries WHERE statement_id IS NOT NULL GROUP BY statement_id, merchant_id, kind, status`); err != nil {
		return fmt.Errorf("settlement check: statement entries: %w", err)
	}
	type agg struct {
		es       []Entry
		statuses map[string]bool
		merchant map[int64]bool
	}
	by := map[int64]*agg{}
	for _, r := range rows {
		a := by[r.StatementID]
		if a == nil {
			a = &agg{statuses: map[string]bool{}, merchant: map[int64]bool{}}
			by[r.StatementID] = a
		}
		a.es = append(a.es, Entry{Kind: Kind(r.Kind), Amount: r.Total})
		a.statuses[r.Status] = true
		a.merchant[r.MerchantID] = true
	}
	var payouts []struct {
		StatementID int64 `db:"statement_id"`
		Total       int64 `db:"total"`
	}
	if err := sqlx.SelectContext(ctx, ext, &payouts, `SELECT p.statement_id, CAST(COALESCE(SUM(l.amount), 0) AS SIGNED) AS total
		FROM settlement_postings p LEFT JOIN settlement_lines l ON l.posting_id = p.id AND l.account = 'merchant_paid_out'
		WHERE p.kind = 'payout' GROUP BY p.id, p.statement_id`); err != nil {
		return fmt.Errorf("settlement check: payouts: %w", err)
	}
	paid := map[int64]int64{}
	for _, p := range payouts {
		paid[p.StatementID] = p.Total
	}
	for _, r := range sts {
		st := r.statement()
		rep.Statements++
		a := by[st.ID]
		if a == nil {
			rep.add("statement %d: no entries", st.ID)
			continue
		}
		c := st
		c.total(a.es)
		if c.Income != st.Income || c.Commission != st.Commission || c.Refunds != st.Refunds || c.NetAmount != st.NetAmount {
			rep.add("statement %d: income/commission/refunds/net %d/%d/%d/%d, its entries make %d/%d/%d/%d", st.ID,
				st.Income, st.Commission, st.Refunds, st.NetAmount, c.Income, c.Commission, c.Refunds, c.NetAmount)
		}
		if st.NetAmount <= 0 {
			rep.add("statement %d: net amount %d is not positive", st.ID, st.NetAmount)
		}
		if len(a.merchant) != 1 || !a.merchant[st.MerchantID] {
			rep.add("statement %d of merchant %d has entries of merchants %v", st.ID, st.MerchantID, slices.Collect(maps.Keys(a.merchant)))
		}
		want := string(StatusAvailable)
		if st.Status == StatementPaid {
			want = string(StatusPaidOut)
		}
		if len(a.statuses) != 1 || !a.statuses[want] {
			rep.add("statement %d (%s): entries %v, want all %s", st.ID, st.Status, a.statuses, want)
		}
		amount, ok := paid[st.ID]
		switch {
		case st.Status == StatementPaid && (!ok || amount != st.NetAmount):
			rep.add("statement %d: paid %d, payout posting %d (posted %v)", st.ID, st.NetAmount, amount, ok)
		case st.Status != StatementPaid && ok:
			rep.add("statement %d: issued but a payout is posted", st.ID)
		}
	}
	return nil
}

package settlement

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mallhq/mall/internal/platform/sqldb"
)

// store is the module's SQL on db.main; every method runs in the transaction in ctx when
// there is one.
type store struct{ db *sqldb.DB }

func (s *store) ext(ctx context.Context) sqlx.ExtContext { return sqldb.Ext(ctx, s.db) }

// posting is one fact's lines (summing to zero) and entries, written at once.
type posting struct {
	ID          int64
	FactKey     string
	Kind        string
	MerchantID  int64
	OrderID     int64
	RefundID    int64
	StatementID int64
	CreatedAt   time.Time
	Lines       []line
	Entries     []Entry
}

type line struct {
	Account    string
	MerchantID int64
	Amount     int64
}

// post writes p; false (and nothing written) when its fact was posted before.
func (s *store) post(ctx context.Context, p posting) (bool, error) {
	kinds, err := s.postAll(ctx, []posting{p})
	if sqldb.IsDuplicate(err) {
		return false, nil // posted meanwhile by another transaction
	}
	return len(kinds) == 1, err
}

// postAll writes the postings whose facts were not posted before (nor earlier in ps) in
// one statement per table, and adds them to the merchants' balance counters in merchant
// order; it returns the kinds of those it wrote. A fact another transaction posts between the check
// and the insert fails the insert with a duplicate key (the caller's transaction rolls
// back and, for the ledger consumer, its events go again one by one).
func (s *store) postAll(ctx context.Context, ps []posting) ([]string, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ps))
	for i, p := range ps {
		keys[i] = p.FactKey
	}
	q, args, err := sqlx.In(`SELECT fact_key FROM settlement_postings WHERE fact_key IN (?)`, keys)
	if err != nil {
		return nil, err
	}
	var posted []string
	if err := sqlx.SelectContext(ctx, s.ext(ctx), &posted, q, args...); err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(ps))
	for _, k := range posted {
		seen[k] = true
	}
	var (
		pargs, largs, eargs []any
		kinds               []string
		deltas              = map[int64]balanceDelta{}
	)
	for _, p := range ps {
		if seen[p.FactKey] {
			continue
		}
		seen[p.FactKey] = true
		kinds = append(kinds, p.Kind)
		pargs = append(pargs, p.ID, p.FactKey, p.Kind, p.MerchantID, p.OrderID, p.RefundID, p.StatementID, p.CreatedAt)
		var d [3]int64
		for _, l := range p.Lines {
			if l.Amount == 0 {
				continue
			}
			largs = append(largs, p.ID, l.Account, l.MerchantID, l.Amount)
			switch l.Account {
			case AccountPending:
				d[0] += l.Amount
			case AccountAvailable:
				d[1] += l.Amount
			case AccountPaidOut:
				d[2] += l.Amount
			}
		}
		for _, e := range p.Entries {
			eargs = append(eargs, e.ID, e.MerchantID, p.ID, e.Kind, e.OrderID, e.RefundID, e.Amount, e.Status,
				e.AvailableAt, p.CreatedAt)
		}
		if d != [3]int64{} {
			cur := deltas[p.MerchantID]
			for i := range d {
				cur.d[i] += d[i]
			}
			cur.at = p.CreatedAt
			deltas[p.MerchantID] = cur
		}
	}
	if len(kinds) == 0 {
		return nil, nil
	}
	for _, w := range []struct {
		insert string
		cols   int
		args   []any
	}{
		{`INSERT INTO settlement_postings (id, fact_key, kind, merchant_id, order_id, refund_id, statement_id,
			created_at) VALUES `, 8, pargs},
		{`INSERT INTO settlement_lines (posting_id, account, merchant_id, amount) VALUES `, 4, largs},
		{`INSERT INTO settlement_entries (id, merchant_id, posting_id, kind, order_id, refund_id, amount, status,
			available_at, created_at) VALUES `, 10, eargs},
	} {
		if len(w.args) == 0 {
			continue
		}
		row := "(?" + strings.Repeat(", ?", w.cols-1) + ")"
		q := w.insert + strings.TrimSuffix(strings.Repeat(row+", ", len(w.args)/w.cols), ", ")
		if _, err := s.ext(ctx).ExecContext(ctx, q, w.args...); err != nil {
			return nil, err
		}
	}
	return kinds, s.addBalances(ctx, deltas)
}

// pendingPostings collects the ledger consumer's postings of one transaction (a batch of
// events, withPending) so flushPending writes them with a few multi-row statements: one
// commit and a handful of round trips per batch instead of four statements per event.
type pendingPostings struct{ ps []posting }

type pendingKey struct{}

func withPending(ctx context.Context) context.Context {
	return context.WithValue(ctx, pendingKey{}, &pendingPostings{})
}

func pendingFrom(ctx context.Context) (*pendingPostings, bool) {
	p, ok := ctx.Value(pendingKey{}).(*pendingPostings)
	return p, ok
}

// balanceDelta is what a transaction adds to a merchant's counters (pending, available,
// paid_out).
type balanceDelta struct {
	d  [3]int64
	at time.Time
}

// addBalances adds deltas to the merchants' counters in one statement, rows in merchant
// order: concurrent transactions lock the hot counter rows in the same order.
func (s *store) addBalances(ctx context.Context, deltas map[int64]balanceDelta) error {
	ids := slices.Sorted(maps.Keys(deltas))
	args := make([]any, 0, 5*len(ids))
	for _, id := range ids {
		d := deltas[id]
		if d.d == [3]int64{} {
			continue
		}
		args = append(args, id, d.d[0], d.d[1], d.d[2], d.at)
	}
	if len(args) == 0 {
		return nil
	}
	_, err := s.ext(ctx).ExecContext(ctx, `INSERT INTO settlement_balances (merchant_id, pending, available, paid_out,
		updated_at) VALUES `+strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?), ", len(args)/5), ", ")+`
		ON DUPLICATE KEY UPDATE pending = pending + VALUES(pending), available = available + VALUES(available),
		paid_out = paid_out + VALUES(paid_out), updated_at = VALUES(updated_at)`, args...)
	return err
}

type entryRow struct {
	ID          int64         `db:"id"`
	MerchantID  int64         `db:"merchant_id"`
	PostingID   int64         `db:"posting_id"`
	Kind        string        `db:"kind"`
	OrderID     int64         `db:"order_id"`
	RefundID    int64         `db:"refund_id"`
	Amount      int64         `db:"amount"`
	Status      string        `db:"status"`
	AvailableAt time.Time     `db:"available_at"`
	StatementID sql.NullInt64 `db:"statement_id"`
	CreatedAt   time.Time     `db:"created_at"`
}

func (r entryRow) entry() Entry {
	return Entry{ID: r.ID, MerchantID: r.MerchantID, PostingID: r.PostingID, Kind: Kind(r.Kind), OrderID: r.OrderID,
		RefundID: r.RefundID, Amount: r.Amount, Status: EntryStatus(r.Status), StatementID: r.StatementID.Int64,
		AvailableAt: r.AvailableAt.UTC(), CreatedAt: r.CreatedAt.UTC()}
}

func entries(rows []entryRow) []Entry {
	out := make([]Entry, len(rows))
	for i, r := range rows {
		out[i] = r.entry()
	}
	return out
}

const entryColumns = `id, merchant_id, posting_id, kind, order_id, refund_id, amount, status, available_at, statement_id, created_at`

func (s *store) entries(ctx context.Context, merchantID, before int64, limit int) ([]Entry, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	var rows []entryRow
	err := sqlx.SelectContext(ctx, s.ext(ctx), &rows, `SELECT `+entryColumns+` FROM settlement_entries
		WHERE merchant_id = ? AND id < ? ORDER BY id DESC LIMIT ?`, merchantID, before, limit)
	return entries(rows), err
}

func (s *store) statementEntries(ctx context.Context, statementID int64) ([]Entry, error) {
	var rows []entryRow
	err := sqlx.SelectContext(ctx, s.ext(ctx), &rows, `SELECT `+entryColumns+` FROM settlement_entries
		WHERE statement_id = ? ORDER BY id`, statementID)
	return entries(rows), err
}

func (s *store) balance(ctx context.Context, merchantID int64) (Balance, error) {
	b := Balance{MerchantID: merchantID, Currency: Currency}
	err := s.ext(ctx).QueryRowxContext(ctx, `SELECT pending, available, paid_out FROM settlement_balances
		WHERE merchant_id = ?`, merchantID).Scan(&b.Pending, &b.Available, &b.PaidOut)
	if errors.Is(err, sql.ErrNoRows) {
		return b, nil
	}
	return b, err
}

// dueEntries locks up to limit pending entries whose available_at has passed.
func (s *store) dueEntries(ctx context.Context, now time.Time, limit int) ([]Entry, error) {
	var rows []entryRow
	err := sqlx.SelectContext(ctx, s.ext(ctx), &rows, `SELECT `+entryColumns+` FROM settlement_entries
		WHERE status = 'pending' AND available_at <= ? ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED`, now, limit)
	return entries(rows), err
}

func (s *store) setStatus(ctx context.Context, ids []int64, from, to EntryStatus) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	q, args, err := sqlx.In(`UPDATE settlement_entries SET status = ? WHERE status = ? AND id IN (?)`, to, from, ids)
	if err != nil {
		return 0, err
	}
	res, err := s.ext(ctx).ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// unstatedMerchants are the merchants with available entries not in a statement up to
// periodEnd whose total is positive.
func (s *store) unstatedMerchants(ctx context.Context, periodEnd time.Time) ([]int64, error) {
	var ids []int64
	err := sqlx.SelectContext(ctx, s.ext(ctx), &ids, `SELECT merchant_id FROM settlement_entries
		WHERE status = 'available' AND statement_id IS NULL AND available_at <= ?
		GROUP BY merchant_id HAVING SUM(amount) > 0 ORDER BY merchant_id`, periodEnd)
	return ids, err
}

// unstated locks the merchant's available entries not in a statement up to periodEnd.
func (s *store) unstated(ctx context.Context, merchantID int64, periodEnd time.Time) ([]Entry, error) {
	var rows []entryRow
	err := sqlx.SelectContext(ctx, s.ext(ctx), &rows, `SELECT `+entryColumns+` FROM settlement_entries
		WHERE merchant_id = ? AND status = 'available' AND statement_id IS NULL AND available_at <= ?
		ORDER BY id FOR UPDATE`, merchantID, periodEnd)
	return entries(rows), err
}

func (s *store) assignStatement(ctx context.Context, statementID int64, ids []int64) error {
	q, args, err := sqlx.In(`UPDATE settlement_entries SET statement_id = ? WHERE statement_id IS NULL AND id IN (?)`, statementID, ids)
	if err != nil {
		return err
	}
	_, err = s.ext(ctx).ExecContext(ctx, q, args...)
	return err
}

type statementRow struct {
	ID         int64        `db:"id"`
	MerchantID int64        `db:"merchant_id"`
	PeriodEnd  time.Time    `db:"period_end"`
	Income     int64        `db:"income"`
	Commission int64        `db:"commission"`
	Refunds    int64        `db:"refunds"`
	NetAmount  int64        `db:"net_amount"`
	Status     string       `db:"status"`
	Reference  string       `db:"reference"`
	PaidAt     sql.NullTime `db:"paid_at"`
	CreatedAt  time.Time    `db:"created_at"`
}

func (r statementRow) statement() Statement {
	st := Statement{ID: r.ID, MerchantID: r.MerchantID, PeriodEnd: r.PeriodEnd.UTC(), Income: r.Income,
		Commission: r.Commission, Refunds: r.Refunds, NetAmount: r.NetAmount, Status: StatementStatus(r.Status),
		Reference: r.Reference, CreatedAt: r.CreatedAt.UTC()}
	if r.PaidAt.Valid {
		st.PaidAt = r.PaidAt.Time.UTC()
	}
	return st
}

const statementColumns = `id, merchant_id, period_end, income, commission, refunds, net_amount, status, reference, paid_at, created_at`

func (s *store) insertStatement(ctx context.Context, st Statement) error {
	_, err := s.ext(ctx).ExecContext(ctx, `INSERT INTO settlement_statements (id, merchant_id, period_end, income,
		commission, refunds, net_amount, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		st.ID, st.MerchantID, st.PeriodEnd, st.Income, st.Commission, st.Refunds, st.NetAmount, st.Status, st.CreatedAt)
	return err
}

// statement reads one statement (merchantID 0: any merchant's), locked with forUpdate.
func (s *store) statement(ctx context.Context, merchantID, id int64, forUpdate bool) (Statement, error) {
	q := `SELECT ` + statementColumns + ` FROM settlement_statements WHERE id = ?`
	args := []any{id}
	if merchantID != 0 {
		q += ` AND merchant_id = ?`
		args = append(args, merchantID)
	}
	if forUpdate {
		q += ` FOR UPDATE`
	}
	var r statementRow
	err := sqlx.GetContext(ctx, s.ext(ctx), &r, q, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return Statement{}, ErrStatementNotFound
	}
	return r.statement(), err
}

// statements lists statements newest first; merchantID 0 and status "" mean all.
func (s *store) statements(ctx context.Context, merchantID int64, status StatementStatus, before int64, limit int) ([]Statement, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	q := `SELECT ` + statementColumns + ` FROM settlement_statements WHERE id < ?`
	args := []any{before}
	if merchantID != 0 {
		q += ` AND merchant_id = ?`
		args = append(args, merchantID)
	}
	if status != "" {
		q += ` AND status = ?`
		args = append(args, status)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	var rows []statementRow
	if err := sqlx.SelectContext(ctx, s.ext(ctx), &rows, q, args...); err != nil {
		return nil, err
	}
	out := make([]Statement, len(rows))
	for i, r := range rows {
		out[i] = r.statement()
	}
	return out, nil
}

func (s *store) markPaid(ctx context.Context, id int64, reference string, at time.Time) error {
	_, err := s.ext(ctx).ExecContext(ctx, `UPDATE settlement_statements SET status = 'paid', reference = ?, paid_at = ?
		WHERE id = ? AND status = 'issued'`, reference, at, id)
	if err != nil {
		return err
	}
	_, err = s.ext(ctx).ExecContext(ctx, `UPDATE settlement_entries SET status = 'paid_out' WHERE statement_id = ?`, id)
	return err
}

// accountTotals sums the journal by account (platform accounts, and merchants' summed).
func (s *store) accountTotals(ctx context.Context) (map[string]int64, error) {
	var rows []struct {
		Account string `db:"account"`
		Total   int64  `db:"total"`
	}
	if err := sqlx.SelectContext(ctx, s.ext(ctx), &rows, `SELECT account, CAST(COALESCE(SUM(amount), 0) AS SIGNED) AS total
		FROM settlement_lines GROUP BY account`); err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, r := range rows {
		out[r.Account] = r.Total
	}
	return out, nil
}

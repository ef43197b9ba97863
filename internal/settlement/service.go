package settlement

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

type service struct {
	log    *slog.Logger
	db     *sqldb.DB
	st     *store
	ids    *idgen.Generator
	orders order.Service
	cfg    Config
	m      *metrics
	now    func() time.Time
}

var _ Service = (*service)(nil)

func (s *service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func (s *service) newID() int64 { return s.ids.Next(0) }

// handle applies one order event inside the consumer's inbox transaction (consumer.go).
// Every event is self-contained: what it posts depends on its payload only, and each fact
// has a unique key, so events delivered twice or in any order post the same ledger.
func (s *service) handle(ctx context.Context, ev kafkax.Envelope) error {
	var p order.OrderEvent
	if err := json.Unmarshal(ev.Payload, &p); err != nil || p.OrderID <= 0 || p.MerchantID <= 0 {
		// Retrying cannot fix a payload; the check reports the order's missing posting.
		s.log.ErrorContext(ctx, "settlement: undecodable order event skipped", "event_id", ev.ID, "type", ev.Type)
		return nil
	}
	var (
		pt posting
		ok bool
	)
	switch ev.Type {
	case order.EventCompleted:
		pt, ok = s.completionPosting(p)
	case order.EventRefunded:
		pt, ok = s.refundPosting(p)
	}
	if !ok {
		return nil
	}
	if b, ok := pendingFrom(ctx); ok {
		b.ps = append(b.ps, pt) // the consumer's batch: written by flushPending
		return nil
	}
	posted, err := s.st.post(ctx, pt)
	if err != nil {
		return fmt.Errorf("settlement: post %s: %w", pt.FactKey, err)
	}
	s.count(pt.Kind, posted)
	return nil
}

func (s *service) count(kind string, posted bool) {
	if posted {
		s.m.postings.WithLabelValues(kind).Inc()
	} else {
		s.m.duplicates.Inc()
	}
}

// flushPending writes the postings the consumer's transaction collected (withPending).
func (s *service) flushPending(ctx context.Context) error {
	b, ok := pendingFrom(ctx)
	if !ok || len(b.ps) == 0 {
		return nil
	}
	kinds, err := s.st.postAll(ctx, b.ps)
	if err != nil {
		return fmt.Errorf("settlement: post %d facts: %w", len(b.ps), err)
	}
	for _, k := range kinds {
		s.m.postings.WithLabelValues(k).Inc()
	}
	s.m.duplicates.Add(float64(len(b.ps) - len(kinds)))
	b.ps = nil
	return nil
}

// factPosting is a posting of an order fact: the merchant's entries in the account they
// belong in now (pending until available_at, available after) and the journal lines.
func (s *service) factPosting(kind, key string, p order.OrderEvent, refundID int64, a amounts) posting {
	now := s.clock()
	at := availableAt(p, s.cfg.HoldPeriod)
	status, account := StatusPending, AccountPending
	if !at.After(now) {
		status, account = StatusAvailable, AccountAvailable
	}
	pt := posting{ID: s.newID(), FactKey: key, Kind: kind, MerchantID: p.MerchantID, OrderID: p.OrderID,
		RefundID: refundID, CreatedAt: now}
	add := func(k Kind, amount int64, platformAccount string) {
		if amount == 0 {
			return
		}
		pt.Entries = append(pt.Entries, Entry{ID: s.newID(), MerchantID: p.MerchantID, Kind: k, OrderID: p.OrderID,
			RefundID: refundID, Amount: amount, Status: status, AvailableAt: at})
		// The merchant's side and the platform's side of the same amount.
		pt.Lines = append(pt.Lines, line{Account: account, MerchantID: p.MerchantID, Amount: amount},
			line{Account: platformAccount, Amount: -amount})
	}
	add(KindIncome, a.Income, AccountClearing)
	add(KindCommission, a.Commission, AccountCommission)
	add(KindRefund, a.Refund, AccountClearing)
	add(KindCommissionRefund, a.CommissionRefund, AccountCommission)
	return pt
}

func (s *service) completionPosting(p order.OrderEvent) (posting, bool) {
	return s.factPosting(PostingCompletion, completionKey(p.OrderID), p, 0, completionAmounts(p.Items)), true
}

// refundPosting reverses a refund after completion. A refund before completion posts
// nothing: the order was not posted, and its completion event leaves those units out.
func (s *service) refundPosting(p order.OrderEvent) (posting, bool) {
	if p.Refund == nil || !p.Refund.AfterCompletion || p.Refund.RefundID <= 0 {
		return posting{}, false
	}
	return s.factPosting(PostingRefund, refundKey(p.Refund.RefundID), p, p.Refund.RefundID,
		refundAmounts(p.Items, p.Refund.Items)), true
}

func completionKey(orderID int64) string { return "completion:" + strconv.FormatInt(orderID, 10) }
func refundKey(refundID int64) string    { return "refund:" + strconv.FormatInt(refundID, 10) }
func payoutKey(statementID int64) string { return "payout:" + strconv.FormatInt(statementID, 10) }
func releaseKey(postingID int64) string  { return "release:" + strconv.FormatInt(postingID, 10) }

func (s *service) Balance(ctx context.Context, merchantID int64) (Balance, error) {
	return s.st.balance(ctx, merchantID)
}

func (s *service) Entries(ctx context.Context, merchantID, before int64, limit int) ([]Entry, error) {
	return s.st.entries(ctx, merchantID, before, limit)
}

func (s *service) MerchantStatements(ctx context.Context, merchantID, before int64, limit int) ([]Statement, error) {
	if merchantID <= 0 {
		return nil, nil
	}
	return s.st.statements(ctx, merchantID, "", before, limit)
}

func (s *service) MerchantStatement(ctx context.Context, merchantID, statementID int64) (Statement, error) {
	if merchantID <= 0 || statementID <= 0 {
		return Statement{}, ErrStatementNotFound
	}
	st, err := s.st.statement(ctx, merchantID, statementID, false)
	if err != nil {
		return Statement{}, err
	}
	st.Lines, err = s.st.statementEntries(ctx, st.ID)
	return st, err
}

func (s *service) Statements(ctx context.Context, status StatementStatus, before int64, limit int) ([]Statement, error) {
	return s.st.statements(ctx, 0, status, before, limit)
}

// releaseBatch bounds one release transaction.
const releaseBatch = 1000

// Release moves due pending entries to available, a batch per transaction: per merchant a
// release posting (pending −x, available +x) and the entries' new status.
func (s *service) Release(ctx context.Context) (int, error) {
	total := 0
	for {
		n := 0
		err := s.db.WithinTx(ctx, func(ctx context.Context) error {
			n = 0
			now := s.clock()
			due, err := s.st.dueEntries(ctx, now, releaseBatch)
			if err != nil || len(due) == 0 {
				return err
			}
			byMerchant := map[int64][]Entry{}
			for _, e := range due {
				byMerchant[e.MerchantID] = append(byMerchant[e.MerchantID], e)
			}
			merchants := slices.Sorted(maps.Keys(byMerchant))
			for _, mid := range merchants {
				es := byMerchant[mid]
				var sum int64
				ids := make([]int64, len(es))
				for i, e := range es {
					sum, ids[i] = sum+e.Amount, e.ID
				}
				moved, err := s.st.setStatus(ctx, ids, StatusPending, StatusAvailable)
				if err != nil {
					return err
				}
				if moved != int64(len(ids)) {
					return fmt.Errorf("settlement: release: %d of %d entries moved", moved, len(ids))
				}
				id := s.newID()
				if _, err := s.st.post(ctx, posting{ID: id, FactKey: releaseKey(id), Kind: PostingRelease, MerchantID: mid,
					CreatedAt: now, Lines: []line{{Account: AccountPending, MerchantID: mid, Amount: -sum},
						{Account: AccountAvailable, MerchantID: mid, Amount: sum}}}); err != nil {
					return err
				}
				n += len(ids)
			}
			return nil
		}, sqldb.ReadCommitted())
		if err != nil {
			return total, fmt.Errorf("settlement: release: %w", err)
		}
		total += n
		if n < releaseBatch {
			s.m.released.Add(float64(total))
			return total, nil
		}
	}
}

// GenerateStatements makes the period's statements, one transaction per merchant: its
// unstated available entries are locked and totalled again there, so a concurrent run or
// a refund posted meanwhile never puts an entry in two statements or a non-positive total
// in one.
func (s *service) GenerateStatements(ctx context.Context, periodEnd time.Time) ([]Statement, error) {
	periodEnd = periodEnd.UTC().Truncate(time.Microsecond)
	merchants, err := s.st.unstatedMerchants(ctx, periodEnd)
	if err != nil {
		return nil, fmt.Errorf("settlement: statements: %w", err)
	}
	var out []Statement
	for chunk := range slices.Chunk(merchants, statementChunk) {
		var sts []Statement
		err := s.db.WithinTx(ctx, func(ctx context.Context) error {
			sts = sts[:0]
			for _, mid := range chunk {
				st, err := s.statementOf(ctx, mid, periodEnd)
				if err != nil {
					return fmt.Errorf("merchant %d: %w", mid, err)
				}
				if st.ID != 0 {
					sts = append(sts, st)
				}
			}
			return nil
		}, sqldb.ReadCommitted()) // no gap locks: the ledger keeps inserting entries meanwhile
		if err != nil {
			return out, fmt.Errorf("settlement: statements: %w", err)
		}
		out = append(out, sts...)
	}
	s.m.statements.Add(float64(len(out)))
	return out, nil
}

// statementChunk is how many merchants' statements one transaction issues: a period's
// statements cost a commit per chunk, not per merchant.
const statementChunk = 100

// statementOf issues merchantID's statement of its available entries not yet stated up to
// periodEnd, inside the caller's transaction (the entries locked); the zero Statement when
// they do not add up to a positive amount (they wait for the next period).
func (s *service) statementOf(ctx context.Context, merchantID int64, periodEnd time.Time) (Statement, error) {
	es, err := s.st.unstated(ctx, merchantID, periodEnd)
	if err != nil {
		return Statement{}, err
	}
	c := Statement{ID: s.newID(), MerchantID: merchantID, PeriodEnd: periodEnd, Status: StatementIssued,
		CreatedAt: s.clock()}
	c.total(es)
	if c.NetAmount <= 0 {
		return Statement{}, nil
	}
	if err := s.st.insertStatement(ctx, c); err != nil {
		return Statement{}, err
	}
	ids := make([]int64, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	if err := s.st.assignStatement(ctx, c.ID, ids); err != nil {
		return Statement{}, err
	}
	return c, nil
}

// total fills the statement's totals from its entries.
func (st *Statement) total(es []Entry) {
	st.Income, st.Commission, st.Refunds = 0, 0, 0
	for _, e := range es {
		switch e.Kind {
		case KindIncome:
			st.Income += e.Amount
		case KindCommission, KindCommissionRefund:
			st.Commission -= e.Amount
		case KindRefund:
			st.Refunds -= e.Amount
		default:
			st.Income += e.Amount // adjustments
		}
	}
	st.NetAmount = st.Income - st.Commission - st.Refunds
}

// MarkPaid records the payout: the statement paid, its entries paid_out, and a payout
// posting (available −net, paid_out +net), in one transaction with the statement locked.
func (s *service) MarkPaid(ctx context.Context, statementID int64, reference string) (Statement, error) {
	if statementID <= 0 {
		return Statement{}, ErrStatementNotFound
	}
	var st Statement
	err := s.db.WithinTx(ctx, func(ctx context.Context) error {
		var err error
		st, err = s.st.statement(ctx, 0, statementID, true)
		if err != nil {
			return err
		}
		if st.Status == StatementPaid {
			return ErrAlreadyPaid
		}
		now := s.clock()
		if err := s.st.markPaid(ctx, st.ID, reference, now); err != nil {
			return err
		}
		posted, err := s.st.post(ctx, posting{ID: s.newID(), FactKey: payoutKey(st.ID), Kind: PostingPayout,
			MerchantID: st.MerchantID, StatementID: st.ID, CreatedAt: now,
			Lines: []line{{Account: AccountAvailable, MerchantID: st.MerchantID, Amount: -st.NetAmount},
				{Account: AccountPaidOut, MerchantID: st.MerchantID, Amount: st.NetAmount}}})
		if err != nil {
			return err
		}
		if !posted {
			return ErrAlreadyPaid
		}
		st.Status, st.Reference, st.PaidAt = StatementPaid, reference, now
		return nil
	})
	if err != nil {
		return Statement{}, err
	}
	st.Lines, err = s.st.statementEntries(ctx, st.ID)
	return st, err
}

func (s *service) Summary(ctx context.Context) (Summary, error) {
	t, err := s.st.accountTotals(ctx)
	if err != nil {
		return Summary{}, fmt.Errorf("settlement: summary: %w", err)
	}
	return Summary{CommissionEarned: t[AccountCommission], PayableToMerchants: t[AccountPending] + t[AccountAvailable],
		PaidOut: t[AccountPaidOut], Currency: Currency}, nil
}

package order

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mallhq/mall/internal/order/payment"
	"github.com/mallhq/mall/internal/platform/backoff"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/worker"
)

// Parked refunds (ADR 0017, "Parked refunds"): an automatic refund (a stock-lost order, a
// mismatched payment) is tried once by the refunds consumer; when the gateway does not
// carry it out, it is parked in order_refund_failures and the event is done, so no
// partition waits for a gateway. A business refusal (ErrRefundRefused) waits for an
// operator's retry; a transient failure is retried by the refund retry worker with backoff.

// RefundKind is what an automatic refund gives back.
type RefundKind string

// Refund kinds.
const (
	RefundStockLost RefundKind = "stock_lost" // a paid order whose stock was gone
	RefundMismatch  RefundKind = "mismatch"   // a payment whose gateway took another amount
	// RefundApproved: a refund request a merchant (or, disputed, the platform) approved.
	RefundApproved RefundKind = "approved"
)

// RefundState is a parked refund's state.
type RefundState string

// Refund states. RefundDone is only ever an answer (the row is gone): the money went back,
// or there is nothing left to refund (the order moved on, the gateway holds nothing).
const (
	RefundRefused  RefundState = "refused"
	RefundRetrying RefundState = "retrying"
	RefundDone     RefundState = "done"
)

// ParkedRefund is an automatic or approved refund the gateway did not carry out.
type ParkedRefund struct {
	RefundID    int64       `db:"refund_id"`
	Kind        RefundKind  `db:"kind"`
	OrderID     int64       `db:"order_id"` // 0 for a mismatched payment
	PaymentID   int64       `db:"payment_id"`
	Provider    string      `db:"provider"`
	Amount      int64       `db:"amount"` // fen; 0 when the gateway could not be asked yet (mismatch)
	State       RefundState `db:"state"`
	Reason      string      `db:"reason"` // the gateway's last answer
	Attempts    int         `db:"attempts"`
	FailedAt    time.Time   `db:"failed_at"`
	NextRetryAt time.Time   `db:"next_retry_at"`
}

// ErrRefundNotParked is a retry of a refund that is not parked.
var ErrRefundNotParked = errs.New(errs.Conflict, "order.refund_not_parked")

// maxRefundReason is the reason column's size.
const maxRefundReason = 512

// refundRetryBatch bounds the refunds one retry run of one shard tries.
const refundRetryBatch = 100

// refundRetryMax caps the backoff between automatic retries of a transient failure.
const refundRetryMax = time.Hour

// FailedRefunds lists the parked refunds of every shard, newest refund first, before the
// refund ID before (0: from the newest); at most limit.
func (s *service) FailedRefunds(ctx context.Context, before int64, limit int) ([]ParkedRefund, error) {
	var out []ParkedRefund
	for _, db := range s.shards() {
		rows, err := s.st.parkedRefunds(ctx, db, before, limit)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RefundID > out[j].RefundID })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// RetryRefund tries a parked refund again now: id is its order's ID, or for a mismatched
// payment (no order) the payment's. It answers the new state; ErrRefundNotParked when
// nothing is parked for id. The gateway sees the same refund ID, so it refunds once however
// often this runs.
func (s *service) RetryRefund(ctx context.Context, id int64) (ParkedRefund, error) {
	if id <= 0 {
		return ParkedRefund{}, ErrRefundNotParked
	}
	f, err := s.st.parkedRefund(ctx, s.cl.ForID(id), id)
	if errors.Is(err, sql.ErrNoRows) {
		return ParkedRefund{}, ErrRefundNotParked
	}
	if err != nil {
		return ParkedRefund{}, err
	}
	return s.attemptRefund(ctx, f)
}

// shards is every physical shard once.
func (s *service) shards() []*sqldb.DB {
	var out []*sqldb.DB
	seen := map[*sqldb.DB]bool{}
	for _, db := range s.cl.Shards() {
		if !seen[db] {
			seen[db] = true
			out = append(out, db)
		}
	}
	return out
}

// stockLostRefund is the refund of a stock-lost order; ok false when there is nothing to
// refund (not flagged, or moved on meanwhile: a refund request, a shipment, refunded
// already — the flag and the event are the alarm, people decide).
func (s *service) stockLostRefund(ctx context.Context, orderID int64) (ParkedRefund, []RefundItem, bool, error) {
	o, err := s.get(ctx, orderID, scope{})
	if err != nil {
		return ParkedRefund{}, nil, false, err
	}
	if !o.StockLost || o.Status != StatusPaid {
		return ParkedRefund{}, nil, false, nil
	}
	units, _, err := refundUnits(o, nil)
	if err != nil {
		return ParkedRefund{}, nil, false, nil // every unit refunded already
	}
	return ParkedRefund{Kind: RefundStockLost, RefundID: o.RefundID, OrderID: o.ID, Reason: o.RefundReason},
		units, true, nil
}

// attemptRefund makes one attempt at an automatic refund and records its outcome: done
// (the parked row, if any, is deleted), refused or retrying (parked). Only database errors
// are returned: a gateway's failure is an outcome, never a reason to hold up the caller.
func (s *service) attemptRefund(ctx context.Context, f ParkedRefund) (ParkedRefund, error) {
	db := s.cl.ForID(f.RefundID)
	var gwErr error
	switch f.Kind {
	case RefundStockLost:
		cur, units, ok, err := s.stockLostRefund(ctx, f.OrderID)
		if err != nil {
			return f, err
		}
		if !ok {
			return s.refundDone(ctx, db, f)
		}
		p, amount, err := s.st.orderPayment(ctx, s.cl.ForID(f.OrderID), f.OrderID)
		switch {
		case errors.Is(err, ErrPaymentNotFound):
			gwErr = fmt.Errorf("%w: no succeeded payment covers order %d", payment.ErrRefundRefused, f.OrderID)
		case err != nil:
			return f, err
		default:
			f.PaymentID, f.Provider, f.Amount = p.ID, p.Provider, amount
			var res payment.RefundResult
			res, gwErr = s.callRefund(ctx, f, cur.Reason)
			if gwErr == nil {
				if err := s.st.addRefunded(ctx, s.cl.ForID(p.ID), p.ID, res.Refunded, s.clock()); err != nil {
					return f, err
				}
				_, err := s.recordRefund(ctx, f.OrderID, scope{}, StatusPaid, Refund{ID: f.RefundID, OrderID: f.OrderID,
					Amount: amount, Items: units, Reason: cur.Reason})
				if err != nil && !isConflict(err) {
					return f, err
				}
				return s.refundDone(ctx, db, f)
			}
		}
	case RefundMismatch:
		// The gateway's own record decides, not the notification: a payment it does not
		// hold as succeeded has nothing to refund.
		prov, ok := s.providers[f.Provider]
		if !ok {
			gwErr = fmt.Errorf("payment provider %q is not configured", f.Provider)
			break
		}
		st, err := prov.Query(ctx, f.PaymentID)
		if err != nil {
			gwErr = fmt.Errorf("query: %w", err)
			break
		}
		if st.Status != payment.StatusSucceeded || st.Amount <= 0 {
			s.log.Warn("order: mismatched payment holds no money at the gateway; nothing to refund",
				"payment_id", f.PaymentID, "gateway_status", string(st.Status))
			return s.refundDone(ctx, db, f)
		}
		f.Amount = st.Amount
		var res payment.RefundResult
		res, gwErr = s.callRefund(ctx, f, "payment amount did not match the order")
		if gwErr == nil {
			s.m.mismatchRefunded.Inc()
			s.log.Warn("order: refunded a payment whose amount did not match", "payment_id", f.PaymentID,
				"refunded", res.Refunded)
			if err := s.st.addRefunded(ctx, s.cl.ForID(f.PaymentID), f.PaymentID, res.Refunded, s.clock()); err != nil {
				return f, err
			}
			return s.refundDone(ctx, db, f)
		}
	case RefundApproved:
		o, err := s.get(ctx, f.OrderID, scope{})
		if err != nil {
			return f, err
		}
		if (o.Status != StatusRefundRequested && o.Status != StatusRefundDisputed) || o.RefundID != f.RefundID {
			return s.refundDone(ctx, db, f) // carried out meanwhile, or rejected: nothing to give back
		}
		var err2 error
		if _, gwErr, err2 = s.refundApproved(ctx, f, o); err2 != nil {
			return f, err2
		}
		if gwErr == nil {
			return s.refundDone(ctx, db, f)
		}
	default:
		return f, fmt.Errorf("order: unknown refund kind %q", f.Kind)
	}
	return s.parkRefund(ctx, db, f, gwErr)
}

// refundApproved carries out f, the refund of o's approved request: the gateway, then the
// refund recorded on the order. won is false when another call recorded it first (the
// gateway saw the same request number, so the money moved once); gwErr is the gateway's
// failure, to be parked.
func (s *service) refundApproved(ctx context.Context, f ParkedRefund, o Order) (won bool, gwErr, err error) {
	units, _, err := refundUnits(o, o.RefundItems)
	if err != nil {
		return false, nil, err
	}
	res, gwErr := s.callRefund(ctx, f, o.RefundReason)
	if gwErr != nil {
		return false, gwErr, nil
	}
	if err := s.st.addRefunded(ctx, s.cl.ForID(f.PaymentID), f.PaymentID, res.Refunded, s.clock()); err != nil {
		return false, nil, err
	}
	_, err = s.recordRefund(ctx, f.OrderID, scope{}, o.Status, Refund{ID: f.RefundID, OrderID: f.OrderID,
		Amount: f.Amount, Items: units, Reason: o.RefundReason})
	if isConflict(err) {
		return false, nil, nil
	}
	return err == nil, nil, err
}

func (s *service) callRefund(ctx context.Context, f ParkedRefund, reason string) (payment.RefundResult, error) {
	prov, ok := s.providers[f.Provider]
	if !ok {
		return payment.RefundResult{}, fmt.Errorf("payment provider %q is not configured", f.Provider)
	}
	return prov.Refund(ctx, payment.RefundRequest{PaymentID: f.PaymentID, RefundID: f.RefundID, Amount: f.Amount,
		Reason: reason})
}

func (s *service) refundDone(ctx context.Context, db *sqldb.DB, f ParkedRefund) (ParkedRefund, error) {
	if err := s.st.deleteParkedRefund(ctx, db, f.RefundID); err != nil {
		return f, err
	}
	f.State = RefundDone
	return f, nil
}

// parkRefund records a failed attempt: a refusal (payment.ErrRefundRefused,
// payment.ErrInvalidRequest) parks the refund as refused, anything else as retrying with
// backoff. The first refusal of a refund is counted and logged; later ones only update it.
func (s *service) parkRefund(ctx context.Context, db *sqldb.DB, f ParkedRefund, gwErr error) (ParkedRefund, error) {
	now := s.clock()
	f.State = RefundRetrying
	if errors.Is(gwErr, payment.ErrRefundRefused) || errors.Is(gwErr, payment.ErrInvalidRequest) {
		f.State = RefundRefused
	}
	f.Reason = truncate(gwErr.Error(), maxRefundReason)
	f.FailedAt = now
	var newlyRefused bool
	err := db.WithinTx(ctx, func(ctx context.Context) error {
		prev, err := s.st.lockParkedRefund(ctx, db, f.RefundID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			f.Attempts = 1
		case err != nil:
			return err
		default:
			f.Attempts = prev.Attempts + 1
		}
		newlyRefused = f.State == RefundRefused && (err != nil || prev.State != RefundRefused)
		f.NextRetryAt = now
		if f.State == RefundRetrying {
			f.NextRetryAt = now.Add(backoff.Exponential(f.Attempts, s.refundRetryBase(), max(refundRetryMax, s.refundRetryBase())))
		}
		return s.st.upsertParkedRefund(ctx, db, f)
	})
	if err != nil {
		return f, err
	}
	if newlyRefused {
		s.m.refundsParked.Inc()
		s.log.Error("order: the gateway refused a refund; parked for an operator (GET /api/v1/admin/refunds/failed)",
			"refund_id", f.RefundID, "kind", string(f.Kind), "order_id", f.OrderID, "payment_id", f.PaymentID,
			"amount", f.Amount, "reason", f.Reason)
	} else if f.State == RefundRetrying {
		s.log.Warn("order: refund failed; retrying later", "refund_id", f.RefundID, "kind", string(f.Kind),
			"attempts", f.Attempts, "next_retry_at", f.NextRetryAt, "error", f.Reason)
	}
	return f, nil
}

// refundRetryBase is the retry worker's tick and the backoff's first step.
func (s *service) refundRetryBase() time.Duration {
	if s.cfg.RefundRetryInterval > 0 {
		return s.cfg.RefundRetryInterval
	}
	return defaultRefundRetryInterval
}

// defaultRefundRetryInterval applies when order.refund_retry_interval is 0 (a Config built
// by hand): transient refund failures are always retried.
const defaultRefundRetryInterval = time.Second

// retryDueRefunds retries every shard's transiently failed refunds whose time has come (at
// most batch per shard) and returns how many it tried.
func (s *service) retryDueRefunds(ctx context.Context, batch int) (int, error) {
	n := 0
	for _, db := range s.shards() {
		due, err := s.st.dueRefunds(ctx, db, s.clock(), batch)
		if err != nil {
			return n, err
		}
		for _, f := range due {
			if _, err := s.attemptRefund(ctx, f); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// refundRetrier retries transiently failed refunds every refund retry interval.
func refundRetrier(s *service) worker.Spec {
	every := s.refundRetryBase()
	return worker.Spec{Name: "order.refund_retry", Interval: every, Timeout: every + time.Minute,
		Run: func(ctx context.Context) error {
			if _, err := s.retryDueRefunds(ctx, refundRetryBatch); err != nil {
				return fmt.Errorf("order: refund retry: %w", err)
			}
			return nil
		}}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s[:n])
	if len(r) > 0 && r[len(r)-1] == '\uFFFD' { // cut inside a multi-byte character
		r = r[:len(r)-1]
	}
	return string(r)
}

// Store.

const parkedRefundColumns = `refund_id, kind, order_id, payment_id, provider, amount, state, reason, attempts,
	failed_at, next_retry_at`

func (st *store) parkedRefunds(ctx context.Context, db *sqldb.DB, before int64, limit int) ([]ParkedRefund, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	var rows []ParkedRefund
	err := sqlx.SelectContext(ctx, sqldb.Ext(ctx, db), &rows, `SELECT `+parkedRefundColumns+`
		FROM order_refund_failures WHERE refund_id < ? ORDER BY refund_id DESC LIMIT ?`, before, limit)
	return rows, err
}

// parkedRefund finds the parked refund of an order, or of a mismatched payment.
func (st *store) parkedRefund(ctx context.Context, db *sqldb.DB, id int64) (ParkedRefund, error) {
	var r ParkedRefund
	err := sqlx.GetContext(ctx, sqldb.Ext(ctx, db), &r, `SELECT `+parkedRefundColumns+`
		FROM order_refund_failures WHERE order_id = ? OR (order_id = 0 AND payment_id = ?)
		ORDER BY refund_id DESC LIMIT 1`, id, id)
	return r, err
}

func (st *store) lockParkedRefund(ctx context.Context, db *sqldb.DB, refundID int64) (ParkedRefund, error) {
	var r ParkedRefund
	err := sqlx.GetContext(ctx, sqldb.Ext(ctx, db), &r, `SELECT `+parkedRefundColumns+`
		FROM order_refund_failures WHERE refund_id = ? FOR UPDATE`, refundID)
	return r, err
}

func (st *store) upsertParkedRefund(ctx context.Context, db *sqldb.DB, f ParkedRefund) error {
	_, err := sqldb.Ext(ctx, db).ExecContext(ctx, `INSERT INTO order_refund_failures (`+parkedRefundColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE payment_id = VALUES(payment_id), provider = VALUES(provider), amount = VALUES(amount),
			state = VALUES(state), reason = VALUES(reason), attempts = VALUES(attempts), failed_at = VALUES(failed_at),
			next_retry_at = VALUES(next_retry_at)`,
		f.RefundID, f.Kind, f.OrderID, f.PaymentID, f.Provider, f.Amount, f.State, f.Reason, f.Attempts,
		f.FailedAt, f.NextRetryAt)
	return err
}

func (st *store) deleteParkedRefund(ctx context.Context, db *sqldb.DB, refundID int64) error {
	_, err := sqldb.Ext(ctx, db).ExecContext(ctx, `DELETE FROM order_refund_failures WHERE refund_id = ?`, refundID)
	return err
}

func (st *store) dueRefunds(ctx context.Context, db *sqldb.DB, now time.Time, limit int) ([]ParkedRefund, error) {
	var rows []ParkedRefund
	err := sqlx.SelectContext(ctx, sqldb.Ext(ctx, db), &rows, `SELECT `+parkedRefundColumns+`
		FROM order_refund_failures WHERE state = 'retrying' AND next_retry_at <= ? ORDER BY next_retry_at LIMIT ?`,
		now, limit)
	return rows, err
}

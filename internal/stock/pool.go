package stock

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// Pools (migration 00004): a flash sale's units, carved out of a SKU's available stock when
// the sale is created (available -> reserved), so ordinary orders never take them and the
// sale never takes ordinary units. The sale's orders reserve from the pool (the units stay
// reserved and move to the order's line), a released line goes back to the pool while it
// is open, and closing the pool (the sale ends or is cancelled, or the sweeper finds it
// past its expiry) returns what remains to available.

// MaxPoolBatch bounds the orders of one ReserveManyFromPool.
const MaxPoolBatch = 500

// Pool is one sale's units of one SKU.
type Pool struct {
	ID, SKUID, MerchantID int64
	// Quantity is what was carved out; Remaining what no order holds or bought.
	Quantity, Remaining int64
	Open                bool
	// ExpiresAt is when the sweeper closes the pool if nobody did.
	ExpiresAt time.Time
}

// Pool causes of a level change.
const (
	CausePoolOpen  = "pool_open"
	CausePoolClose = "pool_close"
)

var (
	// ErrPoolNotFound is a pool ID that names no pool.
	ErrPoolNotFound = errs.New(errs.NotFound, "stock.pool_not_found")
	// ErrPoolClosed is a reservation from a pool that was closed.
	ErrPoolClosed = errs.New(errs.Conflict, "stock.pool_closed")
)

const (
	poolColumns        = `pool_id, sku_id, merchant_id, quantity, remaining, status, expires_at`
	qPool              = `SELECT ` + poolColumns + ` FROM stock_pools WHERE pool_id = ?`
	qLockPool          = qPool + ` FOR UPDATE`
	qInsertPool        = `INSERT INTO stock_pools (` + poolColumns + `, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)`
	qPoolTake          = `UPDATE stock_pools SET remaining = remaining - ?, updated_at = ? WHERE pool_id = ? AND status = 0 AND remaining >= ?`
	qPoolGiveBack      = `UPDATE stock_pools SET remaining = remaining + ?, updated_at = ? WHERE pool_id = ? AND status = 0`
	qClosePool         = `UPDATE stock_pools SET status = 1, remaining = 0, updated_at = ? WHERE pool_id = ? AND status = 0`
	qExpiredPools      = `SELECT pool_id FROM stock_pools WHERE status = 0 AND expires_at < ? ORDER BY expires_at LIMIT ?`
	qInsertPoolRes     = qInsertPoolResHead + qInsertPoolResRow
	qInsertPoolResHead = `INSERT INTO stock_reservations
		(order_id, sku_id, buyer_id, quantity, returned, status, expires_at, created_at, updated_at, pool_id) VALUES `
	qInsertPoolResRow = `(?, ?, ?, ?, 0, 0, ?, ?, ?, ?)`
	// moveHold takes units from available into reserved, guarded.
	qMoveHold = `UPDATE stock_levels SET available = available - ?, reserved = reserved + ?,
		version = version + 1, updated_at = ? WHERE sku_id = ? AND available >= ?`
)

type poolRow struct {
	ID         int64     `db:"pool_id"`
	SKUID      int64     `db:"sku_id"`
	MerchantID int64     `db:"merchant_id"`
	Quantity   int64     `db:"quantity"`
	Remaining  int64     `db:"remaining"`
	Status     int       `db:"status"`
	ExpiresAt  time.Time `db:"expires_at"`
}

func (r poolRow) pool() Pool {
	return Pool{ID: r.ID, SKUID: r.SKUID, MerchantID: r.MerchantID, Quantity: r.Quantity, Remaining: r.Remaining,
		Open: r.Status == 0, ExpiresAt: r.ExpiresAt}
}

func (s *store) pool(ctx context.Context, id int64, lock bool) (Pool, error) {
	q := qPool
	if lock {
		q = qLockPool
	}
	var r poolRow
	err := sqlx.GetContext(ctx, s.main(ctx), &r, q, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Pool{}, ErrPoolNotFound
	}
	return r.pool(), err
}

func (s *store) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := s.main(ctx).ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// OpenPool carves p.Quantity units of the merchant's SKU out of available for pool p.ID
// (ErrInsufficient when they are not there; ErrNotFound for another merchant's SKU).
// Opening the same pool again with the same SKU and quantity changes nothing.
func (s *service) OpenPool(ctx context.Context, p Pool) error {
	if p.ID <= 0 || p.SKUID <= 0 || p.MerchantID <= 0 || p.Quantity <= 0 || p.Quantity > MaxAvailable ||
		p.ExpiresAt.IsZero() {
		return errs.ErrInvalid.WithDetail("stock: a pool needs an ID, the merchant's SKU, 1 to %d units and an expiry",
			MaxAvailable)
	}
	return s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		have, err := s.st.pool(ctx, p.ID, true)
		switch {
		case err == nil:
			if have.SKUID != p.SKUID || have.Quantity != p.Quantity || have.MerchantID != p.MerchantID {
				return ErrReservationConflict.WithDetail("pool %d exists with other units", p.ID)
			}
			return nil
		case !errors.Is(err, ErrPoolNotFound):
			return err
		}
		lv, err := s.st.lockedLevel(ctx, p.SKUID)
		if err != nil {
			return err
		}
		if lv.MerchantID != p.MerchantID {
			return ErrNotFound
		}
		now := s.clock()
		n, err := s.st.exec(ctx, qMoveHold, p.Quantity, p.Quantity, now, p.SKUID, p.Quantity)
		if err != nil {
			return err
		}
		if n != 1 {
			return ErrInsufficient.WithDetail("SKU %d has %d units available, the sale needs %d", p.SKUID,
				lv.Available, p.Quantity)
		}
		if _, err := s.st.exec(ctx, qInsertPool, p.ID, p.SKUID, p.MerchantID, p.Quantity, p.Quantity,
			p.ExpiresAt.UTC().Truncate(time.Microsecond), now, now); err != nil {
			return err
		}
		return s.levelChanged(ctx, p.SKUID, CausePoolOpen)
	}, sqldb.ReadCommitted())
}

// ClosePool returns what remains of the pool to available (the sale ended or was
// cancelled) and answers the pool as it was before; closing it again changes nothing.
// Orders holding its units keep them; released later, they go to available.
func (s *service) ClosePool(ctx context.Context, poolID int64) (Pool, error) {
	var out Pool
	err := s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		var err error
		out, err = s.closePool(ctx, poolID)
		return err
	}, sqldb.ReadCommitted())
	return out, err
}

func (s *service) closePool(ctx context.Context, poolID int64) (Pool, error) {
	p, err := s.st.pool(ctx, poolID, true)
	if err != nil || !p.Open {
		return p, err
	}
	now := s.clock()
	if _, err := s.st.exec(ctx, qClosePool, now, poolID); err != nil {
		return p, err
	}
	if p.Remaining > 0 {
		if err := s.st.move(ctx, p.SKUID, p.Remaining, moveRelease, now); err != nil {
			return p, err
		}
	}
	return p, s.levelChanged(ctx, p.SKUID, CausePoolClose)
}

// PoolOf returns the pool.
func (s *service) PoolOf(ctx context.Context, poolID int64) (Pool, error) {
	if poolID <= 0 {
		return Pool{}, ErrPoolNotFound
	}
	return s.st.pool(ctx, poolID, false)
}

// ReserveFromPool holds h's one line for its order from pool poolID instead of available:
// ErrInsufficient when the pool has fewer units left, ErrPoolClosed when it was closed.
// Idempotent per order like Reserve.
func (s *service) ReserveFromPool(ctx context.Context, poolID int64, h Hold) error {
	if poolID <= 0 || h.OrderID <= 0 || h.BuyerID <= 0 || h.ExpiresAt.IsZero() || len(h.Lines) != 1 ||
		h.Lines[0].Quantity <= 0 || h.Lines[0].Quantity > MaxQuantity {
		return errs.ErrInvalid.WithDetail("stock: a pool reservation is one line of 1 to %d units for an order, "+
			"a buyer and an expiry", MaxQuantity)
	}
	l := h.Lines[0]
	return s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		have, err := s.st.lockOrder(ctx, h.OrderID)
		if err != nil {
			return err
		}
		if len(have) > 0 {
			return sameHold(have, h.Lines)
		}
		p, err := s.st.pool(ctx, poolID, true)
		if err != nil {
			return err
		}
		switch {
		case p.SKUID != l.SKUID:
			return ErrReservationConflict.WithDetail("pool %d holds SKU %d, not %d", poolID, p.SKUID, l.SKUID)
		case !p.Open:
			return ErrPoolClosed
		}
		now := s.clock()
		n, err := s.st.exec(ctx, qPoolTake, l.Quantity, now, poolID, l.Quantity)
		if err != nil {
			return err
		}
		if n != 1 {
			return ErrInsufficient.WithDetail("the sale has %d units left", p.Remaining)
		}
		_, err = s.st.exec(ctx, qInsertPoolRes, h.OrderID, l.SKUID, h.BuyerID, l.Quantity,
			h.ExpiresAt.UTC().Truncate(time.Microsecond), now, now, poolID)
		return err // the units stay reserved: no counter moves, no level event
	}, sqldb.ReadCommitted())
}

// ReserveManyFromPool holds each of holds from pool poolID in one transaction: the pool's
// row is locked once and taken from once, the reservations written in one statement, so a
// flash sale's intake pays one commit on the hot row for a whole batch. Holds are served
// in order while units last; a hold that does not fit is refused with ErrInsufficient and
// the rest are still tried (a smaller one may fit). The orders must be new (no line held
// before) or orders whose line this pool holds already (a batch taken up again after a
// crash: the line stays, nothing is taken twice); another line held for the order is
// ErrReservationConflict, a released one ErrReservationReleased.
func (s *service) ReserveManyFromPool(ctx context.Context, poolID int64, holds []Hold) ([]error, error) {
	if poolID <= 0 || len(holds) == 0 || len(holds) > MaxPoolBatch {
		return nil, errs.ErrInvalid.WithDetail("stock: a pool batch holds 1 to %d orders of one pool", MaxPoolBatch)
	}
	for _, h := range holds {
		if h.OrderID <= 0 || h.BuyerID <= 0 || h.ExpiresAt.IsZero() || len(h.Lines) != 1 ||
			h.Lines[0].Quantity <= 0 || h.Lines[0].Quantity > MaxQuantity {
			return nil, errs.ErrInvalid.WithDetail("stock: a pool reservation is one line of 1 to %d units for an order, "+
				"a buyer and an expiry", MaxQuantity)
		}
	}
	refused := make([]error, len(holds))
	orderIDs := make([]int64, len(holds))
	for i, h := range holds {
		orderIDs[i] = h.OrderID
	}
	err := s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		clear(refused)
		// The orders' lines first, then the pool (ReserveFromPool's order of locks).
		had, err := s.st.lockOrders(ctx, orderIDs)
		if err != nil {
			return err
		}
		p, err := s.st.pool(ctx, poolID, true)
		if err != nil {
			return err
		}
		left, take := p.Remaining, int64(0)
		q := strings.Builder{}
		q.WriteString(qInsertPoolResHead)
		args := make([]any, 0, 8*len(holds))
		now := s.clock()
		for i, h := range holds {
			l := h.Lines[0]
			if have, ok := had[h.OrderID]; ok {
				switch err := sameHold(have, h.Lines); {
				case err != nil:
					refused[i] = err
				case have[0].PoolID != poolID:
					refused[i] = ErrReservationConflict.WithDetail("order %d holds units of another pool", h.OrderID)
				}
				continue // held by an earlier try
			}
			switch {
			case !p.Open:
				refused[i] = ErrPoolClosed
			case p.SKUID != l.SKUID:
				refused[i] = ErrReservationConflict.WithDetail("pool %d holds SKU %d, not %d", poolID, p.SKUID, l.SKUID)
			case left < l.Quantity:
				refused[i] = ErrInsufficient.WithDetail("the sale has %d units left", left)
			}
			if refused[i] != nil {
				continue
			}
			left, take = left-l.Quantity, take+l.Quantity
			if len(args) > 0 {
				q.WriteString(", ")
			}
			q.WriteString(qInsertPoolResRow)
			args = append(args, h.OrderID, l.SKUID, h.BuyerID, l.Quantity, h.ExpiresAt.UTC().Truncate(time.Microsecond),
				now, now, poolID)
		}
		if take == 0 {
			return nil
		}
		if n, err := s.st.exec(ctx, qPoolTake, take, now, poolID, take); err != nil || n != 1 {
			return cmp.Or(err, fmt.Errorf("stock: pool %d changed under its lock", poolID))
		}
		_, err = s.st.exec(ctx, q.String(), args...)
		return err // the units stay reserved: no counter moves, no level event
	}, sqldb.ReadCommitted())
	if err != nil {
		return nil, err
	}
	return refused, nil
}

// backToPool gives a held line of a pool back to it while the pool is open (the line is
// then released with no counter moving) and reports whether it did; other lines are for
// the caller to release to available.
func (s *service) backToPool(ctx context.Context, r Reservation, now time.Time) (bool, error) {
	if r.PoolID == 0 {
		return false, nil
	}
	if _, err := s.st.pool(ctx, r.PoolID, true); err != nil {
		return false, err
	}
	n, err := s.st.exec(ctx, qPoolGiveBack, r.Quantity, now, r.PoolID)
	if err != nil || n == 0 {
		return false, err // closed: to available
	}
	return true, s.st.setReservation(ctx, r.OrderID, r.SKUID, Released, r.Returned, now)
}

// retakeFromPool takes a released pool line's units from its pool again (a payment that
// came after the hold lapsed): ErrInsufficient when the pool is closed or has too few.
func (s *service) retakeFromPool(ctx context.Context, r Reservation, now time.Time) error {
	n, err := s.st.exec(ctx, qPoolTake, r.Quantity, now, r.PoolID, r.Quantity)
	if err != nil {
		return err
	}
	if n != 1 {
		return ErrInsufficient.WithDetail("the sale's units are gone")
	}
	return nil
}

// closeExpiredPools closes open pools past their expiry, at most limit, and returns how
// many it closed.
func (s *service) closeExpiredPools(ctx context.Context, now time.Time, limit int) (int, error) {
	var ids []int64
	if err := sqlx.SelectContext(ctx, s.st.main(ctx), &ids, qExpiredPools, now, limit); err != nil {
		return 0, err
	}
	for _, id := range ids {
		if _, err := s.ClosePool(ctx, id); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

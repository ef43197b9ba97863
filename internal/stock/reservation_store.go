package stock

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

type reservationRow struct {
	OrderID   int64     `db:"order_id"`
	SKUID     int64     `db:"sku_id"`
	BuyerID   int64     `db:"buyer_id"`
	Quantity  int64     `db:"quantity"`
	Returned  int64     `db:"returned"`
	Status    int       `db:"status"`
	ExpiresAt time.Time `db:"expires_at"`
}

func (r reservationRow) reservation() Reservation {
	return Reservation{OrderID: r.OrderID, SKUID: r.SKUID, BuyerID: r.BuyerID, Quantity: r.Quantity,
		Returned: r.Returned, Status: ReservationStatus(r.Status), ExpiresAt: r.ExpiresAt}
}

// move is one guarded transfer between counters: the WHERE clause checks the source covers
// the quantity, so rows affected == 0 means "not enough" (or no such SKU).
type move struct {
	name string
	sql  string
}

var (
	moveHold = move{"hold", `UPDATE stock_levels SET available = available - ?, reserved = reserved + ?,
		version = version + 1, updated_at = ? WHERE sku_id = ? AND available >= ?`}
	moveRelease = move{"release", `UPDATE stock_levels SET reserved = reserved - ?, available = available + ?,
		version = version + 1, updated_at = ? WHERE sku_id = ? AND reserved >= ?`}
	moveConfirm = move{"confirm", `UPDATE stock_levels SET reserved = reserved - ?, sold = sold + ?,
		version = version + 1, updated_at = ? WHERE sku_id = ? AND reserved >= ?`}
	moveRetake = move{"retake", `UPDATE stock_levels SET available = available - ?, sold = sold + ?,
		version = version + 1, updated_at = ? WHERE sku_id = ? AND available >= ?`}
	moveReturn = move{"return", `UPDATE stock_levels SET sold = sold - ?, available = available + ?,
		version = version + 1, updated_at = ? WHERE sku_id = ? AND sold >= ?`}
)

const (
	reservationColumns = `order_id, sku_id, buyer_id, quantity, returned, status, expires_at`
	qOrderReservations = `SELECT ` + reservationColumns + ` FROM stock_reservations WHERE order_id = ? ORDER BY sku_id`
	// Lines in SKU order, the same order every statement takes SKU rows in.
	qLockOrder = `SELECT ` + reservationColumns + ` FROM stock_reservations WHERE order_id = ? ORDER BY sku_id FOR UPDATE`
	qBuyerHeld = `SELECT COALESCE(SUM(quantity), 0) FROM stock_reservations
		WHERE buyer_id = ? AND sku_id = ? AND status = 0`
	qInsertReservation = `INSERT INTO stock_reservations
		(order_id, sku_id, buyer_id, quantity, returned, status, expires_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, 0, 0, ?, ?, ?)`
	qSetReservation = `UPDATE stock_reservations SET status = ?, returned = ?, updated_at = ?
		WHERE order_id = ? AND sku_id = ?`
	qExpiredOrders = `SELECT DISTINCT order_id FROM stock_reservations
		WHERE status = 0 AND expires_at < ? ORDER BY order_id LIMIT ?`
	qSKUExists = `SELECT COUNT(*) FROM stock_levels WHERE sku_id = ?`
)

func (s *store) orderReservations(ctx context.Context, orderID int64) ([]Reservation, error) {
	return s.reservations(ctx, qOrderReservations, orderID)
}

// lockOrder reads the order's lines with their row locks.
func (s *store) lockOrder(ctx context.Context, orderID int64) ([]Reservation, error) {
	return s.reservations(ctx, qLockOrder, orderID)
}

func (s *store) reservations(ctx context.Context, q string, orderID int64) ([]Reservation, error) {
	var rows []reservationRow
	if err := sqlx.SelectContext(ctx, s.main(ctx), &rows, q, orderID); err != nil {
		return nil, err
	}
	out := make([]Reservation, len(rows))
	for i, r := range rows {
		out[i] = r.reservation()
	}
	return out, nil
}

// hold moves quantity from available to reserved: ErrNotFound for an unknown SKU,
// ErrInsufficient when available does not cover it.
func (s *store) hold(ctx context.Context, skuID, quantity int64, now time.Time) error {
	ok, err := s.tryMove(ctx, skuID, quantity, moveHold, now)
	if err != nil || ok {
		return err
	}
	var n int
	if err := sqlx.GetContext(ctx, s.main(ctx), &n, qSKUExists, skuID); err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound.WithDetail("SKU %d has no stock level", skuID)
	}
	return ErrInsufficient.WithDetail("SKU %d has fewer than %d units available", skuID, quantity)
}

// move applies m; a guard that fails is ErrInsufficient for a retake (stock sold out since
// the release) and a corruption error for the others (the counters must cover a line).
func (s *store) move(ctx context.Context, skuID, quantity int64, m move, now time.Time) error {
	ok, err := s.tryMove(ctx, skuID, quantity, m, now)
	switch {
	case err != nil || ok:
		return err
	case m == moveRetake:
		return ErrInsufficient.WithDetail("SKU %d has fewer than %d units available", skuID, quantity)
	}
	return fmt.Errorf("%w: %s of %d units of SKU %d", errCorrupt, m.name, quantity, skuID)
}

func (s *store) tryMove(ctx context.Context, skuID, quantity int64, m move, now time.Time) (bool, error) {
	res, err := s.main(ctx).ExecContext(ctx, m.sql, quantity, quantity, now, skuID, quantity)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (s *store) buyerHeld(ctx context.Context, buyerID, skuID int64) (int64, error) {
	var n int64
	err := sqlx.GetContext(ctx, s.main(ctx), &n, qBuyerHeld, buyerID, skuID)
	return n, err
}

func (s *store) insertReservation(ctx context.Context, r Reservation, now time.Time) error {
	_, err := s.main(ctx).ExecContext(ctx, qInsertReservation, r.OrderID, r.SKUID, r.BuyerID, r.Quantity, r.ExpiresAt, now, now)
	return err
}

func (s *store) setReservation(ctx context.Context, orderID, skuID int64, st ReservationStatus, returned int64, now time.Time) error {
	_, err := s.main(ctx).ExecContext(ctx, qSetReservation, int(st), returned, now, orderID, skuID)
	return err
}

func (s *store) expiredOrders(ctx context.Context, now time.Time, limit int) ([]int64, error) {
	var ids []int64
	err := sqlx.SelectContext(ctx, s.main(ctx), &ids, qExpiredOrders, now, limit)
	return ids, err
}

package stock

import (
	"context"
	"fmt"
	"strings"
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
	PoolID    int64     `db:"pool_id"`
}

func (r reservationRow) reservation() Reservation {
	return Reservation{OrderID: r.OrderID, SKUID: r.SKUID, BuyerID: r.BuyerID, Quantity: r.Quantity,
		Returned: r.Returned, Status: ReservationStatus(r.Status), ExpiresAt: r.ExpiresAt, PoolID: r.PoolID}
}

// move is one guarded transfer between counters: the WHERE clause checks the source covers
// the quantity, so rows affected == 0 means "not enough" (or no such SKU).
type move struct {
	name string // the LevelChanged cause
	sql  string
}

var (
	moveRelease = move{CauseRelease, `UPDATE stock_levels SET reserved = reserved - ?, available = available + ?,
		version = version + 1, updated_at = ? WHERE sku_id = ? AND reserved >= ?`}
	moveConfirm = move{CauseConfirm, `UPDATE stock_levels SET reserved = reserved - ?, sold = sold + ?,
		version = version + 1, updated_at = ? WHERE sku_id = ? AND reserved >= ?`}
	moveRetake = move{CauseRetake, `UPDATE stock_levels SET available = available - ?, sold = sold + ?,
		version = version + 1, updated_at = ? WHERE sku_id = ? AND available >= ?`}
	moveReturn = move{CauseReturn, `UPDATE stock_levels SET sold = sold - ?, available = available + ?,
		version = version + 1, updated_at = ? WHERE sku_id = ? AND sold >= ?`}
)

const (
	reservationColumns = `order_id, sku_id, buyer_id, quantity, returned, status, expires_at, pool_id`
	qOrderReservations = `SELECT ` + reservationColumns + ` FROM stock_reservations WHERE order_id = ? ORDER BY sku_id`
	// Lines in SKU order, the same order every statement takes SKU rows in.
	qLockOrder      = `SELECT ` + reservationColumns + ` FROM stock_reservations WHERE order_id = ? ORDER BY sku_id FOR UPDATE`
	qSetReservation = `UPDATE stock_reservations SET status = ?, returned = ?, updated_at = ?
		WHERE order_id = ? AND sku_id = ?`
	qExpiredOrders = `SELECT DISTINCT order_id FROM stock_reservations
		WHERE status = 0 AND expires_at < ? ORDER BY order_id LIMIT ?`

	qReservationsOf = `SELECT ` + reservationColumns + ` FROM stock_reservations WHERE order_id IN (?) ORDER BY order_id, sku_id`
	// IN lists are read in index order, so the rows are locked in ascending SKU order.
	qLockLevels = `SELECT ` + levelColumns + ` FROM stock_levels WHERE sku_id IN (?) ORDER BY sku_id FOR UPDATE`
	qHeldBy     = `SELECT buyer_id, sku_id, SUM(quantity) AS held FROM stock_reservations
		WHERE buyer_id IN (?) AND sku_id IN (?) AND status = 0 GROUP BY buyer_id, sku_id`
	qInsertReservations = `INSERT INTO stock_reservations
		(order_id, sku_id, buyer_id, quantity, returned, status, expires_at, created_at, updated_at) VALUES `
)

// reservationsOf returns the reservation lines of the orders, by order, in SKU order.
func (s *store) reservationsOf(ctx context.Context, orderIDs []int64) (map[int64][]Reservation, error) {
	q, args, err := sqlx.In(qReservationsOf, orderIDs)
	if err != nil {
		return nil, err
	}
	var rows []reservationRow
	if err := sqlx.SelectContext(ctx, s.main(ctx), &rows, q, args...); err != nil {
		return nil, err
	}
	out := make(map[int64][]Reservation, len(rows))
	for _, r := range rows {
		out[r.OrderID] = append(out[r.OrderID], r.reservation())
	}
	return out, nil
}

// lockLevels locks the SKUs' rows in ascending order and returns them; an unknown SKU has
// no row.
func (s *store) lockLevels(ctx context.Context, skuIDs []int64) ([]levelRow, error) {
	q, args, err := sqlx.In(qLockLevels, skuIDs)
	if err != nil {
		return nil, err
	}
	var rows []levelRow
	err = sqlx.SelectContext(ctx, s.main(ctx), &rows, q, args...)
	return rows, err
}

// holdMany moves taken[sku] units from available to reserved for every row in one guarded
// statement; fewer rows changed than given means a counter did not cover its units.
func (s *store) holdMany(ctx context.Context, rows []levelRow, taken map[int64]int64, now time.Time) error {
	if len(rows) == 0 {
		return nil
	}
	var (
		by   strings.Builder
		args []any
		ids  []any
	)
	by.WriteString("CASE sku_id")
	for _, r := range rows {
		by.WriteString(" WHEN ? THEN ?")
		args = append(args, r.SKUID, taken[r.SKUID])
		ids = append(ids, r.SKUID)
	}
	by.WriteString(" END")
	q := "UPDATE stock_levels SET available = available - " + by.String() +
		", reserved = reserved + " + by.String() +
		", version = version + 1, updated_at = ? WHERE sku_id IN (?" + strings.Repeat(", ?", len(rows)-1) +
		") AND available >= " + by.String()
	all := make([]any, 0, 3*len(args)+1+len(ids))
	all = append(all, args...)
	all = append(all, args...)
	all = append(all, now)
	all = append(all, ids...)
	all = append(all, args...)
	res, err := s.main(ctx).ExecContext(ctx, q, all...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != int64(len(rows)) {
		return fmt.Errorf("%w: a batch hold of %d SKUs changed %d", errCorrupt, len(rows), n)
	}
	return nil
}

// heldBy returns the units the buyers hold (unpaid) of the SKUs.
func (s *store) heldBy(ctx context.Context, buyerIDs, skuIDs []int64) (map[buyerSKU]int64, error) {
	q, args, err := sqlx.In(qHeldBy, buyerIDs, skuIDs)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		BuyerID int64 `db:"buyer_id"`
		SKUID   int64 `db:"sku_id"`
		Held    int64 `db:"held"`
	}
	if err := sqlx.SelectContext(ctx, s.main(ctx), &rows, q, args...); err != nil {
		return nil, err
	}
	out := make(map[buyerSKU]int64, len(rows))
	for _, r := range rows {
		out[buyerSKU{r.BuyerID, r.SKUID}] = r.Held
	}
	return out, nil
}

// insertReservations writes held lines, many per statement.
func (s *store) insertReservations(ctx context.Context, rs []Reservation, now time.Time) error {
	const perInsert = 500
	for start := 0; start < len(rs); start += perInsert {
		chunk := rs[start:min(start+perInsert, len(rs))]
		q := qInsertReservations + strings.Repeat("(?, ?, ?, ?, 0, 0, ?, ?, ?),", len(chunk))
		args := make([]any, 0, 7*len(chunk))
		for _, r := range chunk {
			args = append(args, r.OrderID, r.SKUID, r.BuyerID, r.Quantity, r.ExpiresAt, now, now)
		}
		if _, err := s.main(ctx).ExecContext(ctx, strings.TrimSuffix(q, ","), args...); err != nil {
			return err
		}
	}
	return nil
}

func (s *store) orderReservations(ctx context.Context, orderID int64) ([]Reservation, error) {
	return s.reservations(ctx, qOrderReservations, orderID)
}

// lockOrder reads the order's lines with their row locks.
func (s *store) lockOrder(ctx context.Context, orderID int64) ([]Reservation, error) {
	return s.reservations(ctx, qLockOrder, orderID)
}

// lockOrders locks the lines of orders (FOR UPDATE) and returns them by order.
func (s *store) lockOrders(ctx context.Context, orderIDs []int64) (map[int64][]Reservation, error) {
	q, args, err := sqlx.In(`SELECT `+reservationColumns+` FROM stock_reservations WHERE order_id IN (?)
		ORDER BY order_id, sku_id FOR UPDATE`, orderIDs)
	if err != nil {
		return nil, err
	}
	var rows []reservationRow
	if err := sqlx.SelectContext(ctx, s.main(ctx), &rows, q, args...); err != nil {
		return nil, err
	}
	out := map[int64][]Reservation{}
	for _, r := range rows {
		res := r.reservation()
		out[res.OrderID] = append(out[res.OrderID], res)
	}
	return out, nil
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

func (s *store) setReservation(ctx context.Context, orderID, skuID int64, st ReservationStatus, returned int64, now time.Time) error {
	_, err := s.main(ctx).ExecContext(ctx, qSetReservation, int(st), returned, now, orderID, skuID)
	return err
}

func (s *store) expiredOrders(ctx context.Context, now time.Time, limit int) ([]int64, error) {
	var ids []int64
	err := sqlx.SelectContext(ctx, s.main(ctx), &ids, qExpiredOrders, now, limit)
	return ids, err
}

package flashsale

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mallhq/mall/internal/platform/sqldb"
)

// store is the module's SQL on db.main.
type store struct{ db *sqldb.DB }

func (s *store) ext(ctx context.Context) sqlx.ExtContext { return sqldb.Ext(ctx, s.db) }

const saleColumns = `id, merchant_id, product_id, sku_id, title, price, original_price, quantity, per_user_limit,
	starts_at, ends_at, cancelled_at, closed, created_at`

type saleRow struct {
	ID            int64        `db:"id"`
	MerchantID    int64        `db:"merchant_id"`
	ProductID     int64        `db:"product_id"`
	SKUID         int64        `db:"sku_id"`
	Title         string       `db:"title"`
	Price         int64        `db:"price"`
	OriginalPrice int64        `db:"original_price"`
	Quantity      int64        `db:"quantity"`
	PerUserLimit  int          `db:"per_user_limit"`
	StartsAt      time.Time    `db:"starts_at"`
	EndsAt        time.Time    `db:"ends_at"`
	CancelledAt   sql.NullTime `db:"cancelled_at"`
	Closed        bool         `db:"closed"`
	CreatedAt     time.Time    `db:"created_at"`
}

func (s *store) insertSale(ctx context.Context, r saleRow) error {
	_, err := s.ext(ctx).ExecContext(ctx, `INSERT INTO flashsale_sales (`+saleColumns+`, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, ?, ?)`, r.ID, r.MerchantID, r.ProductID, r.SKUID, r.Title,
		r.Price, r.OriginalPrice, r.Quantity, r.PerUserLimit, r.StartsAt, r.EndsAt, r.CreatedAt, r.CreatedAt)
	return err
}

// sale reads one sale (merchantID 0: any merchant's).
func (s *store) sale(ctx context.Context, id, merchantID int64, lock bool) (saleRow, error) {
	q := `SELECT ` + saleColumns + ` FROM flashsale_sales WHERE id = ?`
	args := []any{id}
	if merchantID != 0 {
		q += ` AND merchant_id = ?`
		args = append(args, merchantID)
	}
	if lock {
		q += ` FOR UPDATE`
	}
	var r saleRow
	err := sqlx.GetContext(ctx, s.ext(ctx), &r, q, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

// merchantSales lists the merchant's sales, newest first, before the ID before (0: first).
func (s *store) merchantSales(ctx context.Context, merchantID, before int64, limit int) ([]saleRow, error) {
	var rows []saleRow
	err := sqlx.SelectContext(ctx, s.ext(ctx), &rows, `SELECT `+saleColumns+` FROM flashsale_sales
		WHERE merchant_id = ? AND (? = 0 OR id < ?) ORDER BY id DESC LIMIT ?`, merchantID, before, before, limit)
	return rows, err
}

// publicSales lists sales not cancelled or ended at now, newest first: scheduled ones
// (starts_at > now), running ones, or both.
func (s *store) publicSales(ctx context.Context, status Status, now time.Time, before int64, limit int) ([]saleRow, error) {
	cond := `cancelled_at IS NULL AND closed = 0 AND ends_at > ?`
	args := []any{now}
	switch status {
	case StatusScheduled:
		cond += ` AND starts_at > ?`
		args = append(args, now)
	case StatusRunning:
		cond += ` AND starts_at <= ?`
		args = append(args, now)
	}
	args = append(args, before, before, limit)
	var rows []saleRow
	err := sqlx.SelectContext(ctx, s.ext(ctx), &rows, `SELECT `+saleColumns+` FROM flashsale_sales WHERE `+cond+`
		AND (? = 0 OR id < ?) ORDER BY id DESC LIMIT ?`, args...)
	return rows, err
}

func (s *store) cancelSale(ctx context.Context, id int64, now time.Time) error {
	_, err := s.ext(ctx).ExecContext(ctx, `UPDATE flashsale_sales SET cancelled_at = ?, closed = 1, updated_at = ?
		WHERE id = ? AND cancelled_at IS NULL`, now, now, id)
	return err
}

func (s *store) markClosed(ctx context.Context, id int64, now time.Time) error {
	_, err := s.ext(ctx).ExecContext(ctx, `UPDATE flashsale_sales SET closed = 1, updated_at = ? WHERE id = ?`, now, id)
	return err
}

// endedOpen lists sales past their end whose pool is not closed yet.
func (s *store) endedOpen(ctx context.Context, now time.Time, limit int) ([]int64, error) {
	var ids []int64
	err := sqlx.SelectContext(ctx, s.ext(ctx), &ids, `SELECT id FROM flashsale_sales
		WHERE closed = 0 AND ends_at <= ? ORDER BY ends_at LIMIT ?`, now, limit)
	return ids, err
}

// sold is the units of the sales' ordered tickets whose orders were not cancelled, by sale.
func (s *store) sold(ctx context.Context, saleIDs []int64) (map[int64]int64, error) {
	out := map[int64]int64{}
	if len(saleIDs) == 0 {
		return out, nil
	}
	q, args, err := sqlx.In(`SELECT sale_id, SUM(quantity) AS n FROM flashsale_tickets
		WHERE sale_id IN (?) AND status = 'ordered' AND returned = 0 GROUP BY sale_id`, saleIDs)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		SaleID int64 `db:"sale_id"`
		N      int64 `db:"n"`
	}
	if err := sqlx.SelectContext(ctx, s.ext(ctx), &rows, q, args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.SaleID] = r.N
	}
	return out, nil
}

// holdingsOf is what each of buyers holds of the sale in MySQL: units of ordered tickets
// whose orders were not cancelled.
func (s *store) holdingsOf(ctx context.Context, saleID int64, buyers []int64) (map[int64]int64, error) {
	q, args, err := sqlx.In(`SELECT buyer_id, SUM(quantity) AS n FROM flashsale_tickets
		WHERE sale_id = ? AND buyer_id IN (?) AND status = 'ordered' AND returned = 0 GROUP BY buyer_id`, saleID, buyers)
	if err != nil {
		return nil, err
	}
	return s.buyerSums(ctx, q, args...)
}

func (s *store) buyerSums(ctx context.Context, q string, args ...any) (map[int64]int64, error) {
	var rows []struct {
		BuyerID int64 `db:"buyer_id"`
		N       int64 `db:"n"`
	}
	if err := sqlx.SelectContext(ctx, s.ext(ctx), &rows, q, args...); err != nil {
		return nil, err
	}
	out := make(map[int64]int64, len(rows))
	for _, r := range rows {
		out[r.BuyerID] = r.N
	}
	return out, nil
}

// holdings is every buyer's holding of the sale (the gate's rebuild).
func (s *store) holdings(ctx context.Context, saleID int64) (map[int64]int64, error) {
	return s.buyerSums(ctx, `SELECT buyer_id, SUM(quantity) AS n FROM flashsale_tickets
		WHERE sale_id = ? AND status = 'ordered' AND returned = 0 GROUP BY buyer_id`, saleID)
}

const ticketColumns = `id, sale_id, buyer_id, quantity, address_id, status, code, order_id, checkout_id, created_at, updated_at`

type ticketRow struct {
	ID         int64     `db:"id"`
	SaleID     int64     `db:"sale_id"`
	BuyerID    int64     `db:"buyer_id"`
	Quantity   int64     `db:"quantity"`
	AddressID  int64     `db:"address_id"`
	Status     string    `db:"status"`
	Code       string    `db:"code"`
	OrderID    int64     `db:"order_id"`
	CheckoutID int64     `db:"checkout_id"`
	CreatedAt  time.Time `db:"created_at"`
	UpdatedAt  time.Time `db:"updated_at"`
}

func (r ticketRow) ticket() Ticket {
	return Ticket{ID: r.ID, SaleID: r.SaleID, BuyerID: r.BuyerID, Quantity: r.Quantity, AddressID: r.AddressID,
		Status: TicketStatus(r.Status), Code: r.Code, OrderID: r.OrderID, CheckoutID: r.CheckoutID,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

func (s *store) ticket(ctx context.Context, id int64) (Ticket, error) {
	var r ticketRow
	err := sqlx.GetContext(ctx, s.ext(ctx), &r, `SELECT `+ticketColumns+` FROM flashsale_tickets WHERE id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Ticket{}, ErrTicketNotFound
	}
	return r.ticket(), err
}

// recorded tells which of the tickets are recorded (final) already.
func (s *store) recorded(ctx context.Context, ids []int64) (map[int64]bool, error) {
	q, args, err := sqlx.In(`SELECT id FROM flashsale_tickets WHERE id IN (?)`, ids)
	if err != nil {
		return nil, err
	}
	var have []int64
	if err := sqlx.SelectContext(ctx, s.ext(ctx), &have, q, args...); err != nil {
		return nil, err
	}
	out := make(map[int64]bool, len(have))
	for _, id := range have {
		out[id] = true
	}
	return out, nil
}

// insertTickets records final tickets in one statement; one recorded before (a
// redelivery racing this one) keeps its row.
func (s *store) insertTickets(ctx context.Context, ts []Ticket) error {
	if len(ts) == 0 {
		return nil
	}
	const cols = 11
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	args := make([]any, 0, cols*len(ts))
	for _, t := range ts {
		args = append(args, t.ID, t.SaleID, t.BuyerID, t.Quantity, t.AddressID, t.Status, t.Code, t.OrderID, t.CheckoutID,
			t.CreatedAt, t.UpdatedAt)
	}
	_, err := s.ext(ctx).ExecContext(ctx, `INSERT IGNORE INTO flashsale_tickets (`+ticketColumns+`) VALUES `+
		strings.TrimSuffix(strings.Repeat(row+", ", len(ts)), ", "), args...)
	return err
}

// returnTicket marks the ordered ticket of orderID returned (its order was cancelled) and
// answers it; ok false when there is none or it was returned already.
func (s *store) returnTicket(ctx context.Context, orderID int64, now time.Time) (Ticket, bool, error) {
	var t Ticket
	ok := false
	err := s.db.WithinTx(ctx, func(ctx context.Context) error {
		var r ticketRow
		err := sqlx.GetContext(ctx, s.ext(ctx), &r, `SELECT `+ticketColumns+` FROM flashsale_tickets
			WHERE order_id = ? AND status = 'ordered' AND returned = 0 FOR UPDATE`, orderID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := s.ext(ctx).ExecContext(ctx, `UPDATE flashsale_tickets SET returned = 1, updated_at = ?
			WHERE id = ?`, now, r.ID); err != nil {
			return err
		}
		t, ok = r.ticket(), true
		return nil
	}, sqldb.ReadCommitted())
	return t, ok, err
}

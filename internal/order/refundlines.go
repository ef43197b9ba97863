package order

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// refundItemsJSON is the open request's units as stored (NULL: none or every unit).
func refundItemsJSON(items []RefundItem) sql.NullString {
	if len(items) == 0 {
		return sql.NullString{}
	}
	b, _ := json.Marshal(items) // a slice of plain structs cannot fail to encode
	return sql.NullString{String: string(b), Valid: true}
}

// MaxRefundItems bounds the lines of one refund request.
const MaxRefundItems = 100

// normalizeRefundItems checks a request's lines (nil: the whole order) and sorts them by
// SKU; a SKU twice is an error.
func normalizeRefundItems(items []RefundItem) ([]RefundItem, error) {
	if items == nil {
		return nil, nil
	}
	if len(items) == 0 || len(items) > MaxRefundItems {
		return nil, errs.ErrValidation.WithDetail("items must list 1 to %d lines (or be left out for the whole order)",
			MaxRefundItems)
	}
	out := slices.Clone(items)
	slices.SortFunc(out, func(a, b RefundItem) int { return cmp.Compare(a.SKUID, b.SKUID) })
	for i, it := range out {
		switch {
		case it.SKUID <= 0:
			return nil, errs.ErrValidation.WithDetail("items[].sku_id must be a SKU ID")
		case it.Quantity <= 0 || it.Quantity > MaxQuantity:
			return nil, errs.ErrValidation.WithDetail("items[].quantity must be from 1 to %d", MaxQuantity)
		case i > 0 && out[i-1].SKUID == it.SKUID:
			return nil, errs.ErrValidation.WithDetail("SKU %d is listed twice", it.SKUID)
		}
	}
	return out, nil
}

// refundUnits resolves a request's lines against the order's (nil: every unit not
// refunded yet) and prices them: the units and their amount. A SKU the order does not
// have, or more units than are left of a line, is ErrRefundExceeds; nothing left at all
// is ErrNothingToRefund.
func refundUnits(o Order, items []RefundItem) ([]RefundItem, int64, error) {
	lines := make(map[int64]Item, len(o.Items))
	for _, it := range o.Items {
		lines[it.SKUID] = it
	}
	var units []RefundItem
	var amount int64
	if items == nil {
		for _, it := range o.Items {
			if left := it.Quantity - it.RefundedQuantity; left > 0 {
				units = append(units, RefundItem{SKUID: it.SKUID, Quantity: left})
				amount += left * it.Price
			}
		}
		if len(units) == 0 {
			return nil, 0, ErrNothingToRefund
		}
		return units, amount, nil
	}
	for _, r := range items {
		it, ok := lines[r.SKUID]
		if !ok {
			return nil, 0, ErrRefundExceeds.WithDetail("SKU %d is not in the order", r.SKUID)
		}
		if left := it.Quantity - it.RefundedQuantity; r.Quantity > left {
			return nil, 0, ErrRefundExceeds.WithDetail("SKU %d: %d units asked, %d left to refund", r.SKUID,
				r.Quantity, left)
		}
		amount += r.Quantity * it.Price
	}
	return items, amount, nil
}

// applyUnits adds refunded units to o's lines and returns how many units are left.
func applyUnits(o *Order, units []RefundItem) int64 {
	by := make(map[int64]int64, len(units))
	for _, u := range units {
		by[u.SKUID] = u.Quantity
	}
	var left int64
	for i := range o.Items {
		o.Items[i].RefundedQuantity += by[o.Items[i].SKUID]
		left += o.Items[i].Quantity - o.Items[i].RefundedQuantity
	}
	return left
}

type refundRow struct {
	ID              int64     `db:"id"`
	OrderID         int64     `db:"order_id"`
	Amount          int64     `db:"amount"`
	Items           string    `db:"items"`
	Reason          string    `db:"reason"`
	AfterCompletion bool      `db:"after_completion"`
	CreatedAt       time.Time `db:"created_at"`
}

// insertRefund records a refund carried out (in the transaction that applies it to the
// order); a second insert of the same refund ID is a no-op reported as false.
func (st *store) insertRefund(ctx context.Context, db *sqldb.DB, r Refund) (bool, error) {
	items, err := json.Marshal(r.Items)
	if err != nil {
		return false, err
	}
	res, err := sqldb.Ext(ctx, db).ExecContext(ctx, `INSERT IGNORE INTO order_refunds
		(id, order_id, amount, items, reason, after_completion, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.OrderID, r.Amount, string(items), r.Reason, r.AfterCompletion, r.CreatedAt)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// fillRefunds loads the refunds of orders (all on db), oldest first.
func (st *store) fillRefunds(ctx context.Context, db *sqldb.DB, orders []Order) error {
	if len(orders) == 0 {
		return nil
	}
	args := make([]any, len(orders))
	idx := make(map[int64]int, len(orders))
	for i, o := range orders {
		args[i] = o.ID
		idx[o.ID] = i
		orders[i].Refunds = []Refund{}
	}
	var rows []refundRow
	if err := sqlx.SelectContext(ctx, sqldb.Ext(ctx, db), &rows, `SELECT id, order_id, amount, items, reason,
		after_completion, created_at FROM order_refunds WHERE order_id IN (?`+strings.Repeat(", ?", len(orders)-1)+`)
		ORDER BY order_id, created_at, id`, args...); err != nil {
		return err
	}
	for _, r := range rows {
		f := Refund{ID: r.ID, OrderID: r.OrderID, Amount: r.Amount, Reason: r.Reason,
			AfterCompletion: r.AfterCompletion, CreatedAt: r.CreatedAt}
		if err := json.Unmarshal([]byte(r.Items), &f.Items); err != nil {
			return err
		}
		i := idx[r.OrderID]
		orders[i].Refunds = append(orders[i].Refunds, f)
	}
	return nil
}

// completed lists orders that ever completed, by ascending ID after afterID.
func (st *store) completed(ctx context.Context, db *sqldb.DB, afterID int64, limit int) ([]Order, error) {
	var rows []orderRow
	if err := sqlx.SelectContext(ctx, sqldb.Ext(ctx, db), &rows, `SELECT `+orderColumns+` FROM order_orders
		WHERE completed_at IS NOT NULL AND id > ? ORDER BY id LIMIT ?`, afterID, limit); err != nil {
		return nil, err
	}
	return toOrders(rows)
}

// setRefundedQuantities writes the lines' refunded units (cumulative) of order o.
func (st *store) setRefundedQuantities(ctx context.Context, db *sqldb.DB, o Order) error {
	for _, it := range o.Items {
		if _, err := sqldb.Ext(ctx, db).ExecContext(ctx, `UPDATE order_items SET refunded_quantity = ?
			WHERE order_id = ? AND created_at = ? AND sku_id = ?`, it.RefundedQuantity, o.ID, o.CreatedAt, it.SKUID); err != nil {
			return err
		}
	}
	return nil
}

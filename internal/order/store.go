package order

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mallhq/mall/internal/platform/sqldb"
)

// store is the module's SQL; every method takes the physical database the rows live on.
type store struct{}

const orderColumns = `id, created_at, checkout_id, buyer_id, merchant_id, status, prev_status, total_amount,
	currency, address, carrier, tracking_no, refund_reason, refund_id, stock_lost, expires_at, paid_at, shipped_at, completed_at, updated_at,
	refund_rejected_at, refunded_amount, refund_items, flash_sale_id`

type orderRow struct {
	ID           int64        `db:"id"`
	CreatedAt    time.Time    `db:"created_at"`
	CheckoutID   int64        `db:"checkout_id"`
	BuyerID      int64        `db:"buyer_id"`
	MerchantID   int64        `db:"merchant_id"`
	Status       string       `db:"status"`
	PrevStatus   string       `db:"prev_status"`
	TotalAmount  int64        `db:"total_amount"`
	Currency     string       `db:"currency"`
	Address      string       `db:"address"`
	Carrier      string       `db:"carrier"`
	TrackingNo   string       `db:"tracking_no"`
	RefundReason string       `db:"refund_reason"`
	RefundID     int64        `db:"refund_id"`
	StockLost    bool         `db:"stock_lost"`
	ExpiresAt    time.Time    `db:"expires_at"`
	PaidAt       sql.NullTime `db:"paid_at"`
	ShippedAt    sql.NullTime `db:"shipped_at"`
	CompletedAt  sql.NullTime `db:"completed_at"`
	UpdatedAt    time.Time    `db:"updated_at"`
	// RefundRejectedAt is NULL unless the latest refund request was rejected and not escalated.
	RefundRejectedAt sql.NullTime   `db:"refund_rejected_at"`
	RefundedAmount   int64          `db:"refunded_amount"`
	RefundItems      sql.NullString `db:"refund_items"`
	FlashSaleID      int64          `db:"flash_sale_id"`
}

func (r orderRow) order() (Order, error) {
	o := Order{ID: r.ID, CreatedAt: r.CreatedAt, CheckoutID: r.CheckoutID, BuyerID: r.BuyerID, MerchantID: r.MerchantID,
		Status: Status(r.Status), PrevStatus: Status(r.PrevStatus), TotalAmount: r.TotalAmount, Currency: r.Currency,
		Carrier: r.Carrier, TrackingNo: r.TrackingNo, RefundReason: r.RefundReason, RefundID: r.RefundID,
		StockLost: r.StockLost, ExpiresAt: r.ExpiresAt, UpdatedAt: r.UpdatedAt, RefundedAmount: r.RefundedAmount,
		FlashSaleID: r.FlashSaleID}
	if r.RefundItems.Valid && r.RefundItems.String != "" {
		if err := json.Unmarshal([]byte(r.RefundItems.String), &o.RefundItems); err != nil {
			return Order{}, err
		}
	}
	if r.PaidAt.Valid {
		o.PaidAt = r.PaidAt.Time
	}
	if r.ShippedAt.Valid {
		o.ShippedAt = r.ShippedAt.Time
	}
	if r.CompletedAt.Valid {
		o.CompletedAt = r.CompletedAt.Time
	}
	if r.RefundRejectedAt.Valid {
		o.RefundRejectedAt = r.RefundRejectedAt.Time
	}
	if err := json.Unmarshal([]byte(r.Address), &o.Address); err != nil {
		return Order{}, err
	}
	return o, nil
}

func toOrders(rows []orderRow) ([]Order, error) {
	out := make([]Order, 0, len(rows))
	for _, r := range rows {
		o, err := r.order()
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

func (st *store) insertCheckout(ctx context.Context, db *sqldb.DB, c Checkout, key string) error {
	var k any
	if key != "" {
		k = key
	}
	_, err := sqldb.Ext(ctx, db).ExecContext(ctx, `INSERT INTO order_checkouts
		(id, buyer_id, total_amount, currency, expires_at, created_at, idem_key) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.BuyerID, c.TotalAmount, c.Currency, c.ExpiresAt, c.CreatedAt, k)
	return err
}

// checkoutByKey returns the buyer's checkout placed with the idempotency key, with its
// orders and their items; found is false when there is none.
func (st *store) checkoutByKey(ctx context.Context, db *sqldb.DB, buyerID int64, key string) (c Checkout, found bool, err error) {
	var row struct {
		ID          int64     `db:"id"`
		TotalAmount int64     `db:"total_amount"`
		Currency    string    `db:"currency"`
		ExpiresAt   time.Time `db:"expires_at"`
		CreatedAt   time.Time `db:"created_at"`
	}
	err = sqlx.GetContext(ctx, sqldb.Ext(ctx, db), &row, `SELECT id, total_amount, currency, expires_at, created_at
		FROM order_checkouts WHERE buyer_id = ? AND idem_key = ?`, buyerID, key)
	if errors.Is(err, sql.ErrNoRows) {
		return Checkout{}, false, nil
	}
	if err != nil {
		return Checkout{}, false, err
	}
	c = Checkout{ID: row.ID, BuyerID: buyerID, TotalAmount: row.TotalAmount, Currency: row.Currency,
		ExpiresAt: row.ExpiresAt, CreatedAt: row.CreatedAt}
	if c.Orders, err = st.checkoutOrders(ctx, db, c.ID, false); err != nil {
		return Checkout{}, false, err
	}
	return c, true, st.fillItems(ctx, db, c.Orders)
}

func (st *store) insertOrder(ctx context.Context, db *sqldb.DB, o Order) error {
	return st.insertOrders(ctx, db, []Order{o})
}

// insertOrders writes orders and their items: one statement for the orders, one for the
// items (round trips are what a checkout's transaction waits on).
func (st *store) insertOrders(ctx context.Context, db *sqldb.DB, orders []Order) error {
	const orderCols = 12
	const itemCols = 10
	oargs := make([]any, 0, orderCols*len(orders))
	var iargs []any
	for _, o := range orders {
		addr, err := json.Marshal(o.Address)
		if err != nil {
			return err
		}
		oargs = append(oargs, o.ID, o.CreatedAt, o.CheckoutID, o.BuyerID, o.MerchantID, o.Status, o.TotalAmount,
			o.Currency, string(addr), o.ExpiresAt, o.UpdatedAt, o.FlashSaleID)
		for _, it := range o.Items {
			attrs, err := json.Marshal(nonNil(it.Attrs))
			if err != nil {
				return err
			}
			iargs = append(iargs, o.ID, it.SKUID, o.CreatedAt, it.ProductID, it.MerchantID, it.Title, string(attrs),
				it.Price, it.Quantity, it.CommissionRateBP)
		}
	}
	ext := sqldb.Ext(ctx, db)
	if _, err := ext.ExecContext(ctx, `INSERT INTO order_orders
		(id, created_at, checkout_id, buyer_id, merchant_id, status, total_amount, currency, address, expires_at, updated_at,
		flash_sale_id)
		VALUES `+rowsOf(orderCols, len(orders)), oargs...); err != nil {
		return err
	}
	if len(iargs) == 0 {
		return nil
	}
	_, err := ext.ExecContext(ctx, `INSERT INTO order_items
		(order_id, sku_id, created_at, product_id, merchant_id, title, attrs, price, quantity, commission_rate_bp)
		VALUES `+rowsOf(itemCols, len(iargs)/itemCols), iargs...)
	return err
}

// rowsOf is the VALUES list of n rows of cols placeholders each.
func rowsOf(cols, n int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// scope narrows an order lookup to its buyer or its merchant (0: no narrowing, for the
// module's own workers).
type scope struct{ buyerID, merchantID int64 }

func (sc scope) where() (string, []any) {
	switch {
	case sc.buyerID != 0:
		return ` AND buyer_id = ?`, []any{sc.buyerID}
	case sc.merchantID != 0:
		return ` AND merchant_id = ?`, []any{sc.merchantID}
	}
	return "", nil
}

// order reads one order (lock: FOR UPDATE, inside a transaction).
func (st *store) order(ctx context.Context, db *sqldb.DB, id int64, sc scope, lock bool) (Order, error) {
	w, args := sc.where()
	q := `SELECT ` + orderColumns + ` FROM order_orders WHERE id = ?` + w
	if lock {
		q += ` FOR UPDATE`
	}
	var r orderRow
	if err := sqlx.GetContext(ctx, sqldb.Ext(ctx, db), &r, q, append([]any{id}, args...)...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Order{}, ErrNotFound
		}
		return Order{}, err
	}
	return r.order()
}

// updateOrder writes o's mutable columns when the row is still in status from (CAS).
func (st *store) updateOrder(ctx context.Context, db *sqldb.DB, o Order, from Status) (bool, error) {
	res, err := sqldb.Ext(ctx, db).ExecContext(ctx, `UPDATE order_orders SET status = ?, prev_status = ?, carrier = ?,
		tracking_no = ?, refund_reason = ?, refund_id = ?, stock_lost = ?, paid_at = ?, shipped_at = ?,
		completed_at = ?, updated_at = ?, refund_rejected_at = ?, refunded_amount = ?, refund_items = ?
		WHERE id = ? AND created_at = ? AND status = ?`,
		o.Status, o.PrevStatus, o.Carrier, o.TrackingNo, o.RefundReason, o.RefundID, o.StockLost, nullTime(o.PaidAt),
		nullTime(o.ShippedAt), nullTime(o.CompletedAt), o.UpdatedAt, nullTime(o.RefundRejectedAt), o.RefundedAmount,
		refundItemsJSON(o.RefundItems), o.ID, o.CreatedAt, from)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// nullTime is NULL for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func (st *store) checkoutOrders(ctx context.Context, db *sqldb.DB, checkoutID int64, lock bool) ([]Order, error) {
	q := `SELECT ` + orderColumns + ` FROM order_orders WHERE checkout_id = ? ORDER BY id`
	if lock {
		q += ` FOR UPDATE`
	}
	var rows []orderRow
	if err := sqlx.SelectContext(ctx, sqldb.Ext(ctx, db), &rows, q, checkoutID); err != nil {
		return nil, err
	}
	return toOrders(rows)
}

// list reads orders of a buyer or merchant newest first, before the cursor.
func (st *store) list(ctx context.Context, db *sqldb.DB, sc scope, q ListQuery, limit int) ([]Order, error) {
	w, args := sc.where()
	cond := `1 = 1` + w
	if q.Status != "" {
		cond += ` AND status = ?`
		args = append(args, q.Status)
	}
	if q.Before != nil {
		cond += ` AND (created_at < ? OR (created_at = ? AND id < ?))`
		args = append(args, q.Before.CreatedAt, q.Before.CreatedAt, q.Before.ID)
	}
	args = append(args, limit)
	var rows []orderRow
	if err := sqlx.SelectContext(ctx, sqldb.Ext(ctx, db), &rows, `SELECT `+orderColumns+` FROM order_orders
		WHERE `+cond+` ORDER BY created_at DESC, id DESC LIMIT ?`, args...); err != nil {
		return nil, err
	}
	return toOrders(rows)
}

type itemRow struct {
	OrderID    int64  `db:"order_id"`
	SKUID      int64  `db:"sku_id"`
	ProductID  int64  `db:"product_id"`
	MerchantID int64  `db:"merchant_id"`
	Title      string `db:"title"`
	Attrs      string `db:"attrs"`
	Price      int64  `db:"price"`
	Quantity   int64  `db:"quantity"`
	Commission int    `db:"commission_rate_bp"`
	Refunded   int64  `db:"refunded_quantity"`
}

// fillItems loads the items of orders (all on db).
func (st *store) fillItems(ctx context.Context, db *sqldb.DB, orders []Order) error {
	if len(orders) == 0 {
		return nil
	}
	args := make([]any, len(orders))
	for i, o := range orders {
		args[i] = o.ID
	}
	var rows []itemRow
	if err := sqlx.SelectContext(ctx, sqldb.Ext(ctx, db), &rows, `SELECT order_id, sku_id, product_id, merchant_id,
		title, attrs, price, quantity, commission_rate_bp, refunded_quantity FROM order_items WHERE order_id IN (?`+strings.Repeat(", ?", len(orders)-1)+`)
		ORDER BY order_id, sku_id`, args...); err != nil {
		return err
	}
	idx := make(map[int64]int, len(orders))
	for i, o := range orders {
		idx[o.ID] = i
		orders[i].Items = []Item{}
	}
	for _, r := range rows {
		it := Item{SKUID: r.SKUID, ProductID: r.ProductID, MerchantID: r.MerchantID, Title: r.Title, Price: r.Price,
			Quantity: r.Quantity, CommissionRateBP: r.Commission, RefundedQuantity: r.Refunded}
		if err := json.Unmarshal([]byte(r.Attrs), &it.Attrs); err != nil {
			return err
		}
		i := idx[r.OrderID]
		orders[i].Items = append(orders[i].Items, it)
	}
	return nil
}

// expired lists unpaid orders past their deadline.
func (st *store) expired(ctx context.Context, db *sqldb.DB, now time.Time, limit int) ([]Order, error) {
	var rows []orderRow
	if err := sqlx.SelectContext(ctx, sqldb.Ext(ctx, db), &rows, `SELECT `+orderColumns+` FROM order_orders
		WHERE status = 'pending_payment' AND expires_at < ? ORDER BY expires_at LIMIT ?`, now, limit); err != nil {
		return nil, err
	}
	return toOrders(rows)
}

// dueForCompletion lists shipped orders shipped before cutoff, oldest first
// (ix_order_orders_shipped).
func (st *store) dueForCompletion(ctx context.Context, db *sqldb.DB, cutoff time.Time, limit int) ([]Order, error) {
	var rows []orderRow
	if err := sqlx.SelectContext(ctx, sqldb.Ext(ctx, db), &rows, `SELECT `+orderColumns+` FROM order_orders
		WHERE status = 'shipped' AND shipped_at < ? ORDER BY shipped_at LIMIT ?`, cutoff, limit); err != nil {
		return nil, err
	}
	return toOrders(rows)
}

// Checkouts.

type checkoutRow struct {
	ID          int64     `db:"id"`
	BuyerID     int64     `db:"buyer_id"`
	TotalAmount int64     `db:"total_amount"`
	Currency    string    `db:"currency"`
	ExpiresAt   time.Time `db:"expires_at"`
	CreatedAt   time.Time `db:"created_at"`
}

func (st *store) checkout(ctx context.Context, db *sqldb.DB, id, buyerID int64, lock bool) (Checkout, error) {
	q := `SELECT id, buyer_id, total_amount, currency, expires_at, created_at FROM order_checkouts WHERE id = ? AND buyer_id = ?`
	if lock {
		q += ` FOR UPDATE`
	}
	var r checkoutRow
	if err := sqlx.GetContext(ctx, sqldb.Ext(ctx, db), &r, q, id, buyerID); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Checkout{}, ErrNotFound
		}
		return Checkout{}, err
	}
	return Checkout{ID: r.ID, BuyerID: r.BuyerID, TotalAmount: r.TotalAmount, Currency: r.Currency,
		ExpiresAt: r.ExpiresAt, CreatedAt: r.CreatedAt}, nil
}

// Payments.

const paymentColumns = `id, checkout_id, buyer_id, provider, amount, currency, status, pay_url, trade_no, refunded,
	paid_at, created_at`

type paymentRow struct {
	ID         int64        `db:"id"`
	CheckoutID int64        `db:"checkout_id"`
	BuyerID    int64        `db:"buyer_id"`
	Provider   string       `db:"provider"`
	Amount     int64        `db:"amount"`
	Currency   string       `db:"currency"`
	Status     string       `db:"status"`
	PayURL     string       `db:"pay_url"`
	TradeNo    string       `db:"trade_no"`
	Refunded   int64        `db:"refunded"`
	PaidAt     sql.NullTime `db:"paid_at"`
	CreatedAt  time.Time    `db:"created_at"`
}

func (r paymentRow) payment() Payment {
	p := Payment{ID: r.ID, CheckoutID: r.CheckoutID, BuyerID: r.BuyerID, Provider: r.Provider, Amount: r.Amount,
		Currency: r.Currency, Status: PaymentStatus(r.Status), PayURL: r.PayURL, TradeNo: r.TradeNo,
		Refunded: r.Refunded, CreatedAt: r.CreatedAt}
	if r.PaidAt.Valid {
		p.PaidAt = r.PaidAt.Time
	}
	return p
}

func (st *store) insertPayment(ctx context.Context, db *sqldb.DB, p Payment) error {
	_, err := sqldb.Ext(ctx, db).ExecContext(ctx, `INSERT INTO order_payments
		(id, checkout_id, buyer_id, provider, amount, currency, status, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.CheckoutID, p.BuyerID, p.Provider, p.Amount, p.Currency, p.Status, p.CreatedAt, p.CreatedAt)
	return err
}

// payment reads one payment; buyerID 0 does not narrow.
func (st *store) payment(ctx context.Context, db *sqldb.DB, id, buyerID int64, lock bool) (Payment, error) {
	q := `SELECT ` + paymentColumns + ` FROM order_payments WHERE id = ?`
	args := []any{id}
	if buyerID != 0 {
		q += ` AND buyer_id = ?`
		args = append(args, buyerID)
	}
	if lock {
		q += ` FOR UPDATE`
	}
	var r paymentRow
	if err := sqlx.GetContext(ctx, sqldb.Ext(ctx, db), &r, q, args...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Payment{}, ErrPaymentNotFound
		}
		return Payment{}, err
	}
	return r.payment(), nil
}

// checkoutPayments lists a checkout's payments in a status ("" for all).
func (st *store) checkoutPayments(ctx context.Context, db *sqldb.DB, checkoutID int64, status PaymentStatus) ([]Payment, error) {
	q := `SELECT ` + paymentColumns + ` FROM order_payments WHERE checkout_id = ?`
	args := []any{checkoutID}
	if status != "" {
		q += ` AND status = ?`
		args = append(args, status)
	}
	var rows []paymentRow
	if err := sqlx.SelectContext(ctx, sqldb.Ext(ctx, db), &rows, q+` ORDER BY id`, args...); err != nil {
		return nil, err
	}
	out := make([]Payment, len(rows))
	for i, r := range rows {
		out[i] = r.payment()
	}
	return out, nil
}

func (st *store) setPayURL(ctx context.Context, db *sqldb.DB, id int64, url string) error {
	_, err := sqldb.Ext(ctx, db).ExecContext(ctx, `UPDATE order_payments SET pay_url = ? WHERE id = ?`, url, id)
	return err
}

func (st *store) setPaymentStatus(ctx context.Context, db *sqldb.DB, id int64, from, to PaymentStatus, now time.Time) (bool, error) {
	res, err := sqldb.Ext(ctx, db).ExecContext(ctx, `UPDATE order_payments SET status = ?, updated_at = ?
		WHERE id = ? AND status = ?`, to, now, id, from)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// markPaid is the CAS pending -> succeeded of a notification.
func (st *store) markPaid(ctx context.Context, db *sqldb.DB, id int64, tradeNo, notifyID string, paidAt, now time.Time) (bool, error) {
	res, err := sqldb.Ext(ctx, db).ExecContext(ctx, `UPDATE order_payments SET status = 'succeeded', trade_no = ?,
		notify_id = ?, paid_at = ?, updated_at = ? WHERE id = ? AND status = 'pending'`, tradeNo, notifyID, paidAt, now, id)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// paymentOrder is one order a payment covers (order_payment_orders) and the amount of it
// the payment pays.
type paymentOrder struct {
	PaymentID int64 `db:"payment_id"`
	OrderID   int64 `db:"order_id"`
	Amount    int64 `db:"amount"`
}

// insertPaymentOrders writes the payment's set of orders (in the payment's transaction).
func (st *store) insertPaymentOrders(ctx context.Context, db *sqldb.DB, rows []paymentOrder) error {
	args := make([]any, 0, 3*len(rows))
	for _, r := range rows {
		args = append(args, r.PaymentID, r.OrderID, r.Amount)
	}
	_, err := sqldb.Ext(ctx, db).ExecContext(ctx, `INSERT INTO order_payment_orders (payment_id, order_id, amount)
		VALUES `+rowsOf(3, len(rows)), args...)
	return err
}

// paymentOrders reads the orders a payment covers.
func (st *store) paymentOrders(ctx context.Context, db *sqldb.DB, paymentID int64) ([]paymentOrder, error) {
	var rows []paymentOrder
	err := sqlx.SelectContext(ctx, sqldb.Ext(ctx, db), &rows, `SELECT payment_id, order_id, amount
		FROM order_payment_orders WHERE payment_id = ? ORDER BY order_id`, paymentID)
	return rows, err
}

// paidPayment is the condition on order_payments p of a payment that paid its set: it
// succeeded (markPaid sets paid_at), possibly refunded since. A failed payment may be
// refunded too (a mismatch's compensation) but never paid anything.
const paidPayment = `p.status IN ('succeeded', 'refunded') AND p.paid_at IS NOT NULL`

// paidOrders is the set of the checkout's orders covered by a payment that paid them.
func (st *store) paidOrders(ctx context.Context, db *sqldb.DB, checkoutID int64) (map[int64]bool, error) {
	var ids []int64
	if err := sqlx.SelectContext(ctx, sqldb.Ext(ctx, db), &ids, `SELECT po.order_id FROM order_payment_orders po
		JOIN order_payments p ON p.id = po.payment_id
		WHERE p.checkout_id = ? AND `+paidPayment, checkoutID); err != nil {
		return nil, err
	}
	out := make(map[int64]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// orderPayment is the payment that paid for an order (paidPayment) and the amount of it that is the order's; ErrPaymentNotFound when none did.
func (st *store) orderPayment(ctx context.Context, db *sqldb.DB, orderID int64) (Payment, int64, error) {
	var r struct {
		paymentRow
		Covered int64 `db:"covered"`
	}
	err := sqlx.GetContext(ctx, sqldb.Ext(ctx, db), &r, `SELECT p.id, p.checkout_id, p.buyer_id, p.provider, p.amount,
		p.currency, p.status, p.pay_url, p.trade_no, p.refunded, p.paid_at, p.created_at, po.amount AS covered
		FROM order_payment_orders po JOIN order_payments p ON p.id = po.payment_id
		WHERE po.order_id = ? AND `+paidPayment+` ORDER BY p.id LIMIT 1`, orderID)
	if errors.Is(err, sql.ErrNoRows) {
		return Payment{}, 0, ErrPaymentNotFound
	}
	if err != nil {
		return Payment{}, 0, err
	}
	return r.paymentRow.payment(), r.Covered, nil
}

// notificationRow is one applied payment notification (order_payment_notifications).
type notificationRow struct {
	Provider   string
	NotifyID   string
	PaymentID  int64
	Status     string
	Amount     int64
	Mismatch   bool
	ReceivedAt time.Time
}

// recordNotification inserts the dedup row of a notification; false when (provider,
// notify_id) is already there: the notification was applied before.
func (st *store) recordNotification(ctx context.Context, db *sqldb.DB, r notificationRow) (bool, error) {
	_, err := sqldb.Ext(ctx, db).ExecContext(ctx, `INSERT INTO order_payment_notifications
		(provider, notify_id, payment_id, status, amount, mismatch, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.Provider, r.NotifyID, r.PaymentID, r.Status, r.Amount, r.Mismatch, r.ReceivedAt)
	if sqldb.IsDuplicate(err) {
		return false, nil
	}
	return err == nil, err
}

func (st *store) addRefunded(ctx context.Context, db *sqldb.DB, id, refundedTotal int64, now time.Time) error {
	_, err := sqldb.Ext(ctx, db).ExecContext(ctx, `UPDATE order_payments SET refunded = GREATEST(refunded, ?),
		status = IF(GREATEST(refunded, ?) >= amount, 'refunded', status), updated_at = ? WHERE id = ?`,
		refundedTotal, refundedTotal, now, id)
	return err
}

// Cart.

type cartRow struct {
	SKUID     int64     `db:"sku_id"`
	Quantity  int64     `db:"quantity"`
	UpdatedAt time.Time `db:"updated_at"`
}

func (st *store) cart(ctx context.Context, db *sqldb.DB, buyerID int64) ([]cartRow, error) {
	var rows []cartRow
	err := sqlx.SelectContext(ctx, sqldb.Ext(ctx, db), &rows, `SELECT sku_id, quantity, updated_at FROM order_cart_items
		WHERE buyer_id = ? ORDER BY created_at DESC, sku_id`, buyerID)
	return rows, err
}

// cartSlot counts the buyer's cart lines and reports whether skuID is one of them, with
// the buyer's lines and the gaps between them locked until the transaction ends (next-key
// locks: the transaction must stay REPEATABLE READ): a concurrent add of another SKU
// waits, so the count stays exact up to the insert. One
// index range scan, no rows sent back (the whole cart is not read to check one SKU).
func (st *store) cartSlot(ctx context.Context, db *sqldb.DB, buyerID, skuID int64) (n int, inCart bool, err error) {
	var r struct {
		N      int  `db:"n"`
		InCart bool `db:"in_cart"`
	}
	err = sqlx.GetContext(ctx, sqldb.Ext(ctx, db), &r, `SELECT COUNT(*) AS n, COALESCE(MAX(sku_id = ?), 0) AS in_cart
		FROM order_cart_items WHERE buyer_id = ? FOR UPDATE`, skuID, buyerID)
	return r.N, r.InCart, err
}

func (st *store) upsertCart(ctx context.Context, db *sqldb.DB, buyerID, skuID, qty int64, now time.Time) error {
	_, err := sqldb.Ext(ctx, db).ExecContext(ctx, `INSERT INTO order_cart_items (buyer_id, sku_id, quantity, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE quantity = VALUES(quantity), updated_at = VALUES(updated_at)`,
		buyerID, skuID, qty, now, now)
	return err
}

// takeFromCart subtracts ordered quantities (SKU -> units) from the buyer's cart lines;
// a line left with 0 or fewer units is deleted (first, as the quantity > 0 check forbids
// reaching 0) and SKUs not in the cart are ignored.
func (st *store) takeFromCart(ctx context.Context, db *sqldb.DB, buyerID int64, units map[int64]int64, now time.Time) error {
	if len(units) == 0 {
		return nil
	}
	ext := sqldb.Ext(ctx, db)
	ids := make([]any, 0, len(units))
	byCase := make([]any, 0, 2*len(units))
	for sku, n := range units {
		ids = append(ids, sku)
		byCase = append(byCase, sku, n)
	}
	ordered := "CASE sku_id" + strings.Repeat(" WHEN ? THEN ?", len(units)) + " END"
	in := "(?" + strings.Repeat(", ?", len(units)-1) + ")"
	args := append(append([]any{buyerID}, ids...), byCase...)
	if _, err := ext.ExecContext(ctx, `DELETE FROM order_cart_items WHERE buyer_id = ? AND sku_id IN `+in+`
		AND quantity <= `+ordered, args...); err != nil {
		return err
	}
	args = append(append(slices.Clone(byCase), now, buyerID), ids...)
	_, err := ext.ExecContext(ctx, `UPDATE order_cart_items SET quantity = quantity - `+ordered+`, updated_at = ?
		WHERE buyer_id = ? AND sku_id IN `+in, args...)
	return err
}

func (st *store) deleteCart(ctx context.Context, db *sqldb.DB, buyerID, skuID int64) error {
	_, err := sqldb.Ext(ctx, db).ExecContext(ctx, `DELETE FROM order_cart_items WHERE buyer_id = ? AND sku_id = ?`, buyerID, skuID)
	return err
}

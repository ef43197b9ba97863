package auction

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/text"
)

// store is the module's SQL on db.main; every method runs in the transaction in ctx when
// there is one.
type store struct{ db *sqldb.DB }

func (s *store) ext(ctx context.Context) sqlx.ExtContext { return sqldb.Ext(ctx, s.db) }

type lotRow struct {
	ID            int64        `db:"id"`
	MerchantID    int64        `db:"merchant_id"`
	ProductID     int64        `db:"product_id"`
	SKUID         int64        `db:"sku_id"`
	Title         string       `db:"title"`
	Status        string       `db:"status"`
	StartPrice    int64        `db:"start_price"`
	Increment     int64        `db:"increment"`
	Ladder        string       `db:"ladder"`
	ReservePrice  int64        `db:"reserve_price"`
	StartsAt      time.Time    `db:"starts_at"`
	EndsAt        time.Time    `db:"ends_at"`
	ExtendWindowS int64        `db:"extend_window_s"`
	ExtendS       int64        `db:"extend_s"`
	CurrentPrice  int64        `db:"current_price"`
	BidCount      int64        `db:"bid_count"`
	LeaderID      int64        `db:"leader_id"`
	LeaderMax     int64        `db:"leader_max"`
	Version       int64        `db:"version"`
	WinnerOrderID int64        `db:"winner_order_id"`
	OrderState    string       `db:"order_state"`
	OrderError    string       `db:"order_error"`
	Announced     bool         `db:"announced"`
	EndedAt       sql.NullTime `db:"ended_at"`
	CreatedAt     time.Time    `db:"created_at"`
	UpdatedAt     time.Time    `db:"updated_at"`
}

func (r lotRow) lot() Lot {
	l := Lot{ID: r.ID, MerchantID: r.MerchantID, ProductID: r.ProductID, SKUID: r.SKUID, Title: r.Title,
		Status: Status(r.Status), StartPrice: r.StartPrice, Increment: r.Increment, ReservePrice: r.ReservePrice,
		StartsAt: r.StartsAt.UTC(), EndsAt: r.EndsAt.UTC(), ExtendWindow: time.Duration(r.ExtendWindowS) * time.Second,
		Extend: time.Duration(r.ExtendS) * time.Second, CurrentPrice: r.CurrentPrice, BidCount: r.BidCount,
		LeaderID: r.LeaderID, LeaderMax: r.LeaderMax, Version: r.Version, WinnerOrderID: r.WinnerOrderID,
		OrderState: OrderState(r.OrderState), OrderError: r.OrderError, Announced: r.Announced, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	if r.EndedAt.Valid {
		l.EndedAt = r.EndedAt.Time.UTC()
	}
	_ = json.Unmarshal([]byte(r.Ladder), &l.Ladder) // written by us; an empty ladder is "[]"
	return l
}

const lotColumns = `id, merchant_id, product_id, sku_id, title, status, start_price, increment, ladder, reserve_price,
	starts_at, ends_at, extend_window_s, extend_s, current_price, bid_count, leader_id, leader_max, version,
	winner_order_id, order_state, order_error, announced, ended_at, created_at, updated_at`

func (s *store) insertLot(ctx context.Context, l Lot) error {
	ladder, err := json.Marshal(nonNilBands(l.Ladder))
	if err != nil {
		return err
	}
	_, err = s.ext(ctx).ExecContext(ctx, `INSERT INTO auction_lots (id, merchant_id, product_id, sku_id, title, status,
		start_price, increment, ladder, reserve_price, starts_at, ends_at, extend_window_s, extend_s, version,
		order_state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		l.ID, l.MerchantID, l.ProductID, l.SKUID, l.Title, l.Status, l.StartPrice, l.Increment, string(ladder),
		l.ReservePrice, l.StartsAt, l.EndsAt, int64(l.ExtendWindow/time.Second), int64(l.Extend/time.Second),
		l.Version, l.OrderState, l.CreatedAt, l.UpdatedAt)
	return err
}

func nonNilBands(b []Band) []Band {
	if b == nil {
		return []Band{}
	}
	return b
}

func (s *store) lot(ctx context.Context, id int64, lock bool) (Lot, error) {
	q := `SELECT ` + lotColumns + ` FROM auction_lots WHERE id = ?`
	if lock {
		q += ` FOR UPDATE`
	}
	var r lotRow
	if err := sqlx.GetContext(ctx, s.ext(ctx), &r, q, id); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Lot{}, ErrNotFound
		}
		return Lot{}, err
	}
	return r.lot(), nil
}

// lockLotSkip locks a lot without waiting for another transaction holding it (the scheduler
// skips a lot a bid or another replica is busy with; the next tick takes it).
func (s *store) lockLotSkip(ctx context.Context, id int64) (Lot, bool, error) {
	var r lotRow
	err := sqlx.GetContext(ctx, s.ext(ctx), &r, `SELECT `+lotColumns+` FROM auction_lots WHERE id = ? FOR UPDATE SKIP LOCKED`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Lot{}, false, nil
	}
	if err != nil {
		return Lot{}, false, err
	}
	return r.lot(), true, nil
}

func (s *store) list(ctx context.Context, status Status, limit int, before int64) ([]Lot, error) {
	q := `SELECT ` + lotColumns + ` FROM auction_lots WHERE 1 = 1`
	var args []any
	if status != "" {
		q += ` AND status = ?`
		args = append(args, status)
	}
	if before > 0 {
		q += ` AND id < ?`
		args = append(args, before)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	var rows []lotRow
	if err := sqlx.SelectContext(ctx, s.ext(ctx), &rows, q, args...); err != nil {
		return nil, err
	}
	out := make([]Lot, len(rows))
	for i, r := range rows {
		out[i] = r.lot()
	}
	return out, nil
}

// updateBid writes a bid's effect on the locked lot, guarded by the version read.
func (s *store) updateBid(ctx context.Context, l Lot, prevVersion int64) (bool, error) {
	res, err := s.ext(ctx).ExecContext(ctx, `UPDATE auction_lots SET status = ?, current_price = ?, bid_count = ?,
		leader_id = ?, leader_max = ?, ends_at = ?, version = ?, updated_at = ? WHERE id = ? AND version = ?`,
		l.Status, l.CurrentPrice, l.BidCount, l.LeaderID, l.LeaderMax, l.EndsAt, l.Version, l.UpdatedAt, l.ID, prevVersion)
	return affected(res, err)
}

func affected(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// insertBids writes the rows in one statement (a batch's bids, at most a few hundred rows).
func (s *store) insertBids(ctx context.Context, bids []Bid) error {
	if len(bids) == 0 {
		return nil
	}
	args := make([]any, 0, 7*len(bids))
	for _, b := range bids {
		args = append(args, b.ID, b.LotID, b.Seq, b.BidderID, b.Amount, b.Kind, b.CreatedAt)
	}
	_, err := s.ext(ctx).ExecContext(ctx, `INSERT INTO auction_bids (id, lot_id, seq, bidder_id, amount, kind, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`+strings.Repeat(", (?, ?, ?, ?, ?, ?, ?)", len(bids)-1), args...)
	return err
}

type bidRow struct {
	ID        int64     `db:"id"`
	LotID     int64     `db:"lot_id"`
	Seq       int64     `db:"seq"`
	BidderID  int64     `db:"bidder_id"`
	Amount    int64     `db:"amount"`
	Kind      string    `db:"kind"`
	CreatedAt time.Time `db:"created_at"`
}

func (s *store) bids(ctx context.Context, lotID int64, limit int, before int64) ([]Bid, error) {
	q := `SELECT id, lot_id, seq, bidder_id, amount, kind, created_at FROM auction_bids WHERE lot_id = ?`
	args := []any{lotID}
	if before > 0 {
		q += ` AND seq < ?`
		args = append(args, before)
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, limit)
	var rows []bidRow
	if err := sqlx.SelectContext(ctx, s.ext(ctx), &rows, q, args...); err != nil {
		return nil, err
	}
	out := make([]Bid, len(rows))
	for i, r := range rows {
		out[i] = Bid{ID: r.ID, LotID: r.LotID, Seq: r.Seq, BidderID: r.BidderID, Amount: r.Amount, Kind: BidKind(r.Kind),
			CreatedAt: r.CreatedAt.UTC()}
	}
	return out, nil
}

// dueToStart and dueToEnd list the lots whose start or end is at or before now (the
// scheduler's work).
func (s *store) dueToStart(ctx context.Context, now time.Time, limit int) ([]int64, error) {
	var ids []int64
	err := sqlx.SelectContext(ctx, s.ext(ctx), &ids, `SELECT id FROM auction_lots WHERE status = 'scheduled' AND starts_at <= ?
		ORDER BY starts_at LIMIT ?`, now, limit)
	return ids, err
}

func (s *store) dueToEnd(ctx context.Context, now time.Time, limit int) ([]int64, error) {
	var ids []int64
	err := sqlx.SelectContext(ctx, s.ext(ctx), &ids, `SELECT id FROM auction_lots WHERE status IN ('scheduled', 'running')
		AND ends_at <= ? ORDER BY ends_at LIMIT ?`, now, limit)
	return ids, err
}

// unfinished lists ended lots whose order is owed or whose end was not announced.
func (s *store) unfinished(ctx context.Context, limit int) ([]int64, error) {
	var ids []int64
	err := sqlx.SelectContext(ctx, s.ext(ctx), &ids, `SELECT id FROM auction_lots WHERE status = 'ended'
		AND (order_state = 'pending' OR announced = 0) ORDER BY id LIMIT ?`, limit)
	return ids, err
}

func (s *store) start(ctx context.Context, id int64, now time.Time) (bool, error) {
	res, err := s.ext(ctx).ExecContext(ctx, `UPDATE auction_lots SET status = 'running', version = version + 1, updated_at = ?
		WHERE id = ? AND status = 'scheduled' AND starts_at <= ?`, now, id, now)
	return affected(res, err)
}

// end is the compare-and-set that ends a lot exactly once.
func (s *store) end(ctx context.Context, id int64, now time.Time, state OrderState, orderID int64) (bool, error) {
	res, err := s.ext(ctx).ExecContext(ctx, `UPDATE auction_lots SET status = 'ended', version = version + 1, ended_at = ?,
		order_state = ?, winner_order_id = ?, updated_at = ? WHERE id = ? AND status IN ('scheduled', 'running') AND ends_at <= ?`,
		now, state, orderID, now, id, now)
	return affected(res, err)
}

func (s *store) setOrderState(ctx context.Context, id int64, from, to OrderState, now time.Time) (bool, error) {
	res, err := s.ext(ctx).ExecContext(ctx, `UPDATE auction_lots SET order_state = ?, updated_at = ? WHERE id = ? AND order_state = ?`,
		to, now, id, from)
	return affected(res, err)
}

// claimOrder gives the caller the lot's pending order for ttl, so replicas do not place
// it at the same time (both would reserve the unit: the stock module's reservation is
// idempotent per order only once one has committed).
func (s *store) claimOrder(ctx context.Context, id int64, now time.Time, ttl time.Duration) (bool, error) {
	res, err := s.ext(ctx).ExecContext(ctx, `UPDATE auction_lots SET order_claimed_until = ? WHERE id = ? AND order_state = 'pending'
		AND (order_claimed_until IS NULL OR order_claimed_until < ?)`, now.Add(ttl), id, now)
	return affected(res, err)
}

func (s *store) releaseOrder(ctx context.Context, id int64) error {
	_, err := s.ext(ctx).ExecContext(ctx, `UPDATE auction_lots SET order_claimed_until = NULL WHERE id = ?`, id)
	return err
}

func (s *store) failOrder(ctx context.Context, id int64, reason string, now time.Time) error {
	reason = text.Truncate(reason, 255) // VARCHAR(255): at most 255 characters, so bytes fit
	_, err := s.ext(ctx).ExecContext(ctx, `UPDATE auction_lots SET order_state = 'failed', order_error = ?, updated_at = ?
		WHERE id = ? AND order_state = 'pending'`, reason, now, id)
	return err
}

func (s *store) setAnnounced(ctx context.Context, id int64) error {
	_, err := s.ext(ctx).ExecContext(ctx, `UPDATE auction_lots SET announced = 1 WHERE id = ?`, id)
	return err
}

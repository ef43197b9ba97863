package stock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mallhq/mall/internal/platform/sqldb"
)

// store is the module's SQL on db.main. Every method runs in the transaction in ctx when
// there is one. Writes are guarded conditional updates: the WHERE clause carries the owner
// (and, for reservations later, the arithmetic guard), and rows affected decides.
type store struct {
	cl *sqldb.Cluster
}

func (s *store) main(ctx context.Context) sqlx.ExtContext { return sqldb.Ext(ctx, s.cl.Main()) }

type levelRow struct {
	SKUID      int64     `db:"sku_id"`
	MerchantID int64     `db:"merchant_id"`
	OnHand     int64     `db:"on_hand"`
	Available  int64     `db:"available"`
	Reserved   int64     `db:"reserved"`
	Sold       int64     `db:"sold"`
	Version    int64     `db:"version"`
	UpdatedAt  time.Time `db:"updated_at"`
}

func (r levelRow) level() Level {
	return Level{SKUID: r.SKUID, MerchantID: r.MerchantID, OnHand: r.OnHand, Available: r.Available, Reserved: r.Reserved,
		Sold: r.Sold, Version: r.Version, UpdatedAt: r.UpdatedAt}
}

const levelColumns = `sku_id, merchant_id, on_hand, available, reserved, sold, version, updated_at`

const (
	qInsertLevel = `INSERT INTO stock_levels (sku_id, merchant_id, on_hand, available, reserved, sold, version, updated_at)
		VALUES (?, ?, ?, ?, 0, 0, 1, ?)`
	qOwner = `SELECT merchant_id FROM stock_levels WHERE sku_id = ?`
	// qSetAvailable is merchant-scoped: another merchant's SKU matches no row. MySQL assigns
	// left to right, so on_hand moves by the change of available before available is set.
	qSetAvailable = `UPDATE stock_levels SET on_hand = on_hand + ? - available, available = ?, version = version + 1, updated_at = ?
		WHERE sku_id = ? AND merchant_id = ?`
	qLevelForUpdate = `SELECT ` + levelColumns + ` FROM stock_levels WHERE sku_id = ? FOR UPDATE`
	qMerchantLevel  = `SELECT ` + levelColumns + ` FROM stock_levels WHERE sku_id = ? AND merchant_id = ?`
	qLevelsIn       = `SELECT ` + levelColumns + ` FROM stock_levels WHERE sku_id IN (?)`
	// checkFrom joins each level with what its reservations say the counters must be.
	// An open pool's remaining units are reserved too (pool.go).
	checkFrom = ` FROM stock_levels l LEFT JOIN (
		SELECT sku_id, SUM(held) AS held, SUM(bought) AS bought FROM (
			SELECT sku_id, SUM(IF(status = 0, quantity, 0)) AS held, SUM(IF(status = 1, quantity - returned, 0)) AS bought
			FROM stock_reservations GROUP BY sku_id
			UNION ALL
			SELECT sku_id, SUM(remaining), 0 FROM stock_pools WHERE status = 0 GROUP BY sku_id) u
		GROUP BY sku_id) r ON r.sku_id = l.sku_id`
	checkBad = `(l.available < 0 OR l.reserved < 0 OR l.sold < 0 OR l.on_hand <> l.available + l.reserved + l.sold
		OR l.reserved <> COALESCE(r.held, 0) OR l.sold <> COALESCE(r.bought, 0))`
	qCountLevels = `SELECT COUNT(*) AS n, COALESCE(SUM(` + checkBad + `), 0) AS bad` + checkFrom
	qViolations  = `SELECT l.sku_id, l.merchant_id, l.on_hand, l.available, l.reserved, l.sold, l.version, l.updated_at,
		COALESCE(r.held, 0) AS held, COALESCE(r.bought, 0) AS bought` + checkFrom + ` WHERE ` + checkBad + `
		ORDER BY l.sku_id LIMIT ?`
)

// insertLevel creates the level; a duplicate SKU is reported as inserted == false.
func (s *store) insertLevel(ctx context.Context, skuID, merchantID, available int64, now time.Time) (inserted bool, err error) {
	_, err = s.main(ctx).ExecContext(ctx, qInsertLevel, skuID, merchantID, available, available, now)
	if sqldb.IsDuplicate(err) {
		return false, nil
	}
	return err == nil, err
}

func (s *store) owner(ctx context.Context, skuID int64) (int64, error) {
	var m int64
	err := sqlx.GetContext(ctx, s.main(ctx), &m, qOwner, skuID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	return m, err
}

// setAvailable sets the merchant's SKU's available units; ErrNotFound when no row matched.
func (s *store) setAvailable(ctx context.Context, merchantID, skuID, available int64, now time.Time) error {
	res, err := s.main(ctx).ExecContext(ctx, qSetAvailable, available, available, now, skuID, merchantID)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	// version changes on every match, so a matched row is always an affected row.
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// lockedLevel reads the current row with its lock (inside the transaction that changed it).
func (s *store) lockedLevel(ctx context.Context, skuID int64) (levelRow, error) {
	var r levelRow
	err := sqlx.GetContext(ctx, s.main(ctx), &r, qLevelForUpdate, skuID)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

func (s *store) merchantLevel(ctx context.Context, merchantID, skuID int64) (levelRow, error) {
	var r levelRow
	err := sqlx.GetContext(ctx, s.main(ctx), &r, qMerchantLevel, skuID, merchantID)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

func (s *store) levels(ctx context.Context, skuIDs []int64) ([]levelRow, error) {
	q, args, err := sqlx.In(qLevelsIn, skuIDs)
	if err != nil {
		return nil, err
	}
	var rows []levelRow
	err = sqlx.SelectContext(ctx, s.main(ctx), &rows, q, args...)
	return rows, err
}

func (s *store) count(ctx context.Context) (rows, bad int64, err error) {
	var c struct {
		N   int64 `db:"n"`
		Bad int64 `db:"bad"`
	}
	err = sqlx.GetContext(ctx, s.main(ctx), &c, qCountLevels)
	return c.N, c.Bad, err
}

// violationRow is a level with the counters its reservations call for.
type violationRow struct {
	levelRow
	Held   int64 `db:"held"`
	Bought int64 `db:"bought"`
}

// problem describes what is wrong with the row.
func (v violationRow) problem() string {
	var ps []string
	if v.Available < 0 || v.Reserved < 0 || v.Sold < 0 {
		ps = append(ps, "negative counter")
	}
	if v.OnHand != v.Available+v.Reserved+v.Sold {
		ps = append(ps, fmt.Sprintf("on_hand %d != available + reserved + sold = %d", v.OnHand, v.Available+v.Reserved+v.Sold))
	}
	if v.Reserved != v.Held {
		ps = append(ps, fmt.Sprintf("reserved %d != %d held by reservations", v.Reserved, v.Held))
	}
	if v.Sold != v.Bought {
		ps = append(ps, fmt.Sprintf("sold %d != %d bought by reservations", v.Sold, v.Bought))
	}
	return strings.Join(ps, "; ")
}

func (s *store) violations(ctx context.Context, limit int) ([]violationRow, error) {
	var rows []violationRow
	err := sqlx.SelectContext(ctx, s.main(ctx), &rows, qViolations, limit)
	return rows, err
}

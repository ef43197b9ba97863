package live

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mallhq/mall/internal/platform/sqldb"
)

// store is the module's SQL on db.main (table live_rooms). Every method runs in the
// transaction in ctx when there is one.
type store struct {
	cl *sqldb.Cluster
}

func (s *store) main(ctx context.Context) sqlx.ExtContext { return sqldb.Ext(ctx, s.cl.Main()) }

type roomRow struct {
	ID              int64        `db:"id"`
	MerchantID      int64        `db:"merchant_id"`
	Title           string       `db:"title"`
	Status          Status       `db:"status"`
	Publisher       string       `db:"publisher"`
	PinnedProductID int64        `db:"pinned_product_id"`
	ScheduledAt     sql.NullTime `db:"scheduled_at"`
	StartedAt       sql.NullTime `db:"started_at"`
	EndedAt         sql.NullTime `db:"ended_at"`
	Version         int64        `db:"version"`
	CreatedAt       time.Time    `db:"created_at"`
	UpdatedAt       time.Time    `db:"updated_at"`
}

func (r roomRow) room() Room {
	return Room{ID: r.ID, MerchantID: r.MerchantID, Title: r.Title, Status: r.Status, PinnedProductID: r.PinnedProductID,
		ScheduledAt: r.ScheduledAt.Time, StartedAt: r.StartedAt.Time, EndedAt: r.EndedAt.Time,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

func nullTime(t time.Time) sql.NullTime { return sql.NullTime{Time: t, Valid: !t.IsZero()} }

const roomColumns = `id, merchant_id, title, status, publisher, pinned_product_id, scheduled_at, started_at, ended_at,
	version, created_at, updated_at`

const (
	qInsertRoom = `INSERT INTO live_rooms (id, merchant_id, title, status, key_hash, scheduled_at, version, created_at, updated_at)
		VALUES (?, ?, ?, 'scheduled', ?, ?, 1, ?, ?)`
	qRoom                = `SELECT ` + roomColumns + ` FROM live_rooms WHERE id = ?`
	qRoomForUpdate       = qRoom + ` FOR UPDATE`
	qMerchantRoomForUpd  = `SELECT ` + roomColumns + ` FROM live_rooms WHERE id = ? AND merchant_id = ? FOR UPDATE`
	qMerchantRoom        = `SELECT ` + roomColumns + ` FROM live_rooms WHERE id = ? AND merchant_id = ?`
	qRoomByKeyForUpdate  = `SELECT ` + roomColumns + ` FROM live_rooms WHERE key_hash = ? FOR UPDATE`
	qRoomByKey           = `SELECT ` + roomColumns + ` FROM live_rooms WHERE key_hash = ?`
	qMerchantRooms       = `SELECT ` + roomColumns + ` FROM live_rooms WHERE merchant_id = ? AND id < ? ORDER BY id DESC LIMIT ?`
	qMerchantRoomsStatus = `SELECT ` + roomColumns + ` FROM live_rooms WHERE merchant_id = ? AND status = ? AND id < ?
		ORDER BY id DESC LIMIT ?`
	qRoomsStatus = `SELECT ` + roomColumns + ` FROM live_rooms WHERE status = ? AND id < ? ORDER BY id DESC LIMIT ?`
	qRoomsPublic = `SELECT ` + roomColumns + ` FROM live_rooms WHERE status <> 'banned' AND id < ? ORDER BY id DESC LIMIT ?`
	qSetKey      = `UPDATE live_rooms SET key_hash = ?, version = version + 1, updated_at = ? WHERE id = ?`
	// qSave writes the mutable columns of a row read FOR UPDATE in the same transaction.
	qSave = `UPDATE live_rooms SET status = ?, publisher = ?, pinned_product_id = ?, started_at = ?, ended_at = ?,
		version = ?, updated_at = ? WHERE id = ?`
)

func (s *store) insert(ctx context.Context, r roomRow, keyHash []byte) error {
	_, err := s.main(ctx).ExecContext(ctx, qInsertRoom, r.ID, r.MerchantID, r.Title, keyHash, r.ScheduledAt,
		r.CreatedAt, r.UpdatedAt)
	return err
}

func (s *store) get(ctx context.Context, q string, args ...any) (roomRow, error) {
	var r roomRow
	err := sqlx.GetContext(ctx, s.main(ctx), &r, q, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

func (s *store) room(ctx context.Context, id int64) (roomRow, error) { return s.get(ctx, qRoom, id) }

func (s *store) lockRoom(ctx context.Context, id int64) (roomRow, error) {
	return s.get(ctx, qRoomForUpdate, id)
}

func (s *store) merchantRoom(ctx context.Context, merchantID, id int64) (roomRow, error) {
	return s.get(ctx, qMerchantRoom, id, merchantID)
}

func (s *store) lockMerchantRoom(ctx context.Context, merchantID, id int64) (roomRow, error) {
	return s.get(ctx, qMerchantRoomForUpd, id, merchantID)
}

func (s *store) lockByKey(ctx context.Context, keyHash []byte) (roomRow, error) {
	return s.get(ctx, qRoomByKeyForUpdate, keyHash)
}

func (s *store) byKey(ctx context.Context, keyHash []byte) (roomRow, error) {
	return s.get(ctx, qRoomByKey, keyHash)
}

func (s *store) list(ctx context.Context, q string, args ...any) ([]roomRow, error) {
	var rows []roomRow
	err := sqlx.SelectContext(ctx, s.main(ctx), &rows, q, args...)
	return rows, err
}

func (s *store) setKey(ctx context.Context, id int64, keyHash []byte, now time.Time) error {
	_, err := s.main(ctx).ExecContext(ctx, qSetKey, keyHash, now, id)
	return err
}

// save writes r, which the caller read FOR UPDATE in the transaction in ctx.
func (s *store) save(ctx context.Context, r roomRow) error {
	_, err := s.main(ctx).ExecContext(ctx, qSave, r.Status, r.Publisher, r.PinnedProductID, r.StartedAt, r.EndedAt,
		r.Version, r.UpdatedAt, r.ID)
	return err
}

package user

import (
	"context"
	"database/sql"
	"time"

	"github.com/jmoiron/sqlx"
)

type blockRow struct {
	ID        int64        `db:"id"`
	Kind      string       `db:"kind"`
	Value     string       `db:"value"`
	Reason    string       `db:"reason"`
	CreatedBy int64        `db:"created_by"`
	CreatedAt time.Time    `db:"created_at"`
	ExpiresAt sql.NullTime `db:"expires_at"`
}

func (r blockRow) block() Block {
	b := Block{ID: r.ID, Kind: r.Kind, Value: r.Value, Reason: r.Reason, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt}
	if r.ExpiresAt.Valid {
		t := r.ExpiresAt.Time
		b.ExpiresAt = &t
	}
	return b
}

const (
	blockCols    = `id, kind, value, reason, created_by, created_at, expires_at`
	qInsertBlock = `INSERT INTO user_blocks (` + blockCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)`
	// qLiveBlocks is every block in force: the snapshot each replica holds.
	qLiveBlocks = `SELECT ` + blockCols + ` FROM user_blocks WHERE expires_at IS NULL OR expires_at > ?`
	qBlocks     = `SELECT ` + blockCols + ` FROM user_blocks WHERE (expires_at IS NULL OR expires_at > ?) AND id < ?
		ORDER BY id DESC LIMIT ?`
	qDeleteBlock = `DELETE FROM user_blocks WHERE id = ?`
)

func (s *store) insertBlock(ctx context.Context, b Block) error {
	var exp sql.NullTime
	if b.ExpiresAt != nil {
		exp = sql.NullTime{Time: *b.ExpiresAt, Valid: true}
	}
	_, err := s.main(ctx).ExecContext(ctx, qInsertBlock, b.ID, b.Kind, b.Value, b.Reason, b.CreatedBy, b.CreatedAt, exp)
	return err
}

func (s *store) liveBlocks(ctx context.Context, now time.Time) ([]blockRow, error) {
	var rows []blockRow
	err := sqlx.SelectContext(ctx, s.main(ctx), &rows, qLiveBlocks, now)
	return rows, err
}

// blocks lists the blocks in force, newest first, before the ID before (0: from the newest).
func (s *store) blocks(ctx context.Context, now time.Time, before int64, limit int) ([]blockRow, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	var rows []blockRow
	err := sqlx.SelectContext(ctx, s.main(ctx), &rows, qBlocks, now, before, limit)
	return rows, err
}

func (s *store) deleteBlock(ctx context.Context, id int64) (bool, error) {
	res, err := s.main(ctx).ExecContext(ctx, qDeleteBlock, id)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

package user

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jmoiron/sqlx"
)

// SQL of e-mail verification, password reset and the mail queue (migration 00002).

type emailTokenRow struct {
	Purpose   string    `db:"purpose"`
	UserID    int64     `db:"user_id"`
	Email     string    `db:"email"`
	ExpiresAt time.Time `db:"expires_at"`
}

type mailRow struct {
	ID       int64  `db:"id"`
	Kind     string `db:"kind"`
	UserID   int64  `db:"user_id"`
	Email    string `db:"email"`
	Attempts int    `db:"attempts"`
}

// Mail queue status.
const (
	mailPending = 0
	mailSent    = 1
	mailDead    = 2
)

const (
	qInsertEmailToken = `INSERT INTO user_email_tokens (token_hash, purpose, user_id, email, expires_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`
	qEmailTokenForUpdate = `SELECT purpose, user_id, email, expires_at FROM user_email_tokens WHERE token_hash = ? FOR UPDATE`
	qDeleteEmailToken    = `DELETE FROM user_email_tokens WHERE token_hash = ?`
	qDeleteUserTokens    = `DELETE FROM user_email_tokens WHERE user_id = ? AND purpose = ?`
	qDeleteExpiredTokens = `DELETE FROM user_email_tokens WHERE expires_at < ? LIMIT ?`
	qUserForUpdate       = `SELECT id, email, email_verified_at, password_hash, nickname, created_at, updated_at
		FROM user_users WHERE id = ? FOR UPDATE`
	qSetVerified     = `UPDATE user_users SET email_verified_at = ?, updated_at = ? WHERE id = ? AND email_verified_at IS NULL`
	qSetPasswordUser = `UPDATE user_users SET password_hash = ?, updated_at = ? WHERE id = ?`

	qEnqueueMail = `INSERT INTO user_mail_queue (id, kind, user_id, email, status, attempts, next_attempt_at, created_at)
		VALUES (?, ?, ?, ?, 0, 0, ?, ?)`
	qDueMail = `SELECT id, kind, user_id, email, attempts FROM user_mail_queue
		WHERE status = 0 AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ? FOR UPDATE SKIP LOCKED`
	qLeaseMail     = `UPDATE user_mail_queue SET attempts = attempts + 1, next_attempt_at = ? WHERE id IN (?)`
	qMailSent      = `UPDATE user_mail_queue SET status = ?, sent_at = ?, last_error = ? WHERE id = ?`
	qMailRetry     = `UPDATE user_mail_queue SET next_attempt_at = ?, last_error = ?, status = ? WHERE id = ?`
	qDeleteOldMail = `DELETE FROM user_mail_queue WHERE status <> 0 AND created_at < ? LIMIT ?`
)

func (s *store) insertEmailToken(ctx context.Context, hash [32]byte, purpose string, userID int64, email string, expires, now time.Time) error {
	_, err := s.main(ctx).ExecContext(ctx, qInsertEmailToken, hash[:], purpose, userID, email, expires, now)
	return err
}

// takeEmailToken locks and deletes a token inside the transaction in ctx: of two uses of
// one token, the second waits for the first and then finds nothing.
func (s *store) takeEmailToken(ctx context.Context, hash [32]byte) (emailTokenRow, error) {
	var r emailTokenRow
	err := sqlx.GetContext(ctx, s.main(ctx), &r, qEmailTokenForUpdate, hash[:])
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrEmailTokenInvalid
	}
	if err != nil {
		return r, err
	}
	_, err = s.main(ctx).ExecContext(ctx, qDeleteEmailToken, hash[:])
	return r, err
}

func (s *store) deleteEmailToken(ctx context.Context, hash [32]byte) error {
	_, err := s.main(ctx).ExecContext(ctx, qDeleteEmailToken, hash[:])
	return err
}

func (s *store) deleteUserTokens(ctx context.Context, userID int64, purpose string) error {
	_, err := s.main(ctx).ExecContext(ctx, qDeleteUserTokens, userID, purpose)
	return err
}

func (s *store) deleteExpiredEmailTokens(ctx context.Context, before time.Time, limit int) (int64, error) {
	res, err := s.main(ctx).ExecContext(ctx, qDeleteExpiredTokens, before, limit)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// userForUpdate reads a user and locks the row for the transaction in ctx.
func (s *store) userForUpdate(ctx context.Context, id int64) (userRow, error) {
	var r userRow
	err := sqlx.GetContext(ctx, s.main(ctx), &r, qUserForUpdate, id)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

func (s *store) setVerified(ctx context.Context, id int64, now time.Time) error {
	_, err := s.main(ctx).ExecContext(ctx, qSetVerified, now, now, id)
	return err
}

func (s *store) setPasswordHash(ctx context.Context, id int64, hash string, now time.Time) error {
	_, err := s.main(ctx).ExecContext(ctx, qSetPasswordUser, hash, now, id)
	return err
}

func (s *store) enqueueMail(ctx context.Context, id int64, kind string, userID int64, email string, now time.Time) error {
	_, err := s.main(ctx).ExecContext(ctx, qEnqueueMail, id, kind, userID, email, now, now)
	return err
}

// claimMail takes up to limit due rows and leases them until leaseUntil (another replica
// skips them meanwhile; a replica that dies mid-send leaves them due again at leaseUntil).
func (s *store) claimMail(ctx context.Context, now, leaseUntil time.Time, limit int) ([]mailRow, error) {
	var rows []mailRow
	err := s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		if err := sqlx.SelectContext(ctx, s.main(ctx), &rows, qDueMail, now, limit); err != nil || len(rows) == 0 {
			return err
		}
		ids := make([]int64, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		q, args, err := sqlx.In(qLeaseMail, leaseUntil, ids)
		if err != nil {
			return err
		}
		_, err = s.main(ctx).ExecContext(ctx, q, args...)
		return err
	})
	for i := range rows {
		rows[i].Attempts++
	}
	return rows, err
}

func (s *store) mailDone(ctx context.Context, id int64, status int, now time.Time, note string) error {
	_, err := s.main(ctx).ExecContext(ctx, qMailSent, status, now, clipNote(note), id)
	return err
}

func (s *store) mailRetry(ctx context.Context, id int64, at time.Time, status int, note string) error {
	_, err := s.main(ctx).ExecContext(ctx, qMailRetry, at, clipNote(note), status, id)
	return err
}

func (s *store) deleteOldMail(ctx context.Context, before time.Time, limit int) (int64, error) {
	res, err := s.main(ctx).ExecContext(ctx, qDeleteOldMail, before, limit)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func clipNote(s string) string {
	r := []rune(s)
	if len(r) > 255 {
		r = r[:255]
	}
	return string(r)
}

package idempotency

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// Key states (platform_idempotency_keys.state).
const (
	stateInFlight = 0
	stateDone     = 1
)

// Every time comparison uses the database clock (UTC_TIMESTAMP), so replicas with skewed
// clocks agree on which lock or key has expired.
const (
	sqlInsert = `INSERT INTO platform_idempotency_keys
  (user_id, idem_key, request_hash, state, lock_token, locked_until, created_at, expires_at)
VALUES (?, ?, ?, 0, ?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)`

	sqlGet = `SELECT request_hash, state, response_status, response_headers, response_body,
  expires_at < UTC_TIMESTAMP(6) AS expired, locked_until < UTC_TIMESTAMP(6) AS lock_expired
FROM platform_idempotency_keys WHERE user_id = ? AND idem_key = ?`

	// sqlTakeOver claims a key that is expired (whatever it held: it counts as absent) or
	// in flight for the same request past its lock (its process died). The WHERE clause
	// re-checks under the row lock, so of N concurrent callers exactly one succeeds.
	sqlTakeOver = `UPDATE platform_idempotency_keys
SET request_hash = ?, state = 0, lock_token = ?, response_status = NULL, response_headers = NULL, response_body = NULL,
  locked_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, created_at = UTC_TIMESTAMP(6),
  expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
WHERE user_id = ? AND idem_key = ?
  AND (expires_at < UTC_TIMESTAMP(6) OR (state = 0 AND locked_until < UTC_TIMESTAMP(6) AND request_hash = ?))`

	// The lock token fences complete and release: a request whose key was taken over
	// changes nothing.
	sqlComplete = `UPDATE platform_idempotency_keys
SET state = 1, lock_token = NULL, response_status = ?, response_headers = ?, response_body = ?,
  locked_until = UTC_TIMESTAMP(6), expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
WHERE user_id = ? AND idem_key = ? AND lock_token = ?`

	sqlRelease = `DELETE FROM platform_idempotency_keys WHERE user_id = ? AND idem_key = ? AND lock_token = ?`

	sqlPurge = `DELETE FROM platform_idempotency_keys WHERE expires_at < UTC_TIMESTAMP(6) LIMIT ?`
)

// maxAcquireRounds bounds the insert/read/take-over loop; each round only repeats when
// another request changed the row in between.
const maxAcquireRounds = 8

type store struct {
	db          *sqldb.DB
	ttl         time.Duration
	lockTimeout time.Duration
	batch       int
}

// lock is a held in-flight key.
type lock struct {
	user  int64
	key   string
	token []byte
	// resumed: the key was taken over from an earlier request that held it and never
	// finished (it died, or outlived its lock), so its effects may exist.
	resumed bool
}

type storedResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

type row struct {
	Hash        []byte         `db:"request_hash"`
	State       int            `db:"state"`
	Status      sql.NullInt64  `db:"response_status"`
	Headers     sql.NullString `db:"response_headers"`
	Body        []byte         `db:"response_body"`
	Expired     bool           `db:"expired"`
	LockExpired bool           `db:"lock_expired"`
}

// acquire either takes the key (lock), or returns the stored response to replay, or an
// errs error (reused key, key in flight).
func (s *store) acquire(ctx context.Context, user int64, key string, hash []byte) (lock, *storedResponse, error) {
	lk := lock{user: user, key: key, token: newToken()}
	lockUS, ttlUS := s.lockTimeout.Microseconds(), s.ttl.Microseconds()
	for range maxAcquireRounds {
		var inserted bool
		err := retry(ctx, func() error {
			_, err := s.db.ExecContext(ctx, sqlInsert, user, key, hash, lk.token, lockUS, ttlUS)
			inserted = err == nil
			if sqldb.IsDuplicate(err) {
				return nil
			}
			return err
		})
		if err != nil {
			return lock{}, nil, fmt.Errorf("idempotency: insert key: %w", err)
		}
		if inserted {
			return lk, nil, nil
		}

		var r row
		err = s.db.GetContext(ctx, &r, sqlGet, user, key)
		if errors.Is(err, sql.ErrNoRows) {
			continue // released between our insert and this read: insert again
		}
		if err != nil {
			return lock{}, nil, fmt.Errorf("idempotency: read key: %w", err)
		}
		if !r.Expired {
			if !bytes.Equal(r.Hash, hash) {
				return lock{}, nil, errs.ErrIdempotencyReused.WithDetail("this Idempotency-Key was used for a different request")
			}
			if r.State == stateDone {
				resp, err := r.response()
				if err != nil {
					return lock{}, nil, err
				}
				return lock{}, resp, nil
			}
			if !r.LockExpired {
				return lock{}, nil, errs.ErrIdempotencyBusy.WithDetail("a request with this Idempotency-Key is still in progress")
			}
		}
		var took bool
		err = retry(ctx, func() error {
			res, err := s.db.ExecContext(ctx, sqlTakeOver, hash, lk.token, lockUS, ttlUS, user, key, hash)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			took = n == 1
			return err
		})
		if err != nil {
			return lock{}, nil, fmt.Errorf("idempotency: take over key: %w", err)
		}
		if took {
			lk.resumed = true
			return lk, nil, nil
		}
		// Someone else took it over or finished first: look again.
	}
	return lock{}, nil, errs.ErrIdempotencyBusy.WithDetail("a request with this Idempotency-Key is still in progress")
}

func (r row) response() (*storedResponse, error) {
	resp := &storedResponse{Status: int(r.Status.Int64), Body: r.Body, Header: http.Header{}}
	if r.Headers.Valid && r.Headers.String != "" {
		if err := json.Unmarshal([]byte(r.Headers.String), &resp.Header); err != nil {
			return nil, fmt.Errorf("idempotency: stored headers: %w", err)
		}
	}
	if resp.Body == nil {
		resp.Body = []byte{}
	}
	return resp, nil
}

// complete stores the final response; false means the lock was lost to a take-over.
func (s *store) complete(ctx context.Context, lk lock, r storedResponse) (bool, error) {
	hdr, err := json.Marshal(r.Header)
	if err != nil {
		return false, fmt.Errorf("idempotency: encode headers: %w", err)
	}
	body := r.Body
	if body == nil {
		body = []byte{}
	}
	var ok bool
	err = retry(ctx, func() error {
		res, err := s.db.ExecContext(ctx, sqlComplete, r.Status, string(hdr), body, s.ttl.Microseconds(), lk.user, lk.key, lk.token)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		ok = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("idempotency: store response: %w", err)
	}
	return ok, nil
}

// release deletes a key still held by lk, so the client may retry it.
func (s *store) release(ctx context.Context, lk lock) error {
	err := retry(ctx, func() error {
		_, err := s.db.ExecContext(ctx, sqlRelease, lk.user, lk.key, lk.token)
		return err
	})
	if err != nil {
		return fmt.Errorf("idempotency: release key: %w", err)
	}
	return nil
}

// purge deletes expired keys in batches and returns how many went.
func (s *store) purge(ctx context.Context) (int64, error) {
	var total int64
	for {
		var n int64
		err := retry(ctx, func() error {
			res, err := s.db.ExecContext(ctx, sqlPurge, s.batch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("idempotency: purge: %w", err)
		}
		total += n
		if n < int64(s.batch) || ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
}

// retry runs one autocommit statement again when InnoDB picked it as a deadlock victim or
// it waited too long for a lock (concurrent inserts of one key next to a delete do that).
func retry(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || !sqldb.Retryable(err) || attempt >= sqldb.MaxTxAttempts {
			return err
		}
		back := min(time.Duration(1<<attempt)*time.Millisecond, 50*time.Millisecond)
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(back + rand.N(back)):
		}
	}
}

func newToken() []byte {
	b := make([]byte, 16)
	_, _ = crand.Read(b)
	return b
}

package user

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/text"
)

// store is the module's SQL. Users, tokens, roles and identities are on db.main; addresses
// on the buyer's shard. Every method runs in the transaction in ctx when there is one on
// its database.
type store struct {
	cl *sqldb.Cluster
}

func (s *store) main(ctx context.Context) sqlx.ExtContext { return sqldb.Ext(ctx, s.cl.Main()) }

// Refresh token status.
const (
	refreshActive  = 0
	refreshUsed    = 1
	refreshRevoked = 2
)

type userRow struct {
	ID    int64          `db:"id"`
	Email sql.NullString `db:"email"`
	// EmailVerifiedAt is set once the owner of Email proved it (a mailed token, a provider's
	// verified claim, the operator's CLI).
	EmailVerifiedAt sql.NullTime   `db:"email_verified_at"`
	PasswordHash    sql.NullString `db:"password_hash"`
	Nickname        string         `db:"nickname"`
	CreatedAt       time.Time      `db:"created_at"`
	UpdatedAt       time.Time      `db:"updated_at"`
}

func (r userRow) user() User {
	return User{ID: r.ID, Email: r.Email.String, EmailVerified: r.Email.Valid && r.EmailVerifiedAt.Valid, Nickname: r.Nickname, CreatedAt: r.CreatedAt}
}

const (
	qInsertUser = `INSERT INTO user_users (id, email, email_verified_at, password_hash, nickname, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`
	qUserByID      = `SELECT id, email, email_verified_at, password_hash, nickname, created_at, updated_at FROM user_users WHERE id = ?`
	qUserByEmail   = `SELECT id, email, email_verified_at, password_hash, nickname, created_at, updated_at FROM user_users WHERE email = ?`
	qLockUser      = `SELECT id FROM user_users WHERE id = ? FOR UPDATE`
	qSetPassword   = `UPDATE user_users SET password_hash = ?, updated_at = ? WHERE id = ?`
	qListUsers     = `SELECT id, email, email_verified_at, password_hash, nickname, created_at, updated_at FROM user_users WHERE id < ? ORDER BY id DESC LIMIT ?`
	qListUsersFrom = `SELECT id, email, email_verified_at, password_hash, nickname, created_at, updated_at FROM user_users ORDER BY id DESC LIMIT ?`
)

func (s *store) insertUser(ctx context.Context, r userRow) error {
	_, err := s.main(ctx).ExecContext(ctx, qInsertUser, r.ID, r.Email, r.EmailVerifiedAt, r.PasswordHash, r.Nickname, r.CreatedAt, r.UpdatedAt)
	if sqldb.IsDuplicate(err) {
		return ErrEmailTaken
	}
	return err
}

func (s *store) userByID(ctx context.Context, id int64) (userRow, error) {
	var r userRow
	err := sqlx.GetContext(ctx, s.main(ctx), &r, qUserByID, id)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

func (s *store) userByEmail(ctx context.Context, email string) (userRow, error) {
	var r userRow
	err := sqlx.GetContext(ctx, s.main(ctx), &r, qUserByEmail, email)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

// lockUser takes the user's row lock for the transaction in ctx (serializes role changes).
func (s *store) lockUser(ctx context.Context, id int64) error {
	var got int64
	err := sqlx.GetContext(ctx, s.main(ctx), &got, qLockUser, id)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

func (s *store) setPassword(ctx context.Context, id int64, hash string, now time.Time) error {
	_, err := s.main(ctx).ExecContext(ctx, qSetPassword, hash, now, id)
	return err
}

// listUsers returns up to limit users with ID below before (0 = from the newest).
func (s *store) listUsers(ctx context.Context, before int64, limit int) ([]userRow, error) {
	var rows []userRow
	var err error
	if before > 0 {
		err = sqlx.SelectContext(ctx, s.main(ctx), &rows, qListUsers, before, limit)
	} else {
		err = sqlx.SelectContext(ctx, s.main(ctx), &rows, qListUsersFrom, limit)
	}
	return rows, err
}

// Roles and bindings.

const (
	qRoleScope       = `SELECT scope FROM user_roles WHERE name = ?`
	qRolePermissions = `SELECT r.name, r.scope, COALESCE(p.permission, '') AS permission
		FROM user_roles r LEFT JOIN user_role_permissions p ON p.role = r.name ORDER BY r.name`
	qBindings      = `SELECT role, merchant_id FROM user_role_bindings WHERE user_id = ? ORDER BY created_at, role`
	qBindingsOf    = `SELECT user_id, role, merchant_id FROM user_role_bindings WHERE user_id IN (?) ORDER BY created_at, role`
	qInsertBinding = `INSERT INTO user_role_bindings (user_id, role, merchant_id, granted_by, created_at) VALUES (?, ?, ?, ?, ?)`
	qDeleteBinding = `DELETE FROM user_role_bindings WHERE user_id = ? AND role = ? AND merchant_id = ?`
)

type roleRow struct {
	Name       string `db:"name"`
	Scope      string `db:"scope"`
	Permission string `db:"permission"`
}

// Role scopes in user_roles.scope.
const (
	scopePlatform = "platform"
	scopeMerchant = "merchant"
)

func (s *store) roleScope(ctx context.Context, role Role) (string, error) {
	var scope string
	err := sqlx.GetContext(ctx, s.main(ctx), &scope, qRoleScope, string(role))
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrUnknownRole.WithDetail("no role named %q", text.Ellipsis(string(role), 64))
	}
	return scope, err
}

func (s *store) rolePermissions(ctx context.Context) ([]roleRow, error) {
	var rows []roleRow
	err := sqlx.SelectContext(ctx, s.main(ctx), &rows, qRolePermissions)
	return rows, err
}

type bindingRow struct {
	UserID     int64  `db:"user_id"`
	Role       string `db:"role"`
	MerchantID int64  `db:"merchant_id"`
}

func (s *store) bindings(ctx context.Context, userID int64) ([]RoleBinding, error) {
	var rows []bindingRow
	if err := sqlx.SelectContext(ctx, s.main(ctx), &rows, qBindings, userID); err != nil {
		return nil, err
	}
	out := make([]RoleBinding, len(rows))
	for i, r := range rows {
		out[i] = RoleBinding{Role: Role(r.Role), MerchantID: r.MerchantID}
	}
	return out, nil
}

func (s *store) bindingsOf(ctx context.Context, ids []int64) (map[int64][]RoleBinding, error) {
	out := map[int64][]RoleBinding{}
	if len(ids) == 0 {
		return out, nil
	}
	q, args, err := sqlx.In(qBindingsOf, ids)
	if err != nil {
		return nil, err
	}
	var rows []bindingRow
	if err := sqlx.SelectContext(ctx, s.main(ctx), &rows, q, args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.UserID] = append(out[r.UserID], RoleBinding{Role: Role(r.Role), MerchantID: r.MerchantID})
	}
	return out, nil
}

// insertBinding adds a binding; false when the user already has it.
func (s *store) insertBinding(ctx context.Context, userID int64, b RoleBinding, grantedBy int64, now time.Time) (bool, error) {
	_, err := s.main(ctx).ExecContext(ctx, qInsertBinding, userID, string(b.Role), b.MerchantID, grantedBy, now)
	if sqldb.IsDuplicate(err) {
		return false, nil
	}
	return err == nil, err
}

// deleteBinding removes a binding; false when the user did not have it.
func (s *store) deleteBinding(ctx context.Context, userID int64, b RoleBinding) (bool, error) {
	res, err := s.main(ctx).ExecContext(ctx, qDeleteBinding, userID, string(b.Role), b.MerchantID)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// Refresh tokens.

type refreshRow struct {
	ID        int64     `db:"id"`
	FamilyID  int64     `db:"family_id"`
	UserID    int64     `db:"user_id"`
	Status    int       `db:"status"`
	ExpiresAt time.Time `db:"expires_at"`
}

const (
	qInsertRefresh = `INSERT INTO user_refresh_tokens (id, token_hash, family_id, user_id, status, expires_at, created_at)
		VALUES (?, ?, ?, ?, 0, ?, ?)`
	qRefreshByHash = `SELECT id, family_id, user_id, status, expires_at FROM user_refresh_tokens WHERE token_hash = ?`
	// The conditional update is the whole concurrency story: of two refreshes presenting one
	// token, the second blocks on the row lock and then matches nothing.
	qUseRefresh = `UPDATE user_refresh_tokens SET status = 1, used_at = ?
		WHERE token_hash = ? AND status = 0 AND expires_at > ?`
	qRevokeFamily  = `UPDATE user_refresh_tokens SET status = 2 WHERE family_id = ? AND status = 0`
	qLiveFamilies  = `SELECT DISTINCT family_id FROM user_refresh_tokens WHERE user_id = ? AND status = 0`
	qDeleteExpired = `DELETE FROM user_refresh_tokens WHERE expires_at < ? LIMIT ?`
)

func (s *store) insertRefresh(ctx context.Context, id int64, hash [32]byte, familyID, userID int64, expires, now time.Time) error {
	_, err := s.main(ctx).ExecContext(ctx, qInsertRefresh, id, hash[:], familyID, userID, expires, now)
	return err
}

func (s *store) refreshByHash(ctx context.Context, hash [32]byte) (refreshRow, error) {
	var r refreshRow
	err := sqlx.GetContext(ctx, s.main(ctx), &r, qRefreshByHash, hash[:])
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrInvalidRefreshToken
	}
	return r, err
}

// useRefresh marks an active, unexpired token used; false when it was not.
func (s *store) useRefresh(ctx context.Context, hash [32]byte, now time.Time) (bool, error) {
	res, err := s.main(ctx).ExecContext(ctx, qUseRefresh, now, hash[:], now)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (s *store) revokeFamily(ctx context.Context, familyID int64) error {
	_, err := s.main(ctx).ExecContext(ctx, qRevokeFamily, familyID)
	return err
}

// liveFamilies lists the user's sessions: refresh families with an unused token.
func (s *store) liveFamilies(ctx context.Context, userID int64) ([]int64, error) {
	var ids []int64
	err := sqlx.SelectContext(ctx, s.main(ctx), &ids, qLiveFamilies, userID)
	return ids, err
}

func (s *store) deleteExpiredRefresh(ctx context.Context, before time.Time, limit int) (int64, error) {
	res, err := s.main(ctx).ExecContext(ctx, qDeleteExpired, before, limit)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Identities.

const (
	qIdentity       = `SELECT user_id FROM user_identities WHERE provider = ? AND subject = ?`
	qInsertIdentity = `INSERT INTO user_identities (provider, subject, user_id, email, created_at) VALUES (?, ?, ?, ?, ?)`
)

func (s *store) identity(ctx context.Context, provider, subject string) (int64, error) {
	var id int64
	err := sqlx.GetContext(ctx, s.main(ctx), &id, qIdentity, provider, subject)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	return id, err
}

// errIdentityTaken means a concurrent first login linked the identity first.
var errIdentityTaken = errors.New("user: identity already linked")

func (s *store) insertIdentity(ctx context.Context, provider, subject string, userID int64, email sql.NullString, now time.Time) error {
	_, err := s.main(ctx).ExecContext(ctx, qInsertIdentity, provider, subject, userID, email, now)
	if sqldb.IsDuplicate(err) {
		return errIdentityTaken
	}
	return err
}

// Addresses, on the owner's shard.

type addressRow struct {
	ID        int64     `db:"id"`
	UserID    int64     `db:"user_id"`
	Name      string    `db:"name"`
	PhoneEnc  []byte    `db:"phone_enc"`
	Province  string    `db:"province"`
	City      string    `db:"city"`
	District  string    `db:"district"`
	Detail    string    `db:"detail"`
	CreatedAt time.Time `db:"created_at"`
	UpdatedAt time.Time `db:"updated_at"`
}

const (
	addressCols     = `id, user_id, name, phone_enc, province, city, district, detail, created_at, updated_at`
	qInsertAddress  = `INSERT INTO user_addresses (` + addressCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qCountAddresses = `SELECT COUNT(*) FROM user_addresses WHERE user_id = ? FOR UPDATE`
	qAddress        = `SELECT ` + addressCols + ` FROM user_addresses WHERE id = ? AND user_id = ?`
	qAddresses      = `SELECT ` + addressCols + ` FROM user_addresses WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?`
	qUpdateAddress  = `UPDATE user_addresses SET name = ?, phone_enc = ?, province = ?, city = ?, district = ?, detail = ?, updated_at = ?
		WHERE id = ? AND user_id = ?`
	qDeleteAddress = `DELETE FROM user_addresses WHERE id = ? AND user_id = ?`
)

func (s *store) shard(ctx context.Context, userID int64) sqlx.ExtContext {
	return sqldb.Ext(ctx, s.cl.ForUser(userID))
}

func (s *store) countAddresses(ctx context.Context, userID int64) (int, error) {
	var n int
	err := sqlx.GetContext(ctx, s.shard(ctx, userID), &n, qCountAddresses, userID)
	return n, err
}

func (s *store) insertAddress(ctx context.Context, r addressRow) error {
	_, err := s.shard(ctx, r.UserID).ExecContext(ctx, qInsertAddress,
		r.ID, r.UserID, r.Name, r.PhoneEnc, r.Province, r.City, r.District, r.Detail, r.CreatedAt, r.UpdatedAt)
	return err
}

func (s *store) address(ctx context.Context, userID, id int64) (addressRow, error) {
	var r addressRow
	err := sqlx.GetContext(ctx, s.shard(ctx, userID), &r, qAddress+lockSuffix(ctx, s.cl.ForUser(userID)), id, userID)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrAddressNotFound
	}
	return r, err
}

// lockSuffix locks the rows read inside a transaction on d (read-modify-write).
func lockSuffix(ctx context.Context, d *sqldb.DB) string {
	if sqldb.InTx(ctx, d) {
		return " FOR UPDATE"
	}
	return ""
}

// addresses returns up to limit addresses with ID below before, newest first.
func (s *store) addresses(ctx context.Context, userID, before int64, limit int) ([]addressRow, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	var rows []addressRow
	err := sqlx.SelectContext(ctx, s.shard(ctx, userID), &rows, qAddresses, userID, before, limit)
	return rows, err
}

func (s *store) updateAddress(ctx context.Context, r addressRow) error {
	_, err := s.shard(ctx, r.UserID).ExecContext(ctx, qUpdateAddress,
		r.Name, r.PhoneEnc, r.Province, r.City, r.District, r.Detail, r.UpdatedAt, r.ID, r.UserID)
	return err
}

func (s *store) deleteAddress(ctx context.Context, userID, id int64) error {
	res, err := s.shard(ctx, userID).ExecContext(ctx, qDeleteAddress, id, userID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrAddressNotFound
	}
	return nil
}

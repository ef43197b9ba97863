package merchant

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mallhq/mall/internal/platform/sqldb"
)

// store is the module's SQL, all on db.main. Every method runs in the transaction in ctx
// when there is one. Merchant-side queries take the caller's merchant ID and filter by it.
type store struct {
	db *sqldb.DB
}

func (s *store) ext(ctx context.Context) sqlx.ExtContext { return sqldb.Ext(ctx, s.db) }

type applicationRow struct {
	ID           int64         `db:"id"`
	ApplicantID  int64         `db:"applicant_id"`
	ShopName     string        `db:"shop_name"`
	CompanyName  string        `db:"company_name"`
	LicenseNo    string        `db:"license_no"`
	ContactName  string        `db:"contact_name"`
	ContactPhone string        `db:"contact_phone"`
	Status       string        `db:"status"`
	Reason       string        `db:"reason"`
	MerchantID   sql.NullInt64 `db:"merchant_id"`
	ReviewedBy   sql.NullInt64 `db:"reviewed_by"`
	ReviewedAt   sql.NullTime  `db:"reviewed_at"`
	CreatedAt    time.Time     `db:"created_at"`
	Pending      sql.NullInt64 `db:"pending_applicant"`
	UpdatedAt    time.Time     `db:"updated_at"`
}

func (r applicationRow) application() Application {
	return Application{ID: r.ID, ApplicantID: r.ApplicantID, ShopName: r.ShopName, CompanyName: r.CompanyName,
		LicenseNo: r.LicenseNo, ContactName: r.ContactName, ContactPhone: r.ContactPhone,
		Status: ApplicationStatus(r.Status), Reason: r.Reason, MerchantID: r.MerchantID.Int64,
		ReviewedBy: r.ReviewedBy.Int64, ReviewedAt: r.ReviewedAt.Time, CreatedAt: r.CreatedAt}
}

type merchantRow struct {
	ID            int64  `db:"id"`
	ApplicationID int64  `db:"application_id"`
	OwnerID       int64  `db:"owner_id"`
	ShopName      string `db:"shop_name"`
	CompanyName   string `db:"company_name"`
	Description   string `db:"description"`
	LogoURL       string `db:"logo_url"`
	ContactName   string `db:"contact_name"`
	ContactPhone  string `db:"contact_phone"`
	Status        string `db:"status"`
	// CommissionRateBP is NULL without an override.
	CommissionRateBP sql.NullInt32 `db:"commission_rate_bp"`
	CreatedAt        time.Time     `db:"created_at"`
	UpdatedAt        time.Time     `db:"updated_at"`
}

func (r merchantRow) merchant() Merchant {
	return Merchant{ID: r.ID, ApplicationID: r.ApplicationID, OwnerID: r.OwnerID, ShopName: r.ShopName,
		CompanyName: r.CompanyName, Description: r.Description, LogoURL: r.LogoURL, ContactName: r.ContactName,
		ContactPhone: r.ContactPhone, Status: Status(r.Status), CommissionRateBP: rateOf(r.CommissionRateBP),
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// rateOf is a nullable rate column as a *int (nil: NULL).
func rateOf(v sql.NullInt32) *int {
	if !v.Valid {
		return nil
	}
	n := int(v.Int32)
	return &n
}

// nullRate is the column value of a *int rate.
func nullRate(bp *int) sql.NullInt32 {
	if bp == nil {
		return sql.NullInt32{}
	}
	return sql.NullInt32{Int32: int32(*bp), Valid: true}
}

type staffRow struct {
	MerchantID int64     `db:"merchant_id"`
	UserID     int64     `db:"user_id"`
	Role       string    `db:"role"`
	CreatedAt  time.Time `db:"created_at"`
}

func (r staffRow) staff() Staff {
	return Staff{MerchantID: r.MerchantID, UserID: r.UserID, Role: StaffRole(r.Role), Status: StaffActive, CreatedAt: r.CreatedAt}
}

const (
	applicationColumns = `id, applicant_id, pending_applicant, shop_name, company_name, license_no, contact_name,
		contact_phone, status, reason, merchant_id, reviewed_by, reviewed_at, created_at, updated_at`
	qInsertApplication = `INSERT INTO merchant_applications (id, applicant_id, pending_applicant, shop_name,
		company_name, license_no, contact_name, contact_phone, status, reason, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', '', ?, ?)`
	qApplicationForUpdate = `SELECT ` + applicationColumns + ` FROM merchant_applications WHERE id = ? FOR UPDATE`
	qApplicationByID      = `SELECT ` + applicationColumns + ` FROM merchant_applications WHERE id = ?`
	qApplicationsMine     = `SELECT ` + applicationColumns + ` FROM merchant_applications
		WHERE applicant_id = ? AND id < ? ORDER BY id DESC LIMIT ?`
	qApplicationsByStatus = `SELECT ` + applicationColumns + ` FROM merchant_applications
		WHERE status = ? AND id < ? ORDER BY id DESC LIMIT ?`
	qApplicationsAll = `SELECT ` + applicationColumns + ` FROM merchant_applications
		WHERE id < ? ORDER BY id DESC LIMIT ?`
	qReviewApplication = `UPDATE merchant_applications SET status = ?, pending_applicant = NULL, reason = ?,
		merchant_id = ?, reviewed_by = ?, reviewed_at = ?, updated_at = ? WHERE id = ? AND status = 'pending'`

	merchantColumns = `id, application_id, owner_id, shop_name, company_name, description, logo_url,
		contact_name, contact_phone, status, commission_rate_bp, created_at, updated_at`
	qInsertMerchant = `INSERT INTO merchant_merchants (` + merchantColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qMerchantByID   = `SELECT ` + merchantColumns + ` FROM merchant_merchants WHERE id = ?`
	qMerchantLock   = `SELECT ` + merchantColumns + ` FROM merchant_merchants WHERE id = ? FOR UPDATE`
	qMerchantStatus = `SELECT status FROM merchant_merchants WHERE id = ?`
	qMerchantRate   = `SELECT commission_rate_bp FROM merchant_merchants WHERE id = ?`
	qSetStatus      = `UPDATE merchant_merchants SET status = ?, updated_at = ? WHERE id = ?`
	qSetRate        = `UPDATE merchant_merchants SET commission_rate_bp = ?, updated_at = ? WHERE id = ?`
	qUpdateProfile  = `UPDATE merchant_merchants SET shop_name = ?, description = ?, logo_url = ?,
		contact_name = ?, contact_phone = ?, updated_at = ? WHERE id = ?`

	staffColumns = `merchant_id, user_id, role, created_at`
	qInsertStaff = `INSERT INTO merchant_staff (merchant_id, user_id, role, created_at) VALUES (?, ?, ?, ?)`
	qDeleteStaff = `DELETE FROM merchant_staff WHERE merchant_id = ? AND user_id = ?`
	qStaffOne    = `SELECT ` + staffColumns + ` FROM merchant_staff WHERE merchant_id = ? AND user_id = ?`
	qStaffList   = `SELECT ` + staffColumns + ` FROM merchant_staff WHERE merchant_id = ? AND user_id > ?
		ORDER BY user_id LIMIT ?`
)

func (s *store) insertApplication(ctx context.Context, r applicationRow) error {
	_, err := s.ext(ctx).ExecContext(ctx, qInsertApplication, r.ID, r.ApplicantID, r.ApplicantID, r.ShopName,
		r.CompanyName, r.LicenseNo, r.ContactName, r.ContactPhone, r.CreatedAt, r.CreatedAt)
	if sqldb.IsDuplicate(err) {
		return ErrApplicationPending
	}
	return err
}

func (s *store) application(ctx context.Context, id int64) (applicationRow, error) {
	var r applicationRow
	err := sqlx.GetContext(ctx, s.ext(ctx), &r, qApplicationByID, id)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrApplicationNotFound
	}
	return r, err
}

func (s *store) lockApplication(ctx context.Context, id int64) (applicationRow, error) {
	var r applicationRow
	err := sqlx.GetContext(ctx, s.ext(ctx), &r, qApplicationForUpdate, id)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrApplicationNotFound
	}
	return r, err
}

// applications lists applications newest first, below the ID before (0 = from the top):
// the applicant's when applicantID != 0, else those with status (all when "").
func (s *store) applications(ctx context.Context, applicantID int64, status string, before int64, limit int) ([]applicationRow, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	var rows []applicationRow
	var err error
	switch {
	case applicantID != 0:
		err = sqlx.SelectContext(ctx, s.ext(ctx), &rows, qApplicationsMine, applicantID, before, limit)
	case status != "":
		err = sqlx.SelectContext(ctx, s.ext(ctx), &rows, qApplicationsByStatus, status, before, limit)
	default:
		err = sqlx.SelectContext(ctx, s.ext(ctx), &rows, qApplicationsAll, before, limit)
	}
	return rows, err
}

func (s *store) reviewApplication(ctx context.Context, id int64, status ApplicationStatus, reason string, merchantID, by int64, at time.Time) error {
	mid := sql.NullInt64{Int64: merchantID, Valid: merchantID != 0}
	res, err := s.ext(ctx).ExecContext(ctx, qReviewApplication, string(status), reason, mid, by, at, at, id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errors.Join(err, ErrApplicationReviewed)
	}
	return nil
}

func (s *store) insertMerchant(ctx context.Context, r merchantRow) error {
	_, err := s.ext(ctx).ExecContext(ctx, qInsertMerchant, r.ID, r.ApplicationID, r.OwnerID, r.ShopName, r.CompanyName,
		r.Description, r.LogoURL, r.ContactName, r.ContactPhone, r.Status, r.CommissionRateBP, r.CreatedAt, r.UpdatedAt)
	return err
}

func (s *store) merchant(ctx context.Context, id int64, lock bool) (merchantRow, error) {
	q := qMerchantByID
	if lock {
		q = qMerchantLock
	}
	var r merchantRow
	err := sqlx.GetContext(ctx, s.ext(ctx), &r, q, id)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	return r, err
}

func (s *store) status(ctx context.Context, id int64) (Status, error) {
	var st string
	err := sqlx.GetContext(ctx, s.ext(ctx), &st, qMerchantStatus, id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return Status(st), err
}

// commissionRate is the merchant's override, nil without one.
func (s *store) commissionRate(ctx context.Context, id int64) (*int, error) {
	var v sql.NullInt32
	err := sqlx.GetContext(ctx, s.ext(ctx), &v, qMerchantRate, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return rateOf(v), err
}

func (s *store) setCommissionRate(ctx context.Context, id int64, bp *int, at time.Time) error {
	_, err := s.ext(ctx).ExecContext(ctx, qSetRate, nullRate(bp), at, id)
	return err
}

func (s *store) setStatus(ctx context.Context, id int64, st Status, at time.Time) error {
	_, err := s.ext(ctx).ExecContext(ctx, qSetStatus, string(st), at, id)
	return err
}

func (s *store) updateProfile(ctx context.Context, r merchantRow) error {
	_, err := s.ext(ctx).ExecContext(ctx, qUpdateProfile, r.ShopName, r.Description, r.LogoURL, r.ContactName,
		r.ContactPhone, r.UpdatedAt, r.ID)
	return err
}

func (s *store) insertStaff(ctx context.Context, r staffRow) error {
	_, err := s.ext(ctx).ExecContext(ctx, qInsertStaff, r.MerchantID, r.UserID, r.Role, r.CreatedAt)
	if sqldb.IsDuplicate(err) {
		return ErrStaffConflict
	}
	return err
}

func (s *store) deleteStaff(ctx context.Context, merchantID, userID int64) (bool, error) {
	res, err := s.ext(ctx).ExecContext(ctx, qDeleteStaff, merchantID, userID)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (s *store) staffMember(ctx context.Context, merchantID, userID int64) (staffRow, error) {
	var r staffRow
	err := sqlx.GetContext(ctx, s.ext(ctx), &r, qStaffOne, merchantID, userID)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrStaffNotFound
	}
	return r, err
}

func (s *store) staffList(ctx context.Context, merchantID, after int64, limit int) ([]staffRow, error) {
	var rows []staffRow
	err := sqlx.SelectContext(ctx, s.ext(ctx), &rows, qStaffList, merchantID, after, limit)
	return rows, err
}

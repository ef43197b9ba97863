package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mallhq/mall/internal/platform/sqldb"
)

// store is the module's SQL on db.main. Every method runs in the transaction in ctx when
// there is one. Status changes are compare-and-set: the UPDATE names the expected status
// and rows affected decides.
type store struct {
	cl *sqldb.Cluster
}

func (s *store) main(ctx context.Context) sqlx.ExtContext { return sqldb.Ext(ctx, s.cl.Main()) }

type categoryRow struct {
	ID               int64         `db:"id"`
	ParentID         sql.NullInt64 `db:"parent_id"`
	Name             string        `db:"name"`
	CommissionRateBP sql.NullInt32 `db:"commission_rate_bp"` // NULL: inherits
	Sort             int           `db:"sort"`
}

// rate is the category's own rate, nil when it has none.
func (r categoryRow) rate() *int {
	if !r.CommissionRateBP.Valid {
		return nil
	}
	n := int(r.CommissionRateBP.Int32)
	return &n
}

func (s *store) insertCategory(ctx context.Context, id int64, in NewCategory, now time.Time) error {
	var parent, rate any
	if in.ParentID != 0 {
		parent = in.ParentID
	}
	if in.CommissionRateBP != nil {
		rate = *in.CommissionRateBP
	}
	_, err := s.main(ctx).ExecContext(ctx, `INSERT INTO catalog_categories
		(id, parent_id, name, commission_rate_bp, sort, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		id, parent, in.Name, rate, in.Sort, now)
	return err
}

func (s *store) categories(ctx context.Context) ([]categoryRow, error) {
	var rows []categoryRow
	err := sqlx.SelectContext(ctx, s.main(ctx), &rows,
		`SELECT id, parent_id, name, commission_rate_bp, sort FROM catalog_categories ORDER BY sort, id`)
	return rows, err
}

// categoryParent returns the category's parent (0 for a root); ErrCategoryNotFound when absent.
func (s *store) categoryParent(ctx context.Context, id int64) (int64, error) {
	var p sql.NullInt64
	err := sqlx.GetContext(ctx, s.main(ctx), &p, `SELECT parent_id FROM catalog_categories WHERE id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrCategoryNotFound
	}
	return p.Int64, err
}

type attributeRow struct {
	Kind   string         `db:"kind"`
	Name   string         `db:"name"`
	Values sql.NullString `db:"allowed_values"`
}

func (s *store) replaceAttributes(ctx context.Context, categoryID int64, t Template) error {
	if _, err := s.main(ctx).ExecContext(ctx, `DELETE FROM catalog_category_attributes WHERE category_id = ?`, categoryID); err != nil {
		return err
	}
	for kind, attrs := range map[string][]Attribute{"spec": t.Spec, "sale": t.Sale} {
		for i, a := range attrs {
			var vals any
			if len(a.Values) > 0 {
				b, err := json.Marshal(a.Values)
				if err != nil {
					return err
				}
				vals = string(b)
			}
			if _, err := s.main(ctx).ExecContext(ctx, `INSERT INTO catalog_category_attributes
				(category_id, kind, name, allowed_values, sort) VALUES (?, ?, ?, ?, ?)`,
				categoryID, kind, a.Name, vals, i); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *store) attributes(ctx context.Context, categoryID int64) (Template, error) {
	var rows []attributeRow
	if err := sqlx.SelectContext(ctx, s.main(ctx), &rows, `SELECT kind, name, allowed_values
		FROM catalog_category_attributes WHERE category_id = ? ORDER BY sort, name`, categoryID); err != nil {
		return Template{}, err
	}
	var t Template
	for _, r := range rows {
		a := Attribute{Name: r.Name}
		if r.Values.Valid {
			if err := json.Unmarshal([]byte(r.Values.String), &a.Values); err != nil {
				return Template{}, err
			}
		}
		if r.Kind == "sale" {
			t.Sale = append(t.Sale, a)
		} else {
			t.Spec = append(t.Spec, a)
		}
	}
	return t, nil
}

func (s *store) insertBrand(ctx context.Context, id int64, name string, now time.Time) error {
	_, err := s.main(ctx).ExecContext(ctx, `INSERT INTO catalog_brands (id, name, created_at) VALUES (?, ?, ?)`, id, name, now)
	if sqldb.IsDuplicate(err) {
		return ErrBrandExists
	}
	return err
}

func (s *store) brandExists(ctx context.Context, id int64) (bool, error) {
	var n int
	err := sqlx.GetContext(ctx, s.main(ctx), &n, `SELECT COUNT(*) FROM catalog_brands WHERE id = ?`, id)
	return n > 0, err
}

type productRow struct {
	ID           int64         `db:"id"`
	MerchantID   int64         `db:"merchant_id"`
	CategoryID   int64         `db:"category_id"`
	BrandID      sql.NullInt64 `db:"brand_id"`
	Title        string        `db:"title"`
	Subtitle     string        `db:"subtitle"`
	Description  string        `db:"description"`
	Images       string        `db:"images"`
	Specs        string        `db:"specs"`
	Status       string        `db:"status"`
	RejectReason string        `db:"reject_reason"`
	PriceMin     int64         `db:"price_min"`
	PriceMax     int64         `db:"price_max"`
	CreatedAt    time.Time     `db:"created_at"`
	UpdatedAt    time.Time     `db:"updated_at"`
}

const productColumns = `id, merchant_id, category_id, brand_id, title, subtitle, description, images, specs,
	status, reject_reason, price_min, price_max, created_at, updated_at`

func (r productRow) product() (Product, error) {
	p := Product{ID: r.ID, MerchantID: r.MerchantID, CategoryID: r.CategoryID, BrandID: r.BrandID.Int64,
		Title: r.Title, Subtitle: r.Subtitle, Description: r.Description, Status: Status(r.Status),
		RejectReason: r.RejectReason, PriceMin: r.PriceMin, PriceMax: r.PriceMax,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if err := json.Unmarshal([]byte(r.Images), &p.Images); err != nil {
		return Product{}, err
	}
	if err := json.Unmarshal([]byte(r.Specs), &p.Specs); err != nil {
		return Product{}, err
	}
	return p, nil
}

func rowOf(p Product) (productRow, error) {
	images, err := json.Marshal(nonNilSlice(p.Images))
	if err != nil {
		return productRow{}, err
	}
	specs, err := json.Marshal(nonNilMap(p.Specs))
	if err != nil {
		return productRow{}, err
	}
	return productRow{ID: p.ID, MerchantID: p.MerchantID, CategoryID: p.CategoryID,
		BrandID: sql.NullInt64{Int64: p.BrandID, Valid: p.BrandID != 0}, Title: p.Title, Subtitle: p.Subtitle,
		Description: p.Description, Images: string(images), Specs: string(specs), Status: string(p.Status),
		RejectReason: p.RejectReason, PriceMin: p.PriceMin, PriceMax: p.PriceMax,
		CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}, nil
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func (s *store) insertProduct(ctx context.Context, p Product) error {
	r, err := rowOf(p)
	if err != nil {
		return err
	}
	_, err = sqlx.NamedExecContext(ctx, s.main(ctx), `INSERT INTO catalog_products (`+productColumns+`)
		VALUES (:id, :merchant_id, :category_id, :brand_id, :title, :subtitle, :description, :images, :specs,
		:status, :reject_reason, :price_min, :price_max, :created_at, :updated_at)`, r)
	return err
}

// updateProduct writes the editable fields, guarded by merchant and the expected status.
func (s *store) updateProduct(ctx context.Context, p Product, expect Status) (bool, error) {
	r, err := rowOf(p)
	if err != nil {
		return false, err
	}
	res, err := s.main(ctx).ExecContext(ctx, `UPDATE catalog_products SET brand_id = ?, title = ?, subtitle = ?,
		description = ?, images = ?, specs = ?, price_min = ?, price_max = ?, updated_at = ?
		WHERE id = ? AND merchant_id = ? AND status = ?`,
		r.BrandID, r.Title, r.Subtitle, r.Description, r.Images, r.Specs, r.PriceMin, r.PriceMax, r.UpdatedAt,
		r.ID, r.MerchantID, string(expect))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// setStatus is the compare-and-set transition from -> to.
func (s *store) setStatus(ctx context.Context, id int64, from, to Status, reason string, now time.Time) (bool, error) {
	res, err := s.main(ctx).ExecContext(ctx, `UPDATE catalog_products SET status = ?, reject_reason = ?, updated_at = ?
		WHERE id = ? AND status = ?`, string(to), reason, now, id, string(from))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// product reads one product; merchantID 0 means any merchant.
func (s *store) product(ctx context.Context, merchantID, id int64) (Product, error) {
	var r productRow
	q := `SELECT ` + productColumns + ` FROM catalog_products WHERE id = ?`
	args := []any{id}
	if merchantID != 0 {
		q += ` AND merchant_id = ?`
		args = append(args, merchantID)
	}
	err := sqlx.GetContext(ctx, s.main(ctx), &r, q, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return Product{}, ErrProductNotFound
	}
	if err != nil {
		return Product{}, err
	}
	return r.product()
}

// products lists newest first (by ID) below before (0: from the top).
func (s *store) products(ctx context.Context, merchantID int64, status Status, limit int, before int64) ([]Product, error) {
	q := `SELECT ` + productColumns + ` FROM catalog_products WHERE 1 = 1`
	var args []any
	if merchantID != 0 {
		q += ` AND merchant_id = ?`
		args = append(args, merchantID)
	}
	if status != "" {
		q += ` AND status = ?`
		args = append(args, string(status))
	}
	if before > 0 {
		q += ` AND id < ?`
		args = append(args, before)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	var rows []productRow
	if err := sqlx.SelectContext(ctx, s.main(ctx), &rows, q, args...); err != nil {
		return nil, err
	}
	out := make([]Product, 0, len(rows))
	for _, r := range rows {
		p, err := r.product()
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

type skuRow struct {
	ID         int64  `db:"id"`
	ProductID  int64  `db:"product_id"`
	MerchantID int64  `db:"merchant_id"`
	Code       string `db:"code"`
	Attrs      string `db:"attrs"`
	Price      int64  `db:"price"`
}

func (s *store) insertSKU(ctx context.Context, k SKU, attrsKey string, now time.Time) error {
	attrs, err := json.Marshal(nonNilMap(k.Attrs))
	if err != nil {
		return err
	}
	_, err = s.main(ctx).ExecContext(ctx, `INSERT INTO catalog_skus
		(id, product_id, merchant_id, code, attrs, attrs_key, price, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.ProductID, k.MerchantID, k.Code, string(attrs), attrsKey, k.Price, now, now)
	return err
}

func (s *store) skus(ctx context.Context, productID int64) ([]SKU, error) {
	var rows []skuRow
	if err := sqlx.SelectContext(ctx, s.main(ctx), &rows, `SELECT id, product_id, merchant_id, code, attrs, price
		FROM catalog_skus WHERE product_id = ? ORDER BY id`, productID); err != nil {
		return nil, err
	}
	out := make([]SKU, 0, len(rows))
	for _, r := range rows {
		k := SKU{ID: r.ID, ProductID: r.ProductID, MerchantID: r.MerchantID, Code: r.Code, Price: r.Price}
		if err := json.Unmarshal([]byte(r.Attrs), &k.Attrs); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

func (s *store) setSKUPrice(ctx context.Context, merchantID, productID, skuID, price int64, now time.Time) error {
	_, err := s.main(ctx).ExecContext(ctx, `UPDATE catalog_skus SET price = ?, updated_at = ?
		WHERE id = ? AND product_id = ? AND merchant_id = ?`, price, now, skuID, productID, merchantID)
	return err
}

// skuProduct returns the product of a SKU; found is false for an unknown SKU.
func (s *store) skuProduct(ctx context.Context, skuID int64) (productID int64, found bool, err error) {
	err = sqlx.GetContext(ctx, s.main(ctx), &productID, `SELECT product_id FROM catalog_skus WHERE id = ?`, skuID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return productID, err == nil, err
}

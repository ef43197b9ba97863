package catalog

import (
	"context"
	"database/sql"
	"time"

	"github.com/jmoiron/sqlx"
)

// The search indexer's reads: the truth it indexes, straight from catalog_products and
// catalog_skus (never the cached detail), in the transaction in ctx when there is one.

// searchRow is the part of a product the search document is built from.
type searchRow struct {
	ID         int64         `db:"id"`
	MerchantID int64         `db:"merchant_id"`
	CategoryID int64         `db:"category_id"`
	BrandID    sql.NullInt64 `db:"brand_id"`
	Title      string        `db:"title"`
	Subtitle   string        `db:"subtitle"`
	Status     string        `db:"status"`
	PriceMin   int64         `db:"price_min"`
	PriceMax   int64         `db:"price_max"`
	CreatedAt  time.Time     `db:"created_at"`
}

const searchColumns = `id, merchant_id, category_id, brand_id, title, subtitle, status, price_min, price_max, created_at`

// searchRows reads the products among ids that exist, in any status.
func (s *store) searchRows(ctx context.Context, ids []int64) ([]searchRow, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	q, args, err := sqlx.In(`SELECT `+searchColumns+` FROM catalog_products WHERE id IN (?) ORDER BY id`, ids)
	if err != nil {
		return nil, err
	}
	var rows []searchRow
	err = sqlx.SelectContext(ctx, s.main(ctx), &rows, q, args...)
	return rows, err
}

// onSaleAfter reads up to limit on-sale products with an ID above after, in ID order.
func (s *store) onSaleAfter(ctx context.Context, after int64, limit int) ([]searchRow, error) {
	var rows []searchRow
	err := sqlx.SelectContext(ctx, s.main(ctx), &rows, `SELECT `+searchColumns+` FROM catalog_products
		WHERE status = ? AND id > ? ORDER BY id LIMIT ?`, string(StatusOnSale), after, limit)
	return rows, err
}

// merchantProductIDs lists the IDs of the merchant's products in any status above after,
// in ID order.
func (s *store) merchantProductIDs(ctx context.Context, merchantID, after int64, limit int) ([]int64, error) {
	var ids []int64
	err := sqlx.SelectContext(ctx, s.main(ctx), &ids, `SELECT id FROM catalog_products
		WHERE merchant_id = ? AND id > ? ORDER BY id LIMIT ?`, merchantID, after, limit)
	return ids, err
}

type skuPriceRow struct {
	ID        int64 `db:"id"`
	ProductID int64 `db:"product_id"`
	Price     int64 `db:"price"`
}

// skuPrices reads the SKUs (ID and price) of the products.
func (s *store) skuPrices(ctx context.Context, productIDs []int64) ([]skuPriceRow, error) {
	if len(productIDs) == 0 {
		return nil, nil
	}
	q, args, err := sqlx.In(`SELECT id, product_id, price FROM catalog_skus WHERE product_id IN (?) ORDER BY id`, productIDs)
	if err != nil {
		return nil, err
	}
	var rows []skuPriceRow
	err = sqlx.SelectContext(ctx, s.main(ctx), &rows, q, args...)
	return rows, err
}

type categoryParentRow struct {
	ID       int64         `db:"id"`
	ParentID sql.NullInt64 `db:"parent_id"`
}

// categoryParents reads the parents (0 for a root) of the categories that exist among ids.
func (s *store) categoryParents(ctx context.Context, ids []int64) (map[int64]int64, error) {
	out := make(map[int64]int64, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	q, args, err := sqlx.In(`SELECT id, parent_id FROM catalog_categories WHERE id IN (?)`, ids)
	if err != nil {
		return nil, err
	}
	var rows []categoryParentRow
	if err := sqlx.SelectContext(ctx, s.main(ctx), &rows, q, args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.ID] = r.ParentID.Int64
	}
	return out, nil
}

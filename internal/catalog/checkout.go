package catalog

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"
)

// SaleSKU is a SKU a buyer can order now: its product is on sale and its merchant is
// active. The order module takes prices and merchants from it, never from the client.
type SaleSKU struct {
	SKUID, ProductID, MerchantID int64
	Title                        string
	Attrs                        map[string]string
	Price                        int64
}

type saleSKURow struct {
	ID         int64  `db:"id"`
	ProductID  int64  `db:"product_id"`
	MerchantID int64  `db:"merchant_id"`
	Title      string `db:"title"`
	Attrs      string `db:"attrs"`
	Price      int64  `db:"price"`
}

// SaleSKUs returns the SKUs among skuIDs that are on sale (product on_sale, merchant
// active), by SKU ID; the others are absent. At most MaxSaleSKUs IDs.
func (s *service) SaleSKUs(ctx context.Context, skuIDs []int64) (map[int64]SaleSKU, error) {
	ids := slices.Clone(skuIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	out := make(map[int64]SaleSKU, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	if len(ids) > MaxSaleSKUs {
		return nil, ErrInvalidProduct.WithDetail("at most %d SKUs at once", MaxSaleSKUs)
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	q := `SELECT k.id, k.product_id, k.merchant_id, p.title, k.attrs, k.price
		FROM catalog_skus k JOIN catalog_products p ON p.id = k.product_id
		WHERE p.status = 'on_sale' AND k.id IN (?` + strings.Repeat(", ?", len(ids)-1) + `)`
	var rows []saleSKURow
	if err := sqlx.SelectContext(ctx, s.st.main(ctx), &rows, q, args...); err != nil {
		return nil, err
	}
	active := map[int64]bool{}
	for _, r := range rows {
		ok, seen := active[r.MerchantID]
		if !seen {
			ok = true
			if s.merchants != nil {
				var err error
				if ok, err = s.merchants.IsActive(ctx, r.MerchantID); err != nil {
					return nil, err
				}
			}
			active[r.MerchantID] = ok
		}
		if !ok {
			continue
		}
		k := SaleSKU{SKUID: r.ID, ProductID: r.ProductID, MerchantID: r.MerchantID, Title: r.Title, Price: r.Price}
		if err := json.Unmarshal([]byte(r.Attrs), &k.Attrs); err != nil {
			return nil, err
		}
		out[k.SKUID] = k
	}
	return out, nil
}

// MaxSaleSKUs bounds one SaleSKUs call.
const MaxSaleSKUs = 1000

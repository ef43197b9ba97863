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
	// CommissionRateBP is the platform's commission on the SKU in basis points: the
	// merchant's override, else the rate of the product's category or its nearest ancestor
	// with one, else NoCommissionRate (the platform default applies). It may lag a change
	// by a few seconds (commission.go).
	CommissionRateBP int
}

type saleSKURow struct {
	ID         int64  `db:"id"`
	ProductID  int64  `db:"product_id"`
	MerchantID int64  `db:"merchant_id"`
	CategoryID int64  `db:"category_id"`
	Title      string `db:"title"`
	Attrs      string `db:"attrs"`
	Price      int64  `db:"price"`
}

// merchantTerms is what SaleSKUs needs of a merchant, asked once per call.
type merchantTerms struct {
	active   bool
	override int // NoCommissionRate: none
}

func (s *service) merchantTerms(ctx context.Context, merchantID int64) (merchantTerms, error) {
	if s.merchants == nil {
		return merchantTerms{active: true, override: NoCommissionRate}, nil
	}
	active, err := s.merchants.IsActive(ctx, merchantID)
	if err != nil || !active {
		return merchantTerms{}, err
	}
	bp, ok, err := s.merchants.CommissionRate(ctx, merchantID)
	if err != nil {
		return merchantTerms{}, err
	}
	if !ok {
		bp = NoCommissionRate
	}
	return merchantTerms{active: true, override: bp}, nil
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
	q := `SELECT k.id, k.product_id, k.merchant_id, p.category_id, p.title, k.attrs, k.price
		FROM catalog_skus k JOIN catalog_products p ON p.id = k.product_id
		WHERE p.status = 'on_sale' AND k.id IN (?` + strings.Repeat(", ?", len(ids)-1) + `)`
	var rows []saleSKURow
	if err := sqlx.SelectContext(ctx, s.st.main(ctx), &rows, q, args...); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return out, nil
	}
	cats := make([]int64, len(rows))
	for i, r := range rows {
		cats[i] = r.CategoryID
	}
	rates, err := s.categoryRates.rates(ctx, cats, s.st.categories)
	if err != nil {
		return nil, err
	}
	terms := map[int64]merchantTerms{}
	for _, r := range rows {
		m, seen := terms[r.MerchantID]
		if !seen {
			if m, err = s.merchantTerms(ctx, r.MerchantID); err != nil {
				return nil, err
			}
			terms[r.MerchantID] = m
		}
		if !m.active {
			continue
		}
		k := SaleSKU{SKUID: r.ID, ProductID: r.ProductID, MerchantID: r.MerchantID, Title: r.Title, Price: r.Price,
			CommissionRateBP: m.override}
		if k.CommissionRateBP == NoCommissionRate {
			if bp, ok := rates[r.CategoryID]; ok {
				k.CommissionRateBP = bp
			}
		}
		if err := json.Unmarshal([]byte(r.Attrs), &k.Attrs); err != nil {
			return nil, err
		}
		out[k.SKUID] = k
	}
	return out, nil
}

// MaxSaleSKUs bounds one SaleSKUs call.
const MaxSaleSKUs = 1000

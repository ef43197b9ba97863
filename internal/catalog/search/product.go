package search

import (
	"slices"
	"time"
)

// Dates outside this range do not fit every engine's date type (bleve and ES keep
// nanoseconds or milliseconds in an int64).
var (
	minCreatedAt = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxCreatedAt = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// normalize validates p and returns the form both engines index: CategoryPath contains
// CategoryID, CreatedAt is UTC with millisecond precision (the cursor carries milliseconds).
func (p Product) normalize() (Product, error) {
	switch {
	case p.ID <= 0:
		return Product{}, ErrBadProduct.WithDetail("id %d: must be positive", p.ID)
	case p.MerchantID <= 0 || p.CategoryID <= 0 || p.BrandID < 0:
		return Product{}, ErrBadProduct.WithDetail("product %d: merchant and category IDs must be positive, brand ID not negative", p.ID)
	case p.PriceMin < 0 || p.PriceMax < p.PriceMin || p.PriceMax > MaxPrice:
		return Product{}, ErrBadProduct.WithDetail("product %d: need 0 <= price_min <= price_max <= %d", p.ID, int64(MaxPrice))
	case p.Sales < 0:
		return Product{}, ErrBadProduct.WithDetail("product %d: sales must not be negative", p.ID)
	case p.CreatedAt.Before(minCreatedAt) || !p.CreatedAt.Before(maxCreatedAt):
		return Product{}, ErrBadProduct.WithDetail("product %d: created_at %s out of range", p.ID, p.CreatedAt)
	}
	path := make([]int64, 0, len(p.CategoryPath)+1)
	for _, c := range p.CategoryPath {
		if c <= 0 {
			return Product{}, ErrBadProduct.WithDetail("product %d: category path holds %d", p.ID, c)
		}
		if !slices.Contains(path, c) {
			path = append(path, c)
		}
	}
	if !slices.Contains(path, p.CategoryID) {
		path = append(path, p.CategoryID)
	}
	p.CategoryPath = path
	p.CreatedAt = p.CreatedAt.UTC().Truncate(time.Millisecond)
	return p, nil
}

func normalizeAll(products []Product) ([]Product, error) {
	out := make([]Product, len(products))
	for i, p := range products {
		n, err := p.normalize()
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

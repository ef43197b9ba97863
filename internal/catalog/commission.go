package catalog

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// NoCommissionRate is SaleSKU.CommissionRateBP when neither the merchant nor the product's
// category (nor any of its ancestors) has a rate: the order module applies the platform's
// default (settlement.default_commission_bp).
const NoCommissionRate = -1

// Commission rates on the checkout path (SaleSKUs, every order) come from memory:
//   - the merchant's override from merchant.Service.CommissionRate, the merchant module's
//     in-process cache (merchant.StatusCacheTTL, a few seconds, the same bound as a
//     suspension; the replica where the operator changed it sees it at once);
//   - the category's effective rate (its own, else the nearest ancestor's) from
//     categoryRates: the whole tree, resolved once per load. Categories are only ever
//     created (no route edits a rate or a parent), so the snapshot goes stale only by
//     missing new categories: a category ID it does not know reloads it (at most once per
//     categoryMissReload), a category created here drops it at once, and
//     categoryRatesTTL bounds anything else (a rate edited in the database).
const (
	categoryRatesTTL   = time.Minute
	categoryMissReload = time.Second
)

// categoryRates is an immutable snapshot of every category's effective rate, swapped whole.
type categoryRates struct {
	now  func() time.Time
	snap atomic.Pointer[rateSnapshot]
	mu   sync.Mutex // one reload at a time
}

type rateSnapshot struct {
	rates  map[int64]int // category -> effective rate, NoCommissionRate for none
	loaded time.Time
}

// rates returns the effective rate of each category in ids (NoCommissionRate for one
// without, or unknown), loading the tree with load when the snapshot is missing, expired,
// or lacks one of ids.
func (c *categoryRates) rates(ctx context.Context, ids []int64, load func(context.Context) ([]categoryRow, error)) (map[int64]int, error) {
	now := c.now()
	snap := c.snap.Load()
	if snap == nil || now.Sub(snap.loaded) >= categoryRatesTTL || (!snap.has(ids) && now.Sub(snap.loaded) >= categoryMissReload) {
		var err error
		if snap, err = c.reload(ctx, snap, load); err != nil {
			return nil, err
		}
	}
	return snap.rates, nil
}

func (s *rateSnapshot) has(ids []int64) bool {
	for _, id := range ids {
		if _, ok := s.rates[id]; !ok {
			return false
		}
	}
	return true
}

// reload loads a new snapshot unless another caller replaced stale meanwhile.
func (c *categoryRates) reload(ctx context.Context, stale *rateSnapshot, load func(context.Context) ([]categoryRow, error)) (*rateSnapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.snap.Load(); cur != nil && cur != stale {
		return cur, nil
	}
	loaded := c.now()
	rows, err := load(ctx)
	if err != nil {
		return nil, err
	}
	snap := &rateSnapshot{rates: effectiveRates(rows), loaded: loaded}
	c.snap.Store(snap)
	return snap, nil
}

// invalidate drops the snapshot (a category was created on this replica).
func (c *categoryRates) invalidate() { c.snap.Store(nil) }

// effectiveRates resolves every category's rate: its own, else the nearest ancestor's with
// one, else NoCommissionRate. An explicit 0 is a rate (0 %) and stops the walk.
func effectiveRates(rows []categoryRow) map[int64]int {
	byID := make(map[int64]categoryRow, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
	}
	out := make(map[int64]int, len(rows))
	for _, r := range rows {
		rate, cur := NoCommissionRate, r
		// The tree is at most MaxCategoryDepth deep; the bound also ends a corrupt cycle.
		for range MaxCategoryDepth + 1 {
			if cur.CommissionRateBP.Valid {
				rate = int(cur.CommissionRateBP.Int32)
				break
			}
			parent, ok := byID[cur.ParentID.Int64]
			if !cur.ParentID.Valid || !ok {
				break
			}
			cur = parent
		}
		out[r.ID] = rate
	}
	return out
}

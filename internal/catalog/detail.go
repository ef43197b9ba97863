package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mallhq/mall/internal/platform/cache"
	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/stock"
)

// The public product detail is read through a two-level cache (cache.Cache: in-process L1,
// Redis L2) keyed by product ID. The cached value is the product as the database has it
// (content, SKUs, availability); the merchant's status is checked per request outside it,
// so a suspension hides every product of the merchant within merchant.StatusCacheTTL
// without invalidating them one by one.
//
// Invalidation, twice over:
//   - the writing replica invalidates right after its transaction commits (every replica
//     drops the key at once through the cache bus), so the writer reads its own write;
//   - the detail-cache consumer invalidates for every catalog.product_changed and
//     stock.level_changed event, the safety net for a process that died between commit
//     and invalidation, and the only path for stock changes (the stock module cannot call
//     the catalog: catalog depends on stock).

// DetailCacheName names the detail cache's Redis keys and metrics (label cache=...). The
// version changes when the cached encoding (detailValue) changes incompatibly.
const DetailCacheName = "catalog.product.v1"

// DetailCacheGroup is the consumer group that invalidates the detail cache.
const DetailCacheGroup = "mall.catalog.detail-cache"

// detailNegativeTTL is how long "not on sale" is remembered. Short: a product going on
// sale invalidates it anyway; this only bounds a lost invalidation, and it absorbs
// requests for IDs that do not exist.
const detailNegativeTTL = 5 * time.Second

// invalidateTimeout bounds the post-commit invalidation, which outlives the request's
// context (a client that hangs up must not leave the old value cached).
const invalidateTimeout = 3 * time.Second

func newDetailCache(rdb redis.UniversalClient, bus *cache.Bus, c DetailCacheConfig) (*cache.Cache[detailValue], error) {
	return cache.New[detailValue](rdb, bus, cache.Options{
		Name:        DetailCacheName,
		L1Size:      c.L1Size,
		L1TTL:       c.L1TTL,
		L2TTL:       c.L2TTL,
		NegativeTTL: detailNegativeTTL,
	})
}

func detailKey(productID int64) string { return strconv.FormatInt(productID, 10) }

// detailValue is the cached public detail: an on-sale product with its SKUs and their
// availability. It has its own JSON encoding so that the cache's format changes only with
// DetailCacheName, not with Product. Values from the cache are shared between requests:
// product() copies one out.
type detailValue struct {
	ID          int64             `json:"id"`
	MerchantID  int64             `json:"merchant_id"`
	CategoryID  int64             `json:"category_id"`
	BrandID     int64             `json:"brand_id"`
	Title       string            `json:"title"`
	Subtitle    string            `json:"subtitle"`
	Description string            `json:"description"`
	Images      []string          `json:"images"`
	Specs       map[string]string `json:"specs"`
	PriceMin    int64             `json:"price_min"`
	PriceMax    int64             `json:"price_max"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	SKUs        []detailSKU       `json:"skus"`
}

type detailSKU struct {
	ID        int64             `json:"id"`
	Code      string            `json:"code"`
	Attrs     map[string]string `json:"attrs"`
	Price     int64             `json:"price"`
	Available int64             `json:"available"`
}

func toDetail(p Product) detailValue {
	d := detailValue{ID: p.ID, MerchantID: p.MerchantID, CategoryID: p.CategoryID, BrandID: p.BrandID,
		Title: p.Title, Subtitle: p.Subtitle, Description: p.Description, Images: p.Images, Specs: p.Specs,
		PriceMin: p.PriceMin, PriceMax: p.PriceMax, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
		SKUs: make([]detailSKU, len(p.SKUs))}
	for i, k := range p.SKUs {
		d.SKUs[i] = detailSKU{ID: k.ID, Code: k.Code, Attrs: k.Attrs, Price: k.Price, Available: k.Available}
	}
	return d
}

// product is a deep copy of d as an on-sale Product: callers may modify it.
func (d *detailValue) product() Product {
	p := Product{ID: d.ID, MerchantID: d.MerchantID, CategoryID: d.CategoryID, BrandID: d.BrandID,
		Title: d.Title, Subtitle: d.Subtitle, Description: d.Description,
		Images: append([]string{}, d.Images...), Specs: maps.Clone(nonNilMap(d.Specs)), Status: StatusOnSale,
		PriceMin: d.PriceMin, PriceMax: d.PriceMax, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
		SKUs: make([]SKU, len(d.SKUs))}
	for i, k := range d.SKUs {
		p.SKUs[i] = SKU{ID: k.ID, ProductID: d.ID, MerchantID: d.MerchantID, Code: k.Code,
			Attrs: maps.Clone(nonNilMap(k.Attrs)), Price: k.Price, Available: k.Available}
	}
	return p
}

// loadDetail reads an on-sale product, its SKUs and their availability from the database;
// cache.ErrNotFound when there is no such product or it is not on sale.
func (s *service) loadDetail(ctx context.Context, productID int64) (detailValue, error) {
	p, err := s.st.product(ctx, 0, productID)
	if errors.Is(err, ErrProductNotFound) {
		return detailValue{}, fmt.Errorf("catalog: product %d: %w", productID, cache.ErrNotFound)
	}
	if err != nil {
		return detailValue{}, err
	}
	if p.Status != StatusOnSale {
		return detailValue{}, fmt.Errorf("catalog: product %d is %s: %w", productID, p.Status, cache.ErrNotFound)
	}
	if p.SKUs, err = s.st.skus(ctx, p.ID); err != nil {
		return detailValue{}, err
	}
	ids := make([]int64, len(p.SKUs))
	for i, k := range p.SKUs {
		ids[i] = k.ID
	}
	levels, err := s.stock.Levels(ctx, ids...)
	if err != nil {
		return detailValue{}, err
	}
	for i := range p.SKUs {
		p.SKUs[i].Available = levels[p.SKUs[i].ID].Available
	}
	return toDetail(p), nil
}

// invalidateDetail drops the product's cached detail after a committed change. A failure
// is logged, not returned: the change is committed, and the change's event makes the
// detail-cache consumer invalidate again (retrying until Redis answers).
func (s *service) invalidateDetail(ctx context.Context, productID int64) {
	if s.testSkipInvalidate.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), invalidateTimeout)
	defer cancel()
	if err := s.detail.Invalidate(ctx, detailKey(productID)); err != nil {
		s.log.WarnContext(ctx, "product detail cache not invalidated; the catalog event will retry",
			"product_id", productID, "err", err)
	}
}

// detailCacheHandler is the consumer that invalidates the detail of the product each
// catalog or stock event is about.
func (s *service) detailCacheHandler() kafkax.Handler {
	return kafkax.Handler{
		Group:  DetailCacheGroup,
		Topics: []string{Topic, stock.Topic},
		Handle: s.handleDetailEvent,
		// Invalidating is idempotent (see handleDetailEvent): no inbox commit per event.
		NoInbox: true,
	}
}

// handleDetailEvent runs without an inbox (Handler.NoInbox): its effect, the invalidation,
// is idempotent, so a redelivery or a retry only invalidates again.
func (s *service) handleDetailEvent(ctx context.Context, ev kafkax.Envelope) error {
	var productID int64
	switch ev.Type {
	case EventProductChanged:
		var p ProductChanged
		if err := json.Unmarshal(ev.Payload, &p); err != nil || p.ID <= 0 {
			// Retrying cannot fix a payload; the L1/L2 TTLs bound what it leaves stale.
			s.log.ErrorContext(ctx, "undecodable catalog event skipped by the detail cache",
				"event_id", ev.ID, "type", ev.Type, "err", err)
			return nil
		}
		productID = p.ID
	case stock.EventLevelChanged:
		var l stock.LevelChanged
		if err := json.Unmarshal(ev.Payload, &l); err != nil || l.SKUID <= 0 {
			s.log.ErrorContext(ctx, "undecodable stock event skipped by the detail cache",
				"event_id", ev.ID, "type", ev.Type, "err", err)
			return nil
		}
		id, found, err := s.st.skuProduct(ctx, l.SKUID)
		if err != nil {
			return err
		}
		if !found {
			return nil // a SKU the catalog does not know has no detail
		}
		productID = id
	default:
		return nil
	}
	if s.testSkipConsumerInvalidate.Load() {
		return nil
	}
	return s.detail.Invalidate(ctx, detailKey(productID))
}

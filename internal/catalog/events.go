package catalog

import (
	"time"

	"github.com/mallhq/mall/internal/platform/kafkax"
)

// Topic carries every event of the catalog module, keyed by product ID.
var Topic = kafkax.Topic("catalog")

// Event types.
const (
	// EventProductChanged is written whenever a product is created, edited or changes
	// status; the detail cache and the search indexer consume it.
	EventProductChanged = "catalog.product_changed"
)

// ProductChanged carries the product's state after the change.
type ProductChanged struct {
	ID         int64     `json:"id,string"`
	MerchantID int64     `json:"merchant_id,string"`
	Status     Status    `json:"status"`
	PriceMin   int64     `json:"price_min"`
	PriceMax   int64     `json:"price_max"`
	OccurredAt time.Time `json:"occurred_at"`
}

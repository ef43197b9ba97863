package stock

import (
	"time"

	"github.com/mallhq/mall/internal/platform/kafkax"
)

// Topic carries every event of the stock module, keyed by SKU ID.
var Topic = kafkax.Topic("stock")

// Event types.
const (
	// EventLevelChanged is published whenever a SKU's counters change (Init, Set, and later
	// reservations). The catalog's cache and search indexer consume it.
	EventLevelChanged = "stock.level_changed"
)

// LevelChanged carries the SKU's counters after the change. Version increases with every
// change of the SKU, so a consumer can ignore an event older than one it has applied.
type LevelChanged struct {
	SKUID      int64     `json:"sku_id,string"`
	MerchantID int64     `json:"merchant_id,string"`
	Available  int64     `json:"available"`
	Reserved   int64     `json:"reserved"`
	Sold       int64     `json:"sold"`
	Version    int64     `json:"version"`
	OccurredAt time.Time `json:"occurred_at"`
}

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
	SKUID      int64 `json:"sku_id,string"`
	MerchantID int64 `json:"merchant_id,string"`
	Available  int64 `json:"available"`
	Reserved   int64 `json:"reserved"`
	Sold       int64 `json:"sold"`
	Version    int64 `json:"version"`
	// Cause is what moved the counters: "set" (Init, Set), "hold" (a reservation),
	// "release", "confirm" (held units sold), "retake" (available units sold: a payment
	// after its reservation was released), "return" (a refund). Empty in events written
	// before it existed.
	Cause      string    `json:"cause,omitempty"`
	OccurredAt time.Time `json:"occurred_at"`
}

// SoldChanged reports whether the change may have moved the units sold (true when the
// cause is unknown).
func (l LevelChanged) SoldChanged() bool {
	switch l.Cause {
	case CauseSet, CauseHold, CauseRelease, CausePoolOpen, CausePoolClose:
		return false
	}
	return true
}

// Causes of a level change (LevelChanged.Cause).
const (
	CauseSet     = "set"
	CauseHold    = "hold"
	CauseRelease = "release"
	CauseConfirm = "confirm"
	CauseRetake  = "retake"
	CauseReturn  = "return"
)

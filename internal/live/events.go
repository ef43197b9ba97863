package live

import (
	"time"

	"github.com/mallhq/mall/internal/platform/kafkax"
)

// Topic carries every event of the live module, keyed by room ID.
var Topic = kafkax.Topic("live")

// Event types.
const (
	EventRoomCreated     = "live.room_created"
	EventRoomStarted     = "live.room_started"
	EventRoomEnded       = "live.room_ended"
	EventRoomBanned      = "live.room_banned"
	EventProductPinned   = "live.product_pinned"
	EventProductUnpinned = "live.product_unpinned"
)

// RoomChanged is the payload of every live event: the room after the change. Version
// increases with every change of the room, so a consumer can drop a stale event.
type RoomChanged struct {
	RoomID          int64     `json:"room_id,string"`
	MerchantID      int64     `json:"merchant_id,string"`
	Status          Status    `json:"status"`
	PinnedProductID int64     `json:"pinned_product_id,string"`
	Version         int64     `json:"version"`
	OccurredAt      time.Time `json:"occurred_at"`
}

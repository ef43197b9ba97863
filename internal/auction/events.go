package auction

import (
	"time"

	"github.com/mallhq/mall/internal/platform/kafkax"
)

// Topic carries every event of the auction module, keyed by lot ID.
var Topic = kafkax.Topic("auction")

// Event types.
const (
	EventCreated  = "auction.created"
	EventStarted  = "auction.started"
	EventBid      = "auction.bid_placed"
	EventExtended = "auction.extended"
	// EventEnded is written once per lot, in the transaction that ends it.
	EventEnded = "auction.ended"
	// EventOrderPlaced: the winner's order exists.
	EventOrderPlaced = "auction.order_placed"
)

// LotEvent is the payload of created, started and extended.
type LotEvent struct {
	LotID      int64     `json:"lot_id,string"`
	MerchantID int64     `json:"merchant_id,string"`
	Status     Status    `json:"status"`
	EndsAt     time.Time `json:"ends_at"`
	Version    int64     `json:"version"`
	OccurredAt time.Time `json:"occurred_at"`
}

// BidEvent is one accepted bid.
type BidEvent struct {
	LotID      int64     `json:"lot_id,string"`
	BidID      int64     `json:"bid_id,string"`
	BidderID   int64     `json:"bidder_id,string"`
	Seq        int64     `json:"seq"`
	Amount     int64     `json:"amount"`
	Kind       BidKind   `json:"kind"`
	EndsAt     time.Time `json:"ends_at"`
	OccurredAt time.Time `json:"occurred_at"`
}

// EndedEvent closes a lot. WinnerID is 0 without a bid; the winner's order follows only
// when ReserveMet.
type EndedEvent struct {
	LotID      int64     `json:"lot_id,string"`
	MerchantID int64     `json:"merchant_id,string"`
	WinnerID   int64     `json:"winner_id,string"`
	FinalPrice int64     `json:"final_price"`
	BidCount   int64     `json:"bid_count"`
	ReserveMet bool      `json:"reserve_met"`
	OccurredAt time.Time `json:"occurred_at"`
}

// OrderPlacedEvent links a lot to its winner's order.
type OrderPlacedEvent struct {
	LotID      int64     `json:"lot_id,string"`
	OrderID    int64     `json:"order_id,string"`
	BuyerID    int64     `json:"buyer_id,string"`
	Price      int64     `json:"price"`
	OccurredAt time.Time `json:"occurred_at"`
}

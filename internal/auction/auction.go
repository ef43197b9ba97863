// Package auction is Mall's auction module: English auctions on a merchant's product with
// a start price, a fixed increment (or a ladder of increments by price band), an optional
// reserve, soft close, and proxy (maximum) bids as on eBay.
//
// A bid is acknowledged only once it is durable in MySQL: the lot row is locked, the bid
// validated, the bid rows, the lot and the outbox events written in one transaction. A
// Redis gate holding the lot's hot state turns away bids that are already too low or too
// late before they reach the database; it may only ever be more lenient than the database
// (ADR 0020). A scheduler starts and ends lots with compare-and-set updates and creates the
// winner's order through the order module.
//
// Other modules import this package only: the Service interface, the domain types, the
// errors and the events (events.go).
package auction

import (
	"context"
	"time"

	"github.com/mallhq/mall/internal/platform/errs"
)

// Service is what the HTTP handlers and other modules may ask of the auction module.
type Service interface {
	// Create schedules a lot for the merchant.
	Create(ctx context.Context, merchantID int64, in NewLot) (Lot, error)
	// Get returns a lot (any status).
	Get(ctx context.Context, id int64) (Lot, error)
	// List returns lots of a status ("" = every status), newest first, before the ID
	// (0 = from the newest).
	List(ctx context.Context, status Status, limit int, before int64) ([]Lot, error)
	// Bid places a bid (and optionally a proxy maximum) for the bidder.
	Bid(ctx context.Context, in PlaceBid) (BidResult, error)
	// Bids returns the lot's accepted bids, newest first, before the sequence number
	// (0 = from the newest).
	Bids(ctx context.Context, lotID int64, limit int, before int64) ([]Bid, error)
}

// Status is a lot's state.
type Status string

// Lot statuses (API.md).
const (
	StatusScheduled Status = "scheduled"
	StatusRunning   Status = "running"
	StatusEnded     Status = "ended"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	return s == StatusScheduled || s == StatusRunning || s == StatusEnded
}

// Band is one step of an increment ladder: from this price on, bids rise by Increment.
type Band struct {
	From      int64 `json:"from"`
	Increment int64 `json:"increment"`
}

// NewLot is what a merchant states to schedule a lot.
type NewLot struct {
	Title        string
	ProductID    int64
	StartPrice   int64
	Increment    int64
	Ladder       []Band
	ReservePrice int64
	StartsAt     time.Time
	EndsAt       time.Time
	// ExtendWindow and Extend make the soft close: a bid less than ExtendWindow before
	// EndsAt pushes EndsAt by Extend. Zero turns it off.
	ExtendWindow time.Duration
	Extend       time.Duration
}

// Lot is one auction.
type Lot struct {
	ID, MerchantID, ProductID, SKUID int64
	Title                            string
	Status                           Status
	StartPrice, Increment            int64
	Ladder                           []Band
	ReservePrice                     int64
	StartsAt, EndsAt                 time.Time
	ExtendWindow, Extend             time.Duration
	// CurrentPrice is the leading bid's visible price (0 before the first bid).
	CurrentPrice int64
	BidCount     int64
	LeaderID     int64
	// LeaderMax is the leader's secret maximum (never shown to others).
	LeaderMax int64
	// Version increases with every change of the lot (bids, start, end).
	Version       int64
	WinnerOrderID int64
	OrderState    OrderState
	// OrderError says why the order module refused the winner's order (OrderFailed).
	OrderError string
	// Announced: the ended message went out to the watchers.
	Announced bool
	EndedAt   time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ReserveMet reports whether the current price reaches the reserve (always, without one)
// and there is a bid at all.
func (l Lot) ReserveMet() bool { return l.BidCount > 0 && l.CurrentPrice >= l.ReservePrice }

// IncrementAt is the increment that applies above price.
func (l Lot) IncrementAt(price int64) int64 {
	inc := l.Increment
	for _, b := range l.Ladder {
		if price >= b.From {
			inc = b.Increment
		}
	}
	return inc
}

// MinNext is the lowest amount a new bid may state.
func (l Lot) MinNext() int64 {
	if l.BidCount == 0 {
		return l.StartPrice
	}
	return l.CurrentPrice + l.IncrementAt(l.CurrentPrice)
}

// OrderState tracks the winner's order after the end.
type OrderState string

// Order states.
const (
	OrderNone    OrderState = "none"    // running, or ended without a winner or a reserve met
	OrderPending OrderState = "pending" // owed: the scheduler (re)tries until it exists
	OrderPlaced  OrderState = "placed"
	OrderFailed  OrderState = "failed" // the order module refused for good (no address, no stock)
)

// PlaceBid is one bid request. MaxAmount 0 is a plain bid; otherwise the system bids for
// the bidder by the increment up to MaxAmount (>= Amount).
type PlaceBid struct {
	LotID    int64
	BidderID int64
	// BidderMerchantID is the merchant in the bidder's token (0 for none).
	BidderMerchantID int64
	Amount           int64
	MaxAmount        int64
}

// BidKind tells a bidder's own bid from one the system placed on a proxy maximum.
type BidKind string

// Bid kinds.
const (
	KindBid   BidKind = "bid"
	KindProxy BidKind = "proxy"
)

// Bid is one accepted bid: Seq numbers a lot's bids 1, 2, ... in commit order and Amount
// strictly increases with it.
type Bid struct {
	ID, LotID, BidderID int64
	Seq                 int64
	Amount              int64
	Kind                BidKind
	CreatedAt           time.Time
}

// BidResult answers a bid: the bid rows the transaction wrote (the caller's own first
// when it did not end up leading, or the outbid leader's proxy then the caller's) and the
// lot after it.
type BidResult struct {
	Bid  Bid // the caller's row
	Rows []Bid
	Lot  Lot
	// Extended reports a soft-close extension by this bid.
	Extended bool
	// Outbid is the bidder who led before this bid and no longer does (0: none).
	Outbid int64
}

// Limits.
const (
	MaxTitle     = 200
	MaxAmount    = 100_000_000_00 // 100 million yuan in fen: what one payment may carry (catalog.MaxPrice)
	MaxBands     = 20
	MaxDuration  = 30 * 24 * time.Hour
	MaxExtension = time.Hour
)

// Errors. Codes are stable (API.md).
var (
	ErrNotFound       = errs.New(errs.NotFound, "auction.not_found")
	ErrBidTooLow      = errs.New(errs.Conflict, "auction.bid_too_low")
	ErrNotRunning     = errs.New(errs.Conflict, "auction.not_running")
	ErrOwnAuction     = errs.New(errs.Forbidden, "auction.own_auction")
	ErrAlreadyLeading = errs.New(errs.Conflict, "auction.already_leading")
	ErrProductSKUs    = errs.New(errs.Invalid, "auction.product_needs_one_sku")
)

// Package flashsale is Mall's flash-sale (秒杀) module: a merchant's sale of a number of units
// of one SKU at a flash price, carved out of the SKU's stock when the sale is created (the
// stock module's pool of the sale's ID). Attempts pass a Redis Lua gate in one round trip
// (window, units left, the buyer's limit, the idempotency key) and go onto a Kafka topic; an
// intake consumer turns each into a normal order through the order module at a bounded
// rate, where MySQL decides. Redis only pre-filters: losing it may refuse buyers wrongly,
// never oversell (ADR 0030).
//
// Other modules import this package only: the Service interface, the domain types, the
// errors and the events (events.go).
package flashsale

import (
	"context"
	"time"

	"github.com/mallhq/mall/internal/platform/errs"
)

// Service is what the HTTP handlers and other modules may ask of the module.
type Service interface {
	// Create opens a merchant's sale: its units leave the SKU's available stock at once
	// (stock.insufficient when they are not there).
	Create(ctx context.Context, merchantID int64, in NewSale) (Sale, error)
	// Cancel ends the merchant's sale early; what is left returns to the SKU.
	Cancel(ctx context.Context, merchantID, saleID int64) (Sale, error)
	// MerchantSale and MerchantSales are the merchant's own (another's: ErrNotFound).
	MerchantSale(ctx context.Context, merchantID, saleID int64) (Sale, error)
	MerchantSales(ctx context.Context, merchantID, before int64, limit int) ([]Sale, error)
	// Sale and Sales are the public view (status "" is scheduled and running).
	Sale(ctx context.Context, saleID int64) (Sale, error)
	Sales(ctx context.Context, status Status, before int64, limit int) ([]Sale, error)
	// Attempt passes the gate and queues a ticket (ErrSoldOut, ErrLimitReached,
	// ErrNotRunning, ErrQueueFull, ErrUnavailable); the same key again answers the
	// same ticket.
	Attempt(ctx context.Context, in NewAttempt) (Ticket, error)
	// Ticket is the buyer's own ticket (another's: ErrTicketNotFound).
	Ticket(ctx context.Context, buyerID, ticketID int64) (Ticket, error)
}

// Status is a sale's state; scheduled, running and ended follow from the clock.
type Status string

// Sale statuses (API.md).
const (
	StatusScheduled Status = "scheduled"
	StatusRunning   Status = "running"
	StatusSoldOut   Status = "sold_out"
	StatusEnded     Status = "ended"
	StatusCancelled Status = "cancelled"
)

// NewSale is a sale to create.
type NewSale struct {
	SKUID, Quantity, Price int64
	PerUserLimit           int
	StartsAt, EndsAt       time.Time
}

// Sale is one flash sale. Remaining is what is left to attempt for (the gate's view, or the
// stock pool's); Sold is the units of orders placed for it and not cancelled.
type Sale struct {
	ID, MerchantID, ProductID, SKUID int64
	Title                            string
	Price, OriginalPrice             int64
	Quantity, Remaining, Sold        int64
	PerUserLimit                     int
	StartsAt, EndsAt                 time.Time
	Status                           Status
	CreatedAt                        time.Time
}

// NewAttempt is a buyer's try at a sale.
type NewAttempt struct {
	SaleID, BuyerID, AddressID int64
	Quantity                   int64
	// Key is the request's Idempotency-Key.
	Key string
}

// TicketStatus is where an accepted attempt is.
type TicketStatus string

// Ticket statuses (API.md).
const (
	TicketQueued  TicketStatus = "queued"
	TicketOrdered TicketStatus = "ordered"
	TicketFailed  TicketStatus = "failed"
)

// Ticket is an accepted attempt.
type Ticket struct {
	ID, SaleID, BuyerID  int64
	Quantity, AddressID  int64
	Status               TicketStatus
	OrderID, CheckoutID  int64
	Code                 string // why it failed
	CreatedAt, UpdatedAt time.Time
}

// Limits.
const (
	MaxQuantity   = 100_000
	MaxPerUser    = 100
	MaxTitle      = 200
	MaxSaleLength = 30 * 24 * time.Hour
)

// Errors (codes from API.md).
var (
	ErrNotFound       = errs.New(errs.NotFound, "flash_sale.not_found")
	ErrTicketNotFound = errs.New(errs.NotFound, "flash_sale.ticket_not_found")
	ErrSoldOut        = errs.New(errs.Conflict, "flash_sale.sold_out")
	ErrLimitReached   = errs.New(errs.Conflict, "flash_sale.limit_reached")
	ErrNotRunning     = errs.New(errs.Conflict, "flash_sale.not_running")
	ErrQueueFull      = errs.New(errs.TooManyRequests, "flash_sale.queue_full")
	ErrUnavailable    = errs.New(errs.Unavailable, "flash_sale.unavailable")
	ErrAlreadyEnded   = errs.New(errs.Conflict, "flash_sale.already_ended")
)

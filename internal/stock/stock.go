// Package stock is Mall's inventory module: per-SKU stock levels (available, reserved,
// sold) that merchants set and read, and that the product detail page shows. Reservations
// for orders (Reserve, Release, Confirm, Return) build on the same table later.
//
// Other modules import this package only: the Service interface, the domain types, the
// errors and the events (events.go).
package stock

import (
	"context"
	"time"

	"github.com/mallhq/mall/internal/platform/errs"
)

// Service is what other modules and the HTTP handlers may ask of the stock module. Every
// change runs in the stock module's own transaction on db.main and writes a
// stock.level_changed event in it; callers must not call it inside a transaction of their
// own on db.main (a transaction never spans two modules).
type Service interface {
	// Init creates the SKU's level with merchantID as its owner; the catalog calls it when it
	// creates a SKU. Calling it again for the same SKU and merchant changes nothing (the
	// first available stays). A SKU owned by another merchant is ErrOwnerConflict.
	Init(ctx context.Context, skuID, merchantID, available int64) error
	// Set sets the SKU's available units (0..MaxAvailable). Another merchant's SKU, or an
	// unknown one, is ErrNotFound. Every successful Set increases the version and writes an
	// event, even when the value is the same.
	Set(ctx context.Context, merchantID, skuID, available int64) (Level, error)
	// Get returns the merchant's SKU level (ErrNotFound as for Set).
	Get(ctx context.Context, merchantID, skuID int64) (Level, error)
	// Levels returns the levels of the SKUs that exist among skuIDs, by SKU ID, for public
	// availability (product detail). At most MaxBatch IDs.
	Levels(ctx context.Context, skuIDs ...int64) (map[int64]Level, error)
	// Check verifies every SKU: no negative counter, OnHand = Available + Reserved + Sold,
	// and Reserved and Sold equal what the reservations hold and bought.
	Check(ctx context.Context) (Report, error)

	// Reserve holds stock for orders, all or nothing (reservation.go has the whole story).
	// Idempotent per order; ErrInsufficient, ErrNotFound, ErrHoldLimit.
	Reserve(ctx context.Context, holds ...Hold) error
	// Release gives an order's held units back (cancel, timeout); idempotent.
	Release(ctx context.Context, orderID int64) error
	// Confirm turns an order's held units into sold ones (paid); idempotent. A line
	// released meanwhile is taken again if the stock is there, else ErrInsufficient.
	Confirm(ctx context.Context, orderID int64) error
	// Return gives bought units back (refund); lines state the total returned per SKU
	// (nil: everything), so it is idempotent.
	Return(ctx context.Context, orderID int64, lines []Line) error
	// Reservations returns an order's reservation lines by SKU.
	Reservations(ctx context.Context, orderID int64) ([]Reservation, error)

	// OpenPool carves a flash sale's units out of the SKU's available stock (pool.go);
	// ClosePool returns what remains; ReserveFromPool holds an order's one line from the
	// pool instead of available (released, it goes back to the pool while it is open).
	OpenPool(ctx context.Context, p Pool) error
	ClosePool(ctx context.Context, poolID int64) (Pool, error)
	PoolOf(ctx context.Context, poolID int64) (Pool, error)
	ReserveFromPool(ctx context.Context, poolID int64, h Hold) error
	// ReserveManyFromPool holds the one line of each of holds, orders never reserved
	// before, from the pool in one transaction (a flash sale's intake batch): refused[i]
	// says why holds[i] was not held (ErrInsufficient, ErrPoolClosed, ...), nil when it was;
	// err is a failure of the whole (nothing held).
	ReserveManyFromPool(ctx context.Context, poolID int64, holds []Hold) (refused []error, err error)
}

// Level is one SKU's stock.
type Level struct {
	SKUID      int64
	MerchantID int64
	// OnHand is the physical stock, changed only by Init and Set; reservations move units
	// between the other three, so OnHand = Available + Reserved + Sold.
	OnHand int64
	// Available can be sold now; Reserved is held by unpaid orders; Sold is paid for.
	Available int64
	Reserved  int64
	Sold      int64
	// Version increases with every change.
	Version   int64
	UpdatedAt time.Time
}

// Report is the result of Check.
type Report struct {
	// Rows is the number of SKUs checked.
	Rows int64
	// Violations lists SKUs breaking an invariant (at most MaxViolations of them).
	Violations []Violation
	// ViolationCount is the total number of violating SKUs.
	ViolationCount int64
}

// OK reports whether no invariant is broken.
func (r Report) OK() bool { return r.ViolationCount == 0 }

// Violation is one SKU breaking an invariant.
type Violation struct {
	Level   Level
	Problem string
}

// Limits.
const (
	// MaxAvailable bounds the available units a merchant may set.
	MaxAvailable = 1_000_000_000
	// MaxBatch bounds the SKU IDs of one Levels call.
	MaxBatch = 1000
	// MaxViolations bounds the violations Check lists.
	MaxViolations = 1000
)

// Errors. Codes are stable (API.md).
var (
	ErrNotFound      = errs.New(errs.NotFound, "stock.sku_not_found")
	ErrOwnerConflict = errs.New(errs.Conflict, "stock.sku_owner_conflict")
	ErrInvalidAmount = errs.New(errs.Invalid, "stock.invalid_amount")
	ErrTooManySKUs   = errs.New(errs.Invalid, "stock.too_many_skus")
)

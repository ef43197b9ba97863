package stock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// Reservations: an order holds units of its SKUs from checkout until it is paid (Confirm:
// reserved -> sold), cancelled or expired (Release: reserved -> available), and a refund
// gives bought units back (Return: sold -> available). Every call is idempotent per order,
// runs in the stock module's own READ COMMITTED transaction on db.main, takes the SKU rows
// in ascending SKU order (so two orders never deadlock on each other's SKUs) and changes
// counters only by guarded conditional UPDATEs whose rows-affected decides: no
// read-then-write, so no oversell under any interleaving.

// Line is a quantity of one SKU.
type Line struct {
	SKUID    int64
	Quantity int64
}

// Hold is a reservation request: the order's lines, the buyer (for the per-buyer hold cap)
// and when an unpaid hold lapses (the sweeper releases it after that).
type Hold struct {
	OrderID   int64
	BuyerID   int64
	Lines     []Line
	ExpiresAt time.Time
}

// ReservationStatus is where a reservation line is.
type ReservationStatus int

// Reservation statuses (stored as numbers).
const (
	Held     ReservationStatus = 0
	Bought   ReservationStatus = 1
	Released ReservationStatus = 2
)

func (s ReservationStatus) String() string {
	switch s {
	case Held:
		return "held"
	case Bought:
		return "bought"
	case Released:
		return "released"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// Reservation is one line of an order's reservation.
type Reservation struct {
	OrderID   int64
	SKUID     int64
	BuyerID   int64
	Quantity  int64
	Returned  int64
	Status    ReservationStatus
	ExpiresAt time.Time
	// PoolID is the pool (flash sale) the line was reserved from; 0: from available.
	PoolID int64
}

// Limits of a Hold.
const (
	MaxLines    = 100
	MaxQuantity = 10_000
)

// Reservation errors. Codes are stable (API.md: stock.insufficient).
var (
	ErrInsufficient = errs.New(errs.Conflict, "stock.insufficient")
	// ErrHoldLimit is a buyer holding more unpaid units of a SKU than Config.MaxHoldPerBuyer.
	ErrHoldLimit = errs.New(errs.Conflict, "stock.hold_limit")
	// ErrReservationNotFound is Confirm or Return for an order that reserved nothing.
	ErrReservationNotFound = errs.New(errs.NotFound, "stock.reservation_not_found")
	// ErrReservationConflict is Reserve for an order already holding other lines, or a
	// Return larger than what the order bought.
	ErrReservationConflict = errs.New(errs.Conflict, "stock.reservation_conflict")
	// ErrReservationReleased is Reserve for an order whose reservation was already released:
	// the order must not be resurrected by a retry.
	ErrReservationReleased = errs.New(errs.Conflict, "stock.reservation_released")
	// errCorrupt is a counter that does not cover a reservation it must cover: a broken
	// invariant, never a user error.
	errCorrupt = errors.New("stock: counters do not cover a reservation")
)

// normalizeLines validates lines and returns them sorted by SKU.
func normalizeLines(lines []Line) ([]Line, error) {
	if len(lines) == 0 || len(lines) > MaxLines {
		return nil, errs.ErrInvalid.WithDetail("a reservation has 1 to %d lines", MaxLines)
	}
	out := slices.Clone(lines)
	slices.SortFunc(out, func(a, b Line) int { return cmpInt(a.SKUID, b.SKUID) })
	for i, l := range out {
		if l.SKUID <= 0 || l.Quantity <= 0 || l.Quantity > MaxQuantity {
			return nil, errs.ErrInvalid.WithDetail("line %d: SKU must be positive and quantity 1 to %d", i, MaxQuantity)
		}
		if i > 0 && out[i-1].SKUID == l.SKUID {
			return nil, errs.ErrInvalid.WithDetail("SKU %d appears twice", l.SKUID)
		}
	}
	return out, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Reserve holds the lines of each hold for its order: all or nothing, across the holds too
// (a checkout's orders reserve together). ErrInsufficient names the first SKU short of stock;
// ErrNotFound an unknown SKU; ErrHoldLimit a buyer over the cap; after any error none of the
// holds was made by this call. Calling it again for orders that hold (or bought) exactly
// these lines changes nothing. Concurrent calls share transactions (reserve_batch.go).
func (s *service) Reserve(ctx context.Context, holds ...Hold) error {
	if len(holds) == 0 || len(holds) > MaxLines {
		return errs.ErrInvalid.WithDetail("stock: 1 to %d holds per call", MaxLines)
	}
	r := &reserveRequest{holds: make([]Hold, len(holds)), done: make(chan struct{})}
	for i, h := range holds {
		lines, err := normalizeLines(h.Lines)
		if err != nil {
			return err
		}
		if h.OrderID <= 0 || h.BuyerID <= 0 || h.ExpiresAt.IsZero() {
			return errs.ErrInvalid.WithDetail("stock: order, buyer and expiry are required")
		}
		for _, o := range r.holds[:i] {
			if o.OrderID == h.OrderID {
				return errs.ErrInvalid.WithDetail("stock: order %d appears twice", h.OrderID)
			}
		}
		r.holds[i] = Hold{OrderID: h.OrderID, BuyerID: h.BuyerID, Lines: lines,
			ExpiresAt: h.ExpiresAt.UTC().Truncate(time.Microsecond)}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.reserve(r)
}

// sameHold answers a repeated Reserve: nil when the order holds or bought exactly lines.
func sameHold(have []Reservation, lines []Line) error {
	if len(have) != len(lines) {
		return ErrReservationConflict.WithDetail("the order already holds other lines")
	}
	for i, r := range have {
		if r.SKUID != lines[i].SKUID || r.Quantity != lines[i].Quantity {
			return ErrReservationConflict.WithDetail("the order already holds other lines")
		}
		if r.Status == Released {
			return ErrReservationReleased
		}
	}
	return nil
}

// levelChanged writes the SKU's level_changed event with the row as it now is.
func (s *service) levelChanged(ctx context.Context, skuID int64, cause string) error {
	r, err := s.st.lockedLevel(ctx, skuID)
	if err != nil {
		return err
	}
	return s.changed(ctx, r, cause)
}

// settle is one step of Release, Confirm or Return: it moves quantity units of the line's
// SKU with m, records the line as st with returned units, and writes the level event.
func (s *service) settle(ctx context.Context, r Reservation, quantity int64, m move, st ReservationStatus, returned int64, now time.Time) error {
	if err := s.st.move(ctx, r.SKUID, quantity, m, now); err != nil {
		return err
	}
	if err := s.st.setReservation(ctx, r.OrderID, r.SKUID, st, returned, now); err != nil {
		return err
	}
	return s.levelChanged(ctx, r.SKUID, m.name)
}

// Release gives the order's held units back to available (cancellation, payment timeout,
// a failed checkout). Lines already released or bought are left alone, so it is idempotent
// and harmless after Confirm.
func (s *service) Release(ctx context.Context, orderID int64) error {
	_, err := s.release(ctx, orderID, time.Time{})
	return err
}

// release releases the order's held lines; with expiredBefore set only lines expired by
// then (the sweeper). It returns the number of lines released.
func (s *service) release(ctx context.Context, orderID int64, expiredBefore time.Time) (int, error) {
	n := 0
	err := s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		n = 0
		rows, err := s.st.lockOrder(ctx, orderID)
		if err != nil {
			return err
		}
		now := s.clock()
		for _, r := range rows {
			if r.Status != Held || (!expiredBefore.IsZero() && !r.ExpiresAt.Before(expiredBefore)) {
				continue
			}
			back, err := s.backToPool(ctx, r, now)
			if err != nil {
				return err
			}
			if !back {
				if err := s.settle(ctx, r, r.Quantity, moveRelease, Released, r.Returned, now); err != nil {
					return err
				}
			}
			n++
		}
		return nil
	}, sqldb.ReadCommitted())
	return n, err
}

// Confirm turns the order's held units into sold ones (the order is paid). A line the
// sweeper already released is taken again from available if the stock is still there;
// otherwise the whole call fails with ErrInsufficient and changes nothing, and the caller
// refunds the payment. Bought lines are left alone, so it is idempotent.
func (s *service) Confirm(ctx context.Context, orderID int64) error {
	return s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		rows, err := s.st.lockOrder(ctx, orderID)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return ErrReservationNotFound
		}
		now := s.clock()
		for _, r := range rows {
			var m move
			switch {
			case r.Status == Held:
				m = moveConfirm
			case r.Status == Released && r.PoolID != 0:
				// A sale's units only: taken again from its pool while it is open.
				if err := s.retakeFromPool(ctx, r, now); err != nil {
					return err
				}
				m = moveConfirm
			case r.Status == Released:
				m = moveRetake
			default:
				continue
			}
			if err := s.settle(ctx, r, r.Quantity, m, Bought, r.Returned, now); err != nil {
				return err
			}
		}
		return nil
	}, sqldb.ReadCommitted())
}

// Return gives bought units back to available (an approved refund). Each line states how
// many units of that SKU the order has returned in total, so repeating a call changes
// nothing, and so does an older, smaller total; nil lines return everything the order
// bought. A line the order did not buy, or more than it bought, is ErrReservationConflict.
func (s *service) Return(ctx context.Context, orderID int64, lines []Line) error {
	if lines != nil {
		var err error
		if lines, err = normalizeLines(lines); err != nil {
			return err
		}
	}
	return s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		rows, err := s.st.lockOrder(ctx, orderID)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return ErrReservationNotFound
		}
		bought := map[int64]Reservation{}
		for _, r := range rows {
			if r.Status == Bought {
				bought[r.SKUID] = r
			}
		}
		if lines == nil {
			for _, r := range rows {
				if r.Status == Bought {
					lines = append(lines, Line{SKUID: r.SKUID, Quantity: r.Quantity})
				}
			}
		}
		now := s.clock()
		for _, l := range lines {
			r, ok := bought[l.SKUID]
			if !ok || l.Quantity > r.Quantity {
				return ErrReservationConflict.WithDetail("the order did not buy %d units of SKU %d", l.Quantity, l.SKUID)
			}
			delta := l.Quantity - r.Returned
			if delta <= 0 {
				continue // returned already (totals only grow: an older call repeated)
			}
			if err := s.settle(ctx, r, delta, moveReturn, Bought, l.Quantity, now); err != nil {
				return err
			}
		}
		return nil
	}, sqldb.ReadCommitted())
}

// Reservations returns the order's reservation lines by SKU.
func (s *service) Reservations(ctx context.Context, orderID int64) ([]Reservation, error) {
	return s.st.orderReservations(ctx, orderID)
}

// SweepExpired releases held lines whose expiry passed, at most limit orders per call, and
// returns how many lines it released. Replicas may sweep at once: each order is released
// in its own locked transaction and a released line is never released twice.
func (s *service) SweepExpired(ctx context.Context, limit int) (int, error) {
	now := s.clock()
	orders, err := s.st.expiredOrders(ctx, now, limit)
	if err != nil {
		return 0, err
	}
	pools, err := s.closeExpiredPools(ctx, now, limit)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, id := range orders {
		n, err := s.release(ctx, id, now)
		if err != nil {
			return total, err
		}
		total += n
	}
	if total > 0 {
		s.m.expired.Add(float64(total))
		s.log.InfoContext(ctx, "stock: released expired reservations", "lines", total, "orders", len(orders))
	}
	return total + pools, nil
}

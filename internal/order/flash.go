package order

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/stock"
)

// FlashOrder is the order of an accepted flash-sale attempt (a ticket): Quantity units of
// one SKU at the sale's Price, reserved from the sale's stock pool (the pool's ID is the
// sale's), to be paid within PaymentTimeout (flash_sale.payment_timeout).
type FlashOrder struct {
	TicketID, FlashSaleID     int64
	BuyerID, AddressID, SKUID int64
	Quantity, Price           int64
	PaymentTimeout            time.Duration
	// CheckoutID and OrderID, when set, are the checkout's and the order's IDs, minted on
	// the buyer's shard with the ticket (idgen), so a ticket taken up again after a crash
	// between the pool's commit and the order's finds the units its first try held.
	CheckoutID, OrderID int64
	// PlacedOnly: the buyer's limit leaves no room for a new order (PlaceFlashOrders): the
	// ticket's order placed before stands (a crash before the ticket was recorded), else
	// ErrFlashLimit.
	PlacedOnly bool
}

// ownIDs: the order's IDs came with the ticket.
func (f *FlashOrder) ownIDs() bool { return f != nil && f.CheckoutID != 0 && f.OrderID != 0 }

// ErrFlashLimit refuses a PlacedOnly ticket that has no order.
var ErrFlashLimit = errs.New(errs.Conflict, "order.flash_limit_reached")

// refusal reports a domain refusal (the request cannot succeed as it is), as opposed to a
// failure worth retrying (internal, unavailable).
func refusal(err error) bool {
	e, ok := errs.As(err)
	return ok && e.Kind != errs.Internal && e.Kind != errs.Unavailable
}

// PlaceFlashOrder places a ticket's order through the checkout path (address, catalog,
// pricing, one buyer-shard transaction with order.created), with the sale's price, its
// payment window and its units from the sale's pool. The ticket ID is the checkout's
// idempotency key: a ticket taken up again (a redelivery, a crash after the commit) gets
// the order placed the first time.
func (s *service) PlaceFlashOrder(ctx context.Context, in FlashOrder) (Checkout, error) {
	if in.TicketID <= 0 || in.FlashSaleID <= 0 || in.Price <= 0 || in.PaymentTimeout < time.Second {
		return Checkout{}, errs.ErrValidation.WithDetail("flash order: ticket, sale, price and payment timeout are required")
	}
	cmd := PlaceOrder{BuyerID: in.BuyerID, AddressID: in.AddressID,
		Items:          []LineInput{{SKUID: in.SKUID, Quantity: in.Quantity}},
		IdempotencyKey: flashKey(in.TicketID), Resumed: true}
	return s.place(ctx, cmd, &in)
}

// flashKey starts with a control character, which no client's Idempotency-Key may hold
// (printable ASCII only), so a buyer's own checkout can never take a ticket's key.
func flashKey(ticketID int64) string { return "\x1fflash-ticket:" + strconv.FormatInt(ticketID, 10) }

// FlashPlaced is one ticket's outcome in PlaceFlashOrders: its checkout, or Err, why it
// cannot have one (a domain error: the address gone, the product off sale, the pool short
// or closed, ...).
type FlashPlaced struct {
	Checkout Checkout
	Err      error
}

// MaxFlashBatch bounds the tickets of one PlaceFlashOrders.
const MaxFlashBatch = stock.MaxPoolBatch

// PlaceFlashOrders is PlaceFlashOrder for a batch of tickets of one sale (the intake's):
// the same checks and the same outcome per ticket, but the units are taken from the pool in
// one transaction and the orders written in one transaction per buyer shard, so a burst
// costs the hot pool row one commit per batch rather than one per ticket. out[i] answers
// in[i]; err is a failure to retry (tickets already placed are found by their key again).
func (s *service) PlaceFlashOrders(ctx context.Context, in []FlashOrder) ([]FlashPlaced, error) {
	if len(in) == 0 || len(in) > MaxFlashBatch {
		return nil, errs.ErrValidation.WithDetail("flash orders: 1 to %d tickets", MaxFlashBatch)
	}
	first := in[0]
	for _, f := range in {
		if f.TicketID <= 0 || f.FlashSaleID <= 0 || f.Price <= 0 || f.PaymentTimeout < time.Second ||
			f.BuyerID <= 0 || f.Quantity <= 0 || f.Quantity > MaxQuantity {
			return nil, errs.ErrValidation.WithDetail("flash order: ticket, sale, buyer, quantity, price and payment timeout are required")
		}
		if f.FlashSaleID != first.FlashSaleID || f.SKUID != first.SKUID || f.Price != first.Price {
			return nil, errs.ErrValidation.WithDetail("flash orders: a batch is of one sale")
		}
	}
	out := make([]FlashPlaced, len(in))
	cmds := make([]PlaceOrder, len(in))
	todo := make([]int, 0, len(in))
	for i, f := range in {
		cmds[i] = PlaceOrder{BuyerID: f.BuyerID, AddressID: f.AddressID,
			Items: []LineInput{{SKUID: f.SKUID, Quantity: f.Quantity}}, IdempotencyKey: flashKey(f.TicketID), Resumed: true}
		// Placed before (a redelivery, a crash after the commit): that checkout.
		c, found, err := s.st.checkoutByKey(ctx, s.cl.ForUser(f.BuyerID), f.BuyerID, cmds[i].IdempotencyKey)
		switch {
		case err != nil:
			return nil, err
		case found:
			out[i].Checkout, out[i].Err = sameCheckout(c, cmds[i], nil)
		case f.PlacedOnly:
			out[i].Err = ErrFlashLimit
		default:
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return out, nil
	}
	skus, err := s.catalog.SaleSKUs(ctx, []int64{first.SKUID})
	if err != nil {
		return nil, err
	}
	now := s.clock()
	var (
		placing []int
		holds   []stock.Hold
	)
	for _, i := range todo {
		addr, err := s.users.Address(ctx, in[i].BuyerID, in[i].AddressID)
		if err == nil {
			out[i].Checkout, err = s.newCheckout(cmds[i], addr, skus, &in[i], now)
		}
		if err != nil {
			if !refusal(err) {
				return nil, err
			}
			out[i].Err = err
			continue
		}
		placing = append(placing, i)
		holds = append(holds, s.holdsOf(out[i].Checkout)...)
	}
	if len(placing) == 0 {
		return out, nil
	}
	refused, err := s.stock.ReserveManyFromPool(ctx, first.FlashSaleID, holds)
	if err != nil {
		// The outcome is unknown. Holds of orders with their tickets' IDs stay: the batch
		// comes again and finds them; others must not stay held for orders never written.
		var mint []stock.Hold
		for k, i := range placing {
			if !in[i].ownIDs() {
				mint = append(mint, holds[k])
			}
		}
		s.releaseAll(ctx, mint)
		return nil, err
	}
	byShard := map[*sqldb.DB][]int{}
	var shards []*sqldb.DB
	for k, i := range placing {
		if refused[k] != nil {
			out[i] = FlashPlaced{Err: refused[k]}
			continue
		}
		db := s.cl.ForUser(in[i].BuyerID)
		if _, ok := byShard[db]; !ok {
			shards = append(shards, db)
		}
		byShard[db] = append(byShard[db], i)
	}
	for _, db := range shards {
		idx := byShard[db]
		err := db.WithinTx(ctx, func(ctx context.Context) error {
			var (
				orders []Order
				events []outbox.Event
			)
			for _, i := range idx {
				c := out[i].Checkout
				if err := s.st.insertCheckout(ctx, db, c, cmds[i].IdempotencyKey); err != nil {
					return err
				}
				for _, o := range c.Orders {
					orders = append(orders, o)
					events = append(events, s.event(EventCreated, o, true))
				}
			}
			if err := s.st.insertOrders(ctx, db, orders); err != nil {
				return err
			}
			return s.outbox.Add(ctx, events...)
		})
		if err == nil {
			continue
		}
		// Nothing of this shard's group was written: its tickets go through one by one (a
		// key placed meanwhile is found; the holds of orders with their tickets' IDs are
		// found again; other holds go first).
		var mine []stock.Hold
		for _, i := range idx {
			if !in[i].ownIDs() {
				mine = append(mine, s.holdsOf(out[i].Checkout)...)
			}
		}
		s.releaseAll(ctx, mine)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("order: flash batch: %w", err)
		}
		s.log.Warn("order: a flash batch's shard transaction failed; placing its tickets one by one",
			"tickets", len(idx), "error", err.Error())
		for _, i := range idx {
			c, perr := s.place(ctx, cmds[i], &in[i])
			if perr != nil && !refusal(perr) {
				return nil, perr
			}
			out[i] = FlashPlaced{Checkout: c, Err: perr}
		}
	}
	return out, nil
}

// releaseAll releases holds whatever the caller's context (a failed placement must not
// leave units held for orders that do not exist).
func (s *service) releaseAll(ctx context.Context, holds []stock.Hold) {
	rctx := context.WithoutCancel(ctx)
	for _, h := range holds {
		if err := s.stock.Release(rctx, h.OrderID); err != nil {
			s.log.Error("order: releasing the reservation of a failed checkout", "order_id", h.OrderID, "error", err.Error())
		}
	}
}

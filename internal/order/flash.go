package order

import (
	"context"
	"strconv"
	"time"

	"github.com/mallhq/mall/internal/platform/errs"
)

// FlashOrder is the order of an accepted flash-sale attempt (a ticket): Quantity units of
// one SKU at the sale's Price, reserved from the sale's stock pool (the pool's ID is the
// sale's), to be paid within PaymentTimeout (flash_sale.payment_timeout).
type FlashOrder struct {
	TicketID, FlashSaleID     int64
	BuyerID, AddressID, SKUID int64
	Quantity, Price           int64
	PaymentTimeout            time.Duration
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

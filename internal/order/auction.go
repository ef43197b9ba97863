package order

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/stock"
)

// AuctionOrder is the order an ended auction owes its winner: one unit of the lot's SKU at
// the final price, or — a lot without a product (SKUID 0) — the lot itself, with no stock. OrderID is minted by the auction module on the buyer's logical shard
// (idgen) once per auction and kept with the lot, so repeating the call after a crash finds
// the same order instead of creating a second one.
type AuctionOrder struct {
	OrderID    int64
	AuctionID  int64
	BuyerID    int64
	MerchantID int64
	ProductID  int64
	SKUID      int64
	Title      string
	Price      int64
}

// PlaceAuctionOrder creates the winner's pending_payment order (its own checkout, ID =
// OrderID, so one payment pays it), shipped to the buyer's most recently added address,
// with one unit of the SKU reserved through the same stock path as a checkout. It is
// idempotent per OrderID: a repeat returns the order created first.
func (s *service) PlaceAuctionOrder(ctx context.Context, in AuctionOrder) (Order, error) {
	if in.OrderID <= 0 || in.BuyerID <= 0 || in.MerchantID <= 0 || in.SKUID < 0 || in.Price <= 0 {
		return Order{}, errs.ErrValidation.WithDetail("auction order: order, buyer, merchant and price are required")
	}
	if sqldb.LogicalShard(in.BuyerID) != int(in.OrderID&(sqldb.LogicalShards-1)) {
		return Order{}, errs.ErrValidation.WithDetail("auction order: the order ID is not on the buyer's shard")
	}
	if o, err := s.get(ctx, in.OrderID, scope{buyerID: in.BuyerID}); err == nil {
		return o, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Order{}, err
	}
	addr, err := s.users.LatestAddress(ctx, in.BuyerID)
	if err != nil {
		return Order{}, err
	}
	// The lot's SKU's rate when it is on sale; a lot without one (or off sale) takes the
	// platform default.
	rate := s.commission
	if in.SKUID != 0 {
		skus, err := s.catalog.SaleSKUs(ctx, []int64{in.SKUID})
		if err != nil {
			return Order{}, err
		}
		if k, ok := skus[in.SKUID]; ok {
			rate = s.commissionRate(k.CommissionRateBP)
		}
	}
	now := s.clock()
	// order_items.title holds 200 characters; a lot's title is at most that already.
	title := string([]rune(in.Title)[:min(utf8.RuneCountInString(in.Title), 200)])
	o := Order{ID: in.OrderID, CheckoutID: in.OrderID, BuyerID: in.BuyerID, MerchantID: in.MerchantID,
		Status: StatusPendingPayment, Currency: Currency, TotalAmount: in.Price,
		Address: Address{Name: addr.Name, Phone: addr.Phone, Province: addr.Province, City: addr.City,
			District: addr.District, Detail: addr.Detail},
		Items: []Item{{SKUID: in.SKUID, ProductID: in.ProductID, MerchantID: in.MerchantID, Title: title,
			Attrs: map[string]string{}, Price: in.Price, Quantity: 1, CommissionRateBP: rate}},
		ExpiresAt: now.Add(s.cfg.PaymentTimeout), CreatedAt: now, UpdatedAt: now}
	c := Checkout{ID: o.CheckoutID, BuyerID: in.BuyerID, TotalAmount: in.Price, Currency: Currency,
		ExpiresAt: o.ExpiresAt, CreatedAt: now, Orders: []Order{o}}
	// Reserve is idempotent per order: a retry after a crash here holds the same unit. A
	// lot without a product has no stock to hold (the order's stock reactions find no
	// reservation and have nothing to do).
	if in.SKUID != 0 {
		if err := s.stock.Reserve(ctx, stock.Hold{OrderID: o.ID, BuyerID: in.BuyerID,
			Lines: []stock.Line{{SKUID: in.SKUID, Quantity: 1}}, ExpiresAt: o.ExpiresAt.Add(s.cfg.HoldGrace)}); err != nil {
			return Order{}, err
		}
	}
	db := s.cl.ForUser(in.BuyerID)
	err = db.WithinTx(ctx, func(ctx context.Context) error {
		if err := s.st.insertCheckout(ctx, db, c, ""); err != nil {
			return err
		}
		if err := s.st.insertOrder(ctx, db, o); err != nil {
			return err
		}
		return s.outbox.Add(ctx, s.event(EventCreated, o, true))
	})
	if sqldb.IsDuplicate(err) {
		return s.get(ctx, in.OrderID, scope{buyerID: in.BuyerID}) // a concurrent call won
	}
	if err != nil {
		// The hold stays: the retry (same OrderID) reuses it, and its TTL covers giving up.
		return Order{}, fmt.Errorf("order: auction order: %w", err)
	}
	return o, nil
}

package order

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/order/payment"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/stock"
	"github.com/mallhq/mall/internal/user"
)

type service struct {
	log       *slog.Logger
	cl        *sqldb.Cluster
	st        *store
	ids       *idgen.Generator
	catalog   catalog.Service
	stock     stock.Service
	users     user.Service
	providers map[string]payment.Provider
	outbox    outbox.Writer
	cfg       Config
	// sandbox allows SandboxComplete (payments.sandbox.enabled).
	sandbox bool
	// commission is the default commission rate (bp) of a line whose merchant and category
	// chain state none.
	commission int
	m          *metrics
	now        func() time.Time
}

var _ Service = (*service)(nil)

func (s *service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// commissionRate is the rate fixed on a line: the catalog's (merchant override, else the
// category chain), else the platform default.
func (s *service) commissionRate(catalogRate int) int {
	if catalogRate == catalog.NoCommissionRate {
		return s.commission
	}
	return catalogRate
}

// newID mints an ID on the buyer's logical shard, so ForID finds the buyer's database.
func (s *service) newID(buyerID int64) int64 { return s.ids.Next(sqldb.LogicalShard(buyerID)) }

// Place: validate -> catalog prices -> stock.Reserve per order (the stock module's own
// transactions) -> checkout, orders, items and order.created in one buyer-shard
// transaction. Any failure after a reservation releases every reservation made; a crash
// in between leaves holds that expire (the stock sweeper releases them).
func (s *service) Place(ctx context.Context, cmd PlaceOrder) (Checkout, error) {
	return s.place(ctx, cmd, nil)
}

// place is Place, or with flash a flash-sale ticket's order (flash.go): the sale's price,
// its payment window, its units from the sale's pool, the cart left alone.
func (s *service) place(ctx context.Context, cmd PlaceOrder, flash *FlashOrder) (Checkout, error) {
	if cmd.BuyerID <= 0 {
		return Checkout{}, errs.ErrUnauthenticated
	}
	if len(cmd.Items) == 0 || len(cmd.Items) > MaxLines {
		return Checkout{}, errs.ErrValidation.WithDetail("an order has 1 to %d items", MaxLines)
	}
	ids := make([]int64, 0, len(cmd.Items))
	for i, it := range cmd.Items {
		if it.SKUID <= 0 || it.Quantity <= 0 || it.Quantity > MaxQuantity {
			return Checkout{}, errs.ErrValidation.WithDetail("item %d: sku_id must be positive and quantity 1 to %d", i, MaxQuantity)
		}
		if slices.Contains(ids, it.SKUID) {
			return Checkout{}, errs.ErrValidation.WithDetail("SKU %d appears twice", it.SKUID)
		}
		ids = append(ids, it.SKUID)
	}
	db := s.cl.ForUser(cmd.BuyerID)
	if cmd.IdempotencyKey != "" && cmd.Resumed {
		// Placed before with this key (the response was lost): that checkout is the answer.
		if c, found, err := s.st.checkoutByKey(ctx, db, cmd.BuyerID, cmd.IdempotencyKey); err != nil || found {
			return sameCheckout(c, cmd, err)
		}
	}
	addr, err := s.users.Address(ctx, cmd.BuyerID, cmd.AddressID)
	if err != nil {
		return Checkout{}, err
	}
	skus, err := s.catalog.SaleSKUs(ctx, ids)
	if err != nil {
		return Checkout{}, err
	}
	now := s.clock()
	c, err := s.newCheckout(cmd, addr, skus, flash, now)
	if err != nil {
		return Checkout{}, err
	}
	holds := s.holdsOf(c)
	// The caller's context may be gone; the releases must still happen. A flash order with
	// its ticket's IDs keeps its hold instead: the ticket is taken up again (Kafka redelivers
	// until it is final) and finds the units it held.
	release := func() {
		if !flash.ownIDs() {
			s.releaseAll(ctx, holds)
		}
	}
	// The orders reserve together: all or nothing. After a refusal (a domain error) nothing is
	// held; after any other error the outcome is unknown, so the holds are released.
	reserve := func() error { return s.stock.Reserve(ctx, holds...) }
	if flash != nil {
		reserve = func() error { return s.stock.ReserveFromPool(ctx, flash.FlashSaleID, holds[0]) }
	}
	if err := reserve(); err != nil {
		if _, refused := errs.As(err); !refused {
			release()
		}
		return Checkout{}, err
	}
	err = db.WithinTx(ctx, func(ctx context.Context) error {
		if err := s.st.insertCheckout(ctx, db, c, cmd.IdempotencyKey); err != nil {
			return err
		}
		if err := s.st.insertOrders(ctx, db, c.Orders); err != nil {
			return err
		}
		// The ordered units leave the cart with the orders: a failed checkout keeps the
		// cart, and a checkout found by its Idempotency-Key never gets here again.
		if flash == nil {
			units := make(map[int64]int64, len(cmd.Items))
			for _, it := range cmd.Items {
				units[it.SKUID] = it.Quantity
			}
			if err := s.st.takeFromCart(ctx, db, cmd.BuyerID, units, now); err != nil {
				return err
			}
		}
		events := make([]outbox.Event, 0, len(c.Orders))
		for _, o := range c.Orders {
			events = append(events, s.event(EventCreated, o, true))
		}
		return s.outbox.Add(ctx, events...)
	})
	if err != nil {
		release()
		if cmd.IdempotencyKey != "" && sqldb.IsDuplicate(err) {
			// A concurrent request with the key (one that outlived its key lock) won.
			if prev, found, err := s.st.checkoutByKey(ctx, db, cmd.BuyerID, cmd.IdempotencyKey); err != nil || found {
				return sameCheckout(prev, cmd, err)
			}
		}
		return Checkout{}, fmt.Errorf("order: place: %w", err)
	}
	return c, nil
}

// newCheckout builds the checkout of cmd (one order per merchant, lines by SKU) at the
// catalog's prices or the flash sale's, with new IDs on the buyer's shard.
func (s *service) newCheckout(cmd PlaceOrder, addr user.Address, skus map[int64]catalog.SaleSKU, flash *FlashOrder,
	now time.Time) (Checkout, error) {
	byMerchant := map[int64][]Item{}
	for _, it := range cmd.Items {
		k, ok := skus[it.SKUID]
		if !ok {
			return Checkout{}, catalog.ErrProductNotFound.WithDetail("SKU %d is not on sale", it.SKUID)
		}
		price := k.Price
		if flash != nil {
			price = flash.Price
		}
		byMerchant[k.MerchantID] = append(byMerchant[k.MerchantID], Item{SKUID: k.SKUID, ProductID: k.ProductID,
			MerchantID: k.MerchantID, Title: k.Title, Attrs: k.Attrs, Price: price, Quantity: it.Quantity,
			CommissionRateBP: s.commissionRate(k.CommissionRateBP)})
	}
	merchants := make([]int64, 0, len(byMerchant))
	for m := range byMerchant {
		merchants = append(merchants, m)
	}
	slices.Sort(merchants)

	timeout := s.cfg.PaymentTimeout
	if flash != nil {
		timeout = flash.PaymentTimeout
	}
	checkoutID, orderID := s.newID(cmd.BuyerID), int64(0)
	if flash != nil && flash.CheckoutID != 0 && flash.OrderID != 0 && len(byMerchant) == 1 {
		checkoutID, orderID = flash.CheckoutID, flash.OrderID
	}
	c := Checkout{ID: checkoutID, BuyerID: cmd.BuyerID, Currency: Currency, CreatedAt: now,
		ExpiresAt: now.Add(timeout)}
	snapshot := Address{Name: addr.Name, Phone: addr.Phone, Province: addr.Province, City: addr.City,
		District: addr.District, Detail: addr.Detail}
	for _, m := range merchants {
		items := byMerchant[m]
		slices.SortFunc(items, func(a, b Item) int { return cmp.Compare(a.SKUID, b.SKUID) })
		if orderID == 0 {
			orderID = s.newID(cmd.BuyerID)
		}
		o := Order{ID: orderID, CheckoutID: c.ID, BuyerID: cmd.BuyerID, MerchantID: m,
			Status: StatusPendingPayment, Currency: Currency, Address: snapshot, Items: items,
			ExpiresAt: c.ExpiresAt, CreatedAt: now, UpdatedAt: now}
		orderID = 0
		if flash != nil {
			o.FlashSaleID = flash.FlashSaleID
		}
		for _, it := range items {
			o.TotalAmount += it.Price * it.Quantity
		}
		c.TotalAmount += o.TotalAmount
		c.Orders = append(c.Orders, o)
	}
	if c.TotalAmount > MaxCheckoutAmount {
		return Checkout{}, errs.ErrValidation.WithDetail("a checkout may total at most %d fen, what one payment can "+
			"carry; this one totals %d: split it", MaxCheckoutAmount, c.TotalAmount)
	}

	return c, nil
}

// holdsOf is the stock reservation of each of c's orders, held until the payment window
// closes plus the grace.
func (s *service) holdsOf(c Checkout) []stock.Hold {

	hold := c.ExpiresAt.Add(s.cfg.HoldGrace)
	holds := make([]stock.Hold, len(c.Orders))
	for i, o := range c.Orders {
		lines := make([]stock.Line, len(o.Items))
		for j, it := range o.Items {
			lines[j] = stock.Line{SKUID: it.SKUID, Quantity: it.Quantity}
		}
		holds[i] = stock.Hold{OrderID: o.ID, BuyerID: c.BuyerID, Lines: lines, ExpiresAt: hold}
	}
	return holds
}

// sameCheckout answers a Place whose key found checkout c: c when it was placed with the
// same lines, else the key was reused for another request (422).
func sameCheckout(c Checkout, cmd PlaceOrder, err error) (Checkout, error) {
	if err != nil {
		return Checkout{}, err
	}
	want := map[int64]int64{}
	for _, it := range cmd.Items {
		want[it.SKUID] = it.Quantity
	}
	n := 0
	for _, o := range c.Orders {
		for _, it := range o.Items {
			n++
			if want[it.SKUID] != it.Quantity {
				return Checkout{}, errs.ErrIdempotencyReused.WithDetail("the key placed checkout %d with other lines", c.ID)
			}
		}
	}
	if n != len(want) {
		return Checkout{}, errs.ErrIdempotencyReused.WithDetail("the key placed checkout %d with other lines", c.ID)
	}
	return c, nil
}

func (s *service) event(typ string, o Order, items bool) outbox.Event {
	p := OrderEvent{OrderID: o.ID, CheckoutID: o.CheckoutID, BuyerID: o.BuyerID, MerchantID: o.MerchantID,
		Status: o.Status, PrevStatus: o.PrevStatus, TotalAmount: o.TotalAmount, Currency: o.Currency,
		RefundedAmount: o.RefundedAmount, FlashSaleID: o.FlashSaleID, OccurredAt: o.UpdatedAt}
	if !o.CompletedAt.IsZero() {
		at := o.CompletedAt
		p.CompletedAt = &at
	}
	if items {
		for _, it := range o.Items {
			p.Items = append(p.Items, EventItem{SKUID: it.SKUID, ProductID: it.ProductID, Price: it.Price,
				Quantity: it.Quantity, CommissionRateBP: it.CommissionRateBP, RefundedQuantity: it.RefundedQuantity})
		}
	}
	return outbox.Event{Topic: Topic, AggregateID: strconv.FormatInt(o.ID, 10), Type: typ, Payload: p}
}

func (s *service) get(ctx context.Context, id int64, sc scope) (Order, error) {
	if id <= 0 {
		return Order{}, ErrNotFound
	}
	db := s.cl.ForID(id)
	o, err := s.st.order(ctx, db, id, sc, false)
	if err != nil {
		return Order{}, err
	}
	os := []Order{o}
	if err := s.st.fillItems(ctx, db, os); err != nil {
		return Order{}, err
	}
	return os[0], nil
}

func (s *service) Get(ctx context.Context, buyerID, orderID int64) (Order, error) {
	if buyerID <= 0 {
		return Order{}, ErrNotFound
	}
	return s.get(ctx, orderID, scope{buyerID: buyerID})
}

func (s *service) MerchantOrder(ctx context.Context, merchantID, orderID int64) (Order, error) {
	if merchantID <= 0 {
		return Order{}, ErrNotFound
	}
	return s.get(ctx, orderID, scope{merchantID: merchantID})
}

func checkQuery(q *ListQuery) error {
	if q.Status != "" && !q.Status.Valid() {
		return errs.ErrValidation.WithDetail("unknown status %q", q.Status)
	}
	if q.Limit <= 0 {
		q.Limit = 20
	}
	return nil
}

func (s *service) List(ctx context.Context, buyerID int64, q ListQuery) ([]Order, error) {
	if err := checkQuery(&q); err != nil {
		return nil, err
	}
	db := s.cl.ForUser(buyerID)
	os, err := s.st.list(ctx, db, scope{buyerID: buyerID}, q, q.Limit)
	if err != nil {
		return nil, err
	}
	return os, s.st.fillItems(ctx, db, os)
}

// MerchantOrders lists the merchant's orders of every shard (fanOut).
func (s *service) MerchantOrders(ctx context.Context, merchantID int64, q ListQuery) ([]Order, error) {
	if err := checkQuery(&q); err != nil {
		return nil, err
	}
	if merchantID <= 0 {
		return nil, ErrNotFound
	}
	return s.fanOut(ctx, merchant(merchantID), q)
}

// AdminOrders is the operator's list of every order (fanOut).
func (s *service) AdminOrders(ctx context.Context, q ListQuery) ([]Order, error) {
	if err := checkQuery(&q); err != nil {
		return nil, err
	}
	return s.fanOut(ctx, scope{}, q)
}

// AdminOrder is any order, with its refunds.
func (s *service) AdminOrder(ctx context.Context, orderID int64) (Order, error) {
	o, err := s.get(ctx, orderID, scope{})
	if err != nil {
		return Order{}, err
	}
	os := []Order{o}
	if err := s.st.fillRefunds(ctx, s.cl.ForID(orderID), os); err != nil {
		return Order{}, err
	}
	return os[0], nil
}

// CompletedOrders merges every physical shard's first limit completed orders after
// afterID by ID: the first limit of the union are the first limit overall.
func (s *service) CompletedOrders(ctx context.Context, afterID int64, limit int) ([]Order, error) {
	if limit <= 0 {
		limit = 100
	}
	var all []Order
	dbOf := map[int64]*sqldb.DB{}
	for _, db := range s.shards() {
		os, err := s.st.completed(ctx, db, afterID, limit)
		if err != nil {
			return nil, err
		}
		for _, o := range os {
			dbOf[o.ID] = db
		}
		all = append(all, os...)
	}
	slices.SortFunc(all, func(a, b Order) int { return cmp.Compare(a.ID, b.ID) })
	if len(all) > limit {
		all = all[:limit]
	}
	return all, s.fill(ctx, all, dbOf, true)
}

// fanOut reads up to q.Limit rows of scope sc before the cursor from every physical shard
// and merges them by (created_at, id) descending: the first q.Limit of the union are
// exactly the first q.Limit overall, since each shard's list is sorted the same way.
func (s *service) fanOut(ctx context.Context, sc scope, q ListQuery) ([]Order, error) {
	var all []Order
	dbOf := map[int64]*sqldb.DB{}
	for _, db := range s.shards() {
		os, err := s.st.list(ctx, db, sc, q, q.Limit)
		if err != nil {
			return nil, err
		}
		for _, o := range os {
			dbOf[o.ID] = db
		}
		all = append(all, os...)
	}
	slices.SortFunc(all, func(a, b Order) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	if len(all) > q.Limit {
		all = all[:q.Limit]
	}
	return all, s.fill(ctx, all, dbOf, false)
}

// fill loads the items (and with refunds, the refunds) of orders read from several
// shards (dbOf: each order's), one query per shard.
func (s *service) fill(ctx context.Context, all []Order, dbOf map[int64]*sqldb.DB, refunds bool) error {
	byDB := map[*sqldb.DB][]int{}
	for i, o := range all {
		byDB[dbOf[o.ID]] = append(byDB[dbOf[o.ID]], i)
	}
	for db, idx := range byDB {
		os := make([]Order, len(idx))
		for j, i := range idx {
			os[j] = all[i]
		}
		if err := s.st.fillItems(ctx, db, os); err != nil {
			return err
		}
		if refunds {
			if err := s.st.fillRefunds(ctx, db, os); err != nil {
				return err
			}
		}
		for j, i := range idx {
			all[i] = os[j]
		}
	}
	return nil
}

// change is one state-machine transition.
type change struct {
	from  []Status
	to    Status
	event string
	// apply sets the transition's other fields on the locked order.
	apply func(o *Order, from Status)
	// guard, when set, vets the locked order before its status is (an error refuses the
	// transition: a rule beyond the status, e.g. a window or a rejection to escalate).
	guard func(o Order) error
	// items loads the order's lines under the lock (for guard, apply and write) and puts
	// them in the event.
	items bool
	// write, when set, makes the transition's other writes in its transaction, after the
	// order's, and may add to the event's payload.
	write func(ctx context.Context, db *sqldb.DB, o Order, p *OrderEvent) error
}

// transition moves the order (narrowed by sc) along ch with a compare-and-set UPDATE and
// writes ch.event in the same buyer-shard transaction. An order in another status is
// ErrStatusConflict; another buyer's or merchant's is ErrNotFound.
func (s *service) transition(ctx context.Context, id int64, sc scope, ch change) (Order, error) {
	if id <= 0 {
		return Order{}, ErrNotFound
	}
	db := s.cl.ForID(id)
	var out Order
	err := db.WithinTx(ctx, func(ctx context.Context) error {
		o, err := s.st.order(ctx, db, id, sc, true)
		if err != nil {
			return err
		}
		if ch.items {
			os := []Order{o}
			if err := s.st.fillItems(ctx, db, os); err != nil {
				return err
			}
			o = os[0]
		}
		if ch.guard != nil {
			if err := ch.guard(o); err != nil {
				return err
			}
		}
		if !slices.Contains(ch.from, o.Status) {
			return ErrStatusConflict.WithDetail("the order is %s", o.Status)
		}
		from := o.Status
		o.Status = ch.to
		o.UpdatedAt = s.clock()
		if ch.apply != nil {
			ch.apply(&o, from)
		}
		ok, err := s.st.updateOrder(ctx, db, o, from)
		if err != nil {
			return err
		}
		if !ok {
			return ErrStatusConflict
		}
		out = o
		ev := s.event(ch.event, o, ch.items)
		if ch.write != nil {
			p := ev.Payload.(OrderEvent)
			if err := ch.write(ctx, db, o, &p); err != nil {
				return err
			}
			ev.Payload = p
		}
		return s.outbox.Add(ctx, ev)
	})
	if err != nil {
		return Order{}, err
	}
	os := []Order{out}
	if err := s.st.fillItems(ctx, db, os); err != nil {
		return Order{}, err
	}
	return os[0], nil
}

func buyer(id int64) scope    { return scope{buyerID: id} }
func merchant(id int64) scope { return scope{merchantID: id} }

func (s *service) Cancel(ctx context.Context, buyerID, orderID int64) (Order, error) {
	if buyerID <= 0 {
		return Order{}, ErrNotFound
	}
	return s.transition(ctx, orderID, buyer(buyerID),
		change{from: []Status{StatusPendingPayment}, to: StatusCancelled, event: EventCancelled})
}

func (s *service) ConfirmReceipt(ctx context.Context, buyerID, orderID int64) (Order, error) {
	if buyerID <= 0 {
		return Order{}, ErrNotFound
	}
	return s.transition(ctx, orderID, buyer(buyerID), complete)
}

// complete is confirm-receipt's transition, also the auto-complete worker's.
var complete = change{from: []Status{StatusShipped}, to: StatusCompleted, event: EventCompleted, items: true,
	apply: func(o *Order, _ Status) { o.CompletedAt = o.UpdatedAt }}

func (s *service) RequestRefund(ctx context.Context, buyerID, orderID int64, reason string, items []RefundItem) (Order, error) {
	if buyerID <= 0 {
		return Order{}, ErrNotFound
	}
	if reason == "" || len(reason) > MaxRefundReason {
		return Order{}, errs.ErrValidation.WithDetail("reason must be 1 to %d bytes", MaxRefundReason)
	}
	items, err := normalizeRefundItems(items)
	if err != nil {
		return Order{}, err
	}
	refundID := s.newID(buyerID)
	now := s.clock()
	return s.transition(ctx, orderID, buyer(buyerID), change{from: []Status{StatusPaid, StatusShipped, StatusCompleted},
		to: StatusRefundRequested, event: EventRefundRequested, items: true, guard: func(o Order) error {
			if o.Status == StatusCompleted && !now.Before(o.CompletedAt.Add(s.cfg.AfterSaleWindow)) {
				return ErrAfterSaleWindowOver.WithDetail("the order completed at %s; refunds end %s after completion",
					o.CompletedAt.Format(time.RFC3339), s.cfg.AfterSaleWindow)
			}
			_, _, err := refundUnits(o, items)
			return err
		}, apply: func(o *Order, from Status) {
			o.PrevStatus = from
			o.RefundReason = reason
			o.RefundItems = items
			o.RefundRejectedAt = time.Time{} // a new request: an earlier rejection is no longer escalable
			if o.RefundID == 0 {
				o.RefundID = refundID // cleared when a refund is carried out: each refund has its own number
			}
		}})
}

func (s *service) Ship(ctx context.Context, merchantID, orderID int64, carrier, trackingNo string) (Order, error) {
	if merchantID <= 0 {
		return Order{}, ErrNotFound
	}
	return s.transition(ctx, orderID, merchant(merchantID), change{from: []Status{StatusPaid}, to: StatusShipped,
		event: EventShipped, apply: func(o *Order, _ Status) {
			o.Carrier, o.TrackingNo, o.ShippedAt = carrier, trackingNo, o.UpdatedAt
		}})
}

// ApproveRefund returns the money of the requested units through the gateway first
// (idempotent by the request's refund ID, so a retry after a failure refunds once), then
// records the refund (refunded); order.refunded makes the stock consumer return the units.
func (s *service) ApproveRefund(ctx context.Context, merchantID, orderID int64) (Order, error) {
	if merchantID <= 0 {
		return Order{}, ErrNotFound
	}
	return s.approve(ctx, orderID, merchant(merchantID), StatusRefundRequested)
}

// ApproveDispute is ApproveRefund by the platform, on a disputed order of any merchant.
func (s *service) ApproveDispute(ctx context.Context, orderID int64) (Order, error) {
	return s.approve(ctx, orderID, scope{}, StatusRefundDisputed)
}

// approve refunds the open request of an order in status from (narrowed by sc): money,
// then the refund recorded. A gateway that does not carry the refund out parks it (kind
// approved): a refusal waits for an operator's retry (ErrRefundRefused), a transient
// failure is retried by the refund retry worker (ErrGatewayFailed); either way the order
// keeps its status until the money has gone back.
func (s *service) approve(ctx context.Context, orderID int64, sc scope, from Status) (Order, error) {
	o, err := s.get(ctx, orderID, sc)
	if err != nil {
		return Order{}, err
	}
	if o.Status != from {
		return Order{}, ErrStatusConflict.WithDetail("the order is %s", o.Status)
	}
	f, err := s.approvedRefund(ctx, o)
	if err != nil {
		return Order{}, err
	}
	db := s.cl.ForID(f.RefundID)
	won, gwErr, err := s.refundApproved(ctx, f, o)
	switch {
	case err != nil:
		return Order{}, err
	case gwErr != nil:
		if f, err = s.parkRefund(ctx, db, f, gwErr); err != nil {
			return Order{}, err
		}
		if f.State == RefundRefused {
			return Order{}, ErrRefundRefused.WithDetail("the payment gateway refused the refund (%s); it is parked "+
				"for the platform (GET /api/v1/admin/refunds/failed)", f.Reason)
		}
		return Order{}, ErrGatewayFailed.WithDetail("the payment gateway did not carry the refund out (%s); it is "+
			"retried automatically", f.Reason)
	case !won:
		return Order{}, ErrStatusConflict.WithDetail("the refund was carried out by another call")
	}
	if _, err := s.refundDone(ctx, db, f); err != nil { // an earlier attempt's parked row
		return Order{}, err
	}
	return s.get(ctx, orderID, sc)
}

// approvedRefund is the parked-refund record of o's open request: its units' amount from
// the payment that paid o, under the request's number.
func (s *service) approvedRefund(ctx context.Context, o Order) (ParkedRefund, error) {
	_, amount, err := refundUnits(o, o.RefundItems)
	if err != nil {
		return ParkedRefund{}, err
	}
	p, covered, err := s.st.orderPayment(ctx, s.cl.ForID(o.ID), o.ID)
	if errors.Is(err, ErrPaymentNotFound) {
		return ParkedRefund{}, fmt.Errorf("order %d: no succeeded payment covers it", o.ID)
	}
	if err != nil {
		return ParkedRefund{}, err
	}
	if o.RefundedAmount+amount > covered {
		return ParkedRefund{}, fmt.Errorf("order %d: refund of %d after %d refunded exceeds the %d paid", o.ID, amount,
			o.RefundedAmount, covered)
	}
	return ParkedRefund{Kind: RefundApproved, RefundID: o.RefundID, OrderID: o.ID, PaymentID: p.ID,
		Provider: p.Provider, Amount: amount}, nil
}

// recordRefund records refund f, carried out at the gateway, on the order (in status
// from): the lines' refunded units, refunded_amount, an order_refunds row and
// order.refunded with the refund, in one transaction. The order is refunded when every
// unit is; otherwise it returns to the status before the request. The request's number is
// cleared, so the next request gets its own.
func (s *service) recordRefund(ctx context.Context, orderID int64, sc scope, from Status, f Refund) (Order, error) {
	return s.transition(ctx, orderID, sc, change{from: []Status{from}, to: StatusRefunded, event: EventRefunded,
		items: true,
		guard: func(o Order) error {
			// The lines cannot have moved since the gateway call: only a transition out of
			// from changes them, and that one would fail the status check.
			if units, amount, err := refundUnits(o, f.Items); err != nil || amount != f.Amount || len(units) != len(f.Items) {
				return ErrStatusConflict.WithDetail("the order changed during the refund")
			}
			return nil
		},
		apply: func(o *Order, prev Status) {
			f.AfterCompletion = !o.CompletedAt.IsZero()
			f.CreatedAt = o.UpdatedAt
			left := applyUnits(o, f.Items)
			o.RefundedAmount += f.Amount
			o.RefundItems, o.RefundID = nil, 0
			if left > 0 {
				back(o)
			} else if prev == StatusPaid {
				o.PrevStatus = prev // an automatic refund (stock lost): there was no request
			}
		},
		write: func(ctx context.Context, db *sqldb.DB, o Order, p *OrderEvent) error {
			if _, err := s.st.insertRefund(ctx, db, f); err != nil {
				return err
			}
			if err := s.st.setRefundedQuantities(ctx, db, o); err != nil {
				return err
			}
			p.Refund = &EventRefund{RefundID: f.ID, Amount: f.Amount, Items: f.Items, AfterCompletion: f.AfterCompletion}
			return nil
		}})
}

// RejectRefund records the rejection (refund_rejected_at) so the buyer can escalate it.
func (s *service) RejectRefund(ctx context.Context, merchantID, orderID int64) (Order, error) {
	if merchantID <= 0 {
		return Order{}, ErrNotFound
	}
	return s.transition(ctx, orderID, merchant(merchantID), change{from: []Status{StatusRefundRequested},
		event: EventRefundRejected, apply: func(o *Order, _ Status) {
			back(o)
			o.RefundRejectedAt = o.UpdatedAt
		}})
}

// back returns an order to the status its refund request came from.
func back(o *Order) {
	o.Status = o.PrevStatus
	if !o.Status.Valid() {
		o.Status = StatusPaid
	}
}

// EscalateRefund: the rejection is consumed, so the platform rules on a request once.
func (s *service) EscalateRefund(ctx context.Context, buyerID, orderID int64) (Order, error) {
	if buyerID <= 0 {
		return Order{}, ErrNotFound
	}
	return s.transition(ctx, orderID, buyer(buyerID), change{
		from: []Status{StatusPaid, StatusShipped, StatusCompleted}, to: StatusRefundDisputed,
		event: EventRefundDisputed,
		guard: func(o Order) error {
			if o.RefundRejectedAt.IsZero() {
				return ErrNotRejected.WithDetail("the order (%s) has no rejected refund request to escalate", o.Status)
			}
			return nil
		},
		apply: func(o *Order, from Status) {
			// The status now, which a shipped order may have left for completed since the
			// rejection: a ruling against the buyer returns there.
			o.PrevStatus = from
			o.RefundRejectedAt = time.Time{}
		}})
}

func (s *service) RejectDispute(ctx context.Context, orderID int64) (Order, error) {
	return s.transition(ctx, orderID, scope{}, change{from: []Status{StatusRefundDisputed},
		event: EventDisputeRejected, apply: func(o *Order, _ Status) { back(o) }})
}

// Cart.

func (s *service) Cart(ctx context.Context, buyerID int64) ([]CartItem, error) {
	rows, err := s.st.cart(ctx, s.cl.ForUser(buyerID), buyerID)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.SKUID
	}
	skus, err := s.catalog.SaleSKUs(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]CartItem, len(rows))
	for i, r := range rows {
		out[i] = cartItem(r.SKUID, r.Quantity, r.UpdatedAt, skus)
	}
	return out, nil
}

func cartItem(skuID, qty int64, at time.Time, skus map[int64]catalog.SaleSKU) CartItem {
	it := CartItem{SKUID: skuID, Quantity: qty, UpdatedAt: at}
	if k, ok := skus[skuID]; ok {
		it.ProductID, it.MerchantID, it.Title, it.Attrs, it.Price, it.OnSale = k.ProductID, k.MerchantID, k.Title, k.Attrs, k.Price, true
	}
	return it
}

func (s *service) SetCartItem(ctx context.Context, buyerID, skuID, quantity int64) (CartItem, error) {
	if quantity <= 0 || quantity > MaxQuantity {
		return CartItem{}, errs.ErrValidation.WithDetail("quantity must be 1 to %d", MaxQuantity)
	}
	skus, err := s.catalog.SaleSKUs(ctx, []int64{skuID})
	if err != nil {
		return CartItem{}, err
	}
	if _, ok := skus[skuID]; !ok {
		return CartItem{}, catalog.ErrProductNotFound
	}
	db := s.cl.ForUser(buyerID)
	now := s.clock()
	err = db.WithinTx(ctx, func(ctx context.Context) error {
		n, inCart, err := s.st.cartSlot(ctx, db, buyerID, skuID)
		if err != nil {
			return err
		}
		if !inCart && n >= MaxCartItems {
			return ErrCartFull
		}
		return s.st.upsertCart(ctx, db, buyerID, skuID, quantity, now)
	})
	if err != nil {
		return CartItem{}, err
	}
	return cartItem(skuID, quantity, now, skus), nil
}

func (s *service) RemoveCartItem(ctx context.Context, buyerID, skuID int64) error {
	return s.st.deleteCart(ctx, s.cl.ForUser(buyerID), buyerID, skuID)
}

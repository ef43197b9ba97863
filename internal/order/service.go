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
	m       *metrics
	now     func() time.Time
}

var _ Service = (*service)(nil)

func (s *service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// newID mints an ID on the buyer's logical shard, so ForID finds the buyer's database.
func (s *service) newID(buyerID int64) int64 { return s.ids.Next(sqldb.LogicalShard(buyerID)) }

// Place: validate -> catalog prices -> stock.Reserve per order (the stock module's own
// transactions) -> checkout, orders, items and order.created in one buyer-shard
// transaction. Any failure after a reservation releases every reservation made; a crash
// in between leaves holds that expire (the stock sweeper releases them).
func (s *service) Place(ctx context.Context, cmd PlaceOrder) (Checkout, error) {
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
	byMerchant := map[int64][]Item{}
	for _, it := range cmd.Items {
		k, ok := skus[it.SKUID]
		if !ok {
			return Checkout{}, catalog.ErrProductNotFound.WithDetail("SKU %d is not on sale", it.SKUID)
		}
		byMerchant[k.MerchantID] = append(byMerchant[k.MerchantID], Item{SKUID: k.SKUID, ProductID: k.ProductID,
			MerchantID: k.MerchantID, Title: k.Title, Attrs: k.Attrs, Price: k.Price, Quantity: it.Quantity})
	}
	merchants := make([]int64, 0, len(byMerchant))
	for m := range byMerchant {
		merchants = append(merchants, m)
	}
	slices.Sort(merchants)

	now := s.clock()
	c := Checkout{ID: s.newID(cmd.BuyerID), BuyerID: cmd.BuyerID, Currency: Currency, CreatedAt: now,
		ExpiresAt: now.Add(s.cfg.PaymentTimeout)}
	snapshot := Address{Name: addr.Name, Phone: addr.Phone, Province: addr.Province, City: addr.City,
		District: addr.District, Detail: addr.Detail}
	for _, m := range merchants {
		items := byMerchant[m]
		slices.SortFunc(items, func(a, b Item) int { return cmp.Compare(a.SKUID, b.SKUID) })
		o := Order{ID: s.newID(cmd.BuyerID), CheckoutID: c.ID, BuyerID: cmd.BuyerID, MerchantID: m,
			Status: StatusPendingPayment, Currency: Currency, Address: snapshot, Items: items,
			ExpiresAt: c.ExpiresAt, CreatedAt: now, UpdatedAt: now}
		for _, it := range items {
			o.TotalAmount += it.Price * it.Quantity
		}
		c.TotalAmount += o.TotalAmount
		c.Orders = append(c.Orders, o)
	}

	hold := c.ExpiresAt.Add(s.cfg.HoldGrace)
	holds := make([]stock.Hold, len(c.Orders))
	for i, o := range c.Orders {
		lines := make([]stock.Line, len(o.Items))
		for j, it := range o.Items {
			lines[j] = stock.Line{SKUID: it.SKUID, Quantity: it.Quantity}
		}
		holds[i] = stock.Hold{OrderID: o.ID, BuyerID: cmd.BuyerID, Lines: lines, ExpiresAt: hold}
	}
	release := func() {
		// The caller's context may be gone; the releases must still happen.
		rctx := context.WithoutCancel(ctx)
		for _, h := range holds {
			if err := s.stock.Release(rctx, h.OrderID); err != nil {
				s.log.Error("order: releasing the reservation of a failed checkout", "order_id", h.OrderID, "error", err.Error())
			}
		}
	}
	// The orders reserve together: all or nothing. After a refusal (a domain error) nothing is
	// held; after any other error the outcome is unknown, so the holds are released.
	if err := s.stock.Reserve(ctx, holds...); err != nil {
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
		units := make(map[int64]int64, len(cmd.Items))
		for _, it := range cmd.Items {
			units[it.SKUID] = it.Quantity
		}
		if err := s.st.takeFromCart(ctx, db, cmd.BuyerID, units, now); err != nil {
			return err
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
		OccurredAt: o.UpdatedAt}
	if items {
		for _, it := range o.Items {
			p.Items = append(p.Items, EventItem{SKUID: it.SKUID, Price: it.Price, Quantity: it.Quantity})
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

// MerchantOrders reads up to q.Limit rows before the cursor from every physical shard
// and merges them by (created_at, id) descending: the first q.Limit of the union are
// exactly the first q.Limit overall, since each shard's list is sorted the same way.
func (s *service) MerchantOrders(ctx context.Context, merchantID int64, q ListQuery) ([]Order, error) {
	if err := checkQuery(&q); err != nil {
		return nil, err
	}
	if merchantID <= 0 {
		return nil, ErrNotFound
	}
	var all []Order
	dbOf := map[int64]*sqldb.DB{}
	seen := map[*sqldb.DB]bool{}
	for _, db := range s.cl.Shards() {
		if seen[db] {
			continue
		}
		seen[db] = true
		os, err := s.st.list(ctx, db, scope{merchantID: merchantID}, q, q.Limit)
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
			return nil, err
		}
		for j, i := range idx {
			all[i] = os[j]
		}
	}
	return all, nil
}

// change is one state-machine transition.
type change struct {
	from  []Status
	to    Status
	event string
	// check, when set, vets the locked order before its status is (an error refuses the
	// transition).
	check func(o Order) error
	// apply sets the transition's other fields on the locked order.
	apply func(o *Order, from Status)
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
		if ch.check != nil {
			if err := ch.check(o); err != nil {
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
		return s.outbox.Add(ctx, s.event(ch.event, o, false))
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
	return s.transition(ctx, orderID, buyer(buyerID),
		change{from: []Status{StatusShipped}, to: StatusCompleted, event: EventCompleted})
}

func (s *service) RequestRefund(ctx context.Context, buyerID, orderID int64, reason string) (Order, error) {
	if buyerID <= 0 {
		return Order{}, ErrNotFound
	}
	if reason == "" || len(reason) > MaxRefundReason {
		return Order{}, errs.ErrValidation.WithDetail("reason must be 1 to %d bytes", MaxRefundReason)
	}
	refundID := s.newID(buyerID)
	return s.transition(ctx, orderID, buyer(buyerID), change{from: []Status{StatusPaid, StatusShipped},
		to: StatusRefundRequested, event: EventRefundRequested, apply: func(o *Order, from Status) {
			o.PrevStatus = from
			o.RefundReason = reason
			o.RefundRejectedAt = time.Time{} // a new request: an earlier rejection is no longer escalable
			if o.RefundID == 0 {
				o.RefundID = refundID
			}
		}})
}

func (s *service) Ship(ctx context.Context, merchantID, orderID int64, carrier, trackingNo string) (Order, error) {
	if merchantID <= 0 {
		return Order{}, ErrNotFound
	}
	return s.transition(ctx, orderID, merchant(merchantID), change{from: []Status{StatusPaid}, to: StatusShipped,
		event: EventShipped, apply: func(o *Order, _ Status) { o.Carrier, o.TrackingNo = carrier, trackingNo }})
}

// ApproveRefund returns the money through the gateway first (idempotent by the order's
// refund ID, so a retry after a failure refunds once), then moves the order to refunded;
// order.refunded makes the stock consumer return the units.
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

// approve refunds an order in status from (narrowed by sc): money, then refunded.
func (s *service) approve(ctx context.Context, orderID int64, sc scope, from Status) (Order, error) {
	o, err := s.get(ctx, orderID, sc)
	if err != nil {
		return Order{}, err
	}
	if o.Status != from {
		return Order{}, ErrStatusConflict.WithDetail("the order is %s", o.Status)
	}
	if err := s.refundMoney(ctx, o); err != nil {
		return Order{}, err
	}
	return s.transition(ctx, orderID, sc, change{from: []Status{from}, to: StatusRefunded, event: EventRefunded})
}

// refundMoney refunds the order's share of the payment that paid it (the payment whose
// set covers it), never another payment of the checkout: that money is other orders'.
func (s *service) refundMoney(ctx context.Context, o Order) error {
	db := s.cl.ForID(o.ID)
	p, amount, err := s.st.orderPayment(ctx, db, o.ID)
	if errors.Is(err, ErrPaymentNotFound) {
		return fmt.Errorf("order %d: no succeeded payment covers it", o.ID)
	}
	if err != nil {
		return err
	}
	prov, ok := s.providers[p.Provider]
	if !ok {
		return ErrGatewayFailed.WithDetail("payment provider %q is not configured", p.Provider)
	}
	res, err := prov.Refund(ctx, payment.RefundRequest{PaymentID: p.ID, RefundID: o.RefundID, Amount: amount,
		Reason: o.RefundReason})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrGatewayFailed, err)
	}
	return s.st.addRefunded(ctx, db, p.ID, res.Refunded, s.clock())
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
		check: func(o Order) error {
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

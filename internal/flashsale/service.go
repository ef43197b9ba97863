package flashsale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/realtime"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/stock"
)

// Publisher delivers a message to a realtime room (the hub; tests may count).
type Publisher interface {
	Publish(ctx context.Context, room string, msg any) error
}

type discard struct{}

func (discard) Publish(context.Context, string, any) error { return nil }

// producer queues records on Kafka (the module's own client: bounded delivery, so a broker
// that does not take an attempt in time fails it).
type producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

type service struct {
	log     *slog.Logger
	db      *sqldb.DB
	st      *store
	gate    *gate
	ids     *idgen.Generator
	catalog catalog.Service
	stock   stock.Service
	orders  order.Service
	prod    producer
	hub     Publisher
	cfg     Config
	m       *metrics
	now     func() time.Time
	intake  *pacer

	mu      sync.Mutex
	soldOut map[int64]time.Time  // sale -> refuse from memory until
	sales   map[int64]cachedSale // the intake's recently read sales
}

var _ Service = (*service)(nil)

func (s *service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Sales.

func (s *service) Create(ctx context.Context, merchantID int64, in NewSale) (Sale, error) {
	if merchantID <= 0 {
		return Sale{}, ErrNotFound
	}
	now := s.clock()
	var bad []errs.FieldError
	add := func(field, msg string) { bad = append(bad, errs.FieldError{Field: field, Message: msg}) }
	switch {
	case in.SKUID <= 0:
		add("sku_id", "is required")
	}
	if in.Quantity <= 0 || in.Quantity > MaxQuantity {
		add("quantity", fmt.Sprintf("must be 1 to %d", MaxQuantity))
	}
	if in.Price <= 0 || in.Price > order.MaxCheckoutAmount {
		add("price", fmt.Sprintf("must be 1 to %d fen", order.MaxCheckoutAmount))
	}
	if in.PerUserLimit <= 0 || in.PerUserLimit > MaxPerUser {
		add("per_user_limit", fmt.Sprintf("must be 1 to %d", MaxPerUser))
	}
	in.StartsAt, in.EndsAt = in.StartsAt.UTC().Truncate(time.Microsecond), in.EndsAt.UTC().Truncate(time.Microsecond)
	switch {
	case !in.EndsAt.After(in.StartsAt):
		add("ends_at", "must be after starts_at")
	case !in.EndsAt.After(now):
		add("ends_at", "must be in the future")
	case in.EndsAt.Sub(in.StartsAt) > MaxSaleLength:
		add("ends_at", fmt.Sprintf("a sale lasts at most %s", MaxSaleLength))
	}
	if len(bad) > 0 {
		return Sale{}, errs.ErrValidation.WithDetail("the sale is invalid").WithFields(bad...)
	}
	skus, err := s.catalog.SaleSKUs(ctx, []int64{in.SKUID})
	if err != nil {
		return Sale{}, err
	}
	k, ok := skus[in.SKUID]
	if !ok || k.MerchantID != merchantID {
		return Sale{}, catalog.ErrProductNotFound.WithDetail("SKU %d is not one of your SKUs on sale", in.SKUID)
	}
	if in.Price >= k.Price {
		return Sale{}, errs.ErrValidation.WithDetail("a flash price is below the SKU's price (%d fen)", k.Price).
			WithFields(errs.FieldError{Field: "price", Message: "must be below the SKU's price"})
	}
	title := k.Title
	if utf8.RuneCountInString(title) > MaxTitle {
		title = string([]rune(title)[:MaxTitle])
	}
	r := saleRow{ID: s.ids.Next(0), MerchantID: merchantID, ProductID: k.ProductID, SKUID: k.SKUID, Title: title,
		Price: in.Price, OriginalPrice: k.Price, Quantity: in.Quantity, PerUserLimit: in.PerUserLimit,
		StartsAt: in.StartsAt, EndsAt: in.EndsAt, CreatedAt: now}
	// The units first (the stock module's own transaction, idempotent per pool); a failed
	// insert closes the pool again.
	if err := s.stock.OpenPool(ctx, stock.Pool{ID: r.ID, SKUID: r.SKUID, MerchantID: merchantID,
		Quantity: r.Quantity, ExpiresAt: r.EndsAt}); err != nil {
		return Sale{}, err
	}
	if err := s.st.insertSale(ctx, r); err != nil {
		if _, cerr := s.stock.ClosePool(context.WithoutCancel(ctx), r.ID); cerr != nil {
			s.log.Error("flashsale: closing the pool of a sale that was not created", "sale_id", r.ID, "error", cerr)
		}
		return Sale{}, fmt.Errorf("flashsale: create: %w", err)
	}
	if err := s.loadGate(ctx, r); err != nil {
		// The next attempt rebuilds it.
		s.log.Warn("flashsale: gate not written at creation", "sale_id", r.ID, "error", err)
	}
	return s.view(ctx, r, false)
}

func (s *service) Cancel(ctx context.Context, merchantID, saleID int64) (Sale, error) {
	r, err := s.st.sale(ctx, saleID, merchantID, false)
	if err != nil || merchantID <= 0 {
		return Sale{}, ErrNotFound
	}
	if r.CancelledAt.Valid {
		return s.view(ctx, r, true)
	}
	now := s.clock()
	if !r.EndsAt.After(now) {
		return Sale{}, ErrAlreadyEnded
	}
	if err := s.st.cancelSale(ctx, saleID, now); err != nil {
		return Sale{}, err
	}
	if err := s.gate.close(ctx, saleID); err != nil {
		s.log.Warn("flashsale: gate not closed at cancel (the pool is: MySQL decides)", "sale_id", saleID, "error", err)
	}
	if _, err := s.stock.ClosePool(ctx, saleID); err != nil {
		return Sale{}, err
	}
	r, err = s.st.sale(ctx, saleID, merchantID, false)
	if err != nil {
		return Sale{}, err
	}
	return s.view(ctx, r, true)
}

func (s *service) MerchantSale(ctx context.Context, merchantID, saleID int64) (Sale, error) {
	if merchantID <= 0 || saleID <= 0 {
		return Sale{}, ErrNotFound
	}
	r, err := s.st.sale(ctx, saleID, merchantID, false)
	if err != nil {
		return Sale{}, err
	}
	return s.view(ctx, r, true)
}

func (s *service) MerchantSales(ctx context.Context, merchantID, before int64, limit int) ([]Sale, error) {
	if merchantID <= 0 {
		return nil, ErrNotFound
	}
	rows, err := s.st.merchantSales(ctx, merchantID, before, limit)
	if err != nil {
		return nil, err
	}
	return s.views(ctx, rows, true)
}

func (s *service) Sale(ctx context.Context, saleID int64) (Sale, error) {
	if saleID <= 0 {
		return Sale{}, ErrNotFound
	}
	r, err := s.st.sale(ctx, saleID, 0, false)
	if err != nil {
		return Sale{}, err
	}
	return s.view(ctx, r, false)
}

func (s *service) Sales(ctx context.Context, status Status, before int64, limit int) ([]Sale, error) {
	if status != "" && status != StatusScheduled && status != StatusRunning {
		return nil, errs.ErrValidation.WithDetail("status must be scheduled or running")
	}
	rows, err := s.st.publicSales(ctx, status, s.clock(), before, limit)
	if err != nil {
		return nil, err
	}
	return s.views(ctx, rows, false)
}

// views is view for a list: the units sold of every sale in one query.
func (s *service) views(ctx context.Context, rows []saleRow, exact bool) ([]Sale, error) {
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	sold, err := s.st.sold(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]Sale, 0, len(rows))
	for _, r := range rows {
		v, err := s.viewWith(ctx, r, exact, sold[r.ID])
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// view is the sale as shown: Remaining from the stock pool (exact: the merchant's view)
// or the gate (public, falling back to the pool), Sold from the tickets, Status from the
// clock and Remaining.
func (s *service) view(ctx context.Context, r saleRow, exact bool) (Sale, error) {
	sold, err := s.st.sold(ctx, []int64{r.ID})
	if err != nil {
		return Sale{}, err
	}
	return s.viewWith(ctx, r, exact, sold[r.ID])
}

// viewWith is view with the sale's units sold already read.
func (s *service) viewWith(ctx context.Context, r saleRow, exact bool, sold int64) (Sale, error) {
	v := Sale{ID: r.ID, MerchantID: r.MerchantID, ProductID: r.ProductID, SKUID: r.SKUID, Title: r.Title,
		Price: r.Price, OriginalPrice: r.OriginalPrice, Quantity: r.Quantity, PerUserLimit: r.PerUserLimit,
		StartsAt: r.StartsAt, EndsAt: r.EndsAt, CreatedAt: r.CreatedAt}
	found := false
	if !exact && !r.Closed {
		left, ok, err := s.gate.left(ctx, r.ID)
		if err == nil && ok {
			v.Remaining, found = max(left, 0), true
		}
	}
	if !found {
		p, err := s.stock.PoolOf(ctx, r.ID)
		if err != nil {
			return Sale{}, err
		}
		v.Remaining = p.Remaining
	}
	v.Sold = sold
	now := s.clock()
	switch {
	case r.CancelledAt.Valid:
		v.Status, v.Remaining = StatusCancelled, 0
	case r.Closed || !r.EndsAt.After(now):
		v.Status, v.Remaining = StatusEnded, 0
	case now.Before(r.StartsAt):
		v.Status = StatusScheduled
	case v.Remaining == 0:
		v.Status = StatusSoldOut
	default:
		v.Status = StatusRunning
	}
	return v, nil
}

// loadGate writes the sale's gate from MySQL unless one exists: units left are the pool's
// (what no placed order holds; tickets still queued are not known here, so the gate may
// accept a few that the intake then fails — never an oversell: the pool decides), the
// buyers' counts their ordered, not cancelled units.
func (s *service) loadGate(ctx context.Context, r saleRow) error {
	p, err := s.stock.PoolOf(ctx, r.ID)
	if err != nil {
		return err
	}
	holdings, err := s.st.holdings(ctx, r.ID)
	if err != nil {
		return err
	}
	open := p.Open && !r.CancelledAt.Valid && !r.Closed
	return s.gate.load(ctx, r.ID, p.Remaining, r.StartsAt, r.EndsAt, r.PerUserLimit, open, holdings)
}

// Attempts.

func (s *service) Attempt(ctx context.Context, in NewAttempt) (Ticket, error) {
	if in.BuyerID <= 0 {
		return Ticket{}, errs.ErrUnauthenticated
	}
	if in.SaleID <= 0 {
		return Ticket{}, ErrNotFound
	}
	if in.Quantity <= 0 || in.Quantity > MaxPerUser || in.AddressID <= 0 || in.Key == "" {
		return Ticket{}, errs.ErrValidation.WithDetail("quantity (1 to %d), address_id and an Idempotency-Key are required",
			MaxPerUser)
	}
	start := time.Now()
	now := s.clock()
	if s.soldOutUntil(in.SaleID, now) {
		s.m.attempts.WithLabelValues("sold_out_memory").Inc()
		return Ticket{}, ErrSoldOut
	}
	t := queuedTicket{ID: s.ids.Next(0), SaleID: in.SaleID, BuyerID: in.BuyerID, Quantity: in.Quantity,
		AddressID: in.AddressID, CreatedAt: now}
	res, id, err := s.gate.attempt(ctx, in.SaleID, t, in.Key, now, s.cfg.MaxQueued)
	if err == nil && res == gateMissing {
		// No gate (new replica of Redis, FLUSHALL, a sale created while Redis was down):
		// rebuild it from MySQL and ask again.
		r, serr := s.st.sale(ctx, in.SaleID, 0, false)
		if serr != nil {
			return Ticket{}, serr
		}
		if err = s.loadGate(ctx, r); err == nil {
			res, id, err = s.gate.attempt(ctx, in.SaleID, t, in.Key, now, s.cfg.MaxQueued)
		}
	}
	s.m.gateSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		s.m.attempts.WithLabelValues("unavailable").Inc()
		s.log.Warn("flashsale: gate unavailable", "sale_id", in.SaleID, "error", err)
		return Ticket{}, ErrUnavailable.WithDetail("the sale cannot take attempts right now; try again").WithRetryAfter(1)
	}
	s.m.attempts.WithLabelValues(string(res)).Inc()
	switch res {
	case gateDup:
		return s.Ticket(ctx, in.BuyerID, id)
	case gateSoldOut:
		s.rememberSoldOut(in.SaleID, now)
		return Ticket{}, ErrSoldOut
	case gateLimit:
		return Ticket{}, ErrLimitReached.WithDetail("at most the sale's per-user limit per buyer")
	case gateNotRun, gateMissing:
		return Ticket{}, ErrNotRunning
	case gateQueueFull:
		return Ticket{}, ErrQueueFull.WithDetail("too many attempts are waiting; try again shortly").WithRetryAfter(1)
	case gateOK:
	default:
		return Ticket{}, fmt.Errorf("flashsale: gate answered %q", res)
	}
	// Queued on Kafka before the 202; a failed produce takes the attempt back.
	if err := s.produce(ctx, t); err != nil {
		if uerr := s.gate.undo(context.WithoutCancel(ctx), in.SaleID, t, in.Key); uerr != nil {
			s.log.Error("flashsale: undoing an attempt that was not queued", "ticket_id", t.ID, "error", uerr)
		}
		s.m.attempts.WithLabelValues("produce_failed").Inc()
		s.log.Warn("flashsale: attempt not queued", "sale_id", in.SaleID, "error", err)
		return Ticket{}, ErrUnavailable.WithDetail("the attempt could not be queued; try again").WithRetryAfter(1)
	}
	return Ticket{ID: t.ID, SaleID: in.SaleID, BuyerID: in.BuyerID, Quantity: in.Quantity, AddressID: in.AddressID,
		Status: TicketQueued, CreatedAt: now, UpdatedAt: now}, nil
}

func (s *service) produce(ctx context.Context, t queuedTicket) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProduceTimeout)
	defer cancel()
	// Keyed by ticket: a hot sale's tickets spread over every partition, so the intake takes
	// them up in parallel (each ticket stands alone; the pool and the buyer's limit in MySQL
	// decide, whatever the order).
	ev, err := kafkax.NewEnvelope(EventAttempted, strconv.FormatInt(t.ID, 10), Attempted{TicketID: t.ID,
		SaleID: t.SaleID, BuyerID: t.BuyerID, AddressID: t.AddressID, Quantity: t.Quantity, OccurredAt: t.CreatedAt,
		CheckoutID: s.ids.Next(sqldb.LogicalShard(t.BuyerID)), OrderID: s.ids.Next(sqldb.LogicalShard(t.BuyerID))})
	if err != nil {
		return err
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return s.prod.ProduceSync(ctx, kafkax.NewRecord(Topic, ev.AggregateID, ev.Type, ev.ID, b)).FirstErr()
}

func (s *service) soldOutUntil(saleID int64, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.soldOut[saleID]
	if ok && !now.Before(until) {
		delete(s.soldOut, saleID)
		return false
	}
	return ok
}

func (s *service) rememberSoldOut(saleID int64, now time.Time) {
	if s.cfg.SoldOutMemory <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.soldOut[saleID] = now.Add(s.cfg.SoldOutMemory)
}

func (s *service) Ticket(ctx context.Context, buyerID, ticketID int64) (Ticket, error) {
	if buyerID <= 0 || ticketID <= 0 {
		return Ticket{}, ErrTicketNotFound
	}
	t, err := s.st.ticket(ctx, ticketID)
	if err == nil {
		if t.BuyerID != buyerID {
			return Ticket{}, ErrTicketNotFound
		}
		return t, nil
	}
	if !errors.Is(err, ErrTicketNotFound) {
		return Ticket{}, err
	}
	q, ok, err := s.gate.queued(ctx, ticketID)
	if err != nil {
		return Ticket{}, err
	}
	if !ok || q.BuyerID != buyerID {
		return Ticket{}, ErrTicketNotFound
	}
	return Ticket{ID: q.ID, SaleID: q.SaleID, BuyerID: q.BuyerID, Quantity: q.Quantity, AddressID: q.AddressID,
		Status: TicketQueued, CreatedAt: q.CreatedAt, UpdatedAt: q.CreatedAt}, nil
}

// Intake.

// take turns one queued attempt into an order (or a failed ticket): takeBatch of one.
func (s *service) take(ctx context.Context, a Attempted) error {
	return s.takeBatch(ctx, []Attempted{a})
}

// takeBatch turns queued attempts into orders (or failed tickets), once per ticket: the
// buyer's limit checked in MySQL, the units taken from the sale's pool by the order module
// (PlaceFlashOrders: one pool transaction per sale and batch, idempotent per ticket), the
// tickets recorded in one statement, the gate settled (a failed ticket's units go back),
// each buyer told on their own channel. A ticket recorded before (a redelivery) is passed
// over: going through again could place an order for a ticket recorded as failed, one the
// buyer's limit would not count.
func (s *service) takeBatch(ctx context.Context, as []Attempted) error {
	ids := make([]int64, len(as))
	for i, a := range as {
		ids[i] = a.TicketID
	}
	recorded, err := s.st.recorded(ctx, ids)
	if err != nil {
		return err
	}
	bySale := map[int64][]Attempted{}
	var sales []int64
	seen := map[int64]bool{}
	for _, a := range as {
		if recorded[a.TicketID] || seen[a.TicketID] {
			continue
		}
		seen[a.TicketID] = true
		if _, ok := bySale[a.SaleID]; !ok {
			sales = append(sales, a.SaleID)
		}
		bySale[a.SaleID] = append(bySale[a.SaleID], a)
	}
	for _, saleID := range sales {
		todo := bySale[saleID]
		for len(todo) > 0 {
			n := min(len(todo), order.MaxFlashBatch)
			if err := s.takeSale(ctx, saleID, todo[:n]); err != nil {
				return err
			}
			todo = todo[n:]
		}
	}
	return nil
}

// takeSale is takeBatch for new tickets of one sale.
func (s *service) takeSale(ctx context.Context, saleID int64, as []Attempted) error {
	if err := s.intake.waitN(ctx, len(as)); err != nil {
		return err
	}
	now := s.clock()
	ts := make([]Ticket, len(as))
	for i, a := range as {
		ts[i] = Ticket{ID: a.TicketID, SaleID: a.SaleID, BuyerID: a.BuyerID, Quantity: a.Quantity, AddressID: a.AddressID,
			CreatedAt: a.OccurredAt.UTC().Truncate(time.Microsecond), UpdatedAt: now}
	}
	codes, err := s.placeTickets(ctx, saleID, as, ts, now)
	if err != nil {
		return err
	}
	giveBack := make([]int64, len(ts))
	for i := range ts {
		t := &ts[i]
		t.Status = TicketOrdered
		if codes[i] != "" {
			t.Status, t.Code = TicketFailed, codes[i]
			if codes[i] != ErrSoldOut.Code {
				giveBack[i] = t.Quantity // the pool has the units: the gate gets them back
			}
		}
	}
	if err := s.st.insertTickets(ctx, ts); err != nil {
		return err
	}
	// Settling is once per ticket (the gate drops the ticket's key with it), so a racing
	// redelivery that settles too changes nothing.
	settle := make([]settlement, len(ts))
	for i, t := range ts {
		settle[i] = settlement{ticketID: t.ID, buyerID: t.BuyerID, giveBack: giveBack[i]}
	}
	if err := s.gate.settle(ctx, saleID, settle); err != nil {
		s.log.Warn("flashsale: gate not settled (a rebuild corrects it)", "sale_id", saleID, "tickets", len(settle),
			"error", err)
	}
	for _, t := range ts {
		s.m.tickets.WithLabelValues(string(t.Status)).Inc()
		s.m.intakeLag.Observe(max(now.Sub(t.CreatedAt).Seconds(), 0))
		msg := TicketMessage{Type: "flash_sale.ticket", TicketID: strconv.FormatInt(t.ID, 10), Status: t.Status, Code: t.Code}
		if t.OrderID != 0 {
			msg.OrderID = strconv.FormatInt(t.OrderID, 10)
		}
		if err := s.hub.Publish(ctx, realtime.UserRoom(t.BuyerID), msg); err != nil {
			s.log.Warn("flashsale: ticket result not pushed", "ticket_id", t.ID, "error", err)
		}
	}
	return nil
}

// placeTickets places the orders of one sale's tickets (setting their order and checkout);
// codes[i] is why ts[i] cannot have one (it failed), err a failure to retry.
func (s *service) placeTickets(ctx context.Context, saleID int64, as []Attempted, ts []Ticket, now time.Time) (codes []string, err error) {
	codes = make([]string, len(ts))
	r, err := s.intakeSale(ctx, saleID, now)
	if errors.Is(err, ErrNotFound) {
		for i := range codes {
			codes[i] = ErrNotFound.Code
		}
		return codes, nil
	}
	if err != nil {
		return nil, err
	}
	if r.CancelledAt.Valid || r.Closed {
		for i := range codes {
			codes[i] = ErrNotRunning.Code
		}
		return codes, nil
	}
	buyers := make([]int64, len(ts))
	for i, t := range ts {
		buyers[i] = t.BuyerID
	}
	held, err := s.st.holdingsOf(ctx, saleID, buyers)
	if err != nil {
		return nil, err
	}
	in := make([]order.FlashOrder, len(ts))
	for i, t := range ts {
		in[i] = order.FlashOrder{TicketID: t.ID, FlashSaleID: saleID, BuyerID: t.BuyerID, AddressID: t.AddressID,
			SKUID: r.SKUID, Quantity: t.Quantity, Price: r.Price, PaymentTimeout: s.cfg.PaymentTimeout,
			CheckoutID: as[i].CheckoutID, OrderID: as[i].OrderID}
		// Over the limit in MySQL (the batch's own earlier tickets count): only an order
		// placed for this very ticket before (a crash before it was recorded) stands.
		if held[t.BuyerID]+t.Quantity > int64(r.PerUserLimit) {
			in[i].PlacedOnly = true
			continue
		}
		held[t.BuyerID] += t.Quantity
	}
	placed, err := s.orders.PlaceFlashOrders(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("flashsale: sale %d: %w", saleID, err)
	}
	for i, p := range placed {
		if p.Err != nil {
			codes[i] = ticketCode(p.Err)
			continue
		}
		ts[i].CheckoutID = p.Checkout.ID
		if len(p.Checkout.Orders) > 0 {
			ts[i].OrderID = p.Checkout.Orders[0].ID
		}
	}
	return codes, nil
}

// ticketCode is the failed ticket's code for the order module's refusal.
func ticketCode(err error) string {
	switch {
	case errors.Is(err, order.ErrFlashLimit):
		return ErrLimitReached.Code
	case errors.Is(err, stock.ErrInsufficient):
		return ErrSoldOut.Code
	case errors.Is(err, stock.ErrPoolClosed):
		return ErrNotRunning.Code
	}
	if e, ok := errs.As(err); ok {
		return e.Code // the buyer's address gone, the product off sale, ...
	}
	return ErrUnavailable.Code
}

// intakeSaleTTL is how long the intake reuses a sale's row: a cancel is seen that much
// later at worst, and then the pool (closed) refuses the ticket anyway.
const intakeSaleTTL = time.Second

// intakeSale is the sale's row, read at most once per intakeSaleTTL per replica.
func (s *service) intakeSale(ctx context.Context, saleID int64, now time.Time) (saleRow, error) {
	s.mu.Lock()
	c, ok := s.sales[saleID]
	s.mu.Unlock()
	if ok && now.Sub(c.at) < intakeSaleTTL {
		return c.row, nil
	}
	r, err := s.st.sale(ctx, saleID, 0, false)
	if err != nil {
		return r, err
	}
	s.mu.Lock()
	if len(s.sales) > 10_000 {
		clear(s.sales)
	}
	s.sales[saleID] = cachedSale{row: r, at: now}
	s.mu.Unlock()
	return r, nil
}

type cachedSale struct {
	row saleRow
	at  time.Time
}

// orderCancelled gives a cancelled (or timed-out) flash order's units back to the sale's
// gate while it runs (the stock module has put them back in the pool already), once.
func (s *service) orderCancelled(ctx context.Context, ev order.OrderEvent) error {
	t, ok, err := s.st.returnTicket(ctx, ev.OrderID, s.clock())
	if err != nil || !ok {
		return err
	}
	if err := s.gate.giveBack(ctx, t.SaleID, t.BuyerID, t.Quantity); err != nil {
		s.log.Warn("flashsale: units of a cancelled order not given back to the gate (a rebuild corrects it)",
			"order_id", ev.OrderID, "error", err)
	}
	return nil
}

// closeEnded closes the pools of sales past their end (what is left returns to the SKU)
// and their gates; it returns how many it closed.
func (s *service) closeEnded(ctx context.Context, limit int) (int, error) {
	ids, err := s.st.endedOpen(ctx, s.clock(), limit)
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if _, err := s.stock.ClosePool(ctx, id); err != nil {
			return 0, err
		}
		if err := s.st.markClosed(ctx, id, s.clock()); err != nil {
			return 0, err
		}
		if err := s.gate.close(ctx, id); err != nil {
			s.log.Warn("flashsale: gate of an ended sale not closed", "sale_id", id, "error", err)
		}
	}
	return len(ids), nil
}

// pacer spaces the intake's orders to at most rate per second on this replica.
type pacer struct {
	mu   sync.Mutex
	next time.Time
	gap  time.Duration
}

func newPacer(rate int) *pacer { return &pacer{gap: time.Second / time.Duration(max(rate, 1))} }

// waitN waits until n more orders may be placed: a batch starts when its first order's
// turn comes, and the next batch waits for the turns this one took.
func (p *pacer) waitN(ctx context.Context, n int) error {
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(p.gap * time.Duration(max(n, 1)))
	p.mu.Unlock()
	if d := time.Until(at); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

type metrics struct {
	attempts    *prometheus.CounterVec
	gateSeconds prometheus.Histogram
	tickets     *prometheus.CounterVec
	intakeLag   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mall_flashsale_attempts_total",
			Help: "Flash-sale attempts by outcome (ok, dup, sold_out, sold_out_memory, limit, not_running, queue_full, unavailable, produce_failed)."},
			[]string{"outcome"}),
		gateSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mall_flashsale_gate_seconds",
			Help: "Time of the gate's decision (one Redis script call, two on a rebuild).", Buckets: prometheus.ExponentialBuckets(0.0002, 2, 12)}),
		tickets: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mall_flashsale_tickets_total",
			Help: "Tickets taken up by the intake, by final state."}, []string{"status"}),
		intakeLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mall_flashsale_intake_lag_seconds",
			Help: "Time from an accepted attempt to its ticket's final state.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.attempts, m.gateSeconds, m.tickets, m.intakeLag} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

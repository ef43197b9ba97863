package auction

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/realtime"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

type service struct {
	log     *slog.Logger
	db      *sqldb.DB
	st      *store
	ids     *idgen.Generator
	catalog catalog.Service
	orders  order.Service
	outbox  outbox.Writer
	gate    *gate // nil: no Redis gate
	pub     *orderedPublisher
	batch   bidBatcher
	hub     *realtime.Hub // nil: no WebSocket route
	cfg     Config
	m       *metrics
	now     func() time.Time
}

var _ Service = (*service)(nil)

func (s *service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func (s *service) Create(ctx context.Context, merchantID int64, in NewLot) (Lot, error) {
	if merchantID <= 0 {
		return Lot{}, errs.ErrForbidden
	}
	now := s.clock()
	in.Title = strings.TrimSpace(in.Title)
	var fe []errs.FieldError
	bad := func(field, msg string) { fe = append(fe, errs.FieldError{Field: field, Message: msg}) }
	if in.Title == "" || len([]rune(in.Title)) > MaxTitle {
		bad("title", fmt.Sprintf("must be 1 to %d characters", MaxTitle))
	}
	if in.StartPrice < 1 || in.StartPrice > MaxAmount {
		bad("start_price", fmt.Sprintf("must be 1 to %d", MaxAmount))
	}
	if in.Increment < 1 || in.Increment > MaxAmount {
		bad("increment", fmt.Sprintf("must be 1 to %d", MaxAmount))
	}
	if in.ReservePrice < 0 || in.ReservePrice > MaxAmount {
		bad("reserve_price", fmt.Sprintf("must be 0 to %d", MaxAmount))
	}
	if len(in.Ladder) > MaxBands {
		bad("increment_ladder", fmt.Sprintf("has at most %d bands", MaxBands))
	}
	for i, b := range in.Ladder {
		if b.From < 1 || b.From > MaxAmount || b.Increment < 1 || b.Increment > MaxAmount ||
			(i > 0 && b.From <= in.Ladder[i-1].From) {
			bad(fmt.Sprintf("increment_ladder[%d]", i), "bands need from and increment from 1, with from increasing")
		}
	}
	in.StartsAt, in.EndsAt = in.StartsAt.UTC().Truncate(time.Microsecond), in.EndsAt.UTC().Truncate(time.Microsecond)
	if in.StartsAt.IsZero() || in.EndsAt.IsZero() || !in.EndsAt.After(in.StartsAt) || in.EndsAt.Sub(in.StartsAt) > MaxDuration {
		bad("ends_at", "must be after starts_at, at most 30 days later")
	}
	if !in.EndsAt.After(now) {
		bad("ends_at", "must be in the future")
	}
	if in.ExtendWindow < 0 || in.ExtendWindow > MaxExtension || in.ExtendWindow%time.Second != 0 {
		bad("extend_window_seconds", "must be 0 to 3600")
	}
	if in.Extend < 0 || in.Extend > MaxExtension || in.Extend%time.Second != 0 {
		bad("extend_seconds", "must be 0 to 3600")
	}
	if len(fe) > 0 {
		return Lot{}, errs.ErrValidation.WithFields(fe...)
	}
	l := Lot{ID: s.ids.Next(0), MerchantID: merchantID, ProductID: in.ProductID, Title: in.Title,
		Status: StatusScheduled, StartPrice: in.StartPrice, Increment: in.Increment, Ladder: in.Ladder,
		ReservePrice: in.ReservePrice, StartsAt: in.StartsAt, EndsAt: in.EndsAt, ExtendWindow: in.ExtendWindow,
		Extend: in.Extend, Version: 1, OrderState: OrderNone, CreatedAt: now, UpdatedAt: now}
	if in.ProductID != 0 {
		p, err := s.catalog.MerchantProduct(ctx, merchantID, in.ProductID)
		if err != nil {
			return Lot{}, err // another merchant's product is not found
		}
		if len(p.SKUs) != 1 {
			return Lot{}, ErrProductSKUs.WithDetail("an auctioned product has exactly one SKU (one unit is sold), this one has %d", len(p.SKUs))
		}
		l.SKUID = p.SKUs[0].ID
	}
	err := s.db.WithinTx(ctx, func(ctx context.Context) error {
		if err := s.st.insertLot(ctx, l); err != nil {
			return err
		}
		return s.outbox.Add(ctx, s.lotEvent(EventCreated, l))
	})
	if err != nil {
		return Lot{}, fmt.Errorf("auction: create: %w", err)
	}
	return l, nil
}

func (s *service) lotEvent(typ string, l Lot) outbox.Event {
	return outbox.Event{Topic: Topic, AggregateID: strconv.FormatInt(l.ID, 10), Type: typ,
		Payload: LotEvent{LotID: l.ID, MerchantID: l.MerchantID, Status: l.Status, EndsAt: l.EndsAt, Version: l.Version,
			OccurredAt: l.UpdatedAt}}
}

func (s *service) Get(ctx context.Context, id int64) (Lot, error) {
	if id <= 0 {
		return Lot{}, ErrNotFound
	}
	return s.st.lot(ctx, id, false)
}

func (s *service) List(ctx context.Context, status Status, limit int, before int64) ([]Lot, error) {
	if status != "" && !status.Valid() {
		return nil, errs.ErrValidation.WithDetail("unknown status %q", status)
	}
	if limit <= 0 {
		limit = 20
	}
	return s.st.list(ctx, status, limit, before)
}

func (s *service) Bids(ctx context.Context, lotID int64, limit int, before int64) ([]Bid, error) {
	if _, err := s.Get(ctx, lotID); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 20
	}
	return s.st.bids(ctx, lotID, limit, before)
}

// Bid: this replica's last known state of the lot, then the Redis gate (either may turn
// the bid away) -> the lot's batch (bid_batch.go): one transaction on db.main locks the
// lot, applies the rules, inserts the bid rows, updates the lot guarded by its version and
// adds the outbox events -> commit -> gate and watchers get the new state. The caller
// hears 201 only after the commit.
func (s *service) Bid(ctx context.Context, in PlaceBid) (BidResult, error) {
	if in.BidderID <= 0 {
		return BidResult{}, errs.ErrUnauthenticated
	}
	if in.LotID <= 0 {
		return BidResult{}, ErrNotFound
	}
	if in.MaxAmount != 0 && in.MaxAmount < in.Amount {
		return BidResult{}, errs.ErrValidation.WithFields(errs.FieldError{Field: "max_amount", Message: "must be at least amount"})
	}
	start := time.Now()
	// This replica's last committed state of the lot first: no round trip at all. When
	// this replica's own batches read the lot within the last second, the Redis gate has
	// nothing fresher to say (it is written after the same commits) and is skipped: the
	// batch decides under the lot's lock anyway, and a stale bid costs it nothing but
	// memory. The gate serves replicas that do not know the lot, or not lately.
	l, fresh, ok := s.batch.known(in.LotID, time.Now())
	if ok {
		if err := earlyRefusal(l, in, s.clock()); err != nil {
			s.m.bids.WithLabelValues("known_rejected").Inc()
			return BidResult{}, err
		}
	}
	if s.gate != nil && !fresh {
		v, err := s.gate.check(ctx, in.LotID, in.Amount, in.BidderMerchantID, s.clock())
		switch {
		case err != nil:
			// Redis is down or slow: the database decides alone.
			s.m.gateErrors.Inc()
			s.log.Warn("auction: gate unavailable, bidding through MySQL", "lot_id", in.LotID, "error", err.Error())
		case v == gateMiss:
			s.m.gateMisses.Inc()
			if l, err := s.st.lot(ctx, in.LotID, false); err == nil {
				_ = s.gate.set(ctx, l, s.clock())
				if v, err = s.gate.check(ctx, in.LotID, in.Amount, in.BidderMerchantID, s.clock()); err == nil {
					if pass, verr := verdict(v); !pass {
						s.m.bids.WithLabelValues("gate_rejected").Inc()
						return BidResult{}, verr
					}
				}
			} else if errors.Is(err, ErrNotFound) {
				return BidResult{}, err
			}
		default:
			if pass, verr := verdict(v); !pass {
				s.m.bids.WithLabelValues("gate_rejected").Inc()
				return BidResult{}, verr
			}
		}
	}
	return s.placeBid(in, start)
}

func (s *service) broadcast(ctx context.Context, lotID, version int64, msgs ...any) bool {
	sent, err := s.pub.publish(ctx, lotID, version, msgs...)
	if err != nil {
		s.m.broadcastErrors.Inc()
		s.log.Warn("auction: broadcast", "lot_id", lotID, "version", version, "error", err.Error())
		return false
	}
	if !sent {
		s.m.broadcastStale.Inc()
	}
	return true
}

// Scheduler.

const schedBatch = 100

// Tick does the scheduler's work once: start due lots, end lots past their end, and
// finish ended lots (announce the end, create the winner's order). Every step is a
// compare-and-set, so replicas ticking at once do each thing once.
func (s *service) Tick(ctx context.Context) error {
	now := s.clock()
	// One lot's failure (its order refused for a while, a lock timeout) is logged here and
	// the tick goes on with the others; every step is retried on the next tick. Only a
	// failed listing ends the tick (the caller logs it).
	steps := []struct {
		what string
		due  func(context.Context, time.Time, int) ([]int64, error)
		do   func(context.Context, int64) error
	}{
		{"starting a lot", s.st.dueToStart, s.startLot},
		{"ending a lot", s.st.dueToEnd, s.endLot},
		{"finishing an ended lot", func(ctx context.Context, _ time.Time, n int) ([]int64, error) { return s.st.unfinished(ctx, n) }, s.finish},
	}
	for _, st := range steps {
		ids, err := st.due(ctx, now, schedBatch)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := st.do(ctx, id); err != nil {
				s.log.Error("auction: "+st.what, "lot_id", id, "error", err.Error())
			}
		}
	}
	return nil
}

func (s *service) startLot(ctx context.Context, id int64) error {
	var started Lot
	err := s.db.WithinTx(ctx, func(ctx context.Context) error {
		l, ok, err := s.st.lockLotSkip(ctx, id)
		if err != nil || !ok {
			return err
		}
		now := s.clock()
		if ok, err := s.st.start(ctx, id, now); err != nil || !ok {
			return err
		}
		l.Status, l.Version, l.UpdatedAt = StatusRunning, l.Version+1, now
		started = l
		return s.outbox.Add(ctx, s.lotEvent(EventStarted, l))
	})
	if err != nil || started.ID == 0 {
		return err
	}
	s.log.Info("auction started", "lot_id", id)
	if s.gate != nil {
		_ = s.gate.set(ctx, started, s.clock())
	}
	s.broadcast(ctx, id, started.Version, stateOf(started))
	return nil
}

// endLot ends a lot past its end exactly once (compare-and-set on status and ends_at; a
// bid that extended the end meanwhile makes it a no-op) and mints the winner's order ID.
func (s *service) endLot(ctx context.Context, id int64) error {
	var ended Lot
	err := s.db.WithinTx(ctx, func(ctx context.Context) error {
		l, ok, err := s.st.lockLotSkip(ctx, id)
		if err != nil || !ok {
			return err
		}
		now := s.clock()
		if l.Status == StatusEnded || now.Before(l.EndsAt) {
			return nil
		}
		state, orderID := OrderNone, int64(0)
		if l.LeaderID != 0 && l.ReserveMet() {
			state, orderID = OrderPending, s.ids.Next(sqldb.LogicalShard(l.LeaderID))
		}
		ok, err = s.st.end(ctx, id, now, state, orderID)
		if err != nil || !ok {
			return err
		}
		l.Status, l.Version, l.EndedAt, l.UpdatedAt, l.OrderState, l.WinnerOrderID = StatusEnded, l.Version+1, now, now, state, orderID
		ended = l
		p := EndedEvent{LotID: l.ID, MerchantID: l.MerchantID, FinalPrice: l.CurrentPrice, BidCount: l.BidCount,
			ReserveMet: l.ReserveMet(), OccurredAt: now}
		if l.ReserveMet() {
			p.WinnerID = l.LeaderID
		}
		return s.outbox.Add(ctx, outbox.Event{Topic: Topic, AggregateID: strconv.FormatInt(l.ID, 10), Type: EventEnded, Payload: p})
	})
	if err != nil || ended.ID == 0 {
		return err
	}
	s.m.ended.Inc()
	s.log.Info("auction ended", "lot_id", id, "winner_id", ended.LeaderID, "final_price", ended.CurrentPrice,
		"reserve_met", ended.ReserveMet(), "bids", ended.BidCount)
	if s.gate != nil {
		_ = s.gate.set(ctx, ended, s.clock())
	}
	return s.finish(ctx, id)
}

// finish announces an ended lot to its watchers and creates the winner's order; both
// repeat until done (a crash after the end converges on the next tick).
func (s *service) finish(ctx context.Context, id int64) error {
	l, err := s.st.lot(ctx, id, false)
	if err != nil {
		return err
	}
	if l.Status != StatusEnded {
		return nil
	}
	if !l.Announced {
		m := endedMsg{Type: "ended", FinalPrice: l.CurrentPrice, ReserveMet: l.ReserveMet(), BidCount: l.BidCount,
			Version: l.Version}
		if l.ReserveMet() {
			m.WinnerID = strconv.FormatInt(l.LeaderID, 10)
		}
		if s.broadcast(ctx, id, l.Version, m) {
			if err := s.st.setAnnounced(ctx, id); err != nil {
				return err
			}
		}
	}
	if l.OrderState != OrderPending {
		return nil
	}
	if ok, err := s.st.claimOrder(ctx, id, s.clock(), time.Minute); err != nil || !ok {
		return err
	}
	o, err := s.orders.PlaceAuctionOrder(ctx, order.AuctionOrder{OrderID: l.WinnerOrderID, AuctionID: l.ID,
		BuyerID: l.LeaderID, MerchantID: l.MerchantID, ProductID: l.ProductID, SKUID: l.SKUID, Title: l.Title,
		Price: l.CurrentPrice})
	now := s.clock()
	if err != nil {
		var e *errs.Error
		if errors.As(err, &e) && slices.Contains([]errs.Kind{errs.Invalid, errs.NotFound, errs.Conflict}, e.Kind) {
			// No address, no stock left, a SKU gone: retrying will not help; operators see it.
			s.m.orderFailed.Inc()
			s.log.Error("auction: the winner's order was refused", "lot_id", id, "winner_id", l.LeaderID, "error", err.Error())
			return s.st.failOrder(ctx, id, err.Error(), now)
		}
		// Transient: release the claim so the next tick retries at once.
		_ = s.st.releaseOrder(ctx, id)
		return err
	}
	return s.db.WithinTx(ctx, func(ctx context.Context) error {
		ok, err := s.st.setOrderState(ctx, id, OrderPending, OrderPlaced, now)
		if err != nil || !ok {
			return err
		}
		return s.outbox.Add(ctx, outbox.Event{Topic: Topic, AggregateID: strconv.FormatInt(id, 10), Type: EventOrderPlaced,
			Payload: OrderPlacedEvent{LotID: id, OrderID: o.ID, BuyerID: l.LeaderID, Price: l.CurrentPrice, OccurredAt: now}})
	})
}

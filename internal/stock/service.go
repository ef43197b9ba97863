package stock

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/groupcommit"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// service implements Service.
type service struct {
	log    *slog.Logger
	st     *store
	cl     *sqldb.Cluster
	outbox outbox.Writer
	cfg    Config
	m      *metrics
	now    func() time.Time
	batch  *groupcommit.Queue[*reserveRequest] // queued Reserve calls (reserve_batch.go)
}

var _ Service = (*service)(nil)

func (s *service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func checkAvailable(available int64) error {
	if available < 0 || available > MaxAvailable {
		return ErrInvalidAmount.WithDetail("available must be an integer from 0 to %d", MaxAvailable).
			WithFields(errs.FieldError{Field: "available", Message: fmt.Sprintf("must be from 0 to %d", MaxAvailable)})
	}
	return nil
}

func (s *service) Init(ctx context.Context, skuID, merchantID, available int64) error {
	if skuID <= 0 || merchantID <= 0 {
		return errs.ErrInvalid.WithDetail("stock: SKU and merchant IDs must be positive")
	}
	if err := checkAvailable(available); err != nil {
		return err
	}
	return s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		now := s.clock()
		inserted, err := s.st.insertLevel(ctx, skuID, merchantID, available, now)
		if err != nil {
			return err
		}
		if !inserted {
			owner, err := s.st.owner(ctx, skuID)
			if err != nil {
				return err
			}
			if owner != merchantID {
				return ErrOwnerConflict
			}
			return nil
		}
		return s.changed(ctx, levelRow{SKUID: skuID, MerchantID: merchantID, OnHand: available, Available: available, Version: 1, UpdatedAt: now}, CauseSet)
	})
}

func (s *service) Set(ctx context.Context, merchantID, skuID, available int64) (Level, error) {
	if err := checkAvailable(available); err != nil {
		return Level{}, err
	}
	if skuID <= 0 || merchantID <= 0 {
		return Level{}, ErrNotFound
	}
	var r levelRow
	err := s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		// The UPDATE decides (owner in its WHERE); the read after it holds the row lock, so
		// it sees exactly this change and the event carries it.
		if err := s.st.setAvailable(ctx, merchantID, skuID, available, s.clock()); err != nil {
			return err
		}
		var err error
		if r, err = s.st.lockedLevel(ctx, skuID); err != nil {
			return err
		}
		return s.changed(ctx, r, CauseSet)
	})
	if err != nil {
		return Level{}, err
	}
	return r.level(), nil
}

// changed writes the stock.level_changed event for r in the transaction in ctx.
func (s *service) changed(ctx context.Context, r levelRow, cause string) error {
	return s.outbox.Add(ctx, outbox.Event{
		Topic: Topic, AggregateID: strconv.FormatInt(r.SKUID, 10), Type: EventLevelChanged,
		Payload: LevelChanged{SKUID: r.SKUID, MerchantID: r.MerchantID, Available: r.Available,
			Reserved: r.Reserved, Sold: r.Sold, Version: r.Version, OccurredAt: r.UpdatedAt, Cause: cause},
	})
}

func (s *service) Get(ctx context.Context, merchantID, skuID int64) (Level, error) {
	if skuID <= 0 || merchantID <= 0 {
		return Level{}, ErrNotFound
	}
	r, err := s.st.merchantLevel(ctx, merchantID, skuID)
	if err != nil {
		return Level{}, err
	}
	return r.level(), nil
}

func (s *service) Levels(ctx context.Context, skuIDs ...int64) (map[int64]Level, error) {
	ids := slices.Clone(skuIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > MaxBatch {
		return nil, ErrTooManySKUs.WithDetail("at most %d SKUs per call", MaxBatch)
	}
	out := make(map[int64]Level, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.st.levels(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.SKUID] = r.level()
	}
	return out, nil
}

func (s *service) Check(ctx context.Context) (Report, error) {
	n, bad, err := s.st.count(ctx)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Rows: n, ViolationCount: bad}
	if bad == 0 {
		return rep, nil
	}
	rows, err := s.st.violations(ctx, MaxViolations)
	if err != nil {
		return Report{}, err
	}
	for _, r := range rows {
		rep.Violations = append(rep.Violations, Violation{Level: r.level(), Problem: r.problem()})
	}
	return rep, nil
}

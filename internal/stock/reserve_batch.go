package stock

import (
	"context"
	"slices"
	"time"

	"github.com/mallhq/mall/internal/platform/groupcommit"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// Reservations are committed in batches (group commit). A hot SKU — one product every buyer
// wants — serializes its reservations on the SKU's row lock, and a transaction holds that
// lock until its commit is on disk: one reservation per commit caps a hot SKU at about one
// fsync per reservation. So the Reserve calls of one replica queue up and a single runner
// takes everything queued into one transaction:
//
//  1. the orders' existing reservation lines (a repeated Reserve answers from them);
//  2. every SKU of the batch locked in ascending order (SELECT ... FOR UPDATE), and the
//     buyers' held units of those SKUs (for the per-buyer cap; READ COMMITTED under the SKU
//     locks sees every committed hold, as before);
//  3. the requests decided in arrival order against those counters in memory: a request that
//     does not fit (unknown SKU, not enough stock, over the cap) fails alone and leaves
//     nothing behind;
//  4. one guarded UPDATE of every SKU for the units of the accepted requests (the WHERE
//     clause still checks each SKU's available covers them, so the counters cannot go
//     negative even if the in-memory decision were wrong: then the whole batch fails and
//     nothing is written), one multi-row INSERT of their reservation lines, one
//     stock.level_changed per SKU with the counters after the batch;
//  5. commit, then every request of the batch gets its answer.
//
// While one batch commits the next one fills, so batches grow with load and cost nothing
// when idle (a lone Reserve is a batch of one, with no timer). A batch that fails as a whole
// for a reason other than a request's own (a duplicate line from a concurrent Reserve of the
// same order on another replica, a database error) is retried one request per transaction,
// so one request cannot fail the others.

// maxBatchRequests bounds the requests of one batch (and so its statements' sizes).
const maxBatchRequests = 256

// batchRunners is how many batches of one replica may be in flight at once. Two: while one
// holds its SKU locks until its commit is durable, the next has already read its orders and
// queued for the locks, so the lock passes on without a round trip in between.
const batchRunners = 2

// reserveRequest is one Reserve call waiting for its batch.
type reserveRequest struct {
	holds []Hold // validated, lines sorted by SKU, ExpiresAt truncated
	err   error
	done  chan struct{}
}

// newBatchQueue is the service's queue of Reserve calls (platform/groupcommit).
func (s *service) newBatchQueue() *groupcommit.Queue[*reserveRequest] {
	return &groupcommit.Queue[*reserveRequest]{Max: maxBatchRequests, Runners: batchRunners, Run: s.runBatch}
}

// reserve queues r and waits for its answer.
func (s *service) reserve(r *reserveRequest) error {
	s.batch.Add(r)
	<-r.done // bounded: the runner's transaction has its own timeout
	return r.err
}

func (s *service) runBatch(reqs []*reserveRequest) {
	s.m.batchSize.Observe(float64(len(reqs)))
	ctx, cancel := context.WithTimeout(context.Background(), reserveTimeout)
	began := time.Now()
	if err := s.reserveBatch(ctx, reqs); err != nil {
		// One request per transaction: whatever failed the batch fails only its own.
		for _, r := range reqs {
			s.reserveAlone(ctx, r)
		}
	}
	cancel()
	s.m.batchTime.Observe(time.Since(began).Seconds())
	for _, r := range reqs {
		close(r.done)
	}
}

// reserveAlone commits one request in a transaction of its own. A duplicate line means a
// concurrent Reserve of the same order (another replica) committed first: the second try
// answers as a repeat would.
func (s *service) reserveAlone(ctx context.Context, r *reserveRequest) {
	err := s.reserveBatch(ctx, []*reserveRequest{r})
	if sqldb.IsDuplicate(err) {
		err = s.reserveBatch(ctx, []*reserveRequest{r})
	}
	if err != nil {
		r.err = err
	}
}

// reserveTimeout bounds one batch's transaction (and its one-by-one retry).
const reserveTimeout = 30 * time.Second

type buyerSKU struct{ buyer, sku int64 }

// reserveBatch commits the requests' holds in one transaction. It sets each request's err
// when the request alone fails (and writes nothing of it); it returns an error when the
// batch as a whole failed, and then no request's holds were written.
func (s *service) reserveBatch(ctx context.Context, reqs []*reserveRequest) error {
	var (
		orderIDs, skuIDs, buyerIDs []int64
	)
	for _, r := range reqs {
		for _, h := range r.holds {
			orderIDs = append(orderIDs, h.OrderID)
			buyerIDs = append(buyerIDs, h.BuyerID)
			for _, l := range h.Lines {
				skuIDs = append(skuIDs, l.SKUID)
			}
		}
	}
	skuIDs = sortedUnique(skuIDs)
	buyerIDs = sortedUnique(buyerIDs)
	orderIDs = sortedUnique(orderIDs)

	results := make([]error, len(reqs))
	err := s.cl.Main().WithinTx(ctx, func(ctx context.Context) error {
		clear(results)
		existing, err := s.st.reservationsOf(ctx, orderIDs)
		if err != nil {
			return err
		}
		locked, err := s.st.lockLevels(ctx, skuIDs)
		if err != nil {
			return err
		}
		avail := make(map[int64]int64, len(locked))
		for _, l := range locked {
			avail[l.SKUID] = l.Available
		}
		held, err := s.st.heldBy(ctx, buyerIDs, skuIDs)
		if err != nil {
			return err
		}
		// Decide in arrival order; accepted holds are added to existing, so a second
		// request for the same order in this batch answers as a repeat would.
		taken := map[int64]int64{}
		var accepted []Reservation
		for i, r := range reqs {
			results[i] = s.decide(r, existing, avail, held, taken, &accepted)
		}
		if len(accepted) == 0 {
			return nil
		}
		now := s.clock()
		var moved []levelRow // the locked rows of the SKUs the batch takes units of, as they will be
		for _, l := range locked {
			if q := taken[l.SKUID]; q > 0 {
				l.Available -= q
				l.Reserved += q
				l.Version++
				l.UpdatedAt = now
				moved = append(moved, l)
			}
		}
		if err := s.st.holdMany(ctx, moved, taken, now); err != nil {
			return err
		}
		if err := s.st.insertReservations(ctx, accepted, now); err != nil {
			return err
		}
		for _, row := range moved {
			if err := s.changed(ctx, row, CauseHold); err != nil {
				return err
			}
		}
		return nil
	}, sqldb.ReadCommitted())
	if err != nil {
		return err
	}
	for i, r := range reqs {
		r.err = results[i]
	}
	return nil
}

// decide applies one request to the batch's counters: every hold of the request is made, or
// none (then the counters are as before and the error says why).
func (s *service) decide(r *reserveRequest, existing map[int64][]Reservation, avail map[int64]int64,
	held map[buyerSKU]int64, taken map[int64]int64, accepted *[]Reservation) error {
	type change struct {
		sku, buyer, qty int64
	}
	var changes []change
	undo := func() {
		for _, c := range changes {
			avail[c.sku] += c.qty
			taken[c.sku] -= c.qty
			held[buyerSKU{c.buyer, c.sku}] -= c.qty
		}
	}
	var lines []Reservation
	for _, h := range r.holds {
		if have, ok := existing[h.OrderID]; ok {
			if err := sameHold(have, h.Lines); err != nil {
				undo()
				return err
			}
			continue // already held: a repeat changes nothing
		}
		for _, l := range h.Lines {
			a, ok := avail[l.SKUID]
			switch {
			case !ok:
				undo()
				return ErrNotFound.WithDetail("SKU %d has no stock level", l.SKUID)
			case a < l.Quantity:
				undo()
				return ErrInsufficient.WithDetail("SKU %d has fewer than %d units available", l.SKUID, l.Quantity)
			}
			k := buyerSKU{h.BuyerID, l.SKUID}
			if held[k]+l.Quantity > s.cfg.MaxHoldPerBuyer {
				undo()
				return ErrHoldLimit.WithDetail("at most %d unpaid units of SKU %d per buyer", s.cfg.MaxHoldPerBuyer, l.SKUID)
			}
			avail[l.SKUID] -= l.Quantity
			taken[l.SKUID] += l.Quantity
			held[k] += l.Quantity
			changes = append(changes, change{l.SKUID, h.BuyerID, l.Quantity})
			lines = append(lines, Reservation{OrderID: h.OrderID, SKUID: l.SKUID, BuyerID: h.BuyerID,
				Quantity: l.Quantity, Status: Held, ExpiresAt: h.ExpiresAt})
		}
	}
	// Only now, with the whole request accepted, do its holds count as existing.
	for _, l := range lines {
		existing[l.OrderID] = append(existing[l.OrderID], l)
	}
	*accepted = append(*accepted, lines...)
	return nil
}

func sortedUnique(ids []int64) []int64 {
	slices.Sort(ids)
	return slices.Compact(ids)
}

package auction

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/mallhq/mall/internal/platform/groupcommit"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/realtime"
)

// Bids on one lot are committed in batches (group commit), as stock reservations are. Every
// bid that may win must lock the lot's row, and a transaction holds that lock until its
// commit is on disk, so one bid per transaction caps a hot lot at about one fsync per bid
// while every other bid waits in the row lock's queue — including the many that will turn
// out too low once the bid ahead of them commits. So the bids of one replica for one lot
// queue up in the process and a runner takes everything queued into one transaction:
//
//  1. the lot locked (SELECT ... FOR UPDATE);
//  2. the bids decided in arrival order against the lot in memory, each seeing the effect of
//     the ones before it (apply: the same rules as one bid alone); a bid that loses (too low,
//     the leader again, the lot over) fails alone and writes nothing;
//  3. one multi-row INSERT of every accepted bid's rows, one UPDATE of the lot guarded by the
//     version read under the lock, the outbox events in bid order;
//  4. commit, then every bid of the batch gets its answer, the gate gets the lot's new state
//     once and the watchers get the batch's messages in order.
//
// A batch failing as a whole (a database error) is retried one bid per transaction, so one
// bid cannot fail the others. While one batch commits the next one fills, so batches grow
// with load and cost nothing when idle (a lone bid is a batch of one, with no timer).
//
// The runner also remembers the last state of the lot it read under the lock. A bid lower
// than what that state accepts is refused before it queues: the price never falls, so a bid
// too low for a committed state stays too low (the same reasoning as the Redis gate, which
// shares such states across replicas).

// maxBidBatch bounds the bids of one batch.
const maxBidBatch = 256

// bidRunners is how many batches of one lot a replica runs at once: while one holds the
// lot's lock until its commit is durable, the next already waits for the lock.
const bidRunners = 2

// bidTimeout bounds one batch's transaction (and its one-by-one retry).
const bidTimeout = 30 * time.Second

// maxIdleLots bounds how many lots' remembered states a replica keeps.
const maxIdleLots = 4096

type queuedBid struct {
	in    PlaceBid
	start time.Time
	res   BidResult
	err   error
	done  chan struct{}
}

// lotQueue is one lot's queue of bids and its last committed state seen by this replica.
type lotQueue struct {
	q       *groupcommit.Queue[*queuedBid]
	known   Lot       // zero ID: none yet
	knownAt time.Time // when a batch read it under the lot's lock
	used    time.Time
}

type bidBatcher struct {
	mu   sync.Mutex
	lots map[int64]*lotQueue
}

// lotLocked returns the lot's queue, creating it with run as its batch runner; b.mu is held.
func (b *bidBatcher) lotLocked(id int64, now time.Time, run func([]*queuedBid)) *lotQueue {
	if b.lots == nil {
		b.lots = map[int64]*lotQueue{}
	}
	l := b.lots[id]
	if l == nil {
		if len(b.lots) >= maxIdleLots {
			for k, o := range b.lots {
				if now.Sub(o.used) > time.Minute && o.q.Idle() {
					delete(b.lots, k)
				}
			}
		}
		l = &lotQueue{q: &groupcommit.Queue[*queuedBid]{Max: maxBidBatch, Runners: bidRunners, Run: run}}
		b.lots[id] = l
	}
	l.used = now
	return l
}

// knownFresh is how long a lot's state read by this replica's own batch makes the Redis
// gate redundant for the lot's next bids (see Bid).
const knownFresh = time.Second

// known returns the last committed state of the lot this replica read, if any, and
// whether it was read within knownFresh.
func (b *bidBatcher) known(id int64, now time.Time) (l Lot, fresh, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q := b.lots[id]; q != nil && q.known.ID != 0 {
		return q.known, now.Sub(q.knownAt) < knownFresh, true
	}
	return Lot{}, false, false
}

// remember keeps l as the lot's last committed state when it is newer (the lot's queue
// exists: its batch read l).
func (b *bidBatcher) remember(l Lot) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q := b.lots[l.ID]; q != nil && l.Version >= q.known.Version {
		q.known, q.knownAt = l, time.Now()
	}
}

// earlyRefusal is the final refusal a committed state of the lot already gives the bid:
// too low (the price never falls) or the owner's own lot. Nil when the bid must go on.
func earlyRefusal(l Lot, in PlaceBid, now time.Time) error {
	if _, err := apply(l, in, now); errors.Is(err, ErrBidTooLow) || errors.Is(err, ErrOwnAuction) {
		return err
	}
	return nil
}

// placeBid queues the bid for its lot's runner and waits for the answer.
func (s *service) placeBid(in PlaceBid, start time.Time) (BidResult, error) {
	r := &queuedBid{in: in, start: start, done: make(chan struct{})}
	s.batch.mu.Lock()
	l := s.batch.lotLocked(in.LotID, time.Now(), func(batch []*queuedBid) { s.runBids(in.LotID, batch) })
	s.batch.mu.Unlock()
	l.q.Add(r)
	<-r.done // bounded: the batch's transaction has its own timeout
	return r.res, r.err
}

// runBids commits one batch of a lot's bids and answers them.
func (s *service) runBids(id int64, reqs []*queuedBid) {
	ctx, cancel := context.WithTimeout(context.Background(), bidTimeout)
	defer cancel()
	s.m.batchSize.Observe(float64(len(reqs)))
	var done []committed
	if after, err := s.bidBatch(ctx, id, reqs); err == nil {
		done = append(done, s.settle(reqs, after))
	} else {
		// One bid per transaction: whatever failed the batch fails only its own.
		for _, r := range reqs {
			one := []*queuedBid{r}
			after, err := s.bidBatch(ctx, id, one)
			if err != nil {
				r.err = fmt.Errorf("auction: bid: %w", err)
				continue
			}
			done = append(done, s.settle(one, after))
		}
	}
	// The bids are durable: answer them, then tell the watchers.
	for _, r := range reqs {
		close(r.done)
	}
	for _, c := range done {
		s.announce(c)
	}
}

// bidBatch decides and commits the bids in one transaction. It sets each bid's result or
// its own refusal and returns the lot's state after the batch (zero when the lot was not
// found); it returns an error when the batch as a whole failed, and then nothing of it was
// written and no result stands.
func (s *service) bidBatch(ctx context.Context, id int64, reqs []*queuedBid) (Lot, error) {
	var after Lot
	err := s.db.WithinTx(ctx, func(ctx context.Context) error {
		for _, r := range reqs {
			r.res, r.err = BidResult{}, nil
		}
		l, err := s.st.lot(ctx, id, true)
		if errors.Is(err, ErrNotFound) {
			for _, r := range reqs {
				r.err = err
			}
			return nil
		}
		if err != nil {
			return err
		}
		prev, now := l.Version, s.clock()
		var (
			rows     []Bid
			events   []outbox.Event
			extended bool
		)
		for _, r := range reqs {
			p, err := apply(l, r.in, now)
			if err != nil {
				r.err = err
				continue
			}
			for i := range p.rows {
				b := &p.rows[i]
				b.ID, b.Seq, b.CreatedAt = s.ids.Next(0), l.BidCount+int64(i)+1, now
				events = append(events, outbox.Event{Topic: Topic, AggregateID: strconv.FormatInt(l.ID, 10), Type: EventBid,
					Payload: BidEvent{LotID: l.ID, BidID: b.ID, BidderID: b.BidderID, Seq: b.Seq, Amount: b.Amount, Kind: b.Kind,
						EndsAt: p.lot.EndsAt, OccurredAt: now}})
			}
			if p.started {
				events = append(events, s.lotEvent(EventStarted, p.lot))
			}
			if p.extended {
				events = append(events, s.lotEvent(EventExtended, p.lot))
				extended = true
			}
			rows = append(rows, p.rows...)
			r.res = BidResult{Bid: p.rows[p.mine], Rows: p.rows, Lot: p.lot, Extended: p.extended}
			if l.LeaderID != 0 && p.lot.LeaderID != l.LeaderID {
				r.res.Outbid = l.LeaderID
			}
			l = p.lot
		}
		after = l
		if len(rows) == 0 {
			return nil
		}
		if err := s.st.insertBids(ctx, rows); err != nil {
			return err
		}
		ok, err := s.st.updateBid(ctx, l, prev)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("auction: lot %d changed under its row lock", l.ID)
		}
		if err := s.outbox.Add(ctx, events...); err != nil {
			return err
		}
		if extended && s.gate != nil {
			// Before the commit: the gate's end may run ahead of MySQL's, never behind.
			if err := s.gate.raiseEnd(ctx, l.ID, l.EndsAt); err != nil {
				s.m.gateErrors.Inc()
			}
		}
		return nil
	})
	if err != nil {
		for _, r := range reqs {
			r.res, r.err = BidResult{}, nil
		}
		return Lot{}, err
	}
	return after, nil
}

// committed is what a committed batch tells the gate and the watchers.
type committed struct {
	after Lot   // the lot after the batch (zero ID: not found)
	msgs  []any // the accepted bids' messages, in order
	// outbid are the bidders overtaken by the batch's bids, each with the price that
	// overtook them, for their own channels (/ws/me).
	outbid []outbidMsg
	users  []int64
}

// settle counts a committed batch's answers, remembers the lot's state and passes it to the
// gate (before the answers: a bidder's next bid meets the gate already updated), and collects the
// watchers' messages: each with the lot's version after its own bid (they are published
// under the batch's last version).
func (s *service) settle(reqs []*queuedBid, after Lot) committed {
	c := committed{after: after}
	for _, r := range reqs {
		if r.err != nil {
			s.m.bids.WithLabelValues("rejected").Inc()
			continue
		}
		s.m.bids.WithLabelValues("accepted").Inc()
		s.m.bidSeconds.Observe(time.Since(r.start).Seconds())
		l := r.res.Lot
		for _, b := range r.res.Rows {
			c.msgs = append(c.msgs, bidMsg{Type: "bid", BidID: strconv.FormatInt(b.ID, 10), BidderID: strconv.FormatInt(b.BidderID, 10),
				Amount: b.Amount, BidCount: b.Seq, EndsAt: l.EndsAt, Version: l.Version})
		}
		if r.res.Extended {
			c.msgs = append(c.msgs, extendedMsg{Type: "extended", EndsAt: l.EndsAt, Version: l.Version})
		}
		if r.res.Outbid != 0 {
			c.outbid = append(c.outbid, outbidMsg{Type: "auction.outbid", AuctionID: strconv.FormatInt(l.ID, 10),
				CurrentPrice: l.CurrentPrice})
			c.users = append(c.users, r.res.Outbid)
		}
	}
	if after.ID != 0 {
		s.batch.remember(after)
		if s.gate != nil {
			if err := s.gate.set(context.Background(), after, s.clock()); err != nil {
				s.m.gateErrors.Inc()
			}
		}
	}
	return c
}

// announce tells the watchers about a committed batch's bids; it may not fail a bid,
// which is already durable and answered.
func (s *service) announce(c committed) {
	if len(c.msgs) > 0 {
		s.broadcast(context.Background(), c.after.ID, c.after.Version, c.msgs...)
	}
	for i, m := range c.outbid {
		if err := s.pub.hub.Publish(context.Background(), realtime.UserRoom(c.users[i]), m); err != nil {
			s.m.broadcastErrors.Inc()
		}
	}
}

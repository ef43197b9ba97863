package kafkax

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/platform/backoff"
	"github.com/mallhq/mall/internal/platform/metrics"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// ErrInvalidHandler means a Handler lacks a group, topics or a Handle func.
var ErrInvalidHandler = errors.New("kafkax: invalid handler")

// Handler is one consumer group of a module. Modules provide it with AsHandler.
type Handler struct {
	// Group is the consumer group, "mall.<module>.<purpose>". It is also the inbox's
	// consumer name, so renaming it re-applies every retained event.
	Group  string
	Topics []string
	// DB holds the handler's side effects and its inbox rows (the main database when nil).
	// A module passes its own handle (from the cluster scoped to it, sqldb.Cluster.For):
	// Handle's stores join the inbox transaction only through a handle of the same scope.
	DB *sqldb.DB
	// Handle applies one event. It runs inside a READ COMMITTED transaction on DB (use
	// sqldb.Ext(ctx, DB)) that also records the event in the inbox, so it runs at most
	// once per event and group; it may run again if it returns an error or the
	// transaction hits a deadlock, so it must have no effects outside the transaction.
	// With NoInbox there is neither transaction nor inbox (see NoInbox).
	Handle func(ctx context.Context, ev Envelope) error
	// Types, when not empty, are the event types Handle acts on. Any other event is passed
	// over without Handle and without an inbox transaction: it has no effect, so there is
	// nothing to deduplicate (mall_kafka_consumer_ignored_total counts them). A handler
	// that reacts to a few types of a busy topic saves a database commit per other event.
	Types []string
	// Wants, when set, is asked about every event of Types (or every event) before
	// anything else: false passes the event over like an event of another type (no Handle,
	// no inbox transaction; counted as ignored). For handlers that act on a few events of
	// a type, told apart by their payload.
	Wants func(ev Envelope) bool
	// NoInbox runs Handle outside any transaction and records nothing in the inbox. Only for
	// a handler whose every effect is idempotent and commits on its own (a cache
	// invalidation, a search index rewritten from the source of truth, calls into services
	// that are idempotent per key, each in its own transaction): a redelivered event just
	// applies again, so deduplicating it would cost a durable commit per event for nothing,
	// and no connection is held while Handle waits on something else.
	NoInbox bool
	// Batch, when above 1, applies up to Batch consecutive events of a partition (of those
	// it acts on) in one inbox transaction: one commit for them all instead of one each,
	// for a handler whose events arrive in bursts (the settlement ledger). A batch that
	// fails is rolled back and its events applied again one by one, with the usual
	// retries. With NoInbox, batches go to HandleBatch (without it, Batch is ignored).
	Batch int
	// HandleBatch, for a NoInbox handler with Batch above 1, applies up to Batch
	// consecutive events of a partition that it acts on at once (a flash sale's intake: one
	// commit on a hot row per batch). Like Handle with NoInbox it must be idempotent per
	// event; a batch that fails is applied again event by event with Handle and the usual
	// retries.
	HandleBatch func(ctx context.Context, evs []Envelope) error
	// Begin and Flush, when set, bracket Handle in each inbox transaction (a batch or a
	// single event): Begin returns the context Handle and Flush run with (to carry the
	// transaction's own state), Flush runs after the last Handle, before the commit (for
	// writes a handler defers so as to make them once per transaction, in a fixed order:
	// hot counters that concurrent batches would otherwise lock in different orders).
	Begin func(ctx context.Context) context.Context
	Flush func(ctx context.Context) error
}

// AsHandler annotates a constructor returning a Handler for the "kafka_handlers" group.
func AsHandler(f any) any {
	return fx.Annotate(f, fx.ResultTags(`group:"kafka_handlers"`))
}

// ConsumerMetrics are the runner's Prometheus metrics, labelled by consumer group.
type ConsumerMetrics struct {
	applied     *prometheus.CounterVec
	duplicates  *prometheus.CounterVec
	errors      *prometheus.CounterVec
	undecodable *prometheus.CounterVec
	ignored     *prometheus.CounterVec
	lag         *prometheus.HistogramVec
}

// lagBuckets resolve milliseconds, where an outbox woken at commit delivers, up to the
// minutes of a consumer stuck behind a failing event.
var lagBuckets = []float64{
	.001, .002, .003, .004, .005, .006, .008, .01, .0125, .015, .02, .025, .03, .04, .05, .075,
	.1, .15, .2, .3, .5, .75, 1, 2.5, 5, 10, 30, 60,
}

// NewConsumerMetrics registers the runner's metrics with reg.
func NewConsumerMetrics(reg prometheus.Registerer) (*ConsumerMetrics, error) {
	m := &ConsumerMetrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mall_kafka_consumer_applied_total", Help: "Events applied by a consumer group.",
		}, []string{"group"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mall_kafka_consumer_duplicates_total", Help: "Redelivered events the inbox skipped.",
		}, []string{"group"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mall_kafka_consumer_errors_total", Help: "Failed attempts to apply an event (each is retried).",
		}, []string{"group"}),
		undecodable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mall_kafka_consumer_undecodable_total", Help: "Records skipped because their value is not an envelope.",
		}, []string{"group"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mall_kafka_consumer_ignored_total", Help: "Events passed over because the group does not handle their type.",
		}, []string{"group"}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mall_kafka_consumer_event_lag_seconds",
			Help:    "Time from an event's occurred_at (stamped in the writing transaction, before its commit) to its consumer group taking it up.",
			Buckets: lagBuckets,
		}, []string{"group"}),
	}
	var err error
	m.applied, err = metrics.Register(reg, m.applied)
	if err == nil {
		m.duplicates, err = metrics.Register(reg, m.duplicates)
	}
	if err == nil {
		m.errors, err = metrics.Register(reg, m.errors)
	}
	if err == nil {
		m.undecodable, err = metrics.Register(reg, m.undecodable)
	}
	if err == nil {
		m.ignored, err = metrics.Register(reg, m.ignored)
	}
	if err == nil {
		m.lag, err = metrics.Register(reg, m.lag)
	}
	if err != nil {
		return nil, fmt.Errorf("kafkax: metrics: %w", err)
	}
	return m, nil
}

// RunnerOptions tune the runner; the zero value means the defaults.
type RunnerOptions struct {
	// RetryBase and RetryMax bound the backoff between attempts at a failing event
	// (defaults 100ms and 30s).
	RetryBase, RetryMax time.Duration
	// AlertAfter is how many failed attempts at one event it takes to log an error, and
	// again every AlertAfter attempts after that (default 5). Every attempt counts in
	// mall_kafka_consumer_errors_total.
	AlertAfter int
	// MaxPollRecords bounds one poll (default 2000). Partitions of a poll are applied in
	// parallel, and a rebalance waits for the poll to be applied.
	MaxPollRecords int
	// ClientOpts are added to every consumer client (tests).
	ClientOpts []kgo.Opt
}

func (o RunnerOptions) withDefaults() RunnerOptions {
	if o.RetryBase <= 0 {
		o.RetryBase = 100 * time.Millisecond
	}
	if o.RetryMax < o.RetryBase {
		o.RetryMax = max(30*time.Second, o.RetryBase)
	}
	if o.AlertAfter <= 0 {
		o.AlertAfter = 5
	}
	if o.MaxPollRecords <= 0 {
		o.MaxPollRecords = 2000
	}
	return o
}

// Runner runs one consumer-group client per Handler.
type Runner struct {
	broker    *Broker
	handlers  []Handler
	log       *slog.Logger
	m         *ConsumerMetrics
	o         RunnerOptions
	consumers []*consumer
}

// NewRunner validates the handlers; Start connects them. A handler without DB uses
// defaultDB.
func NewRunner(b *Broker, handlers []Handler, defaultDB *sqldb.DB, log *slog.Logger, m *ConsumerMetrics, o RunnerOptions) (*Runner, error) {
	seen := map[string]bool{}
	hs := make([]Handler, 0, len(handlers))
	for _, h := range handlers {
		if h.DB == nil {
			h.DB = defaultDB
		}
		switch {
		case h.Group == "" || len(h.Topics) == 0 || h.Handle == nil || h.DB == nil:
			return nil, fmt.Errorf("%w: group %q needs topics, a Handle func and a DB", ErrInvalidHandler, h.Group)
		case seen[h.Group]:
			return nil, fmt.Errorf("%w: group %q registered twice", ErrInvalidHandler, h.Group)
		}
		seen[h.Group] = true
		hs = append(hs, h)
	}
	return &Runner{broker: b, handlers: hs, log: log, m: m, o: o.withDefaults()}, nil
}

// Start creates the handlers' topics when missing and starts one consumer per handler.
func (r *Runner) Start(ctx context.Context) error {
	var topics []string
	for _, h := range r.handlers {
		topics = append(topics, h.Topics...)
	}
	if err := r.broker.EnsureTopics(ctx, topics...); err != nil {
		return err
	}
	for _, h := range r.handlers {
		opts := append(r.broker.clientOpts(h.Group),
			kgo.ConsumerGroup(h.Group),
			kgo.ConsumeTopics(h.Topics...),
			// A new group starts at the beginning: events published before its first
			// deployment still reach it.
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			// Offsets are committed only after the records are applied, so a crash
			// redelivers and the inbox absorbs the repeats.
			kgo.DisableAutoCommit(),
			// Partitions move only between polls, after the polled records are applied
			// and committed (AllowRebalance), so a rebalance never loses or repeats work
			// in flight.
			kgo.BlockRebalanceOnPoll(),
			// Small per-partition fetches make a poll span several partitions, which are
			// applied in parallel; with the 1MB default one busy partition fills a poll.
			kgo.FetchMaxPartitionBytes(fetchMaxPartitionBytes),
		)
		if d := r.broker.cfg.SessionTimeout; d > 0 {
			opts = append(opts, kgo.SessionTimeout(d), kgo.HeartbeatInterval(d/3))
		}
		if d := r.broker.cfg.RebalanceTimeout; d > 0 {
			opts = append(opts, kgo.RebalanceTimeout(d))
		}
		cl, err := kgo.NewClient(append(opts, r.o.ClientOpts...)...)
		if err != nil {
			r.closeStarted()
			return fmt.Errorf("kafkax: consumer %s: %w", h.Group, err)
		}
		c := newConsumer(r, h, cl)
		r.consumers = append(r.consumers, c)
		go c.run()
	}
	return nil
}

func (r *Runner) closeStarted() {
	for _, c := range r.consumers {
		c.hardStop()
		<-c.done
	}
	r.consumers = nil
}

// Stop lets every consumer finish the record in hand, commit what it applied and leave its
// group. When ctx ends first, in-flight handlers are cancelled and Stop returns ctx's error.
func (r *Runner) Stop(ctx context.Context) error {
	for _, c := range r.consumers {
		c.stop()
	}
	var errs []error
	for _, c := range r.consumers {
		select {
		case <-c.done:
		case <-ctx.Done():
			c.hardStop()
			errs = append(errs, fmt.Errorf("kafkax: stop consumer %s: %w", c.h.Group, ctx.Err()))
		}
	}
	return errors.Join(errs...)
}

type consumer struct {
	r  *Runner
	h  Handler
	cl *kgo.Client

	stopping atomic.Bool
	// pollCtx ends at stop: waiting for new records is pointless then.
	pollCtx    context.Context
	cancelPoll context.CancelFunc
	// workCtx ends only when a graceful stop ran out of time: it is what handlers and
	// commits run with.
	workCtx    context.Context
	cancelWork context.CancelFunc
	done       chan struct{}
}

func newConsumer(r *Runner, h Handler, cl *kgo.Client) *consumer {
	c := &consumer{r: r, h: h, cl: cl, done: make(chan struct{})}
	c.pollCtx, c.cancelPoll = context.WithCancel(context.Background())
	c.workCtx, c.cancelWork = context.WithCancel(context.Background())
	return c
}

func (c *consumer) stop() {
	c.stopping.Store(true)
	c.cancelPoll()
}

func (c *consumer) hardStop() {
	c.stop()
	c.cancelWork()
}

func (c *consumer) run() {
	defer close(c.done)
	// Close leaves the group, so the partitions move to the remaining members at once
	// rather than after the session timeout.
	defer c.cl.Close()
	defer c.cancelWork()
	for !c.stopping.Load() {
		fetches := c.cl.PollRecords(c.pollCtx, c.r.o.MaxPollRecords)
		if fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
				return // stop interrupted the poll
			}
			c.r.log.Warn("kafka fetch failed", "group", c.h.Group, "topic", topic, "partition", p, "error", err)
		})
		applied := c.applyFetches(fetches)
		if len(applied) > 0 {
			// A failed commit only means these records come again after a restart or
			// rebalance; the inbox skips them.
			if err := c.cl.CommitRecords(c.workCtx, applied...); err != nil {
				c.r.log.Warn("kafka offset commit failed", "group", c.h.Group, "error", err)
			}
		}
		c.cl.AllowRebalance()
	}
}

// applyFetches applies each partition's records in order, partitions in parallel, and
// returns the last applied record of each partition: what may be committed.
func (c *consumer) applyFetches(fetches kgo.Fetches) []*kgo.Record {
	var (
		mu      sync.Mutex
		applied []*kgo.Record
		wg      sync.WaitGroup
	)
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last *kgo.Record
			recs := p.Records
			for len(recs) > 0 {
				if c.stopping.Load() {
					break // the rest is redelivered to whoever gets the partition
				}
				if n := c.applyBatch(recs); n > 0 {
					last, recs = recs[n-1], recs[n:]
					continue
				}
				if !c.applyRecord(recs[0]) {
					break
				}
				last, recs = recs[0], recs[1:]
			}
			if last != nil {
				mu.Lock()
				applied = append(applied, last)
				mu.Unlock()
			}
		}()
	})
	wg.Wait()
	return applied
}

// batchEvent is a record of a batch with its decoded envelope; acts: the handler acts on
// it (otherwise it is passed over).
type batchEvent struct {
	ev   Envelope
	acts bool
}

// applyBatch applies the first records of recs in one inbox transaction when the handler
// batches (Handler.Batch): as many as Batch events it acts on, with the records passed
// over between them. It returns how many records it applied, 0 when the caller should
// apply recs[0] on its own (no batching, a record that must be skipped or counted alone,
// or the batch failed: its events then go one by one, with the usual retries).
func (c *consumer) applyBatch(recs []*kgo.Record) int {
	if c.h.Batch <= 1 || (c.h.NoInbox && c.h.HandleBatch == nil) || len(recs) < 2 {
		return 0
	}
	var (
		batch []batchEvent
		acts  int
	)
	for _, rec := range recs {
		ev, err := DecodeEnvelope(rec.Value)
		if err != nil {
			break // applyRecord skips it, with its log
		}
		if (len(c.h.Types) > 0 && !slices.Contains(c.h.Types, ev.Type)) || (c.h.Wants != nil && !c.h.Wants(ev)) {
			batch = append(batch, batchEvent{ev: ev})
			continue
		}
		if acts == c.h.Batch {
			break
		}
		batch = append(batch, batchEvent{ev: ev, acts: true})
		acts++
	}
	if acts < 2 {
		return 0
	}
	dups := make([]bool, len(batch))
	err := c.applyBatchTx(batch, dups)
	if err != nil {
		if c.workCtx.Err() == nil {
			c.r.m.errors.WithLabelValues(c.h.Group).Inc()
			c.r.log.Warn("kafka batch failed; applying its events one by one", "group", c.h.Group,
				"events", acts, "error", err)
		}
		return 0
	}
	group := c.h.Group
	for i, b := range batch {
		if !b.ev.OccurredAt.IsZero() {
			c.r.m.lag.WithLabelValues(group).Observe(max(time.Since(b.ev.OccurredAt).Seconds(), 0))
		}
		switch {
		case !b.acts:
			c.r.m.ignored.WithLabelValues(group).Inc()
		case dups[i]:
			c.r.m.duplicates.WithLabelValues(group).Inc()
		default:
			c.r.m.applied.WithLabelValues(group).Inc()
		}
	}
	return len(batch)
}

// applyBatchTx applies the events of batch the handler acts on: to HandleBatch at once
// (NoInbox), or in one inbox transaction, marking in dups those the group applied before.
func (c *consumer) applyBatchTx(batch []batchEvent, dups []bool) error {
	if c.h.NoInbox {
		evs := make([]Envelope, 0, len(batch))
		for _, b := range batch {
			if b.acts {
				evs = append(evs, b.ev)
			}
		}
		return c.h.HandleBatch(c.workCtx, evs)
	}
	return c.h.DB.WithinTx(c.workCtx, func(ctx context.Context) error {
		if c.h.Begin != nil {
			ctx = c.h.Begin(ctx)
		}
		for i, b := range batch {
			if !b.acts {
				continue
			}
			dup, err := c.handleInTx(ctx, b.ev)
			if err != nil {
				return err
			}
			dups[i] = dup
		}
		if c.h.Flush != nil {
			return c.h.Flush(ctx)
		}
		return nil
	}, sqldb.ReadCommitted())
}

// applyRecord applies one record, retrying until it succeeds; it returns false only when
// the consumer stops first. Retrying forever keeps the partition's order: skipping a
// failing event would apply later events of the same aggregate before it. A poison event
// therefore blocks its partition until it is fixed (deploy a handler fix, or handle the
// case); the error metric and the repeated error log are the alarm.
func (c *consumer) applyRecord(rec *kgo.Record) bool {
	group := c.h.Group
	ev, err := DecodeEnvelope(rec.Value)
	if err != nil {
		// It can never succeed; blocking the partition on it would stop every later event.
		c.r.m.undecodable.WithLabelValues(group).Inc()
		c.r.log.Error("kafka record skipped: undecodable envelope", "group", group, "topic", rec.Topic,
			"partition", rec.Partition, "offset", rec.Offset, "error", err)
		return true
	}
	// Every decoded event counts, handled or passed over: the lag measures delivery (outbox
	// relay, broker, this group's place in its partition), not the handler.
	if !ev.OccurredAt.IsZero() {
		c.r.m.lag.WithLabelValues(group).Observe(max(time.Since(ev.OccurredAt).Seconds(), 0))
	}
	if (len(c.h.Types) > 0 && !slices.Contains(c.h.Types, ev.Type)) || (c.h.Wants != nil && !c.h.Wants(ev)) {
		c.r.m.ignored.WithLabelValues(group).Inc()
		return true
	}
	for attempt := 1; ; attempt++ {
		dup, err := c.apply(ev)
		if err == nil {
			if dup {
				c.r.m.duplicates.WithLabelValues(group).Inc()
			} else {
				c.r.m.applied.WithLabelValues(group).Inc()
			}
			return true
		}
		if c.workCtx.Err() != nil {
			return false
		}
		c.r.m.errors.WithLabelValues(group).Inc()
		if attempt%c.r.o.AlertAfter == 0 {
			c.r.log.Error("kafka handler keeps failing; retrying", "group", group, "topic", rec.Topic,
				"partition", rec.Partition, "offset", rec.Offset, "event_id", ev.ID, "event_type", ev.Type,
				"attempts", attempt, "error", err)
		}
		if !c.sleep(backoff.Exponential(attempt, c.r.o.RetryBase, c.r.o.RetryMax)) {
			return false
		}
	}
}

const fetchMaxPartitionBytes = 256 << 10

const insertInbox = `INSERT INTO platform_inbox (consumer, event_id, processed_at) VALUES (?, ?, ?)`

// apply runs Handle and the inbox insert in one transaction. dup reports an event the
// group already applied.
func (c *consumer) apply(ev Envelope) (dup bool, err error) {
	if c.h.NoInbox {
		return false, c.h.Handle(c.workCtx, ev)
	}
	err = c.h.DB.WithinTx(c.workCtx, func(ctx context.Context) error {
		if c.h.Begin != nil {
			ctx = c.h.Begin(ctx)
		}
		var err error
		if dup, err = c.handleInTx(ctx, ev); err != nil || dup {
			return err
		}
		if c.h.Flush != nil {
			return c.h.Flush(ctx)
		}
		return nil
	}, sqldb.ReadCommitted())
	return dup, err
}

// handleInTx records ev in the inbox and runs Handle, inside the caller's transaction;
// dup: the group applied ev before (Handle is not run).
func (c *consumer) handleInTx(ctx context.Context, ev Envelope) (dup bool, err error) {
	_, err = sqldb.Ext(ctx, c.h.DB).ExecContext(ctx, insertInbox, c.h.Group, ev.ID, time.Now().UTC())
	if sqldb.IsDuplicate(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("kafkax: inbox: %w", err)
	}
	return false, c.h.Handle(ctx, ev)
}

// sleep waits d, returning false when the consumer stops first.
func (c *consumer) sleep(d time.Duration) bool {
	if c.stopping.Load() {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return !c.stopping.Load()
	case <-c.pollCtx.Done():
		return false
	}
}

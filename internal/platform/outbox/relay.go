package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// Producer is the part of franz-go's client (kafkax.Producer) the relay publishes with.
// Produce's promise runs once per record, after the broker acknowledged it or it failed
// for good; ProduceSync sends at once, without lingering for more records.
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

var (
	errNotLeader = errors.New("outbox: relay lost its leadership lock")
	errCrashed   = errors.New("outbox: relay crashed (test hook)")
	// errHeldBack marks a row not produced because an earlier row of its aggregate failed
	// in the same batch: producing it would overtake that row.
	errHeldBack = errors.New("outbox: held back behind a failed event of the same aggregate")
	// ErrTooLarge is the last_error of a row whose record exceeds the producer's limit.
	ErrTooLarge = errors.New("outbox: record larger than the producer accepts")
)

// RelayOption tunes a Relay.
type RelayOption func(*relayOptions)

type relayOptions struct {
	followerPoll    time.Duration
	statsInterval   time.Duration
	housekeeping    time.Duration
	retention       time.Duration
	inboxRetention  time.Duration
	maxRecordBytes  int
	deleteBatchSize int
}

// WithFollowerPoll sets how often a relay that is not the leader tries to take the lock
// (default 3s).
func WithFollowerPoll(d time.Duration) RelayOption {
	return func(o *relayOptions) { o.followerPoll = d }
}

// WithStatsInterval sets how often the leader refreshes the backlog gauges (default 5s).
func WithStatsInterval(d time.Duration) RelayOption {
	return func(o *relayOptions) { o.statsInterval = d }
}

// WithHousekeeping sets how often the leader deletes published outbox rows older than
// retention and inbox rows older than inboxRetention (defaults 1m, 7 days, 30 days). Keep
// inboxRetention longer than the Kafka topics' retention: an event redelivered after its
// inbox row is gone is applied again.
func WithHousekeeping(every, retention, inboxRetention time.Duration) RelayOption {
	return func(o *relayOptions) {
		o.housekeeping, o.retention, o.inboxRetention = every, retention, inboxRetention
	}
}

// WithMaxRecordBytes sets the largest record the relay hands to the producer (default
// just under franz-go's 1,000,012-byte batch limit). Larger rows fail with ErrTooLarge
// without being produced, so the failure is known before the aggregate's next row goes.
func WithMaxRecordBytes(n int) RelayOption {
	return func(o *relayOptions) { o.maxRecordBytes = n }
}

// Relay publishes one physical database's outbox. Any number of replicas may run a relay
// per database: a MySQL advisory lock elects one leader, which keeps per-aggregate order
// (two publishers would race each other's rows of one aggregate).
type Relay struct {
	db       *sqldb.DB
	producer Producer
	cfg      config.Outbox
	log      *slog.Logger
	m        dbMetrics
	o        relayOptions

	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	started  bool
	stopped  bool
	leader   atomic.Bool
	lockName string

	// crashAfterProduce, when it returns true, makes the relay die between producing a batch
	// and committing its marks, as a killed process would (tests).
	crashAfterProduce func() bool
}

// NewRelay returns a relay for db; Start runs it.
func NewRelay(db *sqldb.DB, producer Producer, cfg config.Outbox, log *slog.Logger, m *Metrics, opts ...RelayOption) *Relay {
	o := relayOptions{
		followerPoll:    3 * time.Second,
		statsInterval:   5 * time.Second,
		housekeeping:    time.Minute,
		retention:       7 * 24 * time.Hour,
		inboxRetention:  30 * 24 * time.Hour,
		maxRecordBytes:  1_000_012 - 1024, // franz-go's default limit, less batch and header overhead
		deleteBatchSize: 1000,
	}
	def := o
	for _, opt := range opts {
		opt(&o)
	}
	// Tickers panic on non-positive periods; a zero option means "the default".
	if o.followerPoll <= 0 {
		o.followerPoll = def.followerPoll
	}
	if o.statsInterval <= 0 {
		o.statsInterval = def.statsInterval
	}
	if o.housekeeping <= 0 {
		o.housekeeping = def.housekeeping
	}
	if o.retention <= 0 {
		o.retention = def.retention
	}
	if o.inboxRetention <= 0 {
		o.inboxRetention = def.inboxRetention
	}
	if o.maxRecordBytes <= 0 {
		o.maxRecordBytes = def.maxRecordBytes
	}
	// config.Validate rejects these; the fallbacks keep a hand-built config from spinning.
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 200 * time.Millisecond
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 20
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 500 * time.Millisecond
	}
	cfg.BackoffMax = max(cfg.BackoffMax, cfg.BackoffBase)
	return &Relay{
		db: db, producer: producer, cfg: cfg, log: log.With("db", db.Name), m: m.forDB(db.Name), o: o,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// Start runs the relay in the background until Stop.
func (r *Relay) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.stopped {
		return
	}
	r.started = true
	go r.run()
}

// Stop asks the relay to finish the batch in hand and release its lock. A produce in flight
// is never cancelled; if ctx ends first Stop returns ctx's error and the relay finishes in
// the background (its rows stay pending and are published again by the next leader).
func (r *Relay) Stop(ctx context.Context) error {
	r.mu.Lock()
	if !r.stopped {
		r.stopped = true
		close(r.stop)
	}
	started := r.started
	r.mu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("outbox: stop relay on %s: %w", r.db.Name, ctx.Err())
	}
}

// Notify wakes the relay if it is waiting for its next poll.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// IsLeader reports whether this relay currently holds its database's relay lock.
func (r *Relay) IsLeader() bool { return r.leader.Load() }

func (r *Relay) isStopping() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// pause waits d, a Notify or Stop; it returns false on Stop.
func (r *Relay) pause(d time.Duration, wakeable bool) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	var wake chan struct{}
	if wakeable {
		wake = r.wake
	}
	select {
	case <-r.stop:
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}

// relayBatch claims, produces and marks one batch in a READ COMMITTED transaction on the
// lock connection: its row locks live exactly as long as the leadership, and when the
// connection dies both go together, before another replica can claim the rows.
func (r *Relay) relayBatch(conn *sql.Conn) (int, error) {
	// Never cancelled: cancelling would roll the transaction back under a produce in flight.
	ctx := context.Background()
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, fmt.Errorf("%w: begin: %w", errNotLeader, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var mine sql.NullBool
	if err := tx.QueryRowContext(ctx, `SELECT IS_USED_LOCK(?) = CONNECTION_ID()`, r.lockName).Scan(&mine); err != nil {
		return 0, fmt.Errorf("%w: %w", errNotLeader, err)
	}
	if !mine.Valid || !mine.Bool {
		return 0, errNotLeader
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	rows, err := r.claim(ctx, tx, now)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	if rows, err = r.dropOvertakers(ctx, tx, rows); err != nil || len(rows) == 0 {
		return 0, err
	}
	results := r.publish(rows)
	if r.crashAfterProduce != nil && r.crashAfterProduce() {
		return 0, errCrashed
	}
	published, dead, err := r.mark(ctx, tx, rows, results, time.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("outbox: commit on %s: %w", r.db.Name, err)
	}
	r.m.published.Add(float64(published))
	r.m.dead.Add(float64(dead))
	return len(rows), nil
}

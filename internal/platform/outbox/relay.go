package outbox

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mallhq/mall/internal/platform/backoff"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/text"
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

func (r *Relay) run() {
	defer close(r.done)
	wait := time.Duration(0)
	for !r.isStopping() {
		if wait > 0 && !r.pause(wait, false) {
			return
		}
		wait = r.o.followerPoll
		conn, err := r.acquire()
		if err != nil {
			r.m.errors.Inc()
			r.log.Warn("outbox relay could not try the leader lock", "error", err)
			continue
		}
		if conn == nil {
			continue // another replica leads
		}
		if crashed := r.lead(conn); crashed {
			return
		}
		// After losing the lock this replica's connection or network is suspect: give the
		// others a head start.
		wait = 2 * r.o.followerPoll
	}
}

const lockPrefix = "mall.outbox.relay:"

// acquire tries the leader lock on a dedicated connection; it returns nil, nil when
// another session holds it.
func (r *Relay) acquire() (*sql.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r.lockName == "" {
		// Lock names are server-wide, and several databases (shards, test databases) may
		// share a server: name the lock after the database. MySQL limits names to 64
		// characters.
		var name string
		if err := r.db.GetContext(ctx, &name, `SELECT DATABASE()`); err != nil {
			return nil, err
		}
		if len(lockPrefix)+len(name) > 64 {
			sum := sha256.Sum256([]byte(name))
			name = hex.EncodeToString(sum[:])[:64-len(lockPrefix)]
		}
		r.lockName = lockPrefix + name
	}
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(?, 0)`, r.lockName).Scan(&got); err != nil {
		discard(conn)
		return nil, err
	}
	if got.Int64 != 1 {
		_ = conn.Close() // back to the pool: it holds nothing
		return nil, nil
	}
	return conn, nil
}

// discard closes conn instead of returning it to the pool, so a lock it may hold dies with
// it rather than following the connection to another user.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

func (r *Relay) release(conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Releasing explicitly frees the lock at once even if closing the socket is slow.
	_, _ = conn.ExecContext(ctx, `DO RELEASE_LOCK(?)`, r.lockName)
	discard(conn)
}

// lead relays batches while conn holds the lock. It returns when stopping, after losing the
// lock, or (crashed) when the test hook killed the relay.
func (r *Relay) lead(conn *sql.Conn) (crashed bool) {
	r.leader.Store(true)
	r.m.leader.Set(1)
	r.log.Info("outbox relay is the leader")
	mctx, cancel := context.WithCancel(context.Background())
	maintained := make(chan struct{})
	go func() {
		defer close(maintained)
		r.maintain(mctx)
	}()
	defer func() {
		cancel()
		<-maintained
		if crashed {
			discard(conn)
		} else {
			r.release(conn)
		}
		r.leader.Store(false)
		r.m.leader.Set(0)
		r.m.backlog.Set(0)
		r.m.oldestAge.Set(0)
		r.m.deadRows.Set(0)
	}()
	for !r.isStopping() {
		n, err := r.relayBatch(conn)
		switch {
		case errors.Is(err, errCrashed):
			return true
		case errors.Is(err, errNotLeader):
			r.m.errors.Inc()
			r.log.Warn("outbox relay lost the leader lock", "error", err)
			return false
		case err != nil:
			r.m.errors.Inc()
			r.log.Error("outbox relay batch failed", "error", err)
			if !r.pause(max(r.cfg.PollInterval, time.Second), false) {
				return false
			}
			continue
		case n >= r.cfg.BatchSize:
			continue // more may be waiting
		}
		if !r.pause(r.cfg.PollInterval, true) {
			return false
		}
	}
	return false
}

type outboxRow struct {
	ID          int64
	EventID     string
	Topic       string
	AggregateID string
	EventType   string
	Envelope    []byte
	Attempts    int
}

// claimRows takes the oldest available pending rows. By status, never by "id > last seen":
// IDs are assigned at insert and transactions commit in another order, so a row can appear
// behind one already published. The NOT EXISTS holds back rows whose aggregate has an
// earlier row waiting out a retry backoff, so a failing event is not overtaken by its
// successors (ix_platform_outbox_aggregate makes it one index probe per row). The index
// hint matters: for ORDER BY id LIMIT the optimizer likes to walk the primary key, which
// means stepping over every published row still kept for the retention period. SKIP LOCKED
// can leave a hole in an aggregate's sequence (a row its writer is still committing):
// dropOvertakers removes the rows behind such a hole before anything is produced.
const claimRows = `
SELECT o.id, o.event_id, o.topic, o.aggregate_id, o.event_type, o.envelope, o.attempts
FROM platform_outbox o FORCE INDEX (ix_platform_outbox_claim)
WHERE o.status = 0 AND o.available_at <= ?
  AND NOT EXISTS (
    SELECT 1 FROM platform_outbox b
    WHERE b.aggregate_id = o.aggregate_id AND b.status = 0 AND b.available_at > ? AND b.id < o.id)
ORDER BY o.id
LIMIT ?
FOR UPDATE SKIP LOCKED`

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

// firstPendingOutside finds, per aggregate of a claimed batch, the lowest pending row the
// claim did not take. It is a plain (non-locking) read, and under READ COMMITTED a new
// statement sees every row committed before it started.
const firstPendingOutside = `
SELECT aggregate_id, MIN(id)
FROM platform_outbox FORCE INDEX (ix_platform_outbox_aggregate)
WHERE aggregate_id IN (%s) AND status = 0 AND id NOT IN (%s)
GROUP BY aggregate_id`

// dropOvertakers removes from a claimed batch every row with an older pending row of its
// aggregate that the claim did not take; those rows stay pending (and locked by this
// transaction only until it ends) for a later batch.
//
// SKIP LOCKED alone does not keep order: a locking read in READ COMMITTED reads each row as
// it reaches it, so the claim skips a row whose writer has not committed yet (its insert
// lock) and, further along the same scan, takes a row of the same aggregate that a later
// transaction committed meanwhile. Any other holder of an older row's lock (a previous
// leader's session still being torn down) is caught the same way. A row still uncommitted
// when this check runs is not a problem: its aggregate's later rows commit after it.
func (r *Relay) dropOvertakers(ctx context.Context, tx *sql.Tx, rows []outboxRow) ([]outboxRow, error) {
	aggs := map[string]bool{}
	args := make([]any, 0, 2*len(rows))
	for _, row := range rows {
		if !aggs[row.AggregateID] {
			aggs[row.AggregateID] = true
			args = append(args, row.AggregateID)
		}
	}
	nAggs := len(args)
	for _, row := range rows {
		args = append(args, row.ID)
	}
	q := fmt.Sprintf(firstPendingOutside,
		"?"+strings.Repeat(", ?", nAggs-1), "?"+strings.Repeat(", ?", len(rows)-1))
	rs, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("outbox: check claim on %s: %w", r.db.Name, err)
	}
	defer rs.Close()
	first := map[string]int64{}
	for rs.Next() {
		var agg string
		var id int64
		if err := rs.Scan(&agg, &id); err != nil {
			return nil, fmt.Errorf("outbox: check claim on %s: %w", r.db.Name, err)
		}
		first[agg] = id
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("outbox: check claim on %s: %w", r.db.Name, err)
	}
	if len(first) == 0 {
		return rows, nil
	}
	kept := rows[:0]
	for _, row := range rows {
		if id, ok := first[row.AggregateID]; ok && id < row.ID {
			continue
		}
		kept = append(kept, row)
	}
	if dropped := len(rows) - len(kept); dropped > 0 {
		r.log.Debug("outbox relay held back rows behind an older row it could not claim", "rows", dropped)
	}
	return kept, nil
}

func (r *Relay) claim(ctx context.Context, tx *sql.Tx, now time.Time) ([]outboxRow, error) {
	rs, err := tx.QueryContext(ctx, claimRows, now, now, r.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("outbox: claim on %s: %w", r.db.Name, err)
	}
	defer rs.Close()
	var rows []outboxRow
	for rs.Next() {
		var o outboxRow
		if err := rs.Scan(&o.ID, &o.EventID, &o.Topic, &o.AggregateID, &o.EventType, &o.Envelope, &o.Attempts); err != nil {
			return nil, fmt.Errorf("outbox: claim on %s: %w", r.db.Name, err)
		}
		rows = append(rows, o)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("outbox: claim on %s: %w", r.db.Name, err)
	}
	return rows, nil
}

// publish produces rows in ID order and waits for every result; results[i] is nil when
// rows[i] is in Kafka. Fresh rows go asynchronously, so the client batches them and keeps
// their order per partition. A row that failed before goes alone, after everything before
// it settled: a poison row then cannot fail innocent rows batched with it again, and its
// failure is known before its aggregate's next row would be sent.
//
// One gap remains: when a fresh row fails for good at the broker (a non-retriable error;
// retriable ones are retried inside the client) a later row of its aggregate already in a
// later produce request can still succeed and overtake it. Oversized rows, the usual
// poison, are caught before producing, so that gap needs a broker rejecting a valid-sized
// record.
func (r *Relay) publish(rows []outboxRow) []error {
	results := make([]error, len(rows))
	failed := map[string]bool{} // aggregates with a failed row in this batch
	var wg sync.WaitGroup
	for i := range rows {
		row := &rows[i]
		if failed[row.AggregateID] {
			results[i] = errHeldBack
			continue
		}
		if size := len(row.Envelope) + len(row.AggregateID) + len(row.EventType) + len(row.EventID); size > r.o.maxRecordBytes {
			results[i] = fmt.Errorf("%w: %d bytes", ErrTooLarge, size)
			failed[row.AggregateID] = true
			continue
		}
		rec := kafkax.NewRecord(row.Topic, row.AggregateID, row.EventType, row.EventID, row.Envelope)
		if row.Attempts > 0 {
			wg.Wait()
			if results[i] = r.producer.ProduceSync(context.Background(), rec).FirstErr(); results[i] != nil {
				failed[row.AggregateID] = true
			}
			continue
		}
		wg.Add(1)
		r.producer.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
			results[i] = err
			wg.Done()
		})
	}
	wg.Wait()
	return results
}

// mark records the outcome of a batch: produced rows become published, failed rows wait
// out a backoff or, at their last attempt, become dead. Rows held back or failed because
// the producer closed under them (shutdown) stay as they were.
func (r *Relay) mark(ctx context.Context, tx *sql.Tx, rows []outboxRow, results []error, now time.Time) (published, dead int, err error) {
	var ok []any
	var retrying int
	var firstErr error
	for i, row := range rows {
		res := results[i]
		switch {
		case res == nil:
			ok = append(ok, row.ID)
			continue
		case errors.Is(res, errHeldBack), errors.Is(res, kgo.ErrClientClosed):
			continue
		}
		r.m.errors.Inc()
		attempts := row.Attempts + 1
		msg := text.Truncate(res.Error(), 1000)
		if attempts >= r.cfg.MaxAttempts {
			_, err = tx.ExecContext(ctx, `UPDATE platform_outbox SET status = 2, attempts = ?, last_error = ? WHERE id = ?`,
				attempts, msg, row.ID)
			dead++
			r.log.Error("outbox row is dead: giving up publishing it", "id", row.ID, "event_id", row.EventID,
				"topic", row.Topic, "aggregate_id", row.AggregateID, "event_type", row.EventType,
				"attempts", attempts, "error", res)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE platform_outbox SET attempts = ?, last_error = ?, available_at = ? WHERE id = ?`,
				attempts, msg, now.Add(backoff.Exponential(attempts, r.cfg.BackoffBase, r.cfg.BackoffMax)), row.ID)
			retrying++
			if firstErr == nil {
				firstErr = res
			}
		}
		if err != nil {
			return 0, 0, fmt.Errorf("outbox: mark failed row on %s: %w", r.db.Name, err)
		}
	}
	if retrying > 0 {
		r.log.Warn("outbox rows failed to publish; retrying with backoff", "rows", retrying, "first_error", firstErr)
	}
	if len(ok) > 0 {
		q := `UPDATE platform_outbox SET status = 1, published_at = ? WHERE id IN (?` + strings.Repeat(", ?", len(ok)-1) + `)`
		if _, err := tx.ExecContext(ctx, q, append([]any{now}, ok...)...); err != nil {
			return 0, 0, fmt.Errorf("outbox: mark published on %s: %w", r.db.Name, err)
		}
	}
	return len(ok), dead, nil
}

// maintain refreshes the gauges and deletes old rows while this relay leads. It uses the
// pool, not the lock connection, so the gauges keep moving while a batch waits on a broker.
func (r *Relay) maintain(ctx context.Context) {
	stats := time.NewTicker(r.o.statsInterval)
	defer stats.Stop()
	house := time.NewTicker(r.o.housekeeping)
	defer house.Stop()
	r.refreshStats(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-stats.C:
			r.refreshStats(ctx)
		case <-house.C:
			r.housekeep(ctx)
		}
	}
}

func (r *Relay) refreshStats(ctx context.Context) {
	var backlog, dead int64
	var oldest sql.NullTime
	err := r.db.GetContext(ctx, &backlog, `SELECT COUNT(*) FROM platform_outbox WHERE status = 0`)
	if err == nil {
		// The lowest pending ID is, but for commit-order jitter, the oldest row; this
		// reads one index entry where MIN(created_at) would read every pending row.
		err = r.db.GetContext(ctx, &oldest, `SELECT created_at FROM platform_outbox FORCE INDEX (ix_platform_outbox_claim) WHERE status = 0 ORDER BY id LIMIT 1`)
		if errors.Is(err, sql.ErrNoRows) {
			err = nil
		}
	}
	if err == nil {
		err = r.db.GetContext(ctx, &dead, `SELECT COUNT(*) FROM platform_outbox WHERE status = 2`)
	}
	if err != nil {
		if ctx.Err() == nil {
			r.m.errors.Inc()
			r.log.Warn("outbox stats query failed", "error", err)
		}
		return
	}
	r.m.backlog.Set(float64(backlog))
	r.m.deadRows.Set(float64(dead))
	age := 0.0
	if oldest.Valid {
		age = max(time.Since(oldest.Time).Seconds(), 0)
	}
	r.m.oldestAge.Set(age)
}

// housekeep deletes published outbox rows and inbox rows past their retention, a small
// batch per transaction so it never holds many locks, and a bounded number of batches per
// round so a large first cleanup spreads over several rounds.
func (r *Relay) housekeep(ctx context.Context) {
	now := time.Now().UTC()
	jobs := []struct {
		what, query string
		before      time.Time
	}{
		{"outbox", `DELETE FROM platform_outbox WHERE status = 1 AND published_at < ? LIMIT ?`, now.Add(-r.o.retention)},
		{"inbox", `DELETE FROM platform_inbox WHERE processed_at < ? LIMIT ?`, now.Add(-r.o.inboxRetention)},
	}
	for _, j := range jobs {
		for range 20 {
			var n int64
			err := r.db.WithinTx(ctx, func(ctx context.Context) error {
				res, err := sqldb.Ext(ctx, r.db).ExecContext(ctx, j.query, j.before, r.o.deleteBatchSize)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			}, sqldb.ReadCommitted()) // no gap locks: inserts of new rows go on
			if err != nil {
				if ctx.Err() == nil {
					r.m.errors.Inc()
					r.log.Warn("outbox housekeeping failed", "table", j.what, "error", err)
				}
				break
			}
			if n < int64(r.o.deleteBatchSize) {
				break
			}
		}
	}
}

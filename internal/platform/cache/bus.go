package cache

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mallhq/mall/internal/platform/backoff"
	mlog "github.com/mallhq/mall/internal/platform/log"
)

// Channel is the Redis pub/sub channel that carries invalidations between replicas.
const Channel = "mall:cache:invalidate"

// Bus timings. pingInterval bounds how long a silently dead subscription (no RST, e.g. a
// network partition) goes unnoticed: a receive that times out sends a PING, and a second
// timeout without any answer replaces the subscription.
const (
	pingInterval = 5 * time.Second
	retryBase    = 50 * time.Millisecond
	retryMax     = 2 * time.Second
)

var (
	// ErrDuplicateName is returned by New when the bus already has a cache of that name.
	ErrDuplicateName = errors.New("cache: duplicate cache name on this bus")
	// ErrBusState is returned by Start on a started or closed Bus.
	ErrBusState = errors.New("cache: bus already started or closed")
)

// Bus carries invalidations between replicas over Redis pub/sub and owns the caches'
// metrics. One per process (Module provides it); every Cache of any value type registers
// with it. Messages name a cache and its keys; each replica drops those L1 entries.
//
// Pub/sub is at-most-once: a message published while a replica's subscription is down is
// lost to it. So each time the subscription is (re)established the Bus clears every L1
// it serves; entries filled while it was down are dropped then, and until then bounded
// by L1TTL.
type Bus struct {
	rdb     redis.UniversalClient
	log     *slog.Logger
	metrics *busMetrics
	id      string // origin of this replica's messages; its own are not applied twice
	seq     atomic.Uint64
	ping    time.Duration // pingInterval; tests shorten it

	mu      sync.RWMutex
	members map[string]member

	life    sync.Mutex
	state   int // 0 new, 1 started, 2 closed
	ps      *redis.PubSub
	cancel  context.CancelFunc
	done    chan struct{}
	running atomic.Bool // subscription confirmed and not failed since
}

// member is a Cache as the Bus sees it, whatever its value type.
type member interface {
	dropRemote(keys []string)
	clearL1()
}

type message struct {
	Origin string   `json:"o"`
	Cache  string   `json:"c"`
	Keys   []string `json:"k"`
}

// NewBus returns a Bus on rdb, which must be the Redis the caches use. A nil log discards;
// a nil reg registers with prometheus.DefaultRegisterer. Start subscribes.
func NewBus(rdb redis.UniversalClient, log *slog.Logger, reg prometheus.Registerer) (*Bus, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil redis client", ErrConfig)
	}
	log = mlog.OrDiscard(log)
	if reg == nil {
		reg = prometheus.DefaultRegisterer
	}
	m, err := newBusMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Bus{rdb: rdb, log: log, metrics: m, id: rand.Text()[:12], ping: pingInterval, members: map[string]member{}}, nil
}

func (b *Bus) register(name string, m member) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.members[name]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicateName, name)
	}
	b.members[name] = m
	return nil
}

// token returns a lease token unique across replicas and restarts.
func (b *Bus) token() string {
	return b.id + "." + strconv.FormatUint(b.seq.Add(1), 36)
}

// Subscribed reports whether the invalidation subscription is live. While it is not,
// L1 entries may miss invalidations from other replicas (bounded by L1TTL; cleared when
// it comes back).
func (b *Bus) Subscribed() bool { return b.running.Load() }

// Start subscribes and starts receiving. It waits for the first subscription answer (or
// failure) so that a started replica already hears invalidations, but never fails
// because Redis is down: the Bus keeps retrying in the background.
func (b *Bus) Start(ctx context.Context) error {
	b.life.Lock()
	if b.state != 0 {
		b.life.Unlock()
		return ErrBusState
	}
	b.state = 1
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.cancel = cancel
	b.done = make(chan struct{})
	b.ps = b.rdb.Subscribe(ctx, Channel) // an error here surfaces on the first receive
	ready := make(chan struct{})
	go b.run(runCtx, ready)
	b.life.Unlock()
	select {
	case <-ready:
	case <-ctx.Done():
	}
	return nil
}

// Close stops receiving and closes the subscription. Safe before Start and twice.
func (b *Bus) Close() error {
	b.life.Lock()
	if b.state != 1 {
		b.state = 2
		b.life.Unlock()
		return nil
	}
	b.state = 2
	b.cancel()
	err := b.ps.Close() // unblocks a pending receive
	b.life.Unlock()
	<-b.done
	b.running.Store(false)
	b.metrics.subscribed.Set(0)
	return err
}

func (b *Bus) run(ctx context.Context, ready chan struct{}) {
	defer close(b.done)
	signal := func() {
		if ready != nil {
			close(ready)
			ready = nil
		}
	}
	defer signal()
	var (
		failures    int
		pingPending bool
	)
	for ctx.Err() == nil {
		ps := b.pubsub()
		if ps == nil {
			return
		}
		msg, err := ps.ReceiveTimeout(ctx, b.ping)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if isTimeout(err) {
				if pingPending {
					// Nothing came back from the last PING: the connection is dead without
					// having said so. Start over on a new one.
					b.lost(err, failures)
					failures++
					b.resubscribe(ctx)
					pingPending = false
					continue
				}
				pingPending = ps.Ping(ctx) == nil
				continue
			}
			b.lost(err, failures)
			failures++
			signal()
			sleep(ctx, backoff.Exponential(failures, retryBase, retryMax))
			continue
		}
		pingPending = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				// (Re)subscribed: whatever was published while we were away is lost to
				// us, so nothing in L1 can be trusted to have heard it.
				b.clearAll()
				b.metrics.subscriptions.Inc()
				b.metrics.subscribed.Set(1)
				b.running.Store(true)
				if failures > 0 {
					b.log.Info("cache invalidation subscription restored; L1 cleared", "failures", failures)
				}
				failures = 0
				signal()
			}
		case *redis.Message:
			b.dispatch(m.Payload)
		}
	}
}

func (b *Bus) pubsub() *redis.PubSub {
	b.life.Lock()
	defer b.life.Unlock()
	if b.state != 1 {
		return nil
	}
	return b.ps
}

// resubscribe replaces the subscription (a PING went unanswered).
func (b *Bus) resubscribe(ctx context.Context) {
	b.life.Lock()
	defer b.life.Unlock()
	if b.state != 1 {
		return
	}
	_ = b.ps.Close()
	b.ps = b.rdb.Subscribe(ctx, Channel)
}

func (b *Bus) lost(err error, failures int) {
	b.metrics.busErrors.Inc()
	b.metrics.subscribed.Set(0)
	b.running.Store(false)
	if failures == 0 {
		b.log.Warn("cache invalidation subscription lost; retrying", "err", err)
	}
}

func (b *Bus) dispatch(payload string) {
	var m message
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		b.metrics.busErrors.Inc()
		return
	}
	if m.Origin == b.id {
		return // applied locally before publishing
	}
	b.mu.RLock()
	c := b.members[m.Cache]
	b.mu.RUnlock()
	if c != nil {
		c.dropRemote(m.Keys)
	}
}

func (b *Bus) clearAll() {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, c := range b.members {
		c.clearL1()
	}
}

func (b *Bus) publish(ctx context.Context, cache string, keys []string) error {
	payload, err := json.Marshal(message{Origin: b.id, Cache: cache, Keys: keys})
	if err != nil {
		return err
	}
	return b.rdb.Publish(ctx, Channel, payload).Err()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

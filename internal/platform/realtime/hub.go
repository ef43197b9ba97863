package realtime

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	mlog "github.com/mallhq/mall/internal/platform/log"
	"github.com/mallhq/mall/internal/platform/ratelimit"
	"github.com/mallhq/mall/internal/platform/worker"
)

// Hub is one replica's WebSocket hub. Provided by Module (fx) as *Hub; NewHub builds one
// without fx (Start and Close are then the caller's).
type Hub struct {
	cfg  Config
	rdb  redis.UniversalClient
	log  *slog.Logger
	m    *hubMetrics
	node string

	chanPrefix string // Redis channel of room r: chanPrefix + r
	ctlChannel string // Redis channel of control messages (session ends, blocks)
	trusted    ratelimit.Trusted

	mu     sync.Mutex
	rooms  map[string]*room
	total  int // connections, including those being opened
	closed bool
	dirty  map[string]struct{} // rooms whose presence count changed since the last flush
	// callers counts connections (opening ones included) per caller key (callerKeys).
	callers map[string]int
	slots   int // ping slots handed out (conn.pingSlot)

	ps      *redis.PubSub
	flush   chan struct{} // wakes the presence flusher
	workers *worker.Runner
	stopped sync.WaitGroup // the dispatcher
	started bool

	// Owned by the workers (each runs one run at a time).
	lastFull time.Time // start of the last flush of every presence count
	nextSlot int       // the ping slot of the next ping run
}

// room is one room's connections on this replica.
type room struct {
	name  string
	conns map[*conn]struct{}
	// opening counts connections admitted but not joined yet (caps count them).
	opening int
	// ready is closed once Redis confirms this replica's subscription to the room.
	ready chan struct{}
}

func (r *room) size() int { return len(r.conns) + r.opening }

// NewHub returns a hub on rdb; reg receives its metrics (nil: not exported).
func NewHub(cfg Config, rdb redis.UniversalClient, reg prometheus.Registerer, log *slog.Logger) (*Hub, error) {
	if err := validate(cfg); err != nil {
		return nil, err
	}
	if rdb == nil {
		return nil, errors.New("realtime: a Redis client is required")
	}
	log = mlog.OrDiscard(log)
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newHubMetrics(reg)
	if err != nil {
		return nil, err
	}
	node := cfg.NodeID
	if node == "" {
		node = rand.Text()[:12]
	}
	trusted, err := ratelimit.ParseTrusted(cfg.TrustedClients)
	if err != nil {
		return nil, err
	}
	h := &Hub{
		cfg: cfg, rdb: rdb, log: log, m: m, node: node,
		chanPrefix: cfg.Prefix + "rt:room:",
		ctlChannel: cfg.Prefix + "rt:ctl",
		trusted:    trusted,
		callers:    map[string]int{},
		rooms:      map[string]*room{},
		dirty:      map[string]struct{}{},
		flush:      make(chan struct{}, 1),
	}
	// No jitter: the work is this replica's own, there is nothing to spread across
	// replicas, and the ping slots already spread the pings.
	h.workers, err = worker.New(worker.Params{Registry: reg, Log: log, Workers: []worker.Spec{
		{Name: "realtime.presence", Interval: h.presenceEvery(), Jitter: -1, Trigger: h.flush, Run: h.writePresence},
		{Name: "realtime.ping", Interval: max(cfg.PingInterval/pingSlots, time.Millisecond), Jitter: -1, Run: h.pingNextSlot},
		{Name: "realtime.sweep", Interval: min(cfg.WriteTimeout/4, time.Second), Jitter: -1, Run: h.sweepStuck},
	}})
	if err != nil {
		return nil, err
	}
	return h, nil
}

func validate(c Config) error {
	var bad []string
	if c.MaxMessageBytes < 1 {
		bad = append(bad, "MaxMessageBytes must be positive")
	}
	if c.MaxConnections < 1 || c.MaxRoomConnections < 1 {
		bad = append(bad, "MaxConnections and MaxRoomConnections must be positive")
	}
	if c.SendQueue < 1 {
		bad = append(bad, "SendQueue must be positive")
	}
	if c.WriteTimeout <= 0 || c.PingInterval <= 0 || c.PongTimeout <= 0 || c.PresenceTTL <= 0 {
		bad = append(bad, "WriteTimeout, PingInterval, PongTimeout and PresenceTTL must be positive")
	}
	for _, p := range c.AllowedOrigins {
		if _, err := matchOrigin(p, "x"); err != nil {
			bad = append(bad, fmt.Sprintf("allowed origin %q: %v", p, err))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("realtime: invalid configuration: %s", strings.Join(bad, "; "))
	}
	return nil
}

// Node is this replica's name in presence counts.
func (h *Hub) Node() string { return h.node }

// Start opens the Redis subscription and starts the dispatcher and the workers: the
// presence flusher, the pinger and the stuck-writer sweeper.
func (h *Hub) Start(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started {
		return errors.New("realtime: hub already started")
	}
	h.started = true
	// The control channel only: rooms add their channels as they open locally.
	h.ps = h.rdb.Subscribe(ctx, h.ctlChannel)
	// Large enough that a burst never waits on the dispatcher; go-redis drops a message only
	// after the channel has been full for a whole minute.
	msgs := h.ps.ChannelWithSubscriptions(redis.WithChannelSize(4096))
	h.stopped.Add(1)
	go h.dispatch(msgs)
	h.lastFull = time.Now() // the first full flush comes a period after the start
	return h.workers.Start(ctx)
}

// Close closes every connection with StatusGoingAway, removes this replica's presence
// counts and the subscription.
func (h *Hub) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	var conns []*conn
	var rooms []string
	for name, r := range h.rooms {
		rooms = append(rooms, name)
		for c := range r.conns {
			conns = append(conns, c)
		}
	}
	started := h.started
	h.mu.Unlock()

	// Close frames go out concurrently: a client that does not answer holds its goroutine
	// for coder/websocket's close handshake timeout (5 s), so in series a few silent
	// clients would stall the shutdown. Past ctx the rest is left to finish on its own.
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.close(websocket.StatusGoingAway, "server shutting down")
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	if !started {
		return nil
	}
	// Stop the workers first (waiting for a flush in flight, as long as it takes), so no
	// presence flush can rewrite what is removed below.
	_ = h.workers.Stop(context.Background()) // without a deadline it only returns nil
	var err error
	if e := h.ps.Close(); e != nil {
		err = fmt.Errorf("realtime: close subscription: %w", e)
	}
	h.stopped.Wait()
	if len(rooms) > 0 {
		pipe := h.rdb.Pipeline()
		for _, r := range rooms {
			pipe.HDel(ctx, h.presenceKey(r), h.node)
		}
		if _, e := pipe.Exec(ctx); e != nil {
			err = errors.Join(err, fmt.Errorf("realtime: remove presence: %w", e))
		}
	}
	return err
}

// Publish JSON-encodes msg and delivers it to every connection in room on every replica
// (through Redis pub/sub). Messages published to one room are delivered to every
// connection in the same order on every replica. Returns after the message is handed to
// Redis.
func (h *Hub) Publish(ctx context.Context, room string, msg any) error {
	if err := checkRoomName(room); err != nil {
		return err
	}
	payload, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("realtime: encode message for %s: %w", room, err)
	}
	if err := h.rdb.Publish(ctx, h.chanPrefix+room, encodeEnvelope(time.Now(), payload)).Err(); err != nil {
		h.m.publishErrors.Inc()
		return fmt.Errorf("realtime: publish to %s: %w", room, err)
	}
	h.m.published.Inc()
	return nil
}

func checkRoomName(name string) error {
	if name == "" || len(name) > 200 {
		return errBadRoom
	}
	return nil
}

// dispatch delivers the messages of every subscribed room to the local connections. One
// goroutine, in arrival order: Redis sends one channel's messages to every subscriber in
// the order it received them, so every connection everywhere sees the same sequence.
func (h *Hub) dispatch(msgs <-chan any) {
	defer h.stopped.Done()
	for v := range msgs {
		switch m := v.(type) {
		case *redis.Message:
			if m.Channel == h.ctlChannel {
				h.control(m.Payload)
				continue
			}
			h.deliver(m)
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			h.m.subscriptions.Inc()
			name, ok := strings.CutPrefix(m.Channel, h.chanPrefix)
			if !ok {
				continue
			}
			h.mu.Lock()
			if r := h.rooms[name]; r != nil {
				select {
				case <-r.ready:
					// A re-subscription: Redis came back, maybe without our presence.
					h.markDirty(name)
				default:
					close(r.ready)
				}
			}
			h.mu.Unlock()
		}
	}
}

func (h *Hub) deliver(m *redis.Message) {
	name, ok := strings.CutPrefix(m.Channel, h.chanPrefix)
	if !ok {
		return
	}
	sent, payload, err := decodeEnvelope(m.Payload)
	if err != nil {
		h.m.badEnvelopes.Inc()
		h.log.Warn("realtime: unreadable message ignored", "room", name, "error", err.Error())
		return
	}
	h.m.latency.Observe(time.Since(sent).Seconds())
	frame := []byte(payload) // one copy shared (read-only) by every connection's queue
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[name]
	if r == nil {
		return
	}
	for c := range r.conns {
		c.enqueue(frame)
	}
}

// admit reserves a connection slot on the replica and under the caller's caps
// (callerKeys); an error when one is full.
func (h *Hub) admit(who Identity) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.total >= h.cfg.MaxConnections {
		return ErrTooManyConns.WithDetail("this server has no room for more WebSocket connections; retry later").WithRetryAfter(5)
	}
	keys := h.callerKeys(who)
	for _, k := range keys {
		if k.limit > 0 && h.callers[k.key] >= k.limit {
			return ErrCallerConns.WithDetail("%s has %d WebSocket connections open on this server, the most allowed", k.who, k.limit).WithRetryAfter(5)
		}
	}
	for _, k := range keys {
		h.callers[k.key]++
	}
	h.total++
	h.m.conns.Inc()
	return nil
}

func (h *Hub) release(who Identity) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range h.callerKeys(who) {
		if h.callers[k.key]--; h.callers[k.key] <= 0 {
			delete(h.callers, k.key)
		}
	}
	h.total--
	h.m.conns.Dec()
}

// admitRoom reserves a place in room name; false when the room is full on this replica.
func (h *Hub) admitRoom(name string) (*room, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[name]
	if r == nil {
		r = &room{name: name, conns: map[*conn]struct{}{}, ready: make(chan struct{})}
		h.rooms[name] = r
	}
	if r.size() >= h.cfg.MaxRoomConnections {
		h.dropIfEmpty(r)
		return nil, false
	}
	r.opening++
	return r, true
}

// join moves c from opening to member of its room, subscribing the replica to the room's
// channel when c is its first member here, and returns the subscription's readiness.
func (h *Hub) join(c *conn) (<-chan struct{}, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := c.room
	r.opening--
	if h.closed || h.ps == nil {
		h.dropIfEmpty(r)
		return nil, errors.New("realtime: hub closed or not started")
	}
	first := len(r.conns) == 0
	r.conns[c] = struct{}{}
	c.pingSlot = h.slots % pingSlots
	h.slots++
	h.markDirty(r.name)
	if first {
		// Under h.mu so SUBSCRIBE and UNSUBSCRIBE of one channel reach Redis in the order
		// the room opened and closed here.
		if err := h.ps.Subscribe(context.Background(), h.chanPrefix+r.name); err != nil {
			// go-redis remembers the channel even when the command failed (to re-subscribe
			// after reconnecting); forget it, the room is not open here.
			_ = h.ps.Unsubscribe(context.Background(), h.chanPrefix+r.name)
			delete(r.conns, c)
			h.dropIfEmpty(r)
			return nil, fmt.Errorf("realtime: subscribe %s: %w", r.name, err)
		}
	}
	return r.ready, nil
}

// leave removes c (joined or still opening) from its room.
func (h *Hub) leave(c *conn, joined bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := c.room
	if joined {
		if _, ok := r.conns[c]; !ok {
			return
		}
		delete(r.conns, c)
		h.markDirty(r.name)
		if len(r.conns) == 0 && h.ps != nil && !h.closed {
			if err := h.ps.Unsubscribe(context.Background(), h.chanPrefix+r.name); err != nil {
				h.log.Warn("realtime: unsubscribe failed", "room", r.name, "error", err.Error())
			}
		}
	} else {
		r.opening--
	}
	h.dropIfEmpty(r)
}

// dropIfEmpty forgets r when nothing is in it. Caller holds h.mu.
func (h *Hub) dropIfEmpty(r *room) {
	if r.size() == 0 && h.rooms[r.name] == r {
		delete(h.rooms, r.name)
	}
}

// localCount is the number of connections in room on this replica.
func (h *Hub) localCount(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.rooms[name]; r != nil {
		return len(r.conns)
	}
	return 0
}

// pingSlots spreads the pings over the interval: connection i is pinged in slot i mod
// pingSlots, one slot per PingInterval/pingSlots. Pinging every connection at once costs a
// burst of writes and pongs (about 0.1 s of CPU per 5,000 connections on the bench box)
// that delays whatever the rooms broadcast meanwhile; in slots it is a thirtieth of that,
// each second.
const pingSlots = 30

// pingNextSlot pings the connections of the next slot (a connection whose pong does not
// come within PongTimeout is closed); every connection is pinged once each PingInterval.
// The ping goes through the connection's writer, so an idle connection has no goroutine
// of its own between pings.
func (h *Hub) pingNextSlot(context.Context) error {
	slot := h.nextSlot
	h.nextSlot = (slot + 1) % pingSlots
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.rooms {
		for c := range r.conns {
			if c.pingSlot == slot {
				c.requestPing()
			}
		}
	}
	return nil
}

// sweepStuck drops the connections whose write has been pending for WriteTimeout.
func (h *Hub) sweepStuck(context.Context) error {
	cutoff := time.Now().Add(-h.cfg.WriteTimeout)
	var stuck []*conn
	h.mu.Lock()
	for _, r := range h.rooms {
		for c := range r.conns {
			if c.stuckSince(cutoff) {
				stuck = append(stuck, c)
			}
		}
	}
	h.mu.Unlock()
	for _, c := range stuck {
		go c.fail(func() { h.m.writeDrops.Inc() }, websocket.StatusPolicyViolation, "write timed out")
	}
	return nil
}

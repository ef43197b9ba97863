package user

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/mallhq/mall/internal/platform/redisx"
)

// Redis holds two kinds of hot state here, neither of them a source of truth:
//
//   - the deny-list of access tokens (by jti) and sessions (by refresh family) that logged
//     out or were revoked, each kept until the last token it covers has expired;
//   - login failure counters per account and per client IP (guard.go).
//
// Redis outages: both keep working in process (each replica knows what it wrote itself and
// counts failures locally), and Redis is skipped for redisCooldown after an error so a dead
// Redis costs one failed call per second, not one per request. The deny-list then fails
// open for entries written by other replicas: a logged-out token may work on another replica
// until Redis returns or the token expires (at most auth.jwt.access_ttl). Failing closed
// instead would log every user out during a Redis outage.
const (
	redisPrefix   = "mall:user:"
	redisCooldown = time.Second
	// localMaxKeys bounds each in-process fallback table.
	localMaxKeys = 100_000
)

// redisGate skips Redis for a while after it failed and rate-limits the warning.
type redisGate struct {
	log       *slog.Logger
	what      string
	downUntil atomic.Int64
	errLog    rate.Sometimes
}

func newRedisGate(log *slog.Logger, what string) *redisGate {
	return &redisGate{log: log, what: what, errLog: rate.Sometimes{First: 1, Interval: 30 * time.Second}}
}

func (g *redisGate) up() bool { return time.Now().UnixNano() >= g.downUntil.Load() }

func (g *redisGate) failed(err error) {
	g.downUntil.Store(time.Now().Add(redisCooldown).UnixNano())
	g.errLog.Do(func() {
		g.log.Warn("user: redis unavailable; using in-process state", "what", g.what, "error", err.Error())
	})
}

// expiringSet is an in-process set of keys with expiry, bounded by localMaxKeys.
type expiringSet struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (s *expiringSet) add(key string, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]time.Time{}
	}
	if len(s.m) >= localMaxKeys {
		now := time.Now()
		for k, t := range s.m {
			if now.After(t) {
				delete(s.m, k)
			}
		}
		for k := range s.m { // still full: drop arbitrary entries
			if len(s.m) < localMaxKeys {
				break
			}
			delete(s.m, k)
		}
	}
	s.m[key] = until
}

func (s *expiringSet) has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.m[key]
	if ok && time.Now().After(t) {
		delete(s.m, key)
		return false
	}
	return ok
}

// denyList rejects access tokens by jti and whole sessions by refresh family ID.
type denyList struct {
	rdb    redis.UniversalClient
	gate   *redisGate
	local  expiringSet
	lookup existsBatcher
}

func newDenyList(rdb redis.UniversalClient, log *slog.Logger) *denyList {
	return &denyList{rdb: rdb, gate: newRedisGate(log, "token deny-list"), lookup: existsBatcher{rdb: rdb}}
}

// existsBatcher sends the deny-list lookups of concurrent requests to Redis as one pipeline:
// while one pipeline is in flight, the lookups that arrive queue up and go together in the
// next. Every request still asks Redis (no answer is reused), but under load a round trip,
// and its two system calls, serves many requests instead of one. With no concurrency it
// degrades to one EXISTS per lookup, sent at once.
type existsBatcher struct {
	rdb      redis.UniversalClient
	mu       sync.Mutex
	pending  []*existsCall
	flushing bool
}

type existsCall struct {
	keys []string
	n    int64
	err  error
	done chan struct{}
}

// maxBatch bounds one pipeline.
const maxBatch = 256

func (b *existsBatcher) exists(ctx context.Context, keys ...string) (int64, error) {
	c := &existsCall{keys: keys, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, c)
	if !b.flushing {
		b.flushing = true
		go b.flush()
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.n, c.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// flush sends batches until the queue is empty.
func (b *existsBatcher) flush() {
	for {
		b.mu.Lock()
		batch := b.pending
		if len(batch) > maxBatch {
			batch = batch[:maxBatch]
			b.pending = b.pending[maxBatch:]
		} else {
			b.pending = nil
		}
		if len(batch) == 0 {
			b.flushing = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		// Not any caller's context: one caller giving up must not fail the others' lookups.
		ctx, cancel := context.WithTimeout(context.Background(), redisx.WriteTimeout+redisx.ReadTimeout)
		cmds := make([]*redis.IntCmd, len(batch))
		_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, c := range batch {
				cmds[i] = p.Exists(ctx, c.keys...)
			}
			return nil
		})
		cancel()
		for i, c := range batch {
			if err != nil {
				c.err = err
			} else {
				c.n, c.err = cmds[i].Result()
			}
			close(c.done)
		}
	}
}

// Deny-list keys of one user share a Redis Cluster hash slot ({u<id>}), so one EXISTS checks
// both a token and its session.
func denyTokenKey(userID int64, jti string) string {
	return redisPrefix + "deny:{u" + strconv.FormatInt(userID, 10) + "}:jti:" + jti
}

func denySessionKey(userID int64, sid string) string {
	return redisPrefix + "deny:{u" + strconv.FormatInt(userID, 10) + "}:sid:" + sid
}

// deny adds keys until ttl from now. The local copy is always written; a Redis failure is
// returned for the caller to log (the entry still applies on this replica).
func (d *denyList) deny(ctx context.Context, ttl time.Duration, keys ...string) error {
	if ttl <= 0 {
		return nil
	}
	until := time.Now().Add(ttl)
	for _, k := range keys {
		d.local.add(k, until)
	}
	if !d.gate.up() {
		return errRedisSkipped
	}
	_, err := d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Set(ctx, k, 1, ttl)
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		d.gate.failed(err)
	}
	return err
}

var errRedisSkipped = errors.New("redis skipped after a recent failure")

// denied reports whether the user's token jti or its session sid is on the list: one
// EXISTS of two keys.
func (d *denyList) denied(ctx context.Context, userID int64, jti, sid string) (bool, error) {
	jk, sk := denyTokenKey(userID, jti), denySessionKey(userID, sid)
	if d.local.has(jk) || d.local.has(sk) {
		return true, nil
	}
	if !d.gate.up() {
		return false, nil
	}
	n, err := d.lookup.exists(ctx, jk, sk)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		d.gate.failed(err)
		return false, nil
	}
	return n > 0, nil
}

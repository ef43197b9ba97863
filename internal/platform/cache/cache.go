// Package cache is Mall's two-level read-through cache: an in-process L1 (sharded map
// with TTL) in front of a Redis L2, one load per key per replica on a miss (singleflight),
// and invalidation on every replica through a Redis pub/sub Bus. The database stays the
// truth: with Redis down, reads go to the loader.
//
// Consistency. A value read from the database before an update must never be stored
// after that update's Invalidate, or it would be served until its TTL. Two guards:
//
//   - L2 (across replicas): a miss takes a lease, a random token in the key's Redis hash,
//     before calling the loader, and writes the loaded value with a script that checks the
//     token is still there. Invalidate deletes the key, lease included, so a load that
//     began before it cannot store its result after it. (Leases rather than a version
//     counter per key: version keys would have to live forever, or a counter that expired
//     or was evicted could come back with the same number and let a stale write through.)
//   - L1 (in process): keys hash to generation counters that each invalidation of such a
//     key advances; a fill carries the generation seen before it read L2 or the loader
//     and is refused if it moved. The generation is also part of the singleflight key, so
//     a Get that begins after an Invalidate never joins a load that began before it.
//
// What remains: a Get that overlaps an Invalidate may return either value. Another
// replica serves its L1 copy until the pub/sub message arrives (normally a millisecond);
// if the message is lost, until its subscription is restored (which clears its whole L1)
// or L1TTL, whichever is first. An Invalidate that fails (Redis down) drops the local L1
// and returns the error for the caller to retry; until it succeeds, L2 and the other
// replicas may serve the old value (up to L2TTL if it is never retried).
//
// Stampedes: one load per key per replica at a time. The lease is shared, not a lock: a
// replica that finds another's lease loads anyway (both results are as fresh as the
// lease), so a miss costs at most one load per replica and nobody waits on a replica
// that may have died mid-load.
//
// Values are shared between callers: treat what Get returns as read-only.
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"
)

var (
	// ErrNotFound is what a loader returns (as is or wrapped) for an absent key. Get then
	// returns ErrNotFound itself, and remembers the absence for NegativeTTL.
	ErrNotFound = errors.New("cache: not found")
	// ErrConfig is returned by New and NewBus for unusable options.
	ErrConfig = errors.New("cache: invalid options")
)

// Defaults for zero Options fields.
const (
	DefaultL1TTL       = 30 * time.Second
	DefaultL2TTL       = 10 * time.Minute
	DefaultNegativeTTL = 30 * time.Second
	DefaultLoadTimeout = 10 * time.Second
)

// Options configure a Cache. Zero durations take the defaults above.
type Options struct {
	// Name namespaces the Redis keys ("mall:cache:<name>:<key>") and labels the metrics:
	// lower case letters, digits, '.', '_', '-'. Put a version in it ("product.v1") when
	// the value's encoding changes incompatibly.
	Name string
	// L1Size is the number of entries kept in process; 0 disables L1.
	L1Size int
	// L1TTL bounds how long an entry is served in process if its invalidation is lost.
	L1TTL time.Duration
	// L2TTL is the Redis TTL; each write adds up to 10% jitter so keys filled together
	// do not expire together.
	L2TTL time.Duration
	// NegativeTTL is how long "not found" is remembered (in L1 at most L1TTL).
	NegativeTTL time.Duration
	// LoadTimeout bounds a load, which runs on its own context, not a caller's (one
	// caller giving up does not fail the others); it is also the lease's lifetime.
	LoadTimeout time.Duration
}

// Codec turns values into L2 bytes and back.
type Codec[V any] interface {
	Marshal(V) ([]byte, error)
	Unmarshal([]byte) (V, error)
}

// JSON is the default Codec.
type JSON[V any] struct{}

func (JSON[V]) Marshal(v V) ([]byte, error) { return json.Marshal(v) }

func (JSON[V]) Unmarshal(b []byte) (V, error) {
	var v V
	err := json.Unmarshal(b, &v)
	return v, err
}

// Cache is a two-level cache of V by string key. Safe for concurrent use.
type Cache[V any] struct {
	name    string
	o       Options
	prefix  string
	rdb     redis.UniversalClient
	bus     *Bus
	codec   Codec[V]
	l1      *l1[V]
	sf      singleflight.Group
	metrics cacheMetrics

	// testHookAfterL2 runs after the L2 read of a miss, before anything is filled.
	testHookAfterL2 func(key string)
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// New returns a cache storing V as JSON. rdb must be the Redis the bus uses.
func New[V any](rdb redis.UniversalClient, bus *Bus, o Options) (*Cache[V], error) {
	return NewWithCodec[V](rdb, bus, o, JSON[V]{})
}

// NewWithCodec returns a cache storing V with codec in L2.
func NewWithCodec[V any](rdb redis.UniversalClient, bus *Bus, o Options, codec Codec[V]) (*Cache[V], error) {
	switch {
	case rdb == nil || bus == nil || codec == nil:
		return nil, fmt.Errorf("%w: redis client, bus and codec are required", ErrConfig)
	case !namePattern.MatchString(o.Name):
		return nil, fmt.Errorf("%w: name %q must match %s", ErrConfig, o.Name, namePattern)
	case o.L1Size < 0 || o.L1TTL < 0 || o.L2TTL < 0 || o.NegativeTTL < 0 || o.LoadTimeout < 0:
		return nil, fmt.Errorf("%w: %q: negative size or duration", ErrConfig, o.Name)
	}
	o.L1TTL = orDefault(o.L1TTL, DefaultL1TTL)
	o.L2TTL = orDefault(o.L2TTL, DefaultL2TTL)
	o.NegativeTTL = orDefault(o.NegativeTTL, DefaultNegativeTTL)
	o.LoadTimeout = orDefault(o.LoadTimeout, DefaultLoadTimeout)
	c := &Cache[V]{
		name:    o.Name,
		o:       o,
		prefix:  "mall:cache:" + o.Name + ":",
		rdb:     rdb,
		bus:     bus,
		codec:   codec,
		l1:      newL1[V](o.L1Size),
		metrics: bus.metrics.forCache(o.Name),
	}
	if err := bus.register(o.Name, c); err != nil {
		return nil, err
	}
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Name is the cache's name.
func (c *Cache[V]) Name() string { return c.name }

// RedisKey is the L2 key of key (a Redis hash: field "v" the value, "l" a lease).
func (c *Cache[V]) RedisKey(key string) string { return c.prefix + key }

// Get returns key's value from L1, else L2, else load (one load per key per replica at a
// time, shared by all callers). load returns ErrNotFound for an absent key; Get then
// returns ErrNotFound. Other loader errors are returned and not cached. Redis errors are
// never returned: Get falls back to the loader. ctx bounds the caller's wait; the load
// itself is not cancelled with ctx and runs for up to LoadTimeout.
func (c *Cache[V]) Get(ctx context.Context, key string, load func(ctx context.Context) (V, error)) (V, error) {
	e, ok, gen := c.l1.get(key, now())
	if ok {
		c.metrics.l1Hits.Inc()
		if e.absent {
			var zero V
			return zero, ErrNotFound
		}
		return e.val, nil
	}
	return c.miss(ctx, key, gen, load)
}

type result[V any] struct {
	val    V
	absent bool
}

func (c *Cache[V]) miss(ctx context.Context, key string, gen uint64, load func(context.Context) (V, error)) (V, error) {
	var zero V
	// The generation in the flight key keeps Gets that started after an invalidation out
	// of flights that started before it. Generation first: it cannot contain the NUL.
	ch := c.sf.DoChan(strconv.FormatUint(gen, 36)+"\x00"+key, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.o.LoadTimeout)
		defer cancel()
		return c.fill(lctx, key, gen, load)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			var p *loaderPanic
			if errors.As(r.Err, &p) {
				panic(p)
			}
			return zero, r.Err
		}
		res := r.Val.(result[V])
		if res.absent {
			return zero, ErrNotFound
		}
		return res.val, nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// Lua scripts on the key's hash. acquire returns {1, value} when a value is there (filled
// since our read), else {0, token}: the existing lease (another replica's load started
// after the last invalidation, so sharing it is safe) or ARGV[1], newly set.
var (
	acquireScript = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'v', 'l')
if r[1] then return {1, r[1]} end
if r[2] then return {0, r[2]} end
redis.call('HSET', KEYS[1], 'l', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {0, ARGV[1]}`)
	// store writes ARGV[2] only while the lease ARGV[1] survives: no Invalidate since the
	// lease was taken, hence none since the load began.
	storeScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'l') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`)
)

// L2 value encoding: one tag byte, then the codec's bytes.
const (
	tagValue  = 'v'
	tagAbsent = '-'
)

// fill runs once per flight: L2, else lease + load + conditional store.
func (c *Cache[V]) fill(ctx context.Context, key string, gen uint64, load func(context.Context) (V, error)) (any, error) {
	rkey := c.prefix + key
	redisUp := true
	raw, err := c.rdb.HGet(ctx, rkey, "v").Result()
	switch {
	case err == nil:
		if res, ok := c.decode(ctx, rkey, raw); ok {
			c.metrics.l2Hits.Inc()
			c.afterL2(key)
			c.storeL1(key, gen, res)
			return res, nil
		}
	case errors.Is(err, redis.Nil):
	default:
		c.metrics.redisErrors.Inc()
		redisUp = false
	}
	c.afterL2(key)
	c.metrics.misses.Inc()

	var token string
	if redisUp {
		token = c.bus.token()
		got, err := acquireScript.Run(ctx, c.rdb, []string{rkey}, token, c.o.LoadTimeout.Milliseconds()+1000).Slice()
		switch {
		case err != nil || len(got) != 2:
			c.metrics.redisErrors.Inc()
			token = ""
		case got[0] == int64(1):
			s, _ := got[1].(string)
			if res, ok := c.decode(ctx, rkey, s); ok {
				c.metrics.l2Hits.Inc()
				c.storeL1(key, gen, res)
				return res, nil
			}
			token = "" // undecodable and now deleted: load, but leave L2 to the next miss
		default:
			token, _ = got[1].(string)
		}
	}

	val, err := c.load(ctx, load)
	res := result[V]{val: val}
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			c.metrics.loadErrors.Inc()
			return nil, err
		}
		res = result[V]{absent: true}
	}

	if token != "" {
		payload, ttl, err := c.encode(res)
		if err != nil {
			return nil, fmt.Errorf("cache %s: encode: %w", c.name, err)
		}
		stored, err := storeScript.Run(ctx, c.rdb, []string{rkey}, token, payload, ttl.Milliseconds()).Int()
		switch {
		case err != nil:
			// Unknown whether it was stored; L1 is still guarded by the generation.
			c.metrics.redisErrors.Inc()
		case stored == 0:
			// The lease is gone: an Invalidate ran while we loaded (or the load outlived
			// the lease). Our value may predate it: the callers get it, no level keeps it.
			c.metrics.staleRefused.Inc()
			return res, nil
		}
	}
	c.storeL1(key, gen, res)
	return res, nil
}

func (c *Cache[V]) afterL2(key string) {
	if c.testHookAfterL2 != nil {
		c.testHookAfterL2(key)
	}
}

func (c *Cache[V]) load(ctx context.Context, load func(context.Context) (V, error)) (v V, err error) {
	c.metrics.loads.Inc()
	defer func() {
		if r := recover(); r != nil {
			err = &loaderPanic{cache: c.name, value: r, stack: debug.Stack()}
		}
	}()
	return load(ctx)
}

// loaderPanic carries a loader's panic to every waiting caller, each of which panics
// with it in its own goroutine (where its recovery middleware can catch it); singleflight
// would otherwise re-panic in a goroutine nobody can recover.
type loaderPanic struct {
	cache string
	value any
	stack []byte
}

func (p *loaderPanic) Error() string {
	return fmt.Sprintf("cache %s: loader panicked: %v\n%s", p.cache, p.value, p.stack)
}

func (c *Cache[V]) storeL1(key string, gen uint64, res result[V]) {
	ttl := c.o.L1TTL
	if res.absent {
		ttl = min(ttl, c.o.NegativeTTL)
	}
	n := now()
	if !c.l1.set(key, l1Entry[V]{val: res.val, absent: res.absent, expires: n + int64(ttl)}, gen, n) {
		c.metrics.staleRefused.Inc()
	}
}

func (c *Cache[V]) encode(res result[V]) ([]byte, time.Duration, error) {
	if res.absent {
		return []byte{tagAbsent}, c.o.NegativeTTL, nil
	}
	b, err := c.codec.Marshal(res.val)
	if err != nil {
		return nil, 0, err
	}
	payload := make([]byte, 0, len(b)+1)
	payload = append(append(payload, tagValue), b...)
	return payload, c.o.L2TTL + rand.N(c.o.L2TTL/10+1), nil
}

// decode reads an L2 value; one it cannot read (corrupt, or another release's encoding)
// is deleted, which is always safe, and reported as a miss.
func (c *Cache[V]) decode(ctx context.Context, rkey, raw string) (result[V], bool) {
	if raw == string(tagAbsent) {
		return result[V]{absent: true}, true
	}
	if len(raw) > 0 && raw[0] == tagValue {
		if v, err := c.codec.Unmarshal([]byte(raw[1:])); err == nil {
			return result[V]{val: v}, true
		}
	}
	c.metrics.decodeErrors.Inc()
	if err := c.rdb.Del(ctx, rkey).Err(); err != nil {
		c.metrics.redisErrors.Inc()
	}
	return result[V]{}, false
}

// Invalidate drops keys everywhere: this replica's L1 at once, L2, then every other
// replica's L1 through the Bus. When it returns nil, no Get on this replica that starts
// afterwards returns a value loaded before the call. Call it after the database change
// is committed (from the change's event consumer). With Redis down it still drops the
// local L1 and returns the error; retry it (it is idempotent).
func (c *Cache[V]) Invalidate(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	c.l1.drop(keys)
	c.metrics.localInvalidations.Add(float64(len(keys)))
	// One DEL per key (each may live in its own cluster slot), pipelined.
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, c.prefix+k)
		}
		return nil
	})
	if err != nil {
		c.metrics.redisErrors.Inc()
		return fmt.Errorf("cache %s: invalidate: %w", c.name, err)
	}
	// Again: a local Get that read L2 between the first drop and the DEL must not keep
	// what it read.
	c.l1.drop(keys)
	if err := c.bus.publish(ctx, c.name, keys); err != nil {
		c.metrics.redisErrors.Inc()
		return fmt.Errorf("cache %s: publish invalidation: %w", c.name, err)
	}
	return nil
}

func (c *Cache[V]) dropRemote(keys []string) {
	c.l1.drop(keys)
	c.metrics.remoteInvalidations.Add(float64(len(keys)))
}

func (c *Cache[V]) clearL1() {
	c.l1.clear()
	c.metrics.l1Clears.Inc()
}

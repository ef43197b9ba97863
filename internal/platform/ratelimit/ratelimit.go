// Package ratelimit limits request rates per class and caller with GCRA in Redis
// (github.com/go-redis/redis_rate). Each class has its own limit and Redis failure policy:
// a class marked Fallback keeps limiting with an in-process limiter while Redis is
// unreachable (login and other brute-force targets); every other class fails open.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/mallhq/mall/internal/platform/config"
	mlog "github.com/mallhq/mall/internal/platform/log"
)

// Built-in classes.
const (
	// ClassDefault applies to every route without a class of its own; fails open.
	ClassDefault = "default"
	// ClassAuth applies to /api/v1/auth/*; falls back to in-process limits without Redis.
	ClassAuth = "auth"
	// ClassUser replaces ClassDefault for authenticated callers (keyed by user, not by IP).
	ClassUser = "user"
)

// Errors.
var (
	// ErrUnknownClass means a class name was used that nobody registered (a programming
	// error: it surfaces as a 500).
	ErrUnknownClass = errors.New("ratelimit: unknown class")
	// ErrInvalidClass is returned by Register for an unusable class.
	ErrInvalidClass = errors.New("ratelimit: invalid class")
)

// Limit is Rate events per Period with bursts of up to Burst events.
type Limit struct {
	Rate   int
	Period time.Duration
	// Burst is the largest number of events allowed at once; 0 means Rate.
	Burst int
}

// PerSecond allows n events per second, all n at once.
func PerSecond(n int) Limit { return Limit{Rate: n, Period: time.Second, Burst: n} }

// PerMinute allows n events per minute, all n at once.
func PerMinute(n int) Limit { return Limit{Rate: n, Period: time.Minute, Burst: n} }

// PerHour allows n events per hour, all n at once.
func PerHour(n int) Limit { return Limit{Rate: n, Period: time.Hour, Burst: n} }

// Class is a named limit. Modules register their own (see AsClass), e.g. login attempts
// per account.
type Class struct {
	Name  string
	Limit Limit
	// Fallback keeps limiting with an in-process limiter per key (same rate, per replica)
	// when Redis fails, instead of failing open.
	Fallback bool
}

// Source says who decided a Result.
type Source string

const (
	SourceRedis    Source = "redis"     // GCRA in Redis
	SourceLocal    Source = "local"     // in-process fallback (Redis failed)
	SourceFailOpen Source = "fail_open" // Redis failed and the class fails open
	SourceDisabled Source = "disabled"  // ratelimit.enabled is false
)

// Result is one decision.
type Result struct {
	Allowed bool
	// Limit is the class's burst: the most requests allowed at once.
	Limit int
	// Remaining is how many more requests would be allowed right now.
	Remaining int
	// RetryAfter is how long until the next request would be allowed (0 when allowed).
	RetryAfter time.Duration
	Source     Source
}

// Limiter decides per class and key.
type Limiter struct {
	enabled  bool
	rdb      *redis_rate.Limiter
	prefix   string
	log      *slog.Logger
	cooldown time.Duration
	localMax int
	metrics  *metrics
	pending  []Class // WithClasses, registered by New
	trusted  Trusted

	mu      sync.RWMutex
	classes map[string]*class

	// redisDownUntil (unix nanos) short-circuits Redis for cooldown after a failure, so a
	// dead Redis costs one failed call per cooldown instead of one per request.
	redisDownUntil atomic.Int64
	errLog         rate.Sometimes
	errsSinceLog   atomic.Int64
}

type class struct {
	Class
	limit redis_rate.Limit
	local *localLimiter // nil unless Fallback
}

// Option adjusts a Limiter.
type Option func(*Limiter)

// WithPrefix sets the Redis key prefix (default "mall:rl:"); tests use one per test.
func WithPrefix(p string) Option { return func(l *Limiter) { l.prefix = p } }

// WithRegisterer registers the metrics with r instead of prometheus.DefaultRegisterer.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(l *Limiter) { l.metrics = newMetrics(r) }
}

// WithCooldown sets how long Redis is skipped after it failed (default 1s).
func WithCooldown(d time.Duration) Option { return func(l *Limiter) { l.cooldown = d } }

// WithErrorLogInterval sets how often Redis failures are logged at most (default 30s).
func WithErrorLogInterval(d time.Duration) Option {
	return func(l *Limiter) { l.errLog.Interval = d }
}

// WithLocalMaxKeys bounds the keys each fallback class tracks in process (default 100000).
func WithLocalMaxKeys(n int) Option { return func(l *Limiter) { l.localMax = n } }

// WithClasses registers extra classes at construction.
func WithClasses(cs ...Class) Option {
	return func(l *Limiter) { l.pending = append(l.pending, cs...) }
}

// New returns a Limiter with the "default" and "auth" classes from cfg.
func New(rdb redis.UniversalClient, cfg config.RateLimit, log *slog.Logger, opts ...Option) (*Limiter, error) {
	log = mlog.OrDiscard(log)
	l := &Limiter{
		enabled:  cfg.Enabled,
		rdb:      redis_rate.NewLimiter(rdb),
		prefix:   "mall:rl:",
		log:      log,
		cooldown: time.Second,
		localMax: 100_000,
		classes:  map[string]*class{},
		errLog:   rate.Sometimes{First: 1, Interval: 30 * time.Second},
	}
	for _, o := range opts {
		o(l)
	}
	if l.metrics == nil {
		l.metrics = newMetrics(prometheus.DefaultRegisterer)
	}
	trusted, err := ParseTrusted(cfg.TrustedClients)
	if err != nil {
		return nil, err
	}
	l.trusted = trusted
	def, usr, auth := cfg.DefaultPerMinute, cfg.UserPerMinute, cfg.AuthPerMinute
	if usr == 0 { // configurations from before user_per_minute
		usr = def
	}
	if !cfg.Enabled { // limits are never consulted; do not fail on unset ones
		def, usr, auth = max(def, 1), max(usr, 1), max(auth, 1)
	}
	builtin := []Class{
		{Name: ClassDefault, Limit: PerMinute(def)},
		{Name: ClassUser, Limit: PerMinute(usr)},
		{Name: ClassAuth, Limit: PerMinute(auth), Fallback: true},
	}
	for _, c := range append(builtin, l.pending...) {
		if err := l.Register(c); err != nil {
			return nil, err
		}
	}
	l.pending = nil
	return l, nil
}

// Register adds a class. Names are unique.
func (l *Limiter) Register(c Class) error {
	lim := c.Limit
	if lim.Burst == 0 {
		lim.Burst = lim.Rate
	}
	if c.Name == "" || strings.Contains(c.Name, ":") || lim.Rate <= 0 || lim.Period <= 0 || lim.Burst <= 0 {
		// ':' separates the class from the key in Redis; allowing it would let two
		// classes share a bucket.
		return fmt.Errorf("%w: %q needs a name without ':' and a positive rate, period and burst (got %+v)", ErrInvalidClass, c.Name, c.Limit)
	}
	c.Limit = lim
	cl := &class{Class: c, limit: redis_rate.Limit{Rate: lim.Rate, Period: lim.Period, Burst: lim.Burst}}
	if c.Fallback {
		cl.local = newLocalLimiter(lim, l.localMax)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, dup := l.classes[c.Name]; dup {
		return fmt.Errorf("%w: %q is registered twice", ErrInvalidClass, c.Name)
	}
	l.classes[c.Name] = cl
	return nil
}

// Enabled reports whether limits are applied at all (ratelimit.enabled).
func (l *Limiter) Enabled() bool { return l.enabled }

// Trusted reports whether ip belongs to ratelimit.trusted_clients: such callers skip every
// per-IP limit (modules with per-IP limits of their own ask too).
func (l *Limiter) Trusted(ip string) bool { return l.trusted.Contains(ip) }

// Has reports whether a class is registered.
func (l *Limiter) Has(name string) bool {
	_, ok := l.class(name)
	return ok
}

func (l *Limiter) class(name string) (*class, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	c, ok := l.classes[name]
	return c, ok
}

// Allow takes one event for key in class. It applies the class's Redis failure policy
// itself, so the error is only ErrUnknownClass or the caller's own cancelled context.
// Keys are opaque: callers namespace them ("ip:1.2.3.4", "user:42", "account:a@b.c").
func (l *Limiter) Allow(ctx context.Context, className, key string) (Result, error) {
	c, ok := l.class(className)
	if !ok {
		return Result{}, fmt.Errorf("%w: %q", ErrUnknownClass, className)
	}
	if !l.enabled {
		return Result{Allowed: true, Limit: c.limit.Burst, Remaining: c.limit.Burst, Source: SourceDisabled}, nil
	}
	now := time.Now()
	if now.UnixNano() >= l.redisDownUntil.Load() {
		r, err := l.rdb.Allow(ctx, l.prefix+c.Name+":"+key, c.limit)
		if err == nil {
			res := Result{Allowed: r.Allowed > 0, Limit: c.limit.Burst, Remaining: r.Remaining, Source: SourceRedis}
			if !res.Allowed {
				res.RetryAfter = max(r.RetryAfter, 0)
			}
			l.metrics.decision(c.Name, res)
			return res, nil
		}
		if ctx.Err() != nil {
			return Result{}, ctx.Err() // the caller gave up; Redis is not to blame
		}
		l.redisFailed(c.Name, err)
	}
	if c.local != nil {
		res := c.local.allow(key, now)
		l.metrics.decision(c.Name, res)
		return res, nil
	}
	res := Result{Allowed: true, Limit: c.limit.Burst, Remaining: c.limit.Burst, Source: SourceFailOpen}
	l.metrics.decision(c.Name, res)
	return res, nil
}

func (l *Limiter) redisFailed(className string, err error) {
	l.redisDownUntil.Store(time.Now().Add(l.cooldown).UnixNano())
	l.metrics.redisErrors.WithLabelValues(className).Inc()
	l.errsSinceLog.Add(1)
	l.errLog.Do(func() {
		l.log.Warn("ratelimit: redis unavailable; fallback classes limit in process, others fail open",
			"class", className, "errors_since_last_report", l.errsSinceLog.Swap(0), "error", err.Error())
	})
}

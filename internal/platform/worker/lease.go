package worker

import (
	"context"
	"crypto/rand"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mallhq/mall/internal/platform/redisx"
)

// A lease is a Redis key holding a random token: SET NX PX takes it, and only the holder
// of the token extends it or deletes it (redisx.RenewLease, redisx.ReleaseLease). The
// holder renews every TTL/3 and counts itself the leader only until TTL after the start
// of its last successful renewal (the key lives at least that long in Redis); a renewal
// that fails when the next one would come too late gives the leadership up at once.
type lease struct {
	rdb    redis.UniversalClient
	key    string
	token  string
	ttl    time.Duration
	period time.Duration
	gauge  prometheus.Gauge
	log    *slog.Logger

	mu     sync.Mutex
	ctx    context.Context // non-nil while held; cancelled when lost
	cancel context.CancelFunc
	until  time.Time // held at most until then without a successful renewal
}

func newLease(rdb redis.UniversalClient, key string, ttl time.Duration, gauge prometheus.Gauge, log *slog.Logger) *lease {
	return &lease{rdb: rdb, key: key, token: rand.Text(), ttl: ttl, period: max(ttl/3, time.Millisecond), gauge: gauge, log: log}
}

// context is the leadership's context while this replica holds the lease, nil otherwise.
func (l *lease) context() context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx != nil && time.Now().After(l.until) {
		l.loseLocked("not renewed in time")
	}
	return l.ctx
}

// keep takes or renews the lease every period until base ends (the first step is the
// caller's).
func (l *lease) keep(base context.Context) {
	t := time.NewTicker(l.period)
	defer t.Stop()
	for {
		select {
		case <-base.Done():
			return
		case <-t.C:
			l.step(base)
		}
	}
}

// step tries to take the lease when it is free, or renews it when held.
func (l *lease) step(base context.Context) {
	ctx, cancel := context.WithTimeout(base, l.period)
	defer cancel()
	start := time.Now()
	if l.context() == nil {
		ok, err := l.rdb.SetNX(ctx, l.key, l.token, l.ttl).Result()
		if err != nil {
			if base.Err() == nil {
				l.log.Warn("worker: leader lease not taken", "error", err.Error())
			}
			return
		}
		if ok {
			l.gain(base, start)
		}
		return
	}
	renewed, err := redisx.RenewLease(ctx, l.rdb, l.key, l.token, l.ttl)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.ctx == nil:
	case err == nil && renewed:
		l.until = start.Add(l.ttl)
	case err == nil:
		l.loseLocked("taken by another replica")
	case time.Now().Add(l.period).After(l.until):
		// Cannot tell whether the key still holds: give up before it may have expired.
		l.loseLocked("not renewed: " + err.Error())
	}
}

func (l *lease) gain(base context.Context, start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ctx, l.cancel = context.WithCancel(base)
	l.until = start.Add(l.ttl)
	if l.gauge != nil {
		l.gauge.Set(1)
	}
	l.log.Info("worker: leader lease taken")
}

func (l *lease) loseLocked(why string) {
	if l.ctx == nil {
		return
	}
	l.cancel()
	l.ctx, l.cancel = nil, nil
	if l.gauge != nil {
		l.gauge.Set(0)
	}
	l.log.Warn("worker: leader lease lost", "reason", why)
}

// release gives the lease back, so another replica takes it at its next try instead of
// after the TTL.
func (l *lease) release(ctx context.Context) {
	l.mu.Lock()
	held := l.ctx != nil
	if held {
		l.cancel()
		l.ctx, l.cancel = nil, nil
		if l.gauge != nil {
			l.gauge.Set(0)
		}
	}
	l.mu.Unlock()
	if !held {
		return
	}
	if err := redisx.ReleaseLease(ctx, l.rdb, l.key, l.token); err != nil {
		l.log.Warn("worker: leader lease not released; it expires", "error", err.Error())
	}
}

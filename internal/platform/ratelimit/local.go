package ratelimit

import (
	"container/list"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// localLimiter is the in-process fallback: one token bucket per key at the class's rate,
// in an LRU bounded by max keys. A bucket idle for longer than it takes to refill
// completely is indistinguishable from a new one, so dropping it loses nothing; only
// when max live keys are exceeded does the least recently used bucket go early.
type localLimiter struct {
	every rate.Limit
	burst int
	idle  time.Duration // time to refill the whole burst
	max   int

	mu    sync.Mutex
	order *list.List // of *bucket, most recently used first
	byKey map[string]*list.Element
}

type bucket struct {
	key  string
	lim  *rate.Limiter
	used time.Time
}

func newLocalLimiter(l Limit, maxKeys int) *localLimiter {
	if maxKeys <= 0 {
		maxKeys = 1
	}
	perSecond := float64(l.Rate) / l.Period.Seconds()
	return &localLimiter{
		every: rate.Limit(perSecond),
		burst: l.Burst,
		idle:  time.Duration(float64(l.Burst) / perSecond * float64(time.Second)),
		max:   maxKeys,
		order: list.New(),
		byKey: map[string]*list.Element{},
	}
}

func (b *localLimiter) allow(key string, now time.Time) Result {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.evict(now)
	var bk *bucket
	if e, ok := b.byKey[key]; ok {
		bk = e.Value.(*bucket)
		b.order.MoveToFront(e)
	} else {
		bk = &bucket{key: key, lim: rate.NewLimiter(b.every, b.burst)}
		b.byKey[key] = b.order.PushFront(bk)
		if b.order.Len() > b.max {
			b.remove(b.order.Back())
		}
	}
	bk.used = now
	res := Result{Limit: b.burst, Source: SourceLocal}
	r := bk.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); !r.OK() || d > 0 {
		r.CancelAt(now)
		res.RetryAfter = max(d, time.Nanosecond)
	} else {
		res.Allowed = true
	}
	res.Remaining = max(int(bk.lim.TokensAt(now)), 0)
	return res
}

// evict drops buckets that have refilled completely (oldest first).
func (b *localLimiter) evict(now time.Time) {
	for e := b.order.Back(); e != nil; e = b.order.Back() {
		if now.Sub(e.Value.(*bucket).used) < b.idle {
			return
		}
		b.remove(e)
	}
}

func (b *localLimiter) remove(e *list.Element) {
	b.order.Remove(e)
	delete(b.byKey, e.Value.(*bucket).key)
}

func (b *localLimiter) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.order.Len()
}

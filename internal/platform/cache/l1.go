package cache

import (
	"hash/maphash"
	"sync"
	"time"
)

// l1 is the in-process level: a map split into shards, each behind its own RWMutex, with
// a TTL per entry and a bounded size per shard.
//
// Why not hashicorp/golang-lru's expirable LRU: (1) filling L1 must be atomic with the
// check that no invalidation of that key happened since the fill started (the shard
// generation below); with a library cache that needs a second lock around the library's
// own, held on every hit and every fill. (2) Its Get takes an exclusive mutex and moves a
// list element, so every hit, even of one hot product, serialises all cores; here a hit
// is a read lock on one shard and a map lookup. (3) It has one TTL per cache; negative
// entries here live NegativeTTL, values L1TTL.
//
// Eviction is sampled, not exact LRU: when a shard is full, an expired entry among a few
// sampled ones goes first, else the sampled entry that expires soonest (with one TTL for
// all values, the oldest). With a short L1TTL every entry is refreshed or dropped within
// seconds anyway, so exact recency buys little and would cost a write on every hit.
type l1[V any] struct {
	shards   []l1Shard[V]
	mask     uint64
	seed     maphash.Seed
	capacity int // entries per shard; 0 stores nothing (L1 disabled) but keeps generations
}

type l1Shard[V any] struct {
	mu sync.RWMutex
	// gens count invalidations of the keys hashing to each slot (and whole-L1 clears). A
	// fill carries the generation seen before it read L2 or the database and is refused
	// if it changed: the value may predate the invalidation. Slots rather than one
	// counter per shard, so that invalidating one product rarely refuses another's fill;
	// rather than one per key, so that nothing has to remember keys it no longer holds.
	gens    [genSlots]uint64
	entries map[string]l1Entry[V]
	_       [32]byte // keep neighbouring shards' locks off one cache line
}

// genSlots is the number of generation counters per shard.
const genSlots = 16

type l1Entry[V any] struct {
	val     V
	expires int64 // monotonic nanoseconds, see now()
	absent  bool  // a cached "not found"
}

// evictSample is how many entries a full shard looks at to choose a victim.
const evictSample = 8

// newL1 sizes the shards so each holds at least 64 entries (up to 64 shards): tiny
// shards would evict long before the cache as a whole is full.
func newL1[V any](size int) *l1[V] {
	n := 64
	for n > 1 && size/n < 64 {
		n /= 2
	}
	l := &l1[V]{shards: make([]l1Shard[V], n), mask: uint64(n - 1), seed: maphash.MakeSeed()}
	if size > 0 {
		l.capacity = (size + n - 1) / n
	}
	for i := range l.shards {
		l.shards[i].entries = make(map[string]l1Entry[V])
	}
	return l
}

// locate returns key's shard and generation slot.
func (l *l1[V]) locate(key string) (*l1Shard[V], int) {
	h := maphash.String(l.seed, key)
	return &l.shards[h&l.mask], int(h>>58) % genSlots
}

// get returns the live entry for key, if any, and the shard generation to fill with.
func (l *l1[V]) get(key string, now int64) (e l1Entry[V], ok bool, gen uint64) {
	s, slot := l.locate(key)
	s.mu.RLock()
	e, ok = s.entries[key]
	gen = s.gens[slot]
	s.mu.RUnlock()
	return e, ok && e.expires > now, gen
}

// set stores e unless the shard's generation moved past gen; it reports whether it did.
func (l *l1[V]) set(key string, e l1Entry[V], gen uint64, now int64) bool {
	s, slot := l.locate(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gens[slot] != gen {
		return false
	}
	if l.capacity == 0 {
		return true
	}
	if _, exists := s.entries[key]; !exists && len(s.entries) >= l.capacity {
		s.evictOne(now)
	}
	s.entries[key] = e
	return true
}

// evictOne removes one entry; the caller holds s.mu. Map iteration starts at a random
// position, so the first few entries are a random sample.
func (s *l1Shard[V]) evictOne(now int64) {
	var (
		victim  string
		soonest int64
		n       int
	)
	for k, e := range s.entries {
		if e.expires <= now {
			delete(s.entries, k)
			return
		}
		if n == 0 || e.expires < soonest {
			victim, soonest = k, e.expires
		}
		if n++; n == evictSample {
			break
		}
	}
	if n > 0 {
		delete(s.entries, victim)
	}
}

// drop removes keys and advances their generations, so fills that started
// before cannot store what they read.
func (l *l1[V]) drop(keys []string) {
	for _, k := range keys {
		s, slot := l.locate(k)
		s.mu.Lock()
		delete(s.entries, k)
		s.gens[slot]++
		s.mu.Unlock()
	}
}

// clear empties every shard and advances every generation.
func (l *l1[V]) clear() {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		clear(s.entries)
		for j := range s.gens {
			s.gens[j]++
		}
		s.mu.Unlock()
	}
}

// len counts stored entries, expired or not (tests).
func (l *l1[V]) len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.RLock()
		n += len(s.entries)
		s.mu.RUnlock()
	}
	return n
}

// epoch anchors now(): time.Since reads the monotonic clock, so a wall-clock step
// neither expires nor extends entries.
var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

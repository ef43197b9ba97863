package groupcommit_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/platform/groupcommit"
)

type req struct {
	n    int
	done chan struct{}
}

// TestQueueBatches: 500 concurrent requests all run exactly once, in batches of at most
// Max, with at most Runners batches at a time, and far fewer batches than requests while
// a batch is slow; the queue is idle afterwards.
func TestQueueBatches(t *testing.T) {
	var (
		ran, batches, inFlight, maxInFlight atomic.Int64
		mu                                  sync.Mutex
		seen                                = map[int]int{}
		biggest                             int
	)
	q := &groupcommit.Queue[*req]{Max: 64, Runners: 2}
	q.Run = func(batch []*req) {
		n := inFlight.Add(1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond) // a commit
		batches.Add(1)
		mu.Lock()
		biggest = max(biggest, len(batch))
		for _, r := range batch {
			seen[r.n]++
		}
		mu.Unlock()
		inFlight.Add(-1)
		for _, r := range batch {
			ran.Add(1)
			close(r.done)
		}
	}
	const total = 500
	var wg sync.WaitGroup
	for i := range total {
		wg.Go(func() {
			r := &req{n: i, done: make(chan struct{})}
			q.Add(r)
			<-r.done
		})
	}
	wg.Wait()
	if ran.Load() != total || len(seen) != total {
		t.Fatalf("%d runs of %d distinct requests, want %d", ran.Load(), len(seen), total)
	}
	for n, c := range seen {
		if c != 1 {
			t.Fatalf("request %d ran %d times", n, c)
		}
	}
	if biggest > 64 || maxInFlight.Load() > 2 {
		t.Fatalf("biggest batch %d (max 64), %d batches at once (max 2)", biggest, maxInFlight.Load())
	}
	if batches.Load() >= total/2 {
		t.Fatalf("%d batches for %d requests: hardly batched", batches.Load(), total)
	}
	// The runners exit once they find the queue empty (just after the last answer).
	for deadline := time.Now().Add(time.Second); !q.Idle(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("queue not idle after every request was answered")
		}
	}
	t.Logf("%d requests in %d batches (biggest %d)", total, batches.Load(), biggest)
}

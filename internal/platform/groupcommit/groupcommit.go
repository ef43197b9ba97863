// Package groupcommit batches concurrent requests for one shared resource (a hot row) into
// one transaction each (group commit). A transaction on a hot row holds the row's lock until
// its commit is on disk, so one request per transaction caps the row at about one fsync per
// request while every other request waits in the lock's queue. With a Queue the requests of
// one process wait in memory instead and a runner commits everything queued at once: while
// one batch commits the next one fills, so batches grow with load and cost nothing when
// idle (a lone request is a batch of one, with no timer).
package groupcommit

import (
	"slices"
	"sync"
)

// Queue hands queued requests to Run in batches. Set the fields before the first Add.
type Queue[T any] struct {
	// Max bounds the requests of one batch (and so the size of its statements).
	Max int
	// Runners is how many batches may be in flight at once. Two suit a hot row: while one
	// holds the row's lock until its commit is durable, the next already waits for it, so
	// the lock passes on without a round trip in between.
	Runners int
	// Run commits one batch (in arrival order) and answers each of its requests; it must
	// not return before every request has its answer.
	Run func(batch []T)

	mu      sync.Mutex
	queue   []T
	running int
}

// Add queues r and makes sure a runner will take it; it does not wait for the answer (the
// request carries its own way to be told, a channel Run closes).
func (q *Queue[T]) Add(r T) {
	q.mu.Lock()
	q.queue = append(q.queue, r)
	start := q.running < max(q.Runners, 1)
	if start {
		q.running++
	}
	q.mu.Unlock()
	if start {
		go q.run()
	}
}

// Idle reports whether nothing is queued or running.
func (q *Queue[T]) Idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running == 0 && len(q.queue) == 0
}

// run takes batches until it finds the queue empty.
func (q *Queue[T]) run() {
	for {
		q.mu.Lock()
		n := min(len(q.queue), max(q.Max, 1))
		if n == 0 {
			q.running--
			q.mu.Unlock()
			return
		}
		batch := slices.Clone(q.queue[:n])
		q.queue = slices.Delete(q.queue, 0, n)
		q.mu.Unlock()
		q.Run(batch)
	}
}

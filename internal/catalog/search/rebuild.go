package search

import (
	"context"
	"sync"
)

// rebuildWrites reconciles live writes with a running rebuild. Index and Delete mark the
// products they touch before writing them to the new index too; the rebuild drops touched
// products from each batch it writes, under the same lock. Whichever order the two happen
// in, the live write — newer than the snapshot the rebuild reads — is what the new index
// ends up holding. The mirror write ignores the caller's cancellation once the live write
// succeeded (it must not be half done); if it fails anyway, the rebuild fails.
type rebuildWrites struct {
	mu      sync.Mutex
	touched map[int64]struct{}
	failed  error // sticky: a failed write to the new index fails the whole rebuild
}

func (r *rebuildWrites) touch(ids []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.touched == nil {
		r.touched = make(map[int64]struct{})
	}
	for _, id := range ids {
		r.touched[id] = struct{}{}
	}
}

func (r *rebuildWrites) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed == nil {
		r.failed = err
	}
}

func (r *rebuildWrites) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// flush writes the batch's untouched products with write.
func (r *rebuildWrites) flush(batch []Product, write func([]Product) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed != nil {
		return r.failed
	}
	keep := make([]Product, 0, len(batch))
	for _, p := range batch {
		if _, ok := r.touched[p.ID]; !ok {
			keep = append(keep, p)
		}
	}
	if len(keep) == 0 {
		return nil
	}
	if err := write(keep); err != nil {
		r.failed = err
		return err
	}
	return nil
}

// rebuildYield adapts a Rebuild source: it validates each product and writes in batches of
// size. An invalid product's ErrBadProduct goes back to the source, which may skip it or
// abort; a failed write is sticky, so Rebuild fails even if the source ignores it.
type rebuildYield struct {
	ctx    context.Context
	writes *rebuildWrites
	size   int
	write  func([]Product) error
	batch  []Product
	count  int
}

func (y *rebuildYield) yield(p Product) error {
	if err := y.ctx.Err(); err != nil {
		return err
	}
	if err := y.writes.err(); err != nil {
		return err
	}
	n, err := p.normalize()
	if err != nil {
		return err
	}
	y.batch = append(y.batch, n)
	y.count++
	if len(y.batch) >= y.size {
		return y.flush()
	}
	return nil
}

func (y *rebuildYield) flush() error {
	err := y.writes.flush(y.batch, y.write)
	y.batch = y.batch[:0]
	return err
}

// finish flushes the rest and reports the first failure: the source's, else a write's.
func (y *rebuildYield) finish(sourceErr error) error {
	if sourceErr != nil {
		return sourceErr
	}
	if err := y.flush(); err != nil {
		return err
	}
	return y.writes.err()
}

package idempotency

import (
	"context"
	"fmt"

	"github.com/mallhq/mall/internal/platform/worker"
)

// Purge deletes every expired key (in batches) and returns how many it deleted.
func (g *Guard) Purge(ctx context.Context) (int64, error) { return g.store.purge(ctx) }

// Janitor is the worker that purges expired keys at start and then every janitor interval
// (jittered, so replicas spread out).
func (g *Guard) Janitor() worker.Spec {
	return worker.Spec{Name: "idempotency.janitor", RunAtStart: true, Interval: g.janitorInterval,
		Run: func(ctx context.Context) error {
			n, err := g.Purge(ctx)
			if err != nil {
				return fmt.Errorf("idempotency: janitor pass: %w", err)
			}
			if n > 0 {
				g.log.DebugContext(ctx, "idempotency: expired keys purged", "deleted", n)
			}
			return nil
		}}
}

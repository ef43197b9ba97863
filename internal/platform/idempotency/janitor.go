package idempotency

import (
	"context"
	"math/rand/v2"
	"time"
)

// Purge deletes every expired key (in batches) and returns how many it deleted.
func (g *Guard) Purge(ctx context.Context) (int64, error) { return g.store.purge(ctx) }

// RunJanitor purges expired keys now and then every janitor interval (jittered, so
// replicas spread out) until ctx ends.
func (g *Guard) RunJanitor(ctx context.Context) {
	for {
		n, err := g.Purge(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			g.log.WarnContext(ctx, "idempotency: janitor pass failed; retrying next interval", "error", err.Error())
		case n > 0:
			g.log.DebugContext(ctx, "idempotency: expired keys purged", "deleted", n)
		}
		wait := g.janitorInterval + rand.N(g.janitorInterval/10+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

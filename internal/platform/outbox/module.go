package outbox

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// Module provides the Writer and runs one relay per physical database between OnStart and
// OnStop. It needs kafkax.Module for the producer. The Writer wakes this replica's relay of
// a database as soon as a transaction that wrote events there commits.
var Module = fx.Module("outbox",
	fx.Provide(NewMetrics, runRelays, func(rs relays) Writer { return NewWriter(rs...) }),
	fx.Invoke(func(relays) {}),
)

// relays are this replica's relays, one per physical database.
type relays []*Relay

func runRelays(lc fx.Lifecycle, c config.Config, cl *sqldb.Cluster, p *kafkax.Producer, log *slog.Logger, m *Metrics) relays {
	var relays relays
	for _, db := range cl.All() {
		relays = append(relays, NewRelay(db, p, c.Outbox, log, m))
	}
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			for _, r := range relays {
				r.Start()
			}
			return nil
		},
		OnStop: func(ctx context.Context) error { return StopAll(ctx, relays...) },
	})
	return relays
}

// StopAll stops relays concurrently, each bounded by ctx.
func StopAll(ctx context.Context, relays ...*Relay) error {
	errs := make([]error, len(relays))
	var wg sync.WaitGroup
	for i, r := range relays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.Stop(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

package outbox_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/kafkax/kafkaxtest"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
)

// TestModules wires kafkax.Module and outbox.Module with fx the way the binary does: a module
// writes through the provided Writer on each database, the relays (woken by the commits)
// publish, a handler registered with kafkax.AsHandler applies the events, and the app stops
// cleanly.
func TestModules(t *testing.T) {
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{Shards: 2})
	topic := kafkax.Topic("fxtest")
	var applied atomic.Int64
	newHandler := func() kafkax.Handler {
		return kafkax.Handler{Group: "mall.fxtest.count", Topics: []string{topic},
			Handle: func(context.Context, kafkax.Envelope) error { applied.Add(1); return nil }}
	}
	var w outbox.Writer
	cfg := config.Config{
		Kafka:  config.Kafka{Embedded: true, ClientID: "fxtest", Partitions: 3},
		Outbox: fastConfig(),
	}
	// Polling once a minute: the events arrive in time only because the provided Writer
	// wakes each database's relay when the transaction commits.
	cfg.Outbox.PollInterval = time.Minute
	app := fx.New(
		fx.NopLogger,
		fx.Supply(cfg, cl, kafkaxtest.Logger()),
		fx.Provide(func() prometheus.Registerer { return prometheus.NewRegistry() }),
		kafkax.Module,
		outbox.Module,
		fx.Provide(kafkax.AsHandler(newHandler)),
		fx.Populate(&w),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, db := range cl.All() {
		err := db.WithinTx(ctx, func(ctx context.Context) error {
			return w.Add(ctx, outbox.Event{Topic: topic, AggregateID: db.Name, Type: "fxtest.written", Payload: db.Name})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 15*time.Second, "the events applied", func() bool { return applied.Load() == int64(len(cl.All())) })
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, cl.Main(), `SELECT COUNT(*) FROM platform_inbox WHERE consumer = 'mall.fxtest.count'`); n != len(cl.All()) {
		t.Fatalf("%d inbox rows on main (the default handler database), want %d", n, len(cl.All()))
	}
}

package kafkax

import (
	"log/slog"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// Module provides the Broker, the outbox's Producer and the consumer Runner, and runs the
// handlers of the "kafka_handlers" group between OnStart and OnStop.
var Module = fx.Module("kafkax",
	fx.Provide(provideBroker, provideProducer, NewConsumerMetrics, provideRunner,
		httpx.AsCheck(func(b *Broker) httpx.Check { return httpx.Check{Name: "kafka", Check: b.Ping} })),
	fx.Invoke(func(*Runner) {}),
)

func provideBroker(lc fx.Lifecycle, c config.Config, log *slog.Logger) (*Broker, error) {
	b, err := NewBroker(c.Kafka, log)
	if err != nil {
		return nil, err
	}
	// Registered first, so it stops last: after the producer and the consumers.
	lc.Append(fx.StopHook(b.Close))
	return b, nil
}

func provideProducer(lc fx.Lifecycle, b *Broker) (*Producer, error) {
	p, err := NewProducer(b)
	if err != nil {
		return nil, err
	}
	// The outbox relays depend on the producer, so fx stops them before this runs; Close
	// then only fails records a relay gave up waiting for, and those rows stay pending.
	lc.Append(fx.StopHook(p.Close))
	return p, nil
}

type runnerParams struct {
	fx.In
	LC       fx.Lifecycle
	Broker   *Broker
	Handlers []Handler `group:"kafka_handlers"`
	Cluster  *sqldb.Cluster
	Log      *slog.Logger
	Metrics  *ConsumerMetrics
}

func provideRunner(p runnerParams) (*Runner, error) {
	r, err := NewRunner(p.Broker, p.Handlers, p.Cluster.Main(), p.Log, p.Metrics, RunnerOptions{})
	if err != nil {
		return nil, err
	}
	p.LC.Append(fx.Hook{OnStart: r.Start, OnStop: r.Stop})
	return r, nil
}

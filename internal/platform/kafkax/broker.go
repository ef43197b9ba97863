package kafkax

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mallhq/mall/internal/platform/config"
)

// Broker is Mall's connection to Kafka: the seed brokers every client shares and an admin
// client for readiness and topic creation. With config kafka.embedded it also owns an
// in-process kfake cluster.
type Broker struct {
	cfg   config.Kafka
	log   *slog.Logger
	seeds []string
	fake  *kfake.Cluster
	admin *kgo.Client
}

// NewBroker connects to cfg.Brokers, or starts an in-process kfake cluster when
// cfg.Embedded. fakeOpts are added to the kfake options (tests use them for broker configs).
func NewBroker(cfg config.Kafka, log *slog.Logger, fakeOpts ...kfake.Opt) (*Broker, error) {
	b := &Broker{cfg: cfg, log: log, seeds: cfg.Brokers}
	if cfg.Embedded {
		opts := append([]kfake.Opt{
			kfake.NumBrokers(1),
			kfake.AllowAutoTopicCreation(),
			kfake.DefaultNumPartitions(cfg.Partitions),
		}, fakeOpts...)
		if cfg.EmbeddedPort > 0 {
			opts = append(opts, kfake.Ports(cfg.EmbeddedPort))
		}
		fake, err := kfake.NewCluster(opts...)
		if err != nil {
			return nil, fmt.Errorf("kafkax: start embedded broker: %w", err)
		}
		b.fake = fake
		b.seeds = fake.ListenAddrs()
	}
	if len(b.seeds) == 0 {
		b.Close()
		return nil, errors.New("kafkax: no brokers configured")
	}
	admin, err := kgo.NewClient(b.clientOpts("admin")...)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("kafkax: admin client: %w", err)
	}
	b.admin = admin
	return b, nil
}

// clientOpts are the options every client of this broker starts from.
func (b *Broker) clientOpts(role string) []kgo.Opt {
	id := b.cfg.ClientID
	if id == "" {
		id = "mall"
	}
	return []kgo.Opt{
		kgo.SeedBrokers(b.seeds...),
		kgo.ClientID(id + "-" + role),
		kgo.WithLogger(slogAdapter{b.log}),
	}
}

// Seeds returns the seed broker addresses.
func (b *Broker) Seeds() []string { return append([]string(nil), b.seeds...) }

// Fake returns the embedded kfake cluster, nil when connected to real brokers. Tests use it
// to inject broker failures.
func (b *Broker) Fake() *kfake.Cluster { return b.fake }

// Partitions is the partition count EnsureTopics creates topics with.
func (b *Broker) Partitions() int { return b.cfg.Partitions }

// Ping checks that a broker answers, for /readyz.
func (b *Broker) Ping(ctx context.Context) error {
	if err := b.admin.Ping(ctx); err != nil {
		return fmt.Errorf("kafkax: ping: %w", err)
	}
	return nil
}

// EnsureTopics creates the topics that do not exist yet with the configured partition
// count and the brokers' default replication factor.
func (b *Broker) EnsureTopics(ctx context.Context, topics ...string) error {
	// A topic named twice in one CreateTopics request fails it as a whole (INVALID_REQUEST),
	// and several handlers often share a topic.
	topics = slices.Compact(slices.Sorted(slices.Values(topics)))
	if len(topics) == 0 {
		return nil
	}
	parts := b.cfg.Partitions
	if parts <= 0 || parts > math.MaxInt32 {
		parts = 1
	}
	resp, err := kadm.NewClient(b.admin).CreateTopics(ctx, int32(parts), -1, nil, topics...)
	if err != nil {
		return fmt.Errorf("kafkax: create topics: %w", err)
	}
	var errs []error
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("kafkax: create topic %s: %w", r.Topic, r.Err))
		}
	}
	return errors.Join(errs...)
}

// Close closes the admin client and stops the embedded cluster.
func (b *Broker) Close() {
	if b.admin != nil {
		b.admin.Close()
	}
	if b.fake != nil {
		b.fake.Close()
	}
}

// slogAdapter lets franz-go log through slog. franz-go's info level narrates every
// connection and rebalance, so only warnings and errors get through.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (a slogAdapter) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelInfo
	switch level {
	case kgo.LogLevelError:
		lvl = slog.LevelError
	case kgo.LogLevelWarn:
		lvl = slog.LevelWarn
	case kgo.LogLevelDebug:
		lvl = slog.LevelDebug
	}
	a.l.Log(context.Background(), lvl, "kafka: "+msg, keyvals...)
}

// ProducerLinger is how long the producer waits to fill a batch: short, because the relay
// already hands it whole batches and waits for them.
const ProducerLinger = 5 * time.Millisecond

// Producer is the franz-go client the outbox relay publishes with.
type Producer struct{ *kgo.Client }

// NewProducer returns a producer configured for the outbox relay: idempotent (franz-go's
// default), acks from all in-sync replicas, unlimited retries and no delivery timeout, so a
// broker that refuses writes for a while only delays records, never fails or reorders
// them inside a partition. Callers must not cancel the context they produce with: a
// cancelled record can fail while a later one of the same aggregate succeeds. extra is
// appended to the options (tests).
func NewProducer(b *Broker, extra ...kgo.Opt) (*Producer, error) {
	opts := append(b.clientOpts("producer"),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(ProducerLinger),
		kgo.RecordRetries(math.MaxInt64),
		kgo.AllowAutoTopicCreation(),
	)
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafkax: producer: %w", err)
	}
	return &Producer{cl}, nil
}

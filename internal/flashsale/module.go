package flashsale

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/kafkax"
	mlog "github.com/mallhq/mall/internal/platform/log"
	"github.com/mallhq/mall/internal/platform/realtime"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/worker"
	"github.com/mallhq/mall/internal/stock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations of the module (flashsale_sales, flashsale_tickets on db.main).
var Migrations = sqldb.Embedded("flashsale", migrationFiles, "migrations", sqldb.OnMain)

// Module provides Service, the flash-sale routes, the intake and order consumers and the
// leader-only sweeper.
var Module = fx.Module("flashsale",
	fx.Provide(
		ConfigSection.From,
		provideService,
		func(s *service) Service { return s },
		httpx.AsRoutes(newHandler),
		kafkax.AsHandler(newIntakeHandler),
		kafkax.AsHandler(newOrdersHandler),
	),
	fx.Provide(worker.As(sweeper)),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("module", "flashsale") }),
	fx.Decorate(func(c *sqldb.Cluster) *sqldb.Cluster { return c.For("flashsale") }),
)

// Clock tells the module the time (tests move it).
type Clock func() time.Time

// Params is what New needs.
type Params struct {
	fx.In

	DB      *sqldb.Cluster
	IDs     *idgen.Generator
	Catalog catalog.Service
	Stock   stock.Service
	Orders  order.Service
	Redis   redis.UniversalClient
	Broker  *kafkax.Broker
	// Hub delivers ticket results to the buyer's own channel (nil: dropped).
	Hub      *realtime.Hub `optional:"true"`
	Config   Config
	Clock    Clock                 `optional:"true"`
	Registry prometheus.Registerer `optional:"true"`
	Log      *slog.Logger          `optional:"true"`
}

func provideService(lc fx.Lifecycle, p Params) (*service, error) {
	s, closeProducer, err := newService(p)
	if err != nil {
		return nil, err
	}
	lc.Append(fx.StopHook(closeProducer))
	return s, nil
}

// New returns the Service and a func that closes its Kafka producer.
func New(p Params) (Service, func(), error) { return newService(p) }

func newService(p Params) (*service, func(), error) {
	if p.DB == nil || p.IDs == nil || p.Catalog == nil || p.Stock == nil || p.Orders == nil || p.Redis == nil ||
		p.Broker == nil {
		return nil, nil, errors.New("flashsale: DB, IDs, Catalog, Stock, Orders, Redis and Broker are required")
	}
	p.DB = p.DB.For("flashsale")
	m, err := newMetrics(p.Registry)
	if err != nil {
		return nil, nil, err
	}
	// Its own producer: an attempt waits for its record at most produce_timeout (the
	// relay's producer retries forever, which an attempt's 202 must not).
	prod, err := kafkax.NewProducer(p.Broker, kgo.RecordDeliveryTimeout(p.Config.ProduceTimeout),
		kgo.ProduceRequestTimeout(p.Config.ProduceTimeout))
	if err != nil {
		return nil, nil, fmt.Errorf("flashsale: %w", err)
	}
	now := time.Now
	if p.Clock != nil {
		now = p.Clock
	}
	var hub Publisher = discard{}
	if p.Hub != nil {
		hub = p.Hub
	}
	db := p.DB.Main()
	s := &service{log: mlog.OrDiscard(p.Log), db: db, st: &store{db: db}, gate: &gate{rdb: p.Redis}, ids: p.IDs,
		catalog: p.Catalog, stock: p.Stock, orders: p.Orders, prod: prod, hub: hub, cfg: p.Config, m: m, now: now,
		intake: newPacer(p.Config.IntakeRate), soldOut: map[int64]time.Time{}, sales: map[int64]cachedSale{}}
	return s, prod.Close, nil
}

// sweepBatch bounds the sales one sweep closes.
const sweepBatch = 100

// sweeper closes ended sales (leader-only).
func sweeper(s *service) worker.Spec {
	if s.cfg.SweepInterval <= 0 {
		return worker.Spec{}
	}
	return worker.Spec{Name: "flashsale.sweeper", Interval: s.cfg.SweepInterval, Timeout: s.cfg.SweepInterval + 30*time.Second,
		Run: func(ctx context.Context) error {
			_, err := s.closeEnded(ctx, sweepBatch)
			return err
		}}
}

package auction

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/idgen"
	mlog "github.com/mallhq/mall/internal/platform/log"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/realtime"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/worker"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations of the module (auction_lots, auction_bids on db.main).
var Migrations = sqldb.Embedded("auction", migrationFiles, "migrations", sqldb.OnMain)

// Module provides Service, the auction routes and the scheduler.
var Module = fx.Module("auction",
	fx.Provide(
		ConfigSection.From,
		newService,
		func(s *service) Service { return s },
		httpx.AsRoutes(newHandler),
	),
	fx.Provide(worker.As(scheduler)),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("module", "auction") }),
	// The module's own database handles: no other module's call joins its transactions.
	fx.Decorate(func(c *sqldb.Cluster) *sqldb.Cluster { return c.For("auction") }),
)

// Params is what New needs.
type Params struct {
	fx.In

	DB      *sqldb.Cluster
	IDs     *idgen.Generator
	Catalog catalog.Service
	Orders  order.Service
	Redis   redis.UniversalClient
	// Hub serves /ws/auctions/:id and delivers messages to its watchers (nil: no
	// WebSocket route, messages dropped).
	Hub      *realtime.Hub `optional:"true"`
	Config   Config
	Outbox   outbox.Writer         `optional:"true"`
	Registry prometheus.Registerer `optional:"true"`
	Log      *slog.Logger          `optional:"true"`
}

// New returns the Service.
func New(p Params) (Service, error) { return newService(p) }

func newService(p Params) (*service, error) {
	if p.DB == nil || p.IDs == nil || p.Catalog == nil || p.Orders == nil || p.Redis == nil {
		return nil, errors.New("auction: DB, IDs, Catalog, Orders and Redis are required")
	}
	p.DB = p.DB.For("auction") // the module's own handles, also without fx
	log, ob := mlog.OrDiscard(p.Log), outbox.WriterOr(p.Outbox)
	cfg := p.Config
	var hub Broadcaster = discard{}
	if p.Hub != nil {
		hub = p.Hub
	}
	m, err := newMetrics(p.Registry)
	if err != nil {
		return nil, err
	}
	s := &service{log: log, db: p.DB.Main(), st: &store{db: p.DB.Main()}, ids: p.IDs, catalog: p.Catalog,
		orders: p.Orders, hub: p.Hub, outbox: ob, pub: &orderedPublisher{rdb: p.Redis, hub: hub}, cfg: cfg, m: m, now: time.Now}
	if !cfg.GateDisabled {
		s.gate = &gate{rdb: p.Redis, grace: cfg.GateGrace}
	}
	return s, nil
}

type metrics struct {
	bids            *prometheus.CounterVec
	bidSeconds      prometheus.Histogram
	batchSize       prometheus.Histogram
	gateMisses      prometheus.Counter
	gateErrors      prometheus.Counter
	broadcastErrors prometheus.Counter
	broadcastStale  prometheus.Counter
	ended           prometheus.Counter
	orderFailed     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		bids: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mall_auction_bids_total",
			Help: "Bid attempts by outcome: accepted, known_rejected (this replica's last committed state of the lot turned it away), gate_rejected (the Redis gate did), rejected (MySQL did)."}, []string{"outcome"}),
		bidSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mall_auction_bid_commit_seconds",
			Help: "Time from receiving an accepted bid to its commit.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 12)}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mall_auction_bid_batch_size",
			Help:    "Bids decided per lot transaction (concurrent bids on one lot share one; bid_batch.go).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9)}),
		gateMisses: prometheus.NewCounter(prometheus.CounterOpts{Name: "mall_auction_gate_misses_total",
			Help: "Bids that found no gate state in Redis (rebuilt from MySQL)."}),
		gateErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "mall_auction_gate_errors_total",
			Help: "Redis gate calls that failed (bids then go to MySQL unfiltered)."}),
		broadcastErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "mall_auction_broadcast_errors_total",
			Help: "Messages to auction watchers that could not be published."}),
		broadcastStale: prometheus.NewCounter(prometheus.CounterOpts{Name: "mall_auction_broadcast_stale_total",
			Help: "Changes not broadcast because a newer version of the lot went out first."}),
		ended: prometheus.NewCounter(prometheus.CounterOpts{Name: "mall_auction_ended_total", Help: "Lots ended."}),
		orderFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "mall_auction_order_failed_total",
			Help: "Winners whose order the order module refused (no address, no stock): need an operator."}),
	}
	for _, o := range []string{"accepted", "known_rejected", "gate_rejected", "rejected"} {
		m.bids.WithLabelValues(o) // exported from the start, at 0
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.bids, m.bidSeconds, m.batchSize, m.gateMisses, m.gateErrors, m.broadcastErrors,
			m.broadcastStale, m.ended, m.orderFailed} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// scheduler runs Tick every ScheduleInterval on every replica; the compare-and-set steps
// make each start, end and order happen once however many replicas tick.
func scheduler(s *service) worker.Spec {
	if s.cfg.ScheduleInterval <= 0 {
		return worker.Spec{}
	}
	return worker.Spec{Name: "auction.scheduler", Interval: s.cfg.ScheduleInterval, Timeout: time.Minute,
		Run: func(ctx context.Context) error {
			if err := s.Tick(ctx); err != nil {
				return fmt.Errorf("auction: scheduler: %w", err)
			}
			return nil
		}}
}

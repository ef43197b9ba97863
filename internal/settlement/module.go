package settlement

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/kafkax"
	mlog "github.com/mallhq/mall/internal/platform/log"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/worker"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations of the module: the ledger, balances and statements on db.main.
var Migrations = sqldb.Embedded("settlement", migrationFiles, "migrations", sqldb.OnMain)

// Module provides Service, the merchant and admin settlement routes, the ledger consumer
// (group mall.settlement.ledger), the release worker (leader-only), and the order module's
// default commission rate from settlement.default_commission_bp.
var Module = fx.Module("settlement",
	fx.Provide(
		ConfigSection.From,
		commissionDefault,
		newService,
		func(s *service) Service { return s },
		httpx.AsRoutes(newHandler),
		kafkax.AsHandler(newLedgerHandler),
	),
	fx.Provide(worker.As(releaser)),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("module", "settlement") }),
	// The module's own database handles: no other module's call joins its transactions.
	fx.Decorate(func(c *sqldb.Cluster) *sqldb.Cluster { return c.For("settlement") }),
)

// Params is what New needs.
type Params struct {
	fx.In

	DB     *sqldb.Cluster
	IDs    *idgen.Generator
	Orders order.Service
	Config Config
	// Clock replaces time.Now (tests move time past the hold period).
	Clock    Clock                 `optional:"true"`
	Registry prometheus.Registerer `optional:"true"`
	Log      *slog.Logger          `optional:"true"`
}

// New returns the Service.
func New(p Params) (Service, error) { return newService(p) }

func newService(p Params) (*service, error) {
	if p.DB == nil || p.IDs == nil || p.Orders == nil {
		return nil, errors.New("settlement: DB, IDs and Orders are required")
	}
	p.DB = p.DB.For("settlement") // the module's own handles, also without fx
	m, err := newMetrics(p.Registry)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if p.Clock != nil {
		now = p.Clock
	}
	db := p.DB.Main()
	return &service{log: mlog.OrDiscard(p.Log), db: db, st: &store{db: db}, ids: p.IDs, orders: p.Orders, cfg: p.Config,
		m: m, now: now}, nil
}

type metrics struct {
	postings   *prometheus.CounterVec
	duplicates prometheus.Counter
	released   prometheus.Counter
	statements prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		postings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mall_settlement_postings_total",
			Help: "Ledger postings of order facts by kind (completion, refund)."}, []string{"kind"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "mall_settlement_duplicate_facts_total",
			Help: "Order facts already posted (the same completion or refund under another event)."}),
		released: prometheus.NewCounter(prometheus.CounterOpts{Name: "mall_settlement_released_entries_total",
			Help: "Pending ledger entries made available after the hold period."}),
		statements: prometheus.NewCounter(prometheus.CounterOpts{Name: "mall_settlement_statements_total",
			Help: "Statements issued."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.postings, m.duplicates, m.released, m.statements} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// releaser makes due pending money available on one replica of the cluster (leader-only:
// the moves are per entry and one mover keeps the postings few and unraced).
func releaser(s *service) worker.Spec {
	if s.cfg.ReleaseInterval <= 0 {
		return worker.Spec{}
	}
	return worker.Spec{Name: "settlement.release", Interval: s.cfg.ReleaseInterval, Leader: true, RunAtStart: true,
		Run: func(ctx context.Context) error {
			if _, err := s.Release(ctx); err != nil {
				return fmt.Errorf("settlement: release worker: %w", err)
			}
			return nil
		}}
}

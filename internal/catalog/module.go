package catalog

import (
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/merchant"
	"github.com/mallhq/mall/internal/platform/cache"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/kafkax"
	mlog "github.com/mallhq/mall/internal/platform/log"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/stock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations of the module (catalog_* on db.main); the composition root lists them.
var Migrations = sqldb.Embedded("catalog", migrationFiles, "migrations", sqldb.OnMain)

// Module provides Service, the catalog routes and the detail cache's consumer.
var Module = fx.Module("catalog",
	fx.Provide(
		ConfigSection.From,
		New,
		httpx.AsRoutes(newHandler),
		kafkax.AsHandler(newDetailCacheHandler),
	),
	searchModule,
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("module", "catalog") }),
	// The module's own database handles: no other module's call joins its transactions.
	fx.Decorate(func(c *sqldb.Cluster) *sqldb.Cluster { return c.For("catalog") }),
)

// Params is what New needs.
type Params struct {
	fx.In

	DB    *sqldb.Cluster
	IDs   *idgen.Generator
	Stock stock.Service
	// Redis and Bus (cache.Module) hold the public detail cache.
	Redis redis.UniversalClient
	Bus   *cache.Bus
	// Merchants hides suspended merchants' products from the public detail; without it
	// every merchant counts as active.
	Merchants merchant.Service `optional:"true"`
	Config    Config
	Outbox    outbox.Writer `optional:"true"`
	Log       *slog.Logger  `optional:"true"`
}

// New returns the Service.
func New(p Params) (Service, error) {
	if p.DB == nil || p.IDs == nil || p.Stock == nil || p.Redis == nil || p.Bus == nil {
		return nil, errors.New("catalog: DB, IDs, Stock, Redis and Bus are required")
	}
	p.DB = p.DB.For("catalog") // the module's own handles, also without fx
	log, ob := mlog.OrDiscard(p.Log), outbox.WriterOr(p.Outbox)
	cfg := p.Config
	detail, err := newDetailCache(p.Redis, p.Bus, cfg.DetailCache)
	if err != nil {
		return nil, fmt.Errorf("catalog: detail cache: %w", err)
	}
	return &service{log: log, st: &store{cl: p.DB}, cl: p.DB, ids: p.IDs, stock: p.Stock, merchants: p.Merchants,
		outbox: ob, cfg: cfg, detail: detail, categoryRates: &categoryRates{now: time.Now}, now: time.Now}, nil
}

// newDetailCacheHandler is the consumer that invalidates cached product details on catalog
// and stock events.
func newDetailCacheHandler(svc Service) (kafkax.Handler, error) {
	s, ok := svc.(*service)
	if !ok {
		return kafkax.Handler{}, fmt.Errorf("catalog: detail cache consumer needs the catalog's own Service, got %T", svc)
	}
	return s.detailCacheHandler(), nil
}

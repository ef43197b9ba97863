package stock

import (
	"embed"
	"errors"
	"log/slog"
	"time"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/platform/httpx"
	mlog "github.com/mallhq/mall/internal/platform/log"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/worker"
	"github.com/prometheus/client_golang/prometheus"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations of the module (stock_levels on db.main); the composition root lists them.
var Migrations = sqldb.Embedded("stock", migrationFiles, "migrations", sqldb.OnMain)

// Module provides Service and the merchant stock routes.
var Module = fx.Module("stock",
	fx.Provide(
		ConfigSection.From,
		New,
		httpx.AsRoutes(newHandler),
	),
	fx.Provide(worker.As(sweeper)),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("module", "stock") }),
	// The module's own database handles: no other module's call joins its transactions.
	fx.Decorate(func(c *sqldb.Cluster) *sqldb.Cluster { return c.For("stock") }),
)

// Params is what New needs.
type Params struct {
	fx.In

	DB       *sqldb.Cluster
	Config   Config
	Registry prometheus.Registerer `optional:"true"`
	Outbox   outbox.Writer         `optional:"true"`
	Log      *slog.Logger          `optional:"true"`
}

// New returns the Service.
func New(p Params) (Service, error) {
	if p.DB == nil {
		return nil, errors.New("stock: DB is required")
	}
	p.DB = p.DB.For("stock") // the module's own handles, also without fx
	log, ob := mlog.OrDiscard(p.Log), outbox.WriterOr(p.Outbox)
	cfg := p.Config
	m, err := newMetrics(p.Registry)
	if err != nil {
		return nil, err
	}
	s := &service{log: log, st: &store{cl: p.DB}, cl: p.DB, outbox: ob, cfg: cfg, m: m, now: time.Now}
	s.batch = s.newBatchQueue()
	return s, nil
}

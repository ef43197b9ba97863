package catalog

import (
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"time"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/merchant"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/stock"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

func migrationsFS() fs.FS {
	f, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	return f
}

// Migrations of the module (catalog_* on db.main); the composition root lists them.
var Migrations = sqldb.Migrations{Module: "catalog", FS: migrationsFS(), Target: sqldb.OnMain}

// ReviewRequired is the default of Config.ReviewRequired: submitted products wait for an
// operator. (A config key would be catalog.review_required.)
const ReviewRequired = true

// Config is the module's configuration.
type Config struct {
	// ReviewRequired makes submit go to pending_review; false puts products on sale at once.
	ReviewRequired bool
}

// Module provides Service and the catalog routes.
var Module = fx.Module("catalog",
	fx.Provide(
		New,
		httpx.AsRoutes(newHandler),
	),
	searchModule,
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("module", "catalog") }),
)

// Params is what New needs.
type Params struct {
	fx.In

	DB    *sqldb.Cluster
	IDs   *idgen.Generator
	Stock stock.Service
	// Merchants hides suspended merchants' products from the public detail; without it
	// every merchant counts as active.
	Merchants merchant.Service `optional:"true"`
	Config    *Config          `optional:"true"`
	Outbox    outbox.Writer    `optional:"true"`
	Log       *slog.Logger     `optional:"true"`
}

// New returns the Service.
func New(p Params) (Service, error) {
	if p.DB == nil || p.IDs == nil || p.Stock == nil {
		return nil, errors.New("catalog: DB, IDs and Stock are required")
	}
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ob := p.Outbox
	if ob == nil {
		ob = outbox.NewWriter()
	}
	cfg := Config{ReviewRequired: ReviewRequired}
	if p.Config != nil {
		cfg = *p.Config
	}
	return &service{log: log, st: &store{cl: p.DB}, cl: p.DB, ids: p.IDs, stock: p.Stock, merchants: p.Merchants,
		outbox: ob, cfg: cfg, now: time.Now}, nil
}

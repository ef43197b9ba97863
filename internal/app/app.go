// Package app is the composition root: it wires the platform and every domain module
// into one fx application for `mall serve`, and lists the migrations for `mall migrate`.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/mallhq/mall/internal/auction"
	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/flashsale"
	"github.com/mallhq/mall/internal/live"
	"github.com/mallhq/mall/internal/merchant"
	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/cache"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/idempotency"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/kafkax"
	"github.com/mallhq/mall/internal/platform/mail"
	"github.com/mallhq/mall/internal/platform/migrations"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/ratelimit"
	"github.com/mallhq/mall/internal/platform/realtime"
	"github.com/mallhq/mall/internal/platform/redisx"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/worker"
	"github.com/mallhq/mall/internal/settlement"
	"github.com/mallhq/mall/internal/stock"
	"github.com/mallhq/mall/internal/user"
)

// Migrations lists every module's migrations; the platform's come first.
func Migrations() []sqldb.Migrations {
	return []sqldb.Migrations{
		migrations.Platform,
		user.Migrations, user.ShardMigrations,
		merchant.Migrations,
		stock.Migrations,
		catalog.Migrations,
		order.Migrations,
		live.Migrations,
		auction.Migrations,
		settlement.Migrations,
		flashsale.Migrations,
	}
}

// ConfigSections are the modules' configuration sections: LoadConfig validates them all at
// once, and each module provides its own Config from the loaded Config with its section.
func ConfigSections() []config.Part {
	return []config.Part{
		mail.ConfigSection,
		user.ConfigSection,
		catalog.ConfigSection,
		stock.ConfigSection,
		order.ConfigSection, order.PaymentsSection,
		live.ConfigSection,
		auction.ConfigSection,
		settlement.ConfigSection,
		flashsale.ConfigSection,
	}
}

// LoadConfig is config.Load with every module's section: the defaults, file (when not
// empty) and the environment, with every bad key of the platform and the modules in one
// error.
func LoadConfig(file string) (config.Config, error) {
	return config.Load(file, ConfigSections()...)
}

// LoadDevConfig is LoadConfig with the development settings (configs/development.yaml)
// between the defaults and file: the test harnesses' base (make run and the bench pass the
// file to the binary instead).
func LoadDevConfig(file string) (config.Config, error) {
	return config.LoadDev(file, ConfigSections()...)
}

// Options is the whole application for `mall serve`.
func Options(cfg config.Config, log *slog.Logger) fx.Option {
	return fx.Options(
		fx.Supply(cfg, log),
		// fx's default 15s stop timeout would cut the HTTP drain short.
		fx.StopTimeout(cfg.App.ShutdownTimeout+cfg.HTTP.DrainDelay+10*time.Second),
		fx.WithLogger(func() fxevent.Logger {
			// fx's own events are noise at info level; its errors still surface through Start.
			l := &fxevent.SlogLogger{Logger: log.With("component", "fx")}
			l.UseLogLevel(slog.LevelDebug)
			return l
		}),
		Platform,
		user.Module,
		merchant.Module,
		stock.Module,
		catalog.Module,
		order.Module,
		order.Gateways,
		live.Module,
		auction.Module,
		settlement.Module,
		flashsale.Module,
	)
}

// Platform is the infrastructure every module stands on.
var Platform = fx.Options(
	fx.Provide(
		newRegistry,
		openCluster,
		newIDGenerator,
		workerScope,
		fx.Annotate(mysqlChecks, fx.ResultTags(`group:"readiness,flatten"`)),
	),
	redisx.Module,
	cache.Module,
	kafkax.Module,
	outbox.Module,
	ratelimit.Module,
	idempotency.Module,
	realtime.Module,
	httpx.Module,
	worker.Module,
	mail.Module,
)

type registryOut struct {
	fx.Out
	Registry   *prometheus.Registry
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
}

func newRegistry() registryOut {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return registryOut{Registry: r, Registerer: r, Gatherer: r}
}

// openCluster connects to every database, applies pending migrations when configured to,
// and exports connection-pool metrics.
func openCluster(lc fx.Lifecycle, cfg config.Config, reg prometheus.Registerer, log *slog.Logger) (*sqldb.Cluster, error) {
	ctx := context.Background()
	cl, err := sqldb.Open(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	lc.Append(fx.StopHook(cl.Close))
	if cfg.DB.MigrateOnStart {
		if err := cl.Migrate(ctx, Migrations(), log); err != nil {
			cl.Close()
			return nil, err
		}
	}
	for _, d := range cl.All() {
		reg.MustRegister(collectors.NewDBStatsCollector(d.DB.DB, d.Name))
	}
	return cl, nil
}

// workerScope names the cluster for the leader-only workers' leases: the replicas sharing
// the main database are one cluster (and test apps on one Redis keep apart by it).
func workerScope(cfg config.Config) (worker.Scope, error) {
	mc, err := mysql.ParseDSN(cfg.DB.Main)
	if err != nil {
		return "", fmt.Errorf("db.main: %w", err)
	}
	return worker.Scope(mc.DBName), nil
}

func mysqlChecks(cl *sqldb.Cluster) []httpx.Check {
	var out []httpx.Check
	for _, d := range cl.All() {
		out = append(out, httpx.Check{Name: "mysql:" + d.Name, Check: d.PingContext})
	}
	return out
}

// newIDGenerator uses app.node_id when set, otherwise leases a node number in Redis for
// as long as the process runs.
func newIDGenerator(lc fx.Lifecycle, cfg config.Config, rdb redis.UniversalClient, log *slog.Logger) (*idgen.Generator, error) {
	if cfg.App.NodeID >= 0 {
		return idgen.New(cfg.App.NodeID)
	}
	lease, err := idgen.AcquireLease(context.Background(), rdb)
	if err != nil {
		return nil, err
	}
	log.Info("id generator node leased", "node", lease.Node)
	lc.Append(fx.StopHook(lease.Release))
	return idgen.New(lease.Node)
}

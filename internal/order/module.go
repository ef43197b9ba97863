package order

import (
	"embed"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/order/payment"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/kafkax"
	mlog "github.com/mallhq/mall/internal/platform/log"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/realtime"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/worker"
	"github.com/mallhq/mall/internal/stock"
	"github.com/mallhq/mall/internal/user"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations of the module: carts, checkouts, orders, items and payments on every shard.
var Migrations = sqldb.Embedded("order", migrationFiles, "migrations", sqldb.OnShards)

// ProvidersGroup is the fx value group of payment gateways: provide each with AsProvider.
const ProvidersGroup = "payment_providers"

// AsProvider annotates a constructor returning a payment.Provider for the order module:
//
//	fx.Provide(order.AsProvider(sandbox.New))
func AsProvider(f any) any {
	return fx.Annotate(f, fx.As(new(payment.Provider)), fx.ResultTags(`group:"`+ProvidersGroup+`"`))
}

// Module provides Service, the storefront, merchant and payment routes, the stock
// reactions (consumer group mall.order.stock), the automatic refunds (mall.order.refunds),
// the payment-timeout sweeper, the auto-completion of shipped orders and the monthly
// partition maintenance.
var Module = fx.Module("order",
	fx.Provide(
		ConfigSection.From,
		PaymentsSection.From,
		newService,
		func(s *service) Service { return s },
		httpx.AsRoutes(newHandler),
		kafkax.AsHandler(newStockHandler),
		kafkax.AsHandler(newRefundsHandler),
	),
	fx.Provide(worker.As(partitions), worker.As(timeoutSweeper), worker.As(autoCompleter), worker.As(refundRetrier)),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("module", "order") }),
	// The module's own database handles: no other module's call joins its transactions.
	fx.Decorate(func(c *sqldb.Cluster) *sqldb.Cluster { return c.For("order") }),
)

// Params is what New needs.
type Params struct {
	fx.In

	DB        *sqldb.Cluster
	IDs       *idgen.Generator
	Catalog   catalog.Service
	Stock     stock.Service
	Users     user.Service
	Providers []payment.Provider `group:"payment_providers"`
	Config    Config
	Payments  PaymentsConfig
	// Commission is the platform's default commission rate (settlement provides it from
	// settlement.default_commission_bp); 0 without the settlement module.
	Commission CommissionDefault `optional:"true"`
	// Hub pushes each order's status changes to its buyer's own channel (/ws/me); nil:
	// none.
	Hub      *realtime.Hub         `optional:"true"`
	Outbox   outbox.Writer         `optional:"true"`
	Registry prometheus.Registerer `optional:"true"`
	Log      *slog.Logger          `optional:"true"`
}

// New returns the Service.
func New(p Params) (Service, error) { return newService(p) }

func newService(p Params) (*service, error) {
	if p.DB == nil || p.IDs == nil || p.Catalog == nil || p.Stock == nil || p.Users == nil {
		return nil, errors.New("order: DB, IDs, Catalog, Stock and Users are required")
	}
	p.DB = p.DB.For("order") // the module's own handles, also without fx
	log, ob := mlog.OrDiscard(p.Log), outbox.WriterOr(p.Outbox)
	if p.Hub != nil {
		ob = statusPusher{Writer: ob, hub: p.Hub, log: log}
	}
	cfg := p.Config
	providers := map[string]payment.Provider{}
	for _, pr := range p.Providers {
		if pr == nil {
			continue
		}
		if _, dup := providers[pr.Name()]; dup {
			return nil, errors.New("order: two payment providers named " + pr.Name())
		}
		providers[pr.Name()] = pr
	}
	m, err := newMetrics(p.Registry)
	if err != nil {
		return nil, err
	}
	return &service{log: log, cl: p.DB, st: &store{}, ids: p.IDs, catalog: p.Catalog, stock: p.Stock,
		users: p.Users, providers: providers, outbox: ob, cfg: cfg, sandbox: p.Payments.Sandbox.Enabled, commission: int(p.Commission), m: m,
		now: time.Now}, nil
}

type metrics struct {
	stockLost        prometheus.Counter
	paidAfterCancel  prometheus.Counter
	timedOut         prometheus.Counter
	badNotifications prometheus.Counter
	paymentMismatch  prometheus.Counter
	mismatchRefunded prometheus.Counter
	refundsParked    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		stockLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "mall_order_paid_stock_lost_total",
			Help: "Paid orders whose stock was gone when the payment arrived (need a refund)."}),
		paidAfterCancel: prometheus.NewCounter(prometheus.CounterOpts{Name: "mall_order_paid_after_cancel_total",
			Help: "Orders a payment covered that were cancelled before it arrived (need a refund)."}),
		timedOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "mall_order_payment_timeouts_total",
			Help: "Unpaid orders cancelled at the payment timeout."}),
		badNotifications: prometheus.NewCounter(prometheus.CounterOpts{Name: "mall_order_bad_payment_notifications_total",
			Help: "Payment notifications refused (signature, unknown payment, amount)."}),
		paymentMismatch: prometheus.NewCounter(prometheus.CounterOpts{Name: "mall_order_payment_amount_mismatch_total",
			Help: "Signed success notifications stating another amount than the payment's (refunded automatically)."}),
		mismatchRefunded: prometheus.NewCounter(prometheus.CounterOpts{Name: "mall_order_payment_mismatch_refunds_total",
			Help: "Payments with a mismatched amount whose money was given back through the gateway."}),
		refundsParked: prometheus.NewCounter(prometheus.CounterOpts{Name: "mall_order_refunds_parked_total",
			Help: "Automatic refunds the gateway refused, parked for an operator (GET /api/v1/admin/refunds/failed)."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.stockLost, m.paidAfterCancel, m.timedOut, m.badNotifications, m.paymentMismatch, m.mismatchRefunded, m.refundsParked} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

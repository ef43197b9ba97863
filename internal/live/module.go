package live

import (
	"embed"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/merchant"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/idgen"
	mlog "github.com/mallhq/mall/internal/platform/log"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/ratelimit"
	"github.com/mallhq/mall/internal/platform/realtime"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/worker"
	"github.com/mallhq/mall/internal/user"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations of the module (live_rooms on db.main); the composition root lists them.
var Migrations = sqldb.Embedded("live", migrationFiles, "migrations", sqldb.OnMain)

// Module provides Service, the live routes, the chat rate-limit class and the viewer-count
// pusher.
var Module = fx.Module("live",
	fx.Provide(
		ConfigSection.From,
		New,
		// The application's hub is the rooms' broadcaster.
		func(h *realtime.Hub) Broadcaster { return h },
		httpx.AsRoutes(newHandler),
		fx.Annotate(chatClass, fx.ResultTags(`group:"ratelimit.classes"`)),
		fx.Annotate(rtmpClass, fx.ResultTags(`group:"ratelimit.classes"`)),
	),
	fx.Provide(worker.As(viewerPusher)),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("module", "live") }),
	// The module's own database handles: no other module's call joins its transactions.
	fx.Decorate(func(c *sqldb.Cluster) *sqldb.Cluster { return c.For("live") }),
)

// chatClass is the per-user chat limit from live.chat_per_minute and live.chat_burst.
func chatClass(c Config) ratelimit.Class {
	return ratelimit.Class{Name: ChatClass, Limit: ratelimit.Limit{Rate: c.ChatPerMinute, Period: time.Minute, Burst: c.ChatBurst}}
}

// Params is what New needs.
type Params struct {
	fx.In

	DB      *sqldb.Cluster
	IDs     *idgen.Generator
	Config  Config
	Catalog catalog.Service
	Users   user.Service
	// Merchants says whether a merchant is suspended (its rooms neither publish nor show).
	Merchants merchant.Service `optional:"true"`
	// Hub delivers WebSocket messages; nil: nothing is broadcast (tests of the REST side).
	Hub      Broadcaster           `optional:"true"`
	Limiter  *ratelimit.Limiter    `optional:"true"`
	Registry prometheus.Registerer `optional:"true"`
	Outbox   outbox.Writer         `optional:"true"`
	Log      *slog.Logger          `optional:"true"`
}

// New returns the Service.
func New(p Params) (Service, error) {
	if p.DB == nil || p.IDs == nil || p.Catalog == nil || p.Users == nil {
		return nil, errors.New("live: DB, IDs, Catalog and Users are required")
	}
	p.DB = p.DB.For("live") // the module's own handles, also without fx
	return newService(p)
}

func newService(p Params) (*service, error) {
	log, ob := mlog.OrDiscard(p.Log), outbox.WriterOr(p.Outbox)
	m, err := newMetrics(p.Registry)
	if err != nil {
		return nil, err
	}
	return &service{log: log, st: &store{cl: p.DB}, cl: p.DB, ids: p.IDs, outbox: ob, catalog: p.Catalog,
		merch: p.Merchants, users: p.Users, limiter: p.Limiter, hub: p.Hub, cfg: p.Config, m: m, now: time.Now}, nil
}

type metrics struct {
	publish      *prometheus.CounterVec
	transitions  *prometheus.CounterVec
	chat         *prometheus.CounterVec
	viewerPushes prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		publish: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mall_live_publish_decisions_total",
			Help: "nginx-rtmp publish decisions: allowed, refused, error (on_publish) and cut (on_update)."}, []string{"result"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mall_live_room_events_total",
			Help: "Live room changes by event type."}, []string{"event"}),
		chat: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mall_live_chat_messages_total",
			Help: "Chat messages by outcome: sent, anonymous, invalid, closed, rate_limited."}, []string{"result"}),
		viewerPushes: prometheus.NewCounter(prometheus.CounterOpts{Name: "mall_live_viewer_pushes_total",
			Help: "Viewer counts pushed to live rooms by this replica."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.publish, m.transitions, m.chat, m.viewerPushes} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

package live

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/merchant"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/idgen"
	mlog "github.com/mallhq/mall/internal/platform/log"
	"github.com/mallhq/mall/internal/platform/outbox"
	"github.com/mallhq/mall/internal/platform/ratelimit"
	"github.com/mallhq/mall/internal/platform/realtime"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/user"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations of the module (live_rooms on db.main); the composition root lists them.
var Migrations = sqldb.Embedded("live", migrationFiles, "migrations", sqldb.OnMain)

// Config is the module's configuration (live.* keys).
type Config struct {
	// RTMPSecret authenticates nginx-rtmp's notifications.
	RTMPSecret string
	// RTMPURL is the ingest base shown to merchants (rtmp://host:port/app).
	RTMPURL string
	// App is the RTMP application publishers must use: RTMPURL's last path segment.
	App string
	// HLSURL is the public playback base.
	HLSURL string
	// HLSPushURL is the ingest's own HLS application (rtmp://127.0.0.1:1935/hls) and
	// HLSApp its application name (the last path segment).
	HLSPushURL      string
	HLSApp          string
	ChatMaxRunes    int
	ChatPerMinute   int
	ChatBurst       int
	ViewersInterval time.Duration
}

// HLSURLOf is the room's playlist URL.
func (c Config) HLSURLOf(roomID int64) string {
	return strings.TrimRight(c.HLSURL, "/") + "/" + PlaybackName(roomID) + ".m3u8"
}

// ConfigFrom builds the module's Config from live.*.
func ConfigFrom(c config.Live) (*Config, error) {
	u, err := url.Parse(c.RTMPURL)
	if err != nil || u.Scheme != "rtmp" || u.Host == "" {
		return nil, fmt.Errorf("live.rtmp_url: %q is not an rtmp://host/app URL", c.RTMPURL)
	}
	app := path.Base(strings.TrimRight(u.Path, "/"))
	if app == "." || app == "/" || app == "" {
		return nil, fmt.Errorf("live.rtmp_url: %q names no application (rtmp://host:port/live)", c.RTMPURL)
	}
	pu, err := url.Parse(c.HLSPushURL)
	if err != nil || pu.Scheme != "rtmp" || pu.Host == "" {
		return nil, fmt.Errorf("live.hls_push_url: %q is not an rtmp://host/app URL", c.HLSPushURL)
	}
	hlsApp := path.Base(strings.TrimRight(pu.Path, "/"))
	if hlsApp == "." || hlsApp == "/" || hlsApp == "" || hlsApp == app {
		return nil, fmt.Errorf("live.hls_push_url: %q must name an application other than %q", c.HLSPushURL, app)
	}
	return &Config{HLSApp: hlsApp, RTMPSecret: c.RTMPSecret, RTMPURL: strings.TrimRight(c.RTMPURL, "/"), App: app, HLSURL: c.HLSURL,
		HLSPushURL:   strings.TrimRight(c.HLSPushURL, "/"),
		ChatMaxRunes: c.ChatMaxRunes, ChatPerMinute: c.ChatPerMinute, ChatBurst: c.ChatBurst,
		ViewersInterval: c.ViewersInterval}, nil
}

// Module provides Service, the live routes, the chat rate-limit class and the viewer-count
// pusher.
var Module = fx.Module("live",
	fx.Provide(
		func(c config.Config) (*Config, error) { return ConfigFrom(c.Live) },
		New,
		// The application's hub is the rooms' broadcaster.
		func(h *realtime.Hub) Broadcaster { return h },
		httpx.AsRoutes(newHandler),
		fx.Annotate(chatClass, fx.ResultTags(`group:"ratelimit.classes"`)),
		fx.Annotate(rtmpClass, fx.ResultTags(`group:"ratelimit.classes"`)),
	),
	fx.Invoke(startPusher),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("module", "live") }),
	// The module's own database handles: no other module's call joins its transactions.
	fx.Decorate(func(c *sqldb.Cluster) *sqldb.Cluster { return c.For("live") }),
)

// chatClass is the per-user chat limit from live.chat_per_minute and live.chat_burst.
func chatClass(c *Config) ratelimit.Class {
	return ratelimit.Class{Name: ChatClass, Limit: ratelimit.Limit{Rate: c.ChatPerMinute, Period: time.Minute, Burst: c.ChatBurst}}
}

// Params is what New needs.
type Params struct {
	fx.In

	DB      *sqldb.Cluster
	IDs     *idgen.Generator
	Config  *Config
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
	if p.DB == nil || p.IDs == nil || p.Config == nil || p.Catalog == nil || p.Users == nil {
		return nil, errors.New("live: DB, IDs, Config, Catalog and Users are required")
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
		merch: p.Merchants, users: p.Users, limiter: p.Limiter, hub: p.Hub, cfg: *p.Config, m: m, now: time.Now}, nil
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

type pusherParams struct {
	fx.In
	LC    fx.Lifecycle
	Svc   Service
	Redis redis.UniversalClient
	Log   *slog.Logger
}

// startPusher runs the viewer-count pusher while the application runs (when there is a hub).
func startPusher(p pusherParams) {
	s, ok := p.Svc.(*service)
	if !ok || s.hub == nil {
		return
	}
	vp := &viewerPusher{svc: s, rdb: p.Redis, interval: s.cfg.ViewersInterval, log: p.Log}
	p.LC.Append(fx.Hook{
		OnStart: func(context.Context) error { vp.start(); return nil },
		OnStop:  func(context.Context) error { vp.close(); return nil },
	})
}

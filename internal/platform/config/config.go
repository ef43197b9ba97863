// Package config loads Mall's configuration: the embedded defaults (configs/mall.yaml), an
// optional file, then MALL_* environment variables. Validation failures name the key.
package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/mallhq/mall/configs"
)

type Config struct {
	App         App         `mapstructure:"app"`
	Log         Log         `mapstructure:"log"`
	HTTP        HTTP        `mapstructure:"http"`
	DB          DB          `mapstructure:"db"`
	Redis       Redis       `mapstructure:"redis"`
	Kafka       Kafka       `mapstructure:"kafka"`
	Outbox      Outbox      `mapstructure:"outbox"`
	RateLimit   RateLimit   `mapstructure:"ratelimit"`
	Idempotency Idempotency `mapstructure:"idempotency"`
	Search      Search      `mapstructure:"search"`
	Catalog     Catalog     `mapstructure:"catalog"`
	Stock       Stock       `mapstructure:"stock"`
	Archive     Archive     `mapstructure:"archive"`
	Auth        Auth        `mapstructure:"auth"`
	Order       Order       `mapstructure:"order"`
	Payments    Payments    `mapstructure:"payments"`
	Live        Live        `mapstructure:"live"`
	Auction     Auction     `mapstructure:"auction"`
	Realtime    Realtime    `mapstructure:"realtime"`
}

type App struct {
	Env             string        `mapstructure:"env"`
	NodeID          int           `mapstructure:"node_id"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
}

type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

type HTTP struct {
	Addr              string        `mapstructure:"addr"`
	ReadTimeout       time.Duration `mapstructure:"read_timeout"`
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	WriteTimeout      time.Duration `mapstructure:"write_timeout"`
	IdleTimeout       time.Duration `mapstructure:"idle_timeout"`
	DrainDelay        time.Duration `mapstructure:"drain_delay"`
	BodyLimit         string        `mapstructure:"body_limit"`
	CORSOrigins       []string      `mapstructure:"cors_origins"`
	TrustedProxies    []string      `mapstructure:"trusted_proxies"`
	// DebugAddr serves net/http/pprof on a listener of its own; empty = off.
	DebugAddr string `mapstructure:"debug_addr"`
}

type DB struct {
	Main            string        `mapstructure:"main"`
	Shards          []string      `mapstructure:"shards"`
	MaxOpenConns    int           `mapstructure:"max_open_conns"`
	MaxIdleConns    int           `mapstructure:"max_idle_conns"`
	ConnMaxLifetime time.Duration `mapstructure:"conn_max_lifetime"`
	MigrateOnStart  bool          `mapstructure:"migrate_on_start"`
}

type Redis struct {
	Addr     string `mapstructure:"addr"`
	Password string `mapstructure:"password"`
	DB       int    `mapstructure:"db"`
	PoolSize int    `mapstructure:"pool_size"`
}

type Kafka struct {
	Embedded   bool     `mapstructure:"embedded"`
	Brokers    []string `mapstructure:"brokers"`
	ClientID   string   `mapstructure:"client_id"`
	Partitions int      `mapstructure:"partitions"`
}

type Outbox struct {
	BatchSize    int           `mapstructure:"batch_size"`
	PollInterval time.Duration `mapstructure:"poll_interval"`
	MaxAttempts  int           `mapstructure:"max_attempts"`
	BackoffBase  time.Duration `mapstructure:"backoff_base"`
	BackoffMax   time.Duration `mapstructure:"backoff_max"`
}

type RateLimit struct {
	Enabled          bool `mapstructure:"enabled"`
	DefaultPerMinute int  `mapstructure:"default_per_minute"`
	AuthPerMinute    int  `mapstructure:"auth_per_minute"`
}

type Idempotency struct {
	TTL         time.Duration `mapstructure:"ttl"`
	LockTimeout time.Duration `mapstructure:"lock_timeout"`
	// Store is where keys live: "mysql" (durable, platform_idempotency_keys) or "redis"
	// (one round trip per step, no database write; ADR 0021).
	Store string `mapstructure:"store"`
}

type Catalog struct {
	// ReviewRequired makes submitted products wait for an operator's approval.
	ReviewRequired bool               `mapstructure:"review_required"`
	DetailCache    CatalogDetailCache `mapstructure:"detail_cache"`
}

// CatalogDetailCache sizes the public product detail's two-level cache.
type CatalogDetailCache struct {
	// L1Size is the number of products kept in process; 0 disables L1 (Redis only).
	L1Size int           `mapstructure:"l1_size"`
	L1TTL  time.Duration `mapstructure:"l1_ttl"`
	L2TTL  time.Duration `mapstructure:"l2_ttl"`
}

// Stock tunes the stock module's reservations.
type Stock struct {
	// MaxHoldPerBuyer caps the unpaid units of one SKU one buyer may hold at once.
	MaxHoldPerBuyer int64 `mapstructure:"max_hold_per_buyer"`
	// SweepInterval is how often expired reservations are released (0 disables it).
	SweepInterval time.Duration `mapstructure:"sweep_interval"`
}

type Search struct {
	Engine        string              `mapstructure:"engine"`
	Bleve         SearchBleve         `mapstructure:"bleve"`
	Elasticsearch SearchElasticsearch `mapstructure:"elasticsearch"`
}

type SearchBleve struct {
	Path string `mapstructure:"path"`
}

type SearchElasticsearch struct {
	URLs     []string `mapstructure:"urls"`
	Username string   `mapstructure:"username"`
	Password string   `mapstructure:"password"`
	// Index is the alias queries go to; each reindex writes <index>_<timestamp> and swaps it.
	Index string `mapstructure:"index"`
	// Analyzer for text fields: "cjk" (built in) or a plugin's, e.g. "ik_max_word".
	Analyzer string `mapstructure:"analyzer"`
}

type Archive struct {
	PostgresDSN string `mapstructure:"postgres_dsn"`
}

type Auth struct {
	JWT        AuthJWT       `mapstructure:"jwt"`
	RefreshTTL time.Duration `mapstructure:"refresh_ttl"`
	Password   AuthPassword  `mapstructure:"password"`
	Login      AuthLogin     `mapstructure:"login"`
	// EncryptionKey is base64 of 32 bytes: AES-256-GCM for personal data at rest (phones).
	EncryptionKey string         `mapstructure:"encryption_key"`
	OIDC          []OIDCProvider `mapstructure:"oidc"`
}

type AuthJWT struct {
	KeysDir   string        `mapstructure:"keys_dir"`
	Issuer    string        `mapstructure:"issuer"`
	Audience  string        `mapstructure:"audience"`
	AccessTTL time.Duration `mapstructure:"access_ttl"`
	// GenerateKey creates a signing key in KeysDir when it holds none (development).
	GenerateKey bool `mapstructure:"generate_key"`
}

type AuthPassword struct {
	// MaxConcurrentHashes bounds argon2id work in flight (each takes 19 MiB); 0 = GOMAXPROCS.
	MaxConcurrentHashes int `mapstructure:"max_concurrent_hashes"`
}

type AuthLogin struct {
	MaxFailuresPerAccount int `mapstructure:"max_failures_per_account"` // per hour
	MaxFailuresPerIP      int `mapstructure:"max_failures_per_ip"`      // per hour
}

// OIDCProvider is one third-party login provider (authorization code + PKCE).
type OIDCProvider struct {
	Name         string   `mapstructure:"name"`
	Issuer       string   `mapstructure:"issuer"`
	ClientID     string   `mapstructure:"client_id"`
	ClientSecret string   `mapstructure:"client_secret"`
	RedirectURL  string   `mapstructure:"redirect_url"`
	Scopes       []string `mapstructure:"scopes"`
}

type Order struct {
	PaymentTimeout time.Duration `mapstructure:"payment_timeout"`
	// HoldGrace is added to PaymentTimeout for the checkout's stock hold, so the order
	// timeout sweeper cancels (and closes the gateway payment) before the stock sweeper
	// releases the units.
	HoldGrace time.Duration `mapstructure:"hold_grace"`
}

type Payments struct {
	Sandbox PaymentsSandbox `mapstructure:"sandbox"`
	Alipay  PaymentsAlipay  `mapstructure:"alipay"`
}

type PaymentsSandbox struct {
	Enabled bool `mapstructure:"enabled"`
	// Secret signs the sandbox gateway's notifications (HMAC-SHA256, at least 16 bytes).
	Secret string `mapstructure:"secret"`
}

// PaymentsAlipay configures the alipay provider; it is enabled when AppID is set.
type PaymentsAlipay struct {
	AppID    string `mapstructure:"app_id"`
	SellerID string `mapstructure:"seller_id"`
	// PrivateKeyFile is our application's RSA private key (PEM); PublicKeyFile is Alipay's
	// public key for the app (PEM).
	PrivateKeyFile string `mapstructure:"private_key_file"`
	PublicKeyFile  string `mapstructure:"public_key_file"`
	GatewayURL     string `mapstructure:"gateway_url"`
	NotifyURL      string `mapstructure:"notify_url"`
	ReturnURL      string `mapstructure:"return_url"`
}

// Realtime configures the WebSocket hub (internal/platform/realtime).
type Realtime struct {
	// AllowedOrigins are host patterns (path.Match; with "://" matched against
	// scheme://host) allowed besides the request's own host. Empty: same host only.
	AllowedOrigins []string `mapstructure:"allowed_origins"`
	// MaxMessageBytes bounds one client frame; a bigger one closes the connection (1009).
	MaxMessageBytes int64 `mapstructure:"max_message_bytes"`
	// MaxConnections per replica and MaxRoomConnections per room per replica; beyond
	// them new connections are refused with 503.
	MaxConnections     int `mapstructure:"max_connections"`
	MaxRoomConnections int `mapstructure:"max_room_connections"`
	// SendQueue is how many messages may wait for one slow client before it is dropped.
	SendQueue    int           `mapstructure:"send_queue"`
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	PingInterval time.Duration `mapstructure:"ping_interval"`
	PongTimeout  time.Duration `mapstructure:"pong_timeout"`
	// PresenceTTL is how long a replica's viewer counts outlive its last refresh.
	PresenceTTL time.Duration `mapstructure:"presence_ttl"`
}

// Live configures live rooms (internal/live) and their nginx-rtmp ingest.
type Live struct {
	// RTMPSecret authenticates nginx-rtmp's notifications (?secret= on /internal/rtmp/*).
	RTMPSecret string `mapstructure:"rtmp_secret"`
	// RTMPURL is the ingest base merchants publish to (rtmp://host:port/app); the stream
	// key is appended as the stream name.
	RTMPURL string `mapstructure:"rtmp_url"`
	// HLSURL is the public playback base; a room plays at HLSURL/room-<id>.m3u8.
	HLSURL string `mapstructure:"hls_url"`
	// HLSPushURL is where an ingest nginx reaches its own HLS application: on_publish
	// answers a redirect to HLSPushURL/room-<id>, and nginx-rtmp relays the stream there.
	HLSPushURL string `mapstructure:"hls_push_url"`
	// ChatMaxRunes bounds one chat message (before HTML is stripped).
	ChatMaxRunes int `mapstructure:"chat_max_runes"`
	// ChatPerMinute and ChatBurst are each user's chat rate limit (GCRA, per user).
	ChatPerMinute int `mapstructure:"chat_per_minute"`
	ChatBurst     int `mapstructure:"chat_burst"`
	// ViewersInterval is how often the viewer count is pushed to each live room.
	ViewersInterval time.Duration `mapstructure:"viewers_interval"`
}

// Auction tunes the auction module.
type Auction struct {
	// ScheduleInterval is how often lots are started and ended (and winners' orders retried).
	ScheduleInterval time.Duration `mapstructure:"schedule_interval"`
	// GateDisabled sends every bid to MySQL without the Redis pre-filter.
	GateDisabled bool `mapstructure:"gate_disabled"`
}

// Error is a configuration error naming the key.
type Error struct {
	Key string
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("config: %s: %s", e.Key, e.Msg) }

// Load reads the defaults, then file (when not empty), then the environment.
func Load(file string) (Config, error) {
	v, err := newViper(file)
	if err != nil {
		return Config{}, err
	}
	var c Config
	err = v.UnmarshalExact(&c, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)))
	if err != nil {
		return Config{}, decodeError(err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func newViper(file string) (*viper.Viper, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(configs.Default)); err != nil {
		return nil, &Error{Key: "(defaults)", Msg: err.Error()}
	}
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, &Error{Key: "(file)", Msg: err.Error()}
		}
		defer f.Close()
		if err := v.MergeConfig(f); err != nil {
			return nil, &Error{Key: "(file " + file + ")", Msg: err.Error()}
		}
	}
	v.SetEnvPrefix("MALL")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AllowEmptyEnv(true) // MALL_DB_SHARDS="" means "no shards: use main"
	v.AutomaticEnv()
	// AutomaticEnv only answers Get for keys viper already knows; bind them all explicitly
	// so Unmarshal sees the environment too.
	for _, k := range v.AllKeys() {
		_ = v.BindEnv(k)
	}
	return v, nil
}

// decodeError turns a mapstructure error into a one-line error naming the first key.
func decodeError(err error) error {
	msg := err.Error()
	// mapstructure: "decoding failed due to the following error(s):\n\n'http.read_timeout' time: invalid duration"
	lines := strings.Split(msg, "\n")
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "decoding failed") || strings.HasSuffix(l, "error(s):") {
			continue
		}
		l = strings.TrimPrefix(l, "* ")
		if strings.HasPrefix(l, "'") {
			if i := strings.Index(l[1:], "'"); i > 0 {
				return &Error{Key: l[1 : i+1], Msg: strings.TrimSpace(l[i+2:])}
			}
		}
		if strings.Contains(l, "has invalid keys:") {
			parts := strings.SplitN(l, "has invalid keys:", 2)
			return &Error{Key: strings.TrimSpace(parts[1]), Msg: "unknown key"}
		}
		return &Error{Key: "(decode)", Msg: l}
	}
	return &Error{Key: "(decode)", Msg: msg}
}

// Validate checks every key whose bad value would only show up later, at first use.
func (c Config) Validate() error {
	var errsList []error
	bad := func(key, format string, args ...any) {
		errsList = append(errsList, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	switch c.App.Env {
	case "development", "production", "test":
	default:
		bad("app.env", "must be development, production or test, got %q", c.App.Env)
	}
	if c.App.NodeID < -1 || c.App.NodeID > 255 {
		bad("app.node_id", "must be -1 (lease from Redis) or 0..255, got %d", c.App.NodeID)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		bad("log.format", "must be json or text, got %q", c.Log.Format)
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		bad("http.addr", "must be host:port, got %q", c.HTTP.Addr)
	}
	if c.HTTP.DebugAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.DebugAddr); err != nil {
			bad("http.debug_addr", "must be host:port or empty, got %q", c.HTTP.DebugAddr)
		}
	}
	if _, err := ParseBytes(c.HTTP.BodyLimit); err != nil {
		bad("http.body_limit", "%v", err)
	}
	for _, p := range c.HTTP.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil {
			bad("http.trusted_proxies", "%q is not a CIDR", p)
		}
	}
	if c.DB.Main == "" {
		bad("db.main", "is required (a MySQL DSN like user:pass@tcp(host:3306)/mall)")
	} else if _, err := mysql.ParseDSN(c.DB.Main); err != nil {
		bad("db.main", "invalid MySQL DSN: %v", err)
	}
	for i, s := range c.DB.Shards {
		if _, err := mysql.ParseDSN(s); err != nil {
			bad("db.shards", "entry %d: invalid MySQL DSN: %v", i, err)
		}
	}
	if len(c.DB.Shards) > 1024 {
		bad("db.shards", "at most 1024 physical shards, got %d", len(c.DB.Shards))
	}
	if c.DB.MaxOpenConns <= 0 {
		bad("db.max_open_conns", "must be positive")
	}
	if c.Redis.Addr == "" {
		bad("redis.addr", "is required")
	}
	if r := c.Realtime; r.MaxMessageBytes < 128 {
		bad("realtime.max_message_bytes", "must be at least 128, got %d", r.MaxMessageBytes)
	}
	if c.Realtime.MaxConnections < 1 || c.Realtime.MaxRoomConnections < 1 {
		bad("realtime.max_connections", "max_connections and max_room_connections must be positive")
	}
	if c.Realtime.SendQueue < 1 {
		bad("realtime.send_queue", "must be positive, got %d", c.Realtime.SendQueue)
	}
	if c.Realtime.WriteTimeout <= 0 {
		bad("realtime.write_timeout", "must be positive, got %s", c.Realtime.WriteTimeout)
	}
	if c.Realtime.PingInterval <= 0 || c.Realtime.PongTimeout <= 0 {
		bad("realtime.ping_interval", "ping_interval and pong_timeout must be positive")
	}
	if c.Realtime.PresenceTTL < time.Second {
		bad("realtime.presence_ttl", "must be at least 1s, got %s", c.Realtime.PresenceTTL)
	}
	if !c.Kafka.Embedded && len(c.Kafka.Brokers) == 0 {
		bad("kafka.brokers", "is required unless kafka.embedded is true")
	}
	if c.Kafka.Partitions <= 0 {
		bad("kafka.partitions", "must be positive")
	}
	if c.Outbox.BatchSize <= 0 {
		bad("outbox.batch_size", "must be positive")
	}
	if c.Outbox.MaxAttempts <= 0 {
		bad("outbox.max_attempts", "must be positive")
	}
	if c.Outbox.PollInterval <= 0 || c.Outbox.BackoffBase <= 0 || c.Outbox.BackoffMax < c.Outbox.BackoffBase {
		bad("outbox.backoff_max", "poll_interval and backoff_base must be positive and backoff_max >= backoff_base")
	}
	if c.RateLimit.DefaultPerMinute <= 0 || c.RateLimit.AuthPerMinute <= 0 {
		bad("ratelimit.default_per_minute", "limits must be positive")
	}
	if c.Idempotency.Store != "mysql" && c.Idempotency.Store != "redis" {
		bad("idempotency.store", "must be mysql or redis, got %q", c.Idempotency.Store)
	}
	if c.Idempotency.TTL < 24*time.Hour {
		bad("idempotency.ttl", "must be at least 24h (API.md), got %s", c.Idempotency.TTL)
	}
	switch c.Search.Engine {
	case "bleve":
		if c.Search.Bleve.Path == "" {
			bad("search.bleve.path", "is required with search.engine=bleve")
		}
	case "elasticsearch":
		if len(c.Search.Elasticsearch.URLs) == 0 {
			bad("search.elasticsearch.urls", "is required with search.engine=elasticsearch")
		}
		if c.Search.Elasticsearch.Index == "" || c.Search.Elasticsearch.Analyzer == "" {
			bad("search.elasticsearch.index", "index and analyzer are required with search.engine=elasticsearch")
		}
	default:
		bad("search.engine", "must be bleve or elasticsearch, got %q", c.Search.Engine)
	}
	if c.Auction.ScheduleInterval <= 0 {
		bad("auction.schedule_interval", "must be positive, got %s", c.Auction.ScheduleInterval)
	}
	if c.Stock.MaxHoldPerBuyer < 1 {
		bad("stock.max_hold_per_buyer", "must be at least 1, got %d", c.Stock.MaxHoldPerBuyer)
	}
	if c.Stock.SweepInterval < 0 {
		bad("stock.sweep_interval", "must be >= 0 (0 disables the sweeper), got %s", c.Stock.SweepInterval)
	}
	if c.Catalog.DetailCache.L1Size < 0 {
		bad("catalog.detail_cache.l1_size", "must be >= 0 (0 disables the in-process level), got %d", c.Catalog.DetailCache.L1Size)
	}
	if c.Catalog.DetailCache.L1TTL <= 0 {
		bad("catalog.detail_cache.l1_ttl", "must be positive, got %s", c.Catalog.DetailCache.L1TTL)
	}
	if c.Catalog.DetailCache.L2TTL < c.Catalog.DetailCache.L1TTL {
		bad("catalog.detail_cache.l2_ttl", "must be at least catalog.detail_cache.l1_ttl, got %s", c.Catalog.DetailCache.L2TTL)
	}
	// One second, not minutes: the crash-safety test (cmd/mall) runs the real binary through
	// whole payment timeouts; production values are tens of minutes (default 30m).
	if c.Order.PaymentTimeout < time.Second {
		bad("order.payment_timeout", "must be at least 1s, got %s", c.Order.PaymentTimeout)
	}
	if c.Order.HoldGrace < 0 {
		bad("order.hold_grace", "must be >= 0, got %s", c.Order.HoldGrace)
	}
	if c.Auth.JWT.KeysDir == "" {
		bad("auth.jwt.keys_dir", "is required")
	}
	if c.Auth.JWT.Issuer == "" || c.Auth.JWT.Audience == "" {
		bad("auth.jwt.issuer", "issuer and audience are required")
	}
	if c.Auth.JWT.AccessTTL < time.Minute || c.Auth.JWT.AccessTTL > time.Hour {
		bad("auth.jwt.access_ttl", "must be between 1m and 1h, got %s", c.Auth.JWT.AccessTTL)
	}
	if c.Auth.RefreshTTL < time.Hour {
		bad("auth.refresh_ttl", "must be at least 1h, got %s", c.Auth.RefreshTTL)
	}
	if k, err := base64.StdEncoding.DecodeString(c.Auth.EncryptionKey); err != nil || len(k) != 32 {
		bad("auth.encryption_key", "must be base64 of 32 bytes (openssl rand -base64 32)")
	}
	if c.Auth.Password.MaxConcurrentHashes < 0 {
		bad("auth.password.max_concurrent_hashes", "must be >= 0")
	}
	if c.Auth.Login.MaxFailuresPerAccount <= 0 || c.Auth.Login.MaxFailuresPerIP <= 0 {
		bad("auth.login.max_failures_per_account", "login failure limits must be positive")
	}
	seenProvider := map[string]bool{}
	for i, p := range c.Auth.OIDC {
		key := fmt.Sprintf("auth.oidc[%d]", i)
		switch {
		case p.Name == "" || seenProvider[p.Name]:
			bad(key+".name", "must be set and unique")
		case p.Issuer == "" || p.ClientID == "" || p.RedirectURL == "":
			bad(key, "issuer, client_id and redirect_url are required")
		}
		seenProvider[p.Name] = true
	}
	if c.Live.RTMPSecret == "" {
		bad("live.rtmp_secret", "is required")
	}
	if !strings.HasPrefix(c.Live.RTMPURL, "rtmp://") {
		bad("live.rtmp_url", "must be an rtmp:// URL, got %q", c.Live.RTMPURL)
	}
	if !strings.HasPrefix(c.Live.HLSPushURL, "rtmp://") {
		bad("live.hls_push_url", "must be an rtmp:// URL, got %q", c.Live.HLSPushURL)
	}
	if !strings.HasPrefix(c.Live.HLSURL, "http://") && !strings.HasPrefix(c.Live.HLSURL, "https://") {
		bad("live.hls_url", "must be an http(s):// URL, got %q", c.Live.HLSURL)
	}
	if c.Live.ChatMaxRunes < 1 || c.Live.ChatMaxRunes > 2000 {
		bad("live.chat_max_runes", "must be from 1 to 2000, got %d", c.Live.ChatMaxRunes)
	}
	if c.Live.ChatPerMinute < 1 || c.Live.ChatBurst < 1 {
		bad("live.chat_per_minute", "chat_per_minute and chat_burst must be positive")
	}
	if c.Live.ViewersInterval < 100*time.Millisecond {
		bad("live.viewers_interval", "must be at least 100ms, got %s", c.Live.ViewersInterval)
	}
	if c.App.Env == "production" {
		if c.Kafka.Embedded {
			bad("kafka.embedded", "must be false in production")
		}
		if c.Payments.Sandbox.Enabled {
			bad("payments.sandbox.enabled", "must be false in production")
		}
		if c.Payments.Alipay.AppID != "" && !strings.HasPrefix(c.Payments.Alipay.NotifyURL, "https://") {
			bad("payments.alipay.notify_url", "must be an https:// URL in production")
		}
		if c.Auth.EncryptionKey == devEncryptionKey {
			bad("auth.encryption_key", "the development key is not allowed in production")
		}
		if c.Auth.JWT.GenerateKey {
			bad("auth.jwt.generate_key", "must be false in production (install keys in auth.jwt.keys_dir)")
		}
		if c.Live.RTMPSecret == "dev-rtmp-secret" {
			bad("live.rtmp_secret", "the development secret is not allowed in production")
		}
	}
	if c.Payments.Sandbox.Enabled && len(c.Payments.Sandbox.Secret) < 16 {
		bad("payments.sandbox.secret", "must be at least 16 bytes when the sandbox is enabled")
	}
	if a := c.Payments.Alipay; a.AppID != "" {
		if a.PrivateKeyFile == "" || a.PublicKeyFile == "" {
			bad("payments.alipay.private_key_file", "private_key_file and public_key_file are required with app_id")
		}
		if a.NotifyURL == "" {
			bad("payments.alipay.notify_url", "is required with app_id (our POST /api/v1/payments/notify/alipay, absolute)")
		}
	}
	if len(errsList) > 0 {
		return errsList[0] // one clear line; fix it and the next one shows
	}
	return nil
}

// devEncryptionKey is the default in configs/mall.yaml, refused in production.
const devEncryptionKey = "ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMzJieXRlcyE="

// ParseBytes parses sizes like "1MB", "512KB", "1024".
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			mult, s = u.m, strings.TrimSuffix(s, u.suffix)
			break
		}
	}
	var n int64
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n <= 0 {
		return 0, errors.New("must be a positive size like 1MB")
	}
	return n * mult, nil
}

// secretKeys are masked by Print; DSNs keep everything but their password.
var secretWords = []string{"secret", "password", "private_key", "token", "encryption_key"}

// Print writes the effective configuration as sorted key = value lines, secrets masked.
func Print(c Config) string {
	var lines []string
	walk(reflect.ValueOf(c), "", func(key string, v reflect.Value) {
		lines = append(lines, key+" = "+render(key, v))
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

func walk(v reflect.Value, prefix string, f func(string, reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		key := t.Field(i).Tag.Get("mapstructure")
		if prefix != "" {
			key = prefix + "." + key
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeOf(time.Duration(0)) {
			walk(fv, key, f)
			continue
		}
		if fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct {
			for j := 0; j < fv.Len(); j++ {
				walk(fv.Index(j), fmt.Sprintf("%s[%d]", key, j), f)
			}
			continue
		}
		f(key, fv)
	}
}

func render(key string, v reflect.Value) string {
	if v.Kind() == reflect.Slice {
		var parts []string
		for i := 0; i < v.Len(); i++ {
			parts = append(parts, renderScalar(key, v.Index(i)))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return renderScalar(key, v)
}

func renderScalar(key string, v reflect.Value) string {
	if d, ok := v.Interface().(time.Duration); ok {
		return d.String()
	}
	s := fmt.Sprint(v.Interface())
	if s == "" {
		return `""`
	}
	for _, w := range secretWords {
		if strings.Contains(key, w) {
			return "******"
		}
	}
	if strings.Contains(key, "dsn") || strings.HasPrefix(key, "db.main") || strings.HasPrefix(key, "db.shards") {
		return MaskDSN(s)
	}
	return s
}

// MaskDSN hides the password in a MySQL DSN or URL-style DSN.
func MaskDSN(dsn string) string {
	if strings.Contains(dsn, "://") { // postgres://user:pass@host/db
		at := strings.Index(dsn, "@")
		scheme := strings.Index(dsn, "://") + 3
		if at > scheme {
			if colon := strings.Index(dsn[scheme:at], ":"); colon >= 0 {
				return dsn[:scheme+colon+1] + "******" + dsn[at:]
			}
		}
		return dsn
	}
	if cfg, err := mysql.ParseDSN(dsn); err == nil && cfg.Passwd != "" {
		cfg.Passwd = "******"
		return cfg.FormatDSN()
	}
	return dsn
}

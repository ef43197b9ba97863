// Package config loads Mall's configuration: the embedded defaults (configs/mall.yaml), an
// optional file, then MALL_* environment variables. Validation failures name the key.
package config

import (
	"bytes"
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
	Realtime    Realtime    `mapstructure:"realtime"`

	// modules holds each module's subtree by its top-level key: raw (decoded YAML and
	// environment) until Load or Section.With stores the Section's decoded value. Shared
	// between copies of a Config, so never written in place (see with).
	modules map[string]any
}

// with returns c with the subtree at key set to val, leaving c's own map untouched.
func (c Config) with(key string, val any) Config {
	m := make(map[string]any, len(c.modules)+1)
	for k, v := range c.modules {
		m[k] = v
	}
	m[key] = val
	c.modules = m
	return c
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
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
	// OpsAddr serves /metrics and detailed /readyz on a listener of its own (then Addr
	// serves no /metrics); OpsToken is the bearer token that opens them on Addr. ADR 0027.
	OpsAddr  string `mapstructure:"ops_addr"`
	OpsToken string `mapstructure:"ops_token"`
	// TLSCertFile and TLSKeyFile (PEM), both set, make Addr serve HTTPS with HTTP/2.
	TLSCertFile string `mapstructure:"tls_cert_file"`
	TLSKeyFile  string `mapstructure:"tls_key_file"`
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
	// EmbeddedPort is the embedded broker's port on 127.0.0.1 (0: any free one), for a tool
	// that produces to it from outside (make bench).
	EmbeddedPort int `mapstructure:"embedded_port"`
	// SessionTimeout is how long the group coordinator waits for a consumer that stopped
	// heartbeating (a replica killed) before its partitions move to the others; consumers
	// heartbeat every third of it.
	SessionTimeout time.Duration `mapstructure:"session_timeout"`
	// RebalanceTimeout is how long a rebalance waits for every member to rejoin: a member
	// killed in the middle of one holds its group up this long. Consumers apply a poll's
	// records before they rejoin, so it must exceed the time one poll takes.
	RebalanceTimeout time.Duration `mapstructure:"rebalance_timeout"`
}

type Outbox struct {
	BatchSize    int           `mapstructure:"batch_size"`
	PollInterval time.Duration `mapstructure:"poll_interval"`
	MaxAttempts  int           `mapstructure:"max_attempts"`
	BackoffBase  time.Duration `mapstructure:"backoff_base"`
	BackoffMax   time.Duration `mapstructure:"backoff_max"`
}

type RateLimit struct {
	Enabled bool `mapstructure:"enabled"`
	// DefaultPerMinute is per anonymous client network (IPv4 address, IPv6 /64) on routes
	// without a class of their own.
	DefaultPerMinute int `mapstructure:"default_per_minute"`
	// UserPerMinute is per authenticated user on the same routes (a NAT's users do not
	// share it).
	UserPerMinute int `mapstructure:"user_per_minute"`
	// AuthPerMinute is per client network on /api/v1/auth/* (registrations and logins,
	// successful ones included); failed logins have their own, tighter limits (auth.login).
	AuthPerMinute int `mapstructure:"auth_per_minute"`
	// TrustedClients are CIDRs of our own server-side clients (a storefront's renderer, a
	// BFF) exempt from every per-IP limit; their users are still limited per user and per
	// account.
	TrustedClients []string `mapstructure:"trusted_clients"`
}

type Idempotency struct {
	TTL         time.Duration `mapstructure:"ttl"`
	LockTimeout time.Duration `mapstructure:"lock_timeout"`
	// Store is where keys live: "mysql" (durable, platform_idempotency_keys) or "redis"
	// (one round trip per step, no database write; ADR 0021).
	Store string `mapstructure:"store"`
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
	// Timeout bounds every call to the cluster (0: 10s), so a cluster that stops answering
	// fails searches fast instead of holding requests and connections.
	Timeout time.Duration `mapstructure:"timeout"`
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
	// MaxConnectionsPerIP (per client network, IPv6 by /64; not for
	// ratelimit.trusted_clients) and MaxConnectionsPerUser bound one caller's connections
	// per replica; beyond them new connections are refused with 429.
	MaxConnectionsPerIP   int `mapstructure:"max_connections_per_ip"`
	MaxConnectionsPerUser int `mapstructure:"max_connections_per_user"`
	// SendQueue is how many messages may wait for one slow client before it is dropped.
	SendQueue    int           `mapstructure:"send_queue"`
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	PingInterval time.Duration `mapstructure:"ping_interval"`
	PongTimeout  time.Duration `mapstructure:"pong_timeout"`
	// PresenceTTL is how long a replica's viewer counts outlive its last refresh.
	PresenceTTL time.Duration `mapstructure:"presence_ttl"`
}

// Error is a configuration error naming the key.
type Error struct {
	Key string
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("config: %s: %s", e.Key, e.Msg) }

// Invalid is an *Error for key; a section's Check names keys relative to its section.
func Invalid(key, format string, args ...any) error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// loaded is what the file and the environment decode into: the platform's keys, and the
// modules' subtrees kept raw until their Section decodes them.
type loaded struct {
	Config  `mapstructure:",squash"`
	Modules map[string]any `mapstructure:",remain"`
}

// Load reads the defaults, then file (when not empty), then the environment, and validates
// the platform's keys and every section given. The error joins every bad key, each an *Error
// naming its full key. With sections, a top-level key that neither the platform nor a section
// owns is an error too.
func Load(file string, sections ...Part) (Config, error) {
	return load(nil, file, sections)
}

// LoadDev is Load with the development settings (configs/development.yaml) merged between
// the defaults and file: what the test harnesses and tools running a development server
// switch on explicitly (the binary's own defaults are production-safe; ADR 0027).
func LoadDev(file string, sections ...Part) (Config, error) {
	return load(configs.Development, file, sections)
}

func load(overlay []byte, file string, sections []Part) (Config, error) {
	v, err := newViper(overlay, file)
	if err != nil {
		return Config{}, err
	}
	var l loaded
	if err := v.UnmarshalExact(&l, viper.DecodeHook(decodeHook)); err != nil {
		return Config{}, errors.Join(decodeErrors("", err)...)
	}
	c := l.Config
	c.modules = l.Modules
	errs := c.validate()
	owned := map[string]bool{}
	for _, s := range sections {
		owned[s.key()] = true
		val, err := s.load(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c = c.with(s.key(), val)
	}
	if len(sections) > 0 {
		for _, k := range sortedKeys(c.modules) {
			if !owned[k] {
				errs = append(errs, &Error{Key: k, Msg: "unknown key"})
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Defaults is the built-in configuration (configs/mall.yaml) without the file and the
// environment, not validated: the base of Section.Default.
func Defaults() Config {
	v := viper.New()
	v.SetConfigType("yaml")
	var l loaded
	if err := v.ReadConfig(bytes.NewReader(configs.Default)); err != nil {
		panic(fmt.Sprintf("config: embedded defaults: %v", err)) // a test loads them
	}
	if err := v.Unmarshal(&l, viper.DecodeHook(decodeHook)); err != nil {
		panic(fmt.Sprintf("config: embedded defaults: %v", err))
	}
	c := l.Config
	c.modules = l.Modules
	return c
}

var decodeHook = mapstructure.ComposeDecodeHookFunc(
	mapstructure.StringToTimeDurationHookFunc(),
	mapstructure.StringToSliceHookFunc(","),
)

func newViper(overlay []byte, file string) (*viper.Viper, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(configs.Default)); err != nil {
		return nil, &Error{Key: "(defaults)", Msg: err.Error()}
	}
	if overlay != nil {
		if err := v.MergeConfig(bytes.NewReader(overlay)); err != nil {
			return nil, &Error{Key: "(development settings)", Msg: err.Error()}
		}
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

// decodeErrors turns a mapstructure error tree into one *Error per bad key, each key
// prefixed with prefix (a section's key, or "" for the whole file).
func decodeErrors(prefix string, err error) []error {
	full := func(name string) string {
		switch {
		case prefix == "":
			return name
		case name == "":
			return prefix
		}
		return prefix + "." + name
	}
	// mapstructure wraps the join of every field's error in one fmt error.
	for {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			var out []error
			for _, e := range j.Unwrap() {
				out = append(out, decodeErrors(prefix, e)...)
			}
			return out
		}
		if _, ok := err.(*mapstructure.DecodeError); ok {
			break
		}
		inner := errors.Unwrap(err)
		if inner == nil {
			break
		}
		err = inner
	}
	var de *mapstructure.DecodeError
	if !errors.As(err, &de) {
		return []error{&Error{Key: full("(decode)"), Msg: err.Error()}}
	}
	inner := de.Unwrap()
	if j, ok := inner.(interface{ Unwrap() []error }); ok {
		return decodeErrors(prefix, errors.Join(j.Unwrap()...))
	}
	if keys, ok := strings.CutPrefix(inner.Error(), "has invalid keys: "); ok {
		var out []error
		for _, k := range strings.Split(keys, ", ") {
			name := k
			if de.Name() != "" {
				name = de.Name() + "." + k
			}
			out = append(out, &Error{Key: full(name), Msg: "unknown key"})
		}
		return out
	}
	msg := inner.Error()
	var pe *mapstructure.ParseError
	if errors.As(inner, &pe) && pe.Err != nil {
		msg = fmt.Sprintf("cannot parse %v as %s", pe.Value, pe.Expected.Type())
	}
	return []error{&Error{Key: full(de.Name()), Msg: msg}}
}

// validate checks the platform's keys whose bad value would only show up later, at first use.
func (c Config) validate() []error {
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
	if c.HTTP.OpsAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.OpsAddr); err != nil {
			bad("http.ops_addr", "must be host:port or empty, got %q", c.HTTP.OpsAddr)
		} else if c.HTTP.OpsAddr == c.HTTP.Addr {
			bad("http.ops_addr", "must differ from http.addr")
		}
	}
	if t := c.HTTP.OpsToken; t != "" && len(t) < 16 {
		bad("http.ops_token", "must be at least 16 characters (openssl rand -hex 16) or empty")
	}
	if (c.HTTP.TLSCertFile == "") != (c.HTTP.TLSKeyFile == "") {
		bad("http.tls_cert_file", "tls_cert_file and tls_key_file are set together or not at all")
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
	if c.Realtime.MaxConnections < 1 || c.Realtime.MaxRoomConnections < 1 ||
		c.Realtime.MaxConnectionsPerIP < 1 || c.Realtime.MaxConnectionsPerUser < 1 {
		bad("realtime.max_connections", "max_connections, max_room_connections, max_connections_per_ip and max_connections_per_user must be positive")
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
	if c.Kafka.EmbeddedPort < 0 || c.Kafka.EmbeddedPort > 65535 {
		bad("kafka.embedded_port", "must be a port from 1 to 65535, or 0 for any free one")
	}
	if c.Kafka.SessionTimeout != 0 && (c.Kafka.SessionTimeout < 6*time.Second || c.Kafka.SessionTimeout > 5*time.Minute) {
		bad("kafka.session_timeout", "must be 6s to 5m (the brokers' default group.min/max.session.timeout.ms), got %s",
			c.Kafka.SessionTimeout)
	}
	if c.Kafka.RebalanceTimeout != 0 && (c.Kafka.RebalanceTimeout < time.Second || c.Kafka.RebalanceTimeout > 10*time.Minute) {
		bad("kafka.rebalance_timeout", "must be 1s to 10m, or 0 for the client's default (60s), got %s", c.Kafka.RebalanceTimeout)
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
	if c.RateLimit.DefaultPerMinute <= 0 || c.RateLimit.AuthPerMinute <= 0 || c.RateLimit.UserPerMinute <= 0 {
		bad("ratelimit.default_per_minute", "default_per_minute, user_per_minute and auth_per_minute must be positive")
	}
	for _, cidr := range c.RateLimit.TrustedClients {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			bad("ratelimit.trusted_clients", "%q is not a CIDR (e.g. 10.0.0.0/8)", cidr)
		}
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
	if c.App.Env == "production" && c.Kafka.Embedded {
		bad("kafka.embedded", "must be false in production")
	}
	return errsList
}

// IsProduction reports app.env = production, where development settings are refused.
func (a App) IsProduction() bool { return a.Env == "production" }

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

// Print writes the effective configuration as sorted key = value lines, secrets masked:
// the platform's keys and every module's (decoded by its section when Load had it).
func Print(c Config) string {
	var lines []string
	emit := func(key string, v reflect.Value) {
		lines = append(lines, key+" = "+render(key, v))
	}
	walk(reflect.ValueOf(c), "", emit)
	for _, k := range sortedKeys(c.modules) {
		walkAny(reflect.ValueOf(c.modules[k]), k, emit)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}

// walkAny walks a module's subtree: a decoded struct, or raw maps and lists.
func walkAny(v reflect.Value, key string, f func(string, reflect.Value)) {
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			f(key, reflect.ValueOf(""))
			return
		}
		v = v.Elem()
	}
	switch {
	case v.Kind() == reflect.Struct && v.Type() != reflect.TypeOf(time.Duration(0)):
		walk(v, key, f)
	case v.Kind() == reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, mk := range keys {
			walkAny(v.MapIndex(mk), key+"."+fmt.Sprint(mk), f)
		}
	case v.Kind() == reflect.Slice && v.Len() > 0 && isComposite(v.Index(0)):
		for j := 0; j < v.Len(); j++ {
			walkAny(v.Index(j), fmt.Sprintf("%s[%d]", key, j), f)
		}
	default:
		f(key, v)
	}
}

func isComposite(v reflect.Value) bool {
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return false
		}
		v = v.Elem()
	}
	return v.Kind() == reflect.Map || (v.Kind() == reflect.Struct && v.Type() != reflect.TypeOf(time.Duration(0)))
}

func walk(v reflect.Value, prefix string, f func(string, reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if !t.Field(i).IsExported() {
			continue
		}
		key := t.Field(i).Tag.Get("mapstructure")
		if key == "" || key == "-" {
			continue
		}
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

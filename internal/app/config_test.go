package app_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/app"
	"github.com/mallhq/mall/internal/auction"
	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/live"
	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/stock"
	"github.com/mallhq/mall/internal/user"
)

// section decodes one module's section of c, failing the test on an error.
func section[T any](t *testing.T, s config.Section[T], c config.Config) T {
	t.Helper()
	v, err := s.From(c)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// prodSecrets are the keys the production defaults leave to the operator, set.
var prodSecrets = map[string]string{
	"MALL_KAFKA_BROKERS":       "k1:9092",
	"MALL_AUTH_ENCRYPTION_KEY": "c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk=",
	"MALL_LIVE_RTMP_SECRET":    "a-real-rtmp-secret",
}

// TestDefaultsAreProductionSafe: with no configuration the binary's defaults are production's,
// every development convenience off; what is missing is named, and nothing else fails.
func TestDefaultsAreProductionSafe(t *testing.T) {
	_, err := app.LoadConfig("")
	if err == nil {
		t.Fatal("want an error: the production defaults have no secrets")
	}
	var keys []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *config.Error
		if !errors.As(e, &ce) {
			t.Fatalf("%v is not a *config.Error", e)
		}
		keys = append(keys, ce.Key)
	}
	if got := strings.Join(keys, ","); got != "kafka.brokers,auth.encryption_key,live.rtmp_secret" {
		t.Fatalf("missing keys named %s:\n%v", got, err)
	}
	for k, v := range prodSecrets {
		t.Setenv(k, v)
	}
	c, err := app.LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	u, p := section(t, user.ConfigSection, c), section(t, order.PaymentsSection, c)
	if !c.App.IsProduction() || c.Kafka.Embedded || p.Sandbox.Enabled || p.Sandbox.Secret != "" || u.JWT.GenerateKey {
		t.Fatalf("development settings on by default: %+v %+v %+v", c.App, p, u.JWT)
	}
}

// TestSandboxRefused: the sandbox is refused in production and next to a real provider.
func TestSandboxRefused(t *testing.T) {
	t.Run("production", func(t *testing.T) {
		for k, v := range prodSecrets {
			t.Setenv(k, v)
		}
		t.Setenv("MALL_PAYMENTS_SANDBOX_ENABLED", "true")
		t.Setenv("MALL_PAYMENTS_SANDBOX_SECRET", "0123456789abcdef")
		_, err := app.LoadConfig("")
		if err == nil || !strings.Contains(err.Error(), "config: payments.sandbox.enabled: must be false in production") {
			t.Fatalf("want payments.sandbox.enabled refused, got %v", err)
		}
	})
	t.Run("development with alipay", func(t *testing.T) {
		t.Setenv("MALL_PAYMENTS_ALIPAY_APP_ID", "2021000000000000")
		t.Setenv("MALL_PAYMENTS_ALIPAY_PRIVATE_KEY_FILE", "/etc/mall/app.pem")
		t.Setenv("MALL_PAYMENTS_ALIPAY_PUBLIC_KEY_FILE", "/etc/mall/alipay.pem")
		t.Setenv("MALL_PAYMENTS_ALIPAY_NOTIFY_URL", "https://shop.example/api/v1/payments/notify/alipay")
		_, err := app.LoadDevConfig("")
		if err == nil || !strings.Contains(err.Error(), "config: payments.sandbox.enabled: must be false when a real provider is configured") {
			t.Fatalf("want payments.sandbox.enabled refused, got %v", err)
		}
		t.Setenv("MALL_PAYMENTS_SANDBOX_ENABLED", "false")
		if _, err := app.LoadDevConfig(""); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDefaultsLoadAndValidate(t *testing.T) {
	c, err := app.LoadDevConfig("")
	if err != nil {
		t.Fatal(err)
	}
	o := section(t, order.ConfigSection, c)
	if c.HTTP.Addr != ":8080" || !c.Kafka.Embedded || o.PaymentTimeout != 30*time.Minute || o.HoldGrace != 5*time.Minute || len(c.DB.Shards) != 2 {
		t.Fatalf("unexpected defaults: %+v %+v", c, o)
	}
	cat := section(t, catalog.ConfigSection, c)
	dc := cat.DetailCache
	if !cat.ReviewRequired || dc.L1Size != 10000 || dc.L1TTL != 30*time.Second || dc.L2TTL != 10*time.Minute {
		t.Fatalf("catalog defaults: %+v", cat)
	}
	// Every section's Default is the same as what Load decodes (the development
	// settings leave order.* alone).
	if d := order.ConfigSection.Default(); d != o {
		t.Fatalf("order default %+v, loaded %+v", d, o)
	}
	if s := section(t, stock.ConfigSection, c); s.MaxHoldPerBuyer != 200 || s.SweepInterval != 10*time.Second {
		t.Fatalf("stock defaults: %+v", s)
	}
	if a := section(t, auction.ConfigSection, c); a.ScheduleInterval != 500*time.Millisecond || a.GateDisabled || a.GateGrace != 2*time.Second {
		t.Fatalf("auction defaults: %+v", a)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	t.Setenv("MALL_HTTP_ADDR", "127.0.0.1:9999")
	t.Setenv("MALL_DB_SHARDS", "u:p@tcp(h:1)/a,u:p@tcp(h:2)/b,u:p@tcp(h:3)/c")
	t.Setenv("MALL_ORDER_PAYMENT_TIMEOUT", "45m")
	t.Setenv("MALL_ORDER_HOLD_GRACE", "2s")
	t.Setenv("MALL_PAYMENTS_SANDBOX_ENABLED", "false")
	t.Setenv("MALL_SEARCH_BLEVE_PATH", "/tmp/x")
	t.Setenv("MALL_CATALOG_DETAIL_CACHE_L1_SIZE", "0")
	t.Setenv("MALL_CATALOG_REVIEW_REQUIRED", "false")
	c, err := app.LoadDevConfig("")
	if err != nil {
		t.Fatal(err)
	}
	o, p, cat := section(t, order.ConfigSection, c), section(t, order.PaymentsSection, c), section(t, catalog.ConfigSection, c)
	if c.HTTP.Addr != "127.0.0.1:9999" || len(c.DB.Shards) != 3 || c.DB.Shards[2] != "u:p@tcp(h:3)/c" ||
		o.PaymentTimeout != 45*time.Minute || o.HoldGrace != 2*time.Second || p.Sandbox.Enabled || c.Search.Bleve.Path != "/tmp/x" ||
		cat.DetailCache.L1Size != 0 || cat.ReviewRequired {
		t.Fatalf("overrides not applied: %+v %+v %+v %+v", c, o, p, cat)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		file    string
		wantKey string
	}{
		{name: "bad duration", env: map[string]string{"MALL_ORDER_PAYMENT_TIMEOUT": "soon"}, wantKey: "order.payment_timeout"},
		{name: "short payment timeout", env: map[string]string{"MALL_ORDER_PAYMENT_TIMEOUT": "500ms"}, wantKey: "order.payment_timeout"},
		{name: "negative hold grace", env: map[string]string{"MALL_ORDER_HOLD_GRACE": "-1s"}, wantKey: "order.hold_grace"},
		{name: "bad dsn", env: map[string]string{"MALL_DB_MAIN": "not a dsn"}, wantKey: "db.main"},
		{name: "empty dsn", env: map[string]string{"MALL_DB_MAIN": ""}, wantKey: "db.main"},
		{name: "bad shard", env: map[string]string{"MALL_DB_SHARDS": "u:p@tcp(h:1)/a,garbage"}, wantKey: "db.shards"},
		{name: "bad engine", env: map[string]string{"MALL_SEARCH_ENGINE": "solr"}, wantKey: "search.engine"},
		{name: "es without urls", env: map[string]string{"MALL_SEARCH_ENGINE": "elasticsearch"}, wantKey: "search.elasticsearch.urls"},
		{name: "no brokers", env: map[string]string{"MALL_KAFKA_EMBEDDED": "false"}, wantKey: "kafka.brokers"},
		{name: "bad bool", env: map[string]string{"MALL_KAFKA_EMBEDDED": "perhaps"}, wantKey: "kafka.embedded"},
		{name: "bad addr", env: map[string]string{"MALL_HTTP_ADDR": "8080"}, wantKey: "http.addr"},
		{name: "bad level", env: map[string]string{"MALL_LOG_LEVEL": "loud"}, wantKey: "log.level"},
		{name: "production with dev secrets", env: map[string]string{"MALL_APP_ENV": "production", "MALL_KAFKA_EMBEDDED": "false", "MALL_KAFKA_BROKERS": "k:9092", "MALL_PAYMENTS_SANDBOX_ENABLED": "false"}, wantKey: "auth.encryption_key"},
		{name: "production with dev rtmp secret", env: map[string]string{"MALL_APP_ENV": "production", "MALL_KAFKA_EMBEDDED": "false", "MALL_KAFKA_BROKERS": "k:9092", "MALL_PAYMENTS_SANDBOX_ENABLED": "false"}, wantKey: "live.rtmp_secret"},
		{name: "production generating jwt keys", env: map[string]string{"MALL_APP_ENV": "production", "MALL_KAFKA_EMBEDDED": "false", "MALL_KAFKA_BROKERS": "k:9092", "MALL_PAYMENTS_SANDBOX_ENABLED": "false"}, wantKey: "auth.jwt.generate_key"},
		{name: "short encryption key", env: map[string]string{"MALL_AUTH_ENCRYPTION_KEY": "c2hvcnQ="}, wantKey: "auth.encryption_key"},
		{name: "long access ttl", env: map[string]string{"MALL_AUTH_JWT_ACCESS_TTL": "24h"}, wantKey: "auth.jwt.access_ttl"},
		{name: "negative l1 size", env: map[string]string{"MALL_CATALOG_DETAIL_CACHE_L1_SIZE": "-1"}, wantKey: "catalog.detail_cache.l1_size"},
		{name: "zero l1 ttl", env: map[string]string{"MALL_CATALOG_DETAIL_CACHE_L1_TTL": "0s"}, wantKey: "catalog.detail_cache.l1_ttl"},
		{name: "l2 ttl below l1", env: map[string]string{"MALL_CATALOG_DETAIL_CACHE_L2_TTL": "1s"}, wantKey: "catalog.detail_cache.l2_ttl"},
		{name: "unknown key in file", file: "htp:\n  addr: x\n", wantKey: "htp"},
		{name: "unknown module key in file", file: "order:\n  payment_timout: 1m\n", wantKey: "order.payment_timout"},
		{name: "bad rtmp url", env: map[string]string{"MALL_LIVE_RTMP_URL": "http://x/live"}, wantKey: "live.rtmp_url"},
		{name: "bad oidc provider", file: "auth:\n  oidc:\n    - name: gh\n      issuer: https://id.example\n", wantKey: "auth.oidc[0].client_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			f := ""
			if tt.file != "" {
				f = filepath.Join(t.TempDir(), "mall.yaml")
				if err := os.WriteFile(f, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := app.LoadDevConfig(f)
			if err == nil {
				t.Fatal("want an error")
			}
			// One line per bad key, each "config: <key>: <what is wrong>".
			named := false
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "config: ") {
					t.Fatalf("line %q of %q is not a config error", line, err)
				}
				named = named || strings.HasPrefix(line, "config: "+tt.wantKey+": ")
			}
			if !named {
				t.Fatalf("want a line naming %q, got %q", tt.wantKey, err)
			}
		})
	}
}

// TestEveryBadKeyAtOnce: three modules' bad keys (and a platform key) come back in one
// error, each named with its full key.
func TestEveryBadKeyAtOnce(t *testing.T) {
	t.Setenv("MALL_ORDER_PAYMENT_TIMEOUT", "500ms")
	t.Setenv("MALL_LIVE_CHAT_MAX_RUNES", "0")
	t.Setenv("MALL_AUTH_JWT_ACCESS_TTL", "24h")
	t.Setenv("MALL_LOG_LEVEL", "loud")
	_, err := app.LoadDevConfig("")
	if err == nil {
		t.Fatal("want an error")
	}
	want := []string{
		"config: order.payment_timeout: must be at least 1s, got 500ms",
		"config: live.chat_max_runes: must be at least 1, got 0",
		"config: auth.jwt.access_ttl: must be at most 1h, got 24h0m0s",
		"config: log.level: ",
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
	var n int
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *config.Error
		if !errors.As(e, &ce) {
			t.Errorf("%v is not a *config.Error", e)
		}
		n++
	}
	if n != len(want) {
		t.Errorf("%d errors, want %d:\n%v", n, len(want), err)
	}
}

func TestPrintMasksSecrets(t *testing.T) {
	t.Setenv("MALL_DB_MAIN", "mall:s3cret-pw@tcp(127.0.0.1:3306)/mall")
	t.Setenv("MALL_REDIS_PASSWORD", "redis-pw")
	t.Setenv("MALL_LIVE_RTMP_SECRET", "rtmp-pw")
	t.Setenv("MALL_AUTH_ENCRYPTION_KEY", "c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk=")
	t.Setenv("MALL_PAYMENTS_SANDBOX_SECRET", "sandbox-secret-pw")
	t.Setenv("MALL_SEARCH_ELASTICSEARCH_PASSWORD", "es-pw")
	t.Setenv("MALL_MAIL_USERNAME", "mailer")
	t.Setenv("MALL_MAIL_PASSWORD", "smtp-pw")
	c, err := app.LoadDevConfig("")
	if err != nil {
		t.Fatal(err)
	}
	out := config.Print(c)
	for _, secret := range []string{"s3cret-pw", "redis-pw", "rtmp-pw", "sandbox-secret-pw", "es-pw", "smtp-pw", "c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk="} {
		if strings.Contains(out, secret) {
			t.Errorf("config print leaks %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"db.main = mall:******@tcp(127.0.0.1:3306)/mall", "http.addr = :8080", "live.rtmp_secret = ******",
		"order.payment_timeout = 30m0s", "auth.jwt.access_ttl = 15m0s", "catalog.detail_cache.l1_size = 10000"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

func TestPrintMasksSecretsInLists(t *testing.T) {
	f := filepath.Join(t.TempDir(), "mall.yaml")
	yaml := "auth:\n  oidc:\n    - name: gh\n      issuer: https://id.example\n      client_id: cid\n      client_secret: oidc-pw\n      redirect_url: https://shop/cb\n"
	if err := os.WriteFile(f, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := app.LoadDevConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	out := config.Print(c)
	if strings.Contains(out, "oidc-pw") || !strings.Contains(out, "auth.oidc[0].client_id = cid") {
		t.Fatalf("print:\n%s", out)
	}
}

// TestSectionWith: a test's or a command's change to one module's settings reaches that
// module's Config and leaves the original Config alone.
func TestSectionWith(t *testing.T) {
	c, err := app.LoadDevConfig("")
	if err != nil {
		t.Fatal(err)
	}
	changed := live.ConfigSection.With(c, func(l *live.Config) { l.ChatBurst = 9 })
	if got := section(t, live.ConfigSection, changed).ChatBurst; got != 9 {
		t.Fatalf("changed chat_burst = %d", got)
	}
	if got := section(t, live.ConfigSection, c).ChatBurst; got != 5 {
		t.Fatalf("original chat_burst = %d, want the default 5", got)
	}
	bad := user.ConfigSection.With(c, func(u *user.Config) { u.RefreshTTL = time.Minute })
	if _, err := user.ConfigSection.From(bad); err == nil || !strings.Contains(err.Error(), "auth.refresh_ttl") {
		t.Fatalf("a bad value set through With is still validated: %v", err)
	}
}

// TestREADMEDocumentsEveryKey keeps the README's configuration table in step with the
// keys the binary accepts.
func TestREADMEDocumentsEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	c, err := app.LoadDevConfig("")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(config.Print(c), "\n") {
		key, _, ok := strings.Cut(line, " = ")
		if !ok {
			continue
		}
		if !strings.Contains(string(readme), "`"+key+"`") {
			t.Errorf("README.md does not document %s", key)
		}
	}
}

package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/platform/config"
)

func TestDefaultsLoadAndValidate(t *testing.T) {
	c, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != ":8080" || !c.Kafka.Embedded || c.Order.PaymentTimeout != 30*time.Minute || c.Order.HoldGrace != 5*time.Minute || len(c.DB.Shards) != 2 {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	dc := c.Catalog.DetailCache
	if !c.Catalog.ReviewRequired || dc.L1Size != 10000 || dc.L1TTL != 30*time.Second || dc.L2TTL != 10*time.Minute {
		t.Fatalf("catalog defaults: %+v", c.Catalog)
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
	c, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != "127.0.0.1:9999" || len(c.DB.Shards) != 3 || c.DB.Shards[2] != "u:p@tcp(h:3)/c" ||
		c.Order.PaymentTimeout != 45*time.Minute || c.Order.HoldGrace != 2*time.Second || c.Payments.Sandbox.Enabled || c.Search.Bleve.Path != "/tmp/x" ||
		c.Catalog.DetailCache.L1Size != 0 || c.Catalog.ReviewRequired {
		t.Fatalf("overrides not applied: %+v", c)
	}
}

func TestFileMergesOverDefaults(t *testing.T) {
	f := filepath.Join(t.TempDir(), "mall.yaml")
	if err := os.WriteFile(f, []byte("http:\n  addr: \":7070\"\nlog:\n  level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != ":7070" || c.Log.Level != "debug" || c.Redis.Addr == "" {
		t.Fatalf("merge: %+v", c)
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
		{name: "short encryption key", env: map[string]string{"MALL_AUTH_ENCRYPTION_KEY": "c2hvcnQ="}, wantKey: "auth.encryption_key"},
		{name: "long access ttl", env: map[string]string{"MALL_AUTH_JWT_ACCESS_TTL": "24h"}, wantKey: "auth.jwt.access_ttl"},
		{name: "negative l1 size", env: map[string]string{"MALL_CATALOG_DETAIL_CACHE_L1_SIZE": "-1"}, wantKey: "catalog.detail_cache.l1_size"},
		{name: "zero l1 ttl", env: map[string]string{"MALL_CATALOG_DETAIL_CACHE_L1_TTL": "0s"}, wantKey: "catalog.detail_cache.l1_ttl"},
		{name: "l2 ttl below l1", env: map[string]string{"MALL_CATALOG_DETAIL_CACHE_L2_TTL": "1s"}, wantKey: "catalog.detail_cache.l2_ttl"},
		{name: "unknown key in file", file: "htp:\n  addr: x\n", wantKey: "htp"},
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
			_, err := config.Load(f)
			if err == nil {
				t.Fatal("want an error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "config: ") || !strings.Contains(msg, tt.wantKey) || strings.Contains(msg, "\n") {
				t.Fatalf("want one line naming %q, got %q", tt.wantKey, msg)
			}
		})
	}
}

func TestPrintMasksSecrets(t *testing.T) {
	t.Setenv("MALL_DB_MAIN", "mall:s3cret-pw@tcp(127.0.0.1:3306)/mall")
	t.Setenv("MALL_REDIS_PASSWORD", "redis-pw")
	t.Setenv("MALL_LIVE_RTMP_SECRET", "rtmp-pw")
	t.Setenv("MALL_AUTH_ENCRYPTION_KEY", "c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk=")
	t.Setenv("MALL_ARCHIVE_POSTGRES_DSN", "postgres://u:pg-pw@h:5432/db")
	c, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	out := config.Print(c)
	for _, secret := range []string{"s3cret-pw", "redis-pw", "rtmp-pw", "pg-pw", "c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk="} {
		if strings.Contains(out, secret) {
			t.Errorf("config print leaks %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"db.main = mall:******@tcp(127.0.0.1:3306)/mall", "http.addr = :8080", "live.rtmp_secret = ******"} {
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
	c, err := config.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	out := config.Print(c)
	if strings.Contains(out, "oidc-pw") || !strings.Contains(out, "auth.oidc[0].client_id = cid") {
		t.Fatalf("print:\n%s", out)
	}
}

func TestEmptyShardsMeansMain(t *testing.T) {
	t.Setenv("MALL_DB_SHARDS", "")
	c, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.DB.Shards) != 0 {
		t.Fatalf("shards = %q", c.DB.Shards)
	}
}

// TestREADMEDocumentsEveryKey keeps the README's configuration table in step with the
// keys the binary accepts.
func TestREADMEDocumentsEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Load("")
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

package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/platform/config"
)

// The module keys' own tests (every section of every module, the README's table of keys)
// are in internal/app, which knows the modules; these test the platform's keys and the
// section mechanism with sections of their own.

// TestBuiltInDefaultsAreProduction: without the development settings the binary's own
// defaults are production's, embedded Kafka off (so kafka.brokers is the one platform key
// left to set).
func TestBuiltInDefaultsAreProduction(t *testing.T) {
	_, err := config.Load("")
	if err == nil || !strings.Contains(err.Error(), "config: kafka.brokers: ") {
		t.Fatalf("want an error naming kafka.brokers, got %v", err)
	}
	t.Setenv("MALL_KAFKA_BROKERS", "k1:9092,k2:9092")
	c, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	if !c.App.IsProduction() || c.Kafka.Embedded || len(c.Kafka.Brokers) != 2 || c.HTTP.OpsAddr != "" || c.HTTP.OpsToken != "" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	d, err := config.LoadDev("")
	if err != nil {
		t.Fatal(err)
	}
	if d.App.Env != "development" || !d.Kafka.Embedded {
		t.Fatalf("development settings: %+v", d.App)
	}
}

func TestPlatformDefaultsLoadAndValidate(t *testing.T) {
	c, err := config.LoadDev("")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != ":8080" || !c.Kafka.Embedded || len(c.DB.Shards) != 2 || c.Outbox.PollInterval != 200*time.Millisecond {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestFileMergesOverDefaults(t *testing.T) {
	f := filepath.Join(t.TempDir(), "mall.yaml")
	if err := os.WriteFile(f, []byte("http:\n  addr: \":7070\"\nlog:\n  level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.LoadDev(f)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != ":7070" || c.Log.Level != "debug" || c.Redis.Addr == "" {
		t.Fatalf("merge: %+v", c)
	}
}

func TestEmptyShardsMeansMain(t *testing.T) {
	t.Setenv("MALL_DB_SHARDS", "")
	c, err := config.LoadDev("")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.DB.Shards) != 0 {
		t.Fatalf("shards = %q", c.DB.Shards)
	}
}

func TestMaskDSN(t *testing.T) {
	tests := []struct{ give, want string }{
		{give: "postgres://u:pg-pw@h:5432/db?sslmode=disable", want: "postgres://u:******@h:5432/db?sslmode=disable"},
		{give: "postgres://u@h:5432/db", want: "postgres://u@h:5432/db"},
		{give: "mall:pw@tcp(127.0.0.1:3306)/mall", want: "mall:******@tcp(127.0.0.1:3306)/mall"},
	}
	for _, tt := range tests {
		if got := config.MaskDSN(tt.give); got != tt.want {
			t.Errorf("MaskDSN(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

// Sections of three made-up modules, like the real modules declare theirs.
type alphaConfig struct {
	Timeout time.Duration `mapstructure:"timeout" validate:"min=1s"`
	Nested  struct {
		Size int `mapstructure:"size" validate:"gte=0"`
	} `mapstructure:"nested"`
}

type betaConfig struct {
	URL    string `mapstructure:"url" validate:"required"`
	Secret string `mapstructure:"secret"`
}

// Check: a rule tags cannot say, naming a key relative to the section.
func (b betaConfig) Check(app config.App) error {
	if app.IsProduction() && b.Secret == "dev" {
		return config.Invalid("secret", "the development secret is not allowed in production")
	}
	return nil
}

type gammaConfig struct {
	Mode string `mapstructure:"mode" validate:"oneof=fast safe"`
}

// raw stands for the real modules' sections (internal/app tests those): their subtrees in
// the embedded defaults must be owned by a section, or Load reports them as unknown.
func raw(keys ...string) []config.Part {
	var out []config.Part
	for _, k := range keys {
		out = append(out, config.Section[map[string]any]{Key: k})
	}
	return out
}

// load is config.LoadDev with the three test sections and the real modules' raw ones.
func load(file string) (config.Config, error) {
	parts := append(raw("mail", "auth", "catalog", "stock", "order", "payments", "live", "auction", "settlement",
		"flash_sale"), alpha, beta, gamma)
	return config.LoadDev(file, parts...)
}

var (
	alpha = config.Section[alphaConfig]{Key: "alpha"}
	beta  = config.Section[betaConfig]{Key: "beta"}
	gamma = config.Section[gammaConfig]{Key: "gamma"}
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "mall.yaml")
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

const goodSections = "alpha:\n  timeout: 5s\n  nested:\n    size: 3\nbeta:\n  url: http://x\n  secret: dev\ngamma:\n  mode: fast\n"

func TestSectionsDecode(t *testing.T) {
	t.Setenv("MALL_ALPHA_TIMEOUT", "7s")
	c, err := load(writeFile(t, goodSections))
	if err != nil {
		t.Fatal(err)
	}
	a, err := alpha.From(c)
	if err != nil {
		t.Fatal(err)
	}
	if a.Timeout != 7*time.Second || a.Nested.Size != 3 {
		t.Fatalf("alpha = %+v (the environment overrides the file)", a)
	}
	out := config.Print(c)
	for _, want := range []string{"alpha.timeout = 7s", "alpha.nested.size = 3", "beta.url = http://x", "beta.secret = ******", "gamma.mode = fast"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

// TestEveryBadKeyOfEverySection: one bad key in each of three sections, plus a platform
// key, a production-only rule and an unknown key, all in one error, each with its full key.
func TestEveryBadKeyOfEverySection(t *testing.T) {
	t.Setenv("MALL_APP_ENV", "production")
	t.Setenv("MALL_KAFKA_EMBEDDED", "false")
	t.Setenv("MALL_KAFKA_BROKERS", "k:9092")
	t.Setenv("MALL_LOG_LEVEL", "loud")
	t.Setenv("MALL_KAFKA_SESSION_TIMEOUT", "1s")
	t.Setenv("MALL_KAFKA_REBALANCE_TIMEOUT", "20m")
	f := writeFile(t, "alpha:\n  timeout: 500ms\n  nested:\n    size: -1\n    sise: 2\nbeta:\n  url: \"\"\n  secret: dev\ngamma:\n  mode: reckless\ndelta:\n  x: 1\n")
	_, err := load(f)
	if err == nil {
		t.Fatal("want an error")
	}
	want := []string{
		"config: log.level: must be debug, info, warn or error, got \"loud\"",
		"config: kafka.session_timeout: must be 6s to 5m (the brokers' default group.min/max.session.timeout.ms), got 1s",
		"config: kafka.rebalance_timeout: must be 1s to 10m, or 0 for the client's default (60s), got 20m0s",
		"config: alpha.nested.sise: unknown key",
		"config: beta.url: is required",
		"config: beta.secret: the development secret is not allowed in production",
		"config: gamma.mode: must be one of fast, safe, got \"reckless\"",
		"config: delta: unknown key",
	}
	lines := strings.Split(err.Error(), "\n")
	for _, w := range want {
		found := false
		for _, l := range lines {
			found = found || l == w
		}
		if !found {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
	if len(lines) != len(want) {
		t.Errorf("%d errors, want %d:\n%v", len(lines), len(want), err)
	}
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("%T is not a *config.Error", err)
	}

	// With the unknown key fixed, the decoded sections' validation speaks for them.
	f = writeFile(t, "alpha:\n  timeout: 500ms\n  nested:\n    size: -1\nbeta:\n  url: http://x\ngamma:\n  mode: fast\n")
	_, err = load(f)
	for _, w := range []string{"config: alpha.timeout: must be at least 1s, got 500ms", "config: alpha.nested.size: must be at least 0, got -1"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in %v", w, err)
		}
	}
}

func TestSectionDecodeErrorsNameTheKey(t *testing.T) {
	t.Setenv("MALL_ALPHA_TIMEOUT", "soon")
	t.Setenv("MALL_ALPHA_NESTED_SIZE", "many")
	_, err := load(writeFile(t, goodSections))
	if err == nil {
		t.Fatal("want an error")
	}
	for _, k := range []string{"config: alpha.timeout: ", "config: alpha.nested.size: "} {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("missing %q in %v", k, err)
		}
	}
}

func TestSectionWithLeavesTheOriginal(t *testing.T) {
	c, err := load(writeFile(t, goodSections))
	if err != nil {
		t.Fatal(err)
	}
	d := alpha.With(c, func(a *alphaConfig) { a.Timeout = time.Minute })
	if a, _ := alpha.From(d); a.Timeout != time.Minute {
		t.Fatalf("with: %+v", a)
	}
	if a, _ := alpha.From(c); a.Timeout != 5*time.Second {
		t.Fatalf("original changed: %+v", a)
	}
	if !strings.Contains(config.Print(d), "alpha.timeout = 1m0s") {
		t.Fatalf("print of the changed config:\n%s", config.Print(d))
	}
}

func TestPlatformBadKeys(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantKey string
	}{
		{name: "bad dsn", env: map[string]string{"MALL_DB_MAIN": "not a dsn"}, wantKey: "db.main"},
		{name: "bad engine", env: map[string]string{"MALL_SEARCH_ENGINE": "solr"}, wantKey: "search.engine"},
		{name: "bad bool", env: map[string]string{"MALL_KAFKA_EMBEDDED": "perhaps"}, wantKey: "kafka.embedded"},
		{name: "bad duration", env: map[string]string{"MALL_HTTP_READ_TIMEOUT": "soon"}, wantKey: "http.read_timeout"},
		{name: "embedded kafka in production", env: map[string]string{"MALL_APP_ENV": "production"}, wantKey: "kafka.embedded"},
		{name: "bad ops addr", env: map[string]string{"MALL_HTTP_OPS_ADDR": "9090"}, wantKey: "http.ops_addr"},
		{name: "ops addr on addr", env: map[string]string{"MALL_HTTP_OPS_ADDR": ":8080"}, wantKey: "http.ops_addr"},
		{name: "short ops token", env: map[string]string{"MALL_HTTP_OPS_TOKEN": "letmein"}, wantKey: "http.ops_token"},
		{name: "tls cert without key", env: map[string]string{"MALL_HTTP_TLS_CERT_FILE": "/etc/mall/cert.pem"}, wantKey: "http.tls_cert_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := config.LoadDev("")
			if err == nil || !strings.Contains(err.Error(), "config: "+tt.wantKey+": ") {
				t.Fatalf("want an error naming %q, got %v", tt.wantKey, err)
			}
		})
	}
}

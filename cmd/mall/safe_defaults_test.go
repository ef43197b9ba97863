package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/platform/kafkax/kafkaxtest"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
	"github.com/mallhq/mall/internal/user"
)

// prodEnv is the environment without the development settings (no MALL_CONFIG, no MALL_*
// but the test services' addresses) and the DSNs of fresh databases: the binary's defaults.
func prodEnv(t *testing.T, extra ...string) []string {
	t.Helper()
	_, db := sqldbtest.NewCluster(t, sqldbtest.Options{Shards: 2})
	var e []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MALL_") && !strings.HasPrefix(kv, "MALL_TEST_") {
			continue
		}
		e = append(e, kv)
	}
	e = append(e,
		"MALL_DB_MAIN="+db.Main,
		"MALL_DB_SHARDS="+strings.Join(db.Shards, ","),
		"MALL_REDIS_ADDR="+os.Getenv("MALL_TEST_REDIS_ADDR"),
	)
	return append(e, extra...)
}

// configErrorKeys are the keys named by a configuration error's lines on stderr.
func configErrorKeys(stderr string) []string {
	var keys []string
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		rest, ok := strings.CutPrefix(line, "mall: config: ")
		if !ok {
			return append(keys, "(not a config error: "+line+")")
		}
		key, _, _ := strings.Cut(rest, ": ")
		keys = append(keys, key)
	}
	return keys
}

// TestDefaultsRefuseTheSandbox (issue 14, done-when 1): with no configuration but the DSNs,
// `mall serve` is production: it names the secrets it needs, refuses the sandbox when asked
// for it, and once given the secrets serves without the sandbox, without public metrics and
// with a /readyz that says only "ok".
func TestDefaultsRefuseTheSandbox(t *testing.T) {
	_, stderr, code := run(t, prodEnv(t), "serve")
	if got := strings.Join(configErrorKeys(stderr), ","); code != 2 || got != "kafka.brokers,auth.encryption_key,live.rtmp_secret" {
		t.Fatalf("DSNs only: exit %d, keys %s, want kafka.brokers,auth.encryption_key,live.rtmp_secret:\n%s", code, got, stderr)
	}

	broker := kafkaxtest.Broker(t, 2)
	keys := filepath.Join(t.TempDir(), "jwt")
	if _, err := user.GenerateKey(keys); err != nil {
		t.Fatal(err)
	}
	secrets := []string{
		"MALL_KAFKA_BROKERS=" + strings.Join(broker.Seeds(), ","),
		"MALL_AUTH_ENCRYPTION_KEY=c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk=",
		"MALL_LIVE_RTMP_SECRET=a-real-rtmp-secret",
		"MALL_AUTH_JWT_KEYS_DIR=" + keys,
		"MALL_SEARCH_BLEVE_PATH=" + filepath.Join(t.TempDir(), "search"),
	}
	_, stderr, code = run(t, prodEnv(t, append(secrets, "MALL_PAYMENTS_SANDBOX_ENABLED=true",
		"MALL_PAYMENTS_SANDBOX_SECRET=dev-sandbox-notification-secret")...), "serve")
	if code != 2 || !strings.Contains(stderr, "mall: config: payments.sandbox.enabled: must be false in production") {
		t.Fatalf("sandbox asked for: exit %d:\n%s", code, stderr)
	}
	// No generated keys either: an empty keys directory stops startup, naming the key.
	_, stderr, code = run(t, prodEnv(t, append(secrets, "MALL_AUTH_JWT_KEYS_DIR="+t.TempDir())...), "serve")
	if code != 1 || !strings.Contains(stderr, "auth.jwt.keys_dir") {
		t.Fatalf("empty keys_dir: exit %d:\n%s", code, stderr)
	}

	addr := freeAddr(t)
	cmd := exec.Command(binary, "serve")
	cmd.Env = prodEnv(t, append(secrets, "MALL_HTTP_ADDR="+addr)...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	base := "http://" + addr
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if st, _ := tryGet(base + "/readyz"); st == 200 {
			break
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			t.Fatalf("not ready after 60s:\n%s", logs.String())
		}
	}
	if st, body := get(t, base+"/readyz", ""); st != 200 || strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Errorf("/readyz: %d %s", st, body)
	}
	if st, body := get(t, base+"/metrics", ""); st != 404 {
		t.Errorf("/metrics in production without ops keys: %d %s", st, body)
	}

	email := "safe-" + strings.ToLower(time.Now().Format("150405.000000")) + "@example.com"
	post(t, base+"/api/v1/auth/register", "", map[string]string{"email": email, "password": "correct horse battery"})
	var tk struct {
		AccessToken string `json:"access_token"`
	}
	if st, body := post(t, base+"/api/v1/auth/login", "", map[string]string{"email": email, "password": "correct horse battery"}); st != 200 {
		t.Fatalf("login: %d %s", st, body)
	} else if err := json.Unmarshal([]byte(body), &tk); err != nil || tk.AccessToken == "" {
		t.Fatalf("login: %s", body)
	}
	if st, body := post(t, base+"/api/v1/payments/1/sandbox/complete", tk.AccessToken, nil); st != 404 || !strings.Contains(body, "payment.sandbox_disabled") {
		t.Errorf("sandbox complete: %d %s", st, body)
	}
	if st, body := post(t, base+"/api/v1/payments", tk.AccessToken, map[string]string{"checkout_id": "1", "provider": "sandbox"},
		"Idempotency-Key", "safe-defaults-1"); st != 400 || !strings.Contains(body, "payment.provider_unknown") {
		t.Errorf("sandbox payment: %d %s", st, body)
	}
}

// tryGet is GET without failing the test (the server may not listen yet).
func tryGet(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// post POSTs v as JSON with the bearer token (when not empty) and extra header pairs.
func post(t *testing.T, url, token string, v any, headers ...string) (int, string) {
	t.Helper()
	var body bytes.Buffer
	if v != nil {
		if err := json.NewEncoder(&body).Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, url, &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

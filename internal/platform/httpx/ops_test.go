package httpx_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/httpx"
)

const testOpsToken = "ops-token-0123456789abcdef"

// TestMetricsAccess: who may read /metrics on the main listener (ADR 0027).
func TestMetricsAccess(t *testing.T) {
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	tests := []struct {
		name    string
		tweak   func(*httpx.ServerConfig)
		headers []string
		want    int
	}{
		{name: "development, no ops keys: open", tweak: func(*httpx.ServerConfig) {}, want: 200},
		{name: "production, no ops keys: not served", tweak: func(c *httpx.ServerConfig) { c.Production = true }, want: 404},
		{name: "token, none sent", tweak: func(c *httpx.ServerConfig) { c.Production, c.HTTP.OpsToken = true, testOpsToken }, want: 401},
		{name: "token, wrong one", tweak: func(c *httpx.ServerConfig) { c.HTTP.OpsToken = testOpsToken },
			headers: bearer(testOpsToken + "x"), want: 401},
		{name: "token, sent", tweak: func(c *httpx.ServerConfig) { c.Production, c.HTTP.OpsToken = true, testOpsToken },
			headers: bearer(testOpsToken), want: 200},
		{name: "ops listener: only there", tweak: func(c *httpx.ServerConfig) {
			c.HTTP.OpsAddr, c.HTTP.OpsToken = "127.0.0.1:0", testOpsToken
		}, headers: bearer(testOpsToken), want: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, nil, tt.tweak, func(c *httpx.ServerConfig) {
				// Like user authentication: an Authorization header that is no access token
				// is refused, except on the ops paths, whose header is the ops token.
				c.Middleware = []httpx.Middleware{{Name: "authn", Func: func(next echo.HandlerFunc) echo.HandlerFunc {
					return func(c echo.Context) error {
						if c.Request().Header.Get("Authorization") != "" {
							return errs.ErrUnauthenticated.WithDetail("not an access token")
						}
						return next(c)
					}
				}}}
			})
			res := h.do(t, http.MethodGet, "/metrics", nil, tt.headers...)
			if res.status != tt.want {
				t.Fatalf("/metrics = %d, want %d: %s", res.status, tt.want, res.body)
			}
			if tt.want == 200 && !strings.Contains(string(res.body), "go_goroutines") && !strings.Contains(string(res.body), "mall_http") {
				t.Fatalf("not metrics: %s", res.body)
			}
			if tt.want != 200 {
				res.problem(t)
			}
			if tt.want == 401 && res.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

// TestOpsListener: http.ops_addr serves /metrics and detailed /readyz without a token, and
// answers 503 with the rest once shutdown begins.
func TestOpsListener(t *testing.T) {
	down := httpx.Check{Name: "redis", Check: func(context.Context) error { return errors.New("dial tcp 10.1.2.3:6379: connection refused") }}
	h := start(t, nil, func(c *httpx.ServerConfig) {
		c.Production = true
		c.HTTP.OpsAddr = "127.0.0.1:0"
		c.Checks = []httpx.Check{down}
	})
	h.do(t, http.MethodGet, "/metrics", nil) // one request to count
	ops := "http://" + h.srv.OpsAddr().String()
	get := func(path string) response {
		req, err := http.NewRequest(http.MethodGet, ops+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return send(t, req)
	}
	if r := get("/metrics"); r.status != 200 || !strings.Contains(string(r.body), "mall_http_requests_total") {
		t.Fatalf("ops /metrics = %d %s", r.status, r.body)
	}
	r := get("/readyz")
	if p := r.problem(t); r.status != 503 || len(p.Errors) != 1 || p.Errors[0].Field != "redis" || !strings.Contains(p.Errors[0].Message, "connection refused") {
		t.Fatalf("ops /readyz = %d %s", r.status, r.body)
	}
	if r := get("/healthz"); r.status != 200 {
		t.Fatalf("ops /healthz = %d", r.status)
	}
	if r := get("/api/v1/anything"); r.status != 404 {
		t.Fatalf("ops listener serves %d for an API path", r.status)
	}
	// The main listener says only "not ready".
	pub := h.do(t, http.MethodGet, "/readyz", nil)
	if pub.status != 503 || strings.Contains(string(pub.body), "redis") || strings.Contains(string(pub.body), "10.1.2.3") {
		t.Fatalf("public /readyz = %d %s", pub.status, pub.body)
	}
}

// TestTLSServesHTTP2: with http.tls_cert_file and http.tls_key_file the main listener is
// HTTPS, and an HTTP/2 client's request is answered over HTTP/2.
func TestTLSServesHTTP2(t *testing.T) {
	cert, key, pool := selfSigned(t)
	h := start(t, nil, func(c *httpx.ServerConfig) { c.HTTP.TLSCertFile, c.HTTP.TLSKeyFile = cert, key })
	url := strings.Replace(h.url, "http://", "https://", 1)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true,
	}}
	defer client.CloseIdleConnections()
	res, err := client.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.ProtoMajor != 2 || res.TLS == nil {
		t.Fatalf("GET /healthz over TLS: %d %s %s", res.StatusCode, res.Proto, body)
	}
	// Plain HTTP on the TLS port is refused (net/http answers 400).
	plain, err := http.Get(h.url + "/healthz")
	if err == nil {
		plain.Body.Close()
		if plain.StatusCode == 200 {
			t.Fatal("plain HTTP served on the TLS listener")
		}
	}
}

// TestTLSBadFilesFailConstruction: unreadable certificate files fail NewServer, naming the keys.
func TestTLSBadFilesFailConstruction(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := httpx.ServerConfig{HTTP: testHTTPConfig(), Logger: slog.New(slog.DiscardHandler), Registerer: reg, Gatherer: reg}
	cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile = filepath.Join(t.TempDir(), "none.pem"), filepath.Join(t.TempDir(), "none.key")
	if _, err := httpx.NewServer(cfg); err == nil || !strings.Contains(err.Error(), "http.tls_cert_file") {
		t.Fatalf("NewServer with missing files: %v", err)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key to files; pool trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mall test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

// Package oidctest runs a local OpenID Connect provider (github.com/oauth2-proxy/mockoidc)
// for tests, and plays the browser's part of a login against it.
//
// The provider is stricter than mockoidc alone: its authorization endpoint refuses requests
// without an S256 code_challenge or a nonce, so a client that stops sending them fails its
// tests, and its token endpoint refuses a missing or wrong code_verifier (mockoidc checks
// the verifier against the challenge it was given).
//
//	p := oidctest.Start(t)
//	cfg = user.ConfigSection.With(cfg, func(c *user.Config) {
//		c.OIDC = []oidc.ProviderConfig{oidc.ProviderConfig(p.Config("mock", srv.URL+"/api/v1/auth/oauth/mock/callback"))}
//	})
//	p.QueueUser("ada@example.com", true, "ada-sub")
//	callback := p.Authorize(t, authorizeURL) // the redirect back to us, with code and state
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
)

// ProviderConfig has the fields of oidc.ProviderConfig (convert with
// oidc.ProviderConfig(p.Config(...))); oidc's own tests use this package, so it cannot
// import oidc.
type ProviderConfig struct {
	Name         string
	Issuer       string
	ClientID     string
	ClientSecret string
	RedirectURL  string
	Scopes       []string
}

// Provider is a running mock OpenID Connect provider.
type Provider struct {
	m *mockoidc.MockOIDC
	// mu serialises requests: mockoidc keeps its sessions in an unguarded map.
	mu        sync.Mutex
	down      atomic.Bool
	discovery atomic.Int64
}

// User is one login the provider will grant.
type User struct {
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
}

// signingKey is shared by every provider in the process: generating an RSA key under the
// race detector is slow, and each provider still has its own issuer and client ID.
var signingKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

// Start starts a provider on a free loopback port; it stops when the test ends.
func Start(t testing.TB) *Provider {
	t.Helper()
	key, err := signingKey()
	if err != nil {
		t.Fatalf("oidctest: %v", err)
	}
	m, err := mockoidc.NewServer(key)
	if err != nil {
		t.Fatalf("oidctest: %v", err)
	}
	m.CodeChallengeMethodsSupported = []string{"S256"} // "plain" is refused, as it should be
	p := &Provider{m: m}
	for _, mw := range []func(http.Handler) http.Handler{p.serialise, p.count, p.outage, p.requirePKCE} {
		if err := m.AddMiddleware(mw); err != nil {
			t.Fatalf("oidctest: %v", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("oidctest: %v", err)
	}
	if err := m.Start(ln, nil); err != nil {
		ln.Close()
		t.Fatalf("oidctest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if m.Server.Shutdown(ctx) != nil {
			m.Server.Close()
		}
	})
	return p
}

// Config returns the provider entry for auth.oidc, with the mock's client credentials and
// the default scopes.
func (p *Provider) Config(name, redirectURL string) ProviderConfig {
	return ProviderConfig{
		Name:         name,
		Issuer:       p.m.Issuer(),
		ClientID:     p.m.ClientID,
		ClientSecret: p.m.ClientSecret,
		RedirectURL:  redirectURL,
	}
}

// Issuer returns the provider's issuer URL.
func (p *Provider) Issuer() string { return p.m.Issuer() }

// QueueUser queues the user the next authorization logs in (after the ones queued
// before). The name is the part of email before "@"; an empty subject gets a random one.
// With nothing queued, mockoidc logs in jane.doe@example.com (verified).
func (p *Provider) QueueUser(email string, verified bool, subject string) {
	name, _, _ := strings.Cut(email, "@")
	p.Queue(User{Subject: subject, Email: email, EmailVerified: verified, Name: name})
}

// Queue queues u for the next authorization; an empty Subject gets a random one.
func (p *Provider) Queue(u User) {
	if u.Subject == "" {
		u.Subject = rand.Text()
	}
	p.m.QueueUser(mockUser(u))
}

// SetDown makes every endpoint answer 503 (true) or serve again (false).
func (p *Provider) SetDown(down bool) { p.down.Store(down) }

// DiscoveryRequests counts the requests for the discovery document so far.
func (p *Provider) DiscoveryRequests() int { return int(p.discovery.Load()) }

// SetClockSkew moves the provider's clock by d for the tokens it issues from now on (a
// negative d issues tokens that are already expired).
func (p *Provider) SetClockSkew(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m.FastForward(d - p.m.FastForward(0))
}

// Mock returns the underlying mockoidc server, for what this package does not wrap
// (QueueError, QueueCode).
func (p *Provider) Mock() *mockoidc.MockOIDC { return p.m }

// Authorize does what a browser does with authorizeURL: it GETs the provider's
// authorization endpoint, which logs in the next queued user at once, and returns the
// Location it redirects to (the client's redirect URL with code and state) without
// following it. The test fails unless the provider answers with a redirect. Call it from
// the test's goroutine.
func (p *Provider) Authorize(t testing.TB, authorizeURL string) (callbackURL string) {
	t.Helper()
	if !strings.HasPrefix(authorizeURL, p.m.AuthorizationEndpoint()+"?") {
		t.Fatalf("oidctest: %q is not this provider's authorization endpoint %s", authorizeURL, p.m.AuthorizationEndpoint())
	}
	hc := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	res, err := hc.Get(authorizeURL)
	if err != nil {
		t.Fatalf("oidctest: authorize: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	if res.StatusCode != http.StatusFound {
		t.Fatalf("oidctest: authorize answered %d, want 302: %s", res.StatusCode, body)
	}
	loc := res.Header.Get("Location")
	if loc == "" {
		t.Fatal("oidctest: authorize redirected without a Location")
	}
	return loc
}

func (p *Provider) serialise(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (p *Provider) outage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.down.Load() {
			http.Error(w, "provider is down (oidctest)", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (p *Provider) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == mockoidc.DiscoveryEndpoint {
			p.discovery.Add(1)
		}
		next.ServeHTTP(w, r)
	})
}

// requirePKCE refuses authorization requests without an S256 code challenge or a nonce;
// mockoidc would accept them and then skip the verifier check at the token endpoint.
func (p *Provider) requirePKCE(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == mockoidc.AuthorizationEndpoint {
			q := r.URL.Query()
			var missing string
			switch {
			case q.Get("code_challenge") == "":
				missing = "code_challenge is required"
			case q.Get("code_challenge_method") != "S256":
				missing = "code_challenge_method must be S256"
			case q.Get("nonce") == "":
				missing = "nonce is required"
			}
			if missing != "" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request", "error_description": missing})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// mockUser is a mockoidc.User that also has a name and may have an unverified email
// (mockoidc's MockUser has no name claim).
type mockUser User

var _ mockoidc.User = mockUser{}

type scopedClaims struct {
	Email         string `json:"email,omitempty"`
	EmailVerified *bool  `json:"email_verified,omitempty"`
	Name          string `json:"name,omitempty"`
}

func (u mockUser) scoped(scopes []string) scopedClaims {
	var c scopedClaims
	for _, s := range scopes {
		switch s {
		case "email":
			verified := u.EmailVerified
			c.Email, c.EmailVerified = u.Email, &verified
		case "profile":
			c.Name = u.Name
		}
	}
	return c
}

func (u mockUser) ID() string { return u.Subject }

func (u mockUser) Userinfo(scopes []string) ([]byte, error) {
	return json.Marshal(struct {
		Subject string `json:"sub"`
		scopedClaims
	}{u.Subject, u.scoped(scopes)})
}

func (u mockUser) Claims(scopes []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	return &idClaims{IDTokenClaims: base, scopedClaims: u.scoped(scopes)}, nil
}

type idClaims struct {
	*mockoidc.IDTokenClaims
	scopedClaims
}

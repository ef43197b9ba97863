package oidc

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/redisx/redisxtest"
	"github.com/mallhq/mall/internal/user/oidc/oidctest"
)

const callback = "http://127.0.0.1:1/api/v1/auth/oauth/%s/callback" // never requested

func redirectFor(name string) string { return strings.Replace(callback, "%s", name, 1) }

func newClient(t *testing.T, entries ...oidctest.ProviderConfig) (*Client, *redis.Client) {
	t.Helper()
	rdb := redisxtest.Client(t)
	providers := make([]ProviderConfig, len(entries))
	for i, e := range entries {
		providers[i] = ProviderConfig(e)
	}
	c, err := New(context.Background(), providers, rdb, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, rdb
}

// login runs AuthorizeURL and the browser leg, returning the callback's code and state.
func login(t *testing.T, c *Client, p *oidctest.Provider, provider string) (code, state string) {
	t.Helper()
	au, err := c.AuthorizeURL(context.Background(), provider)
	if err != nil {
		t.Fatalf("AuthorizeURL: %v", err)
	}
	cb, err := url.Parse(p.Authorize(t, au))
	if err != nil {
		t.Fatal(err)
	}
	return cb.Query().Get("code"), cb.Query().Get("state")
}

func stored(t *testing.T, rdb *redis.Client, state string) pending {
	t.Helper()
	raw, err := rdb.Get(context.Background(), stateKey(state)).Bytes()
	if err != nil {
		t.Fatalf("state %s: %v", stateKey(state), err)
	}
	var p pending
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func tamper(t *testing.T, rdb *redis.Client, state string, f func(*pending)) {
	t.Helper()
	p := stored(t, rdb, state)
	f(&p)
	raw, _ := json.Marshal(p)
	if err := rdb.Set(context.Background(), stateKey(state), raw, StateTTL).Err(); err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

func TestLoginFlow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give     string
		verified bool
	}{
		{give: "verified email", verified: true},
		{give: "unverified email", verified: false},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			t.Parallel()
			p := oidctest.Start(t)
			c, rdb := newClient(t, p.Config("mock", redirectFor("mock")))
			p.QueueUser("ada@example.com", tt.verified, "sub-ada")

			au, err := c.AuthorizeURL(context.Background(), "mock")
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(au)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			state, nonce, challenge := q.Get("state"), q.Get("nonce"), q.Get("code_challenge")
			for k, want := range map[string]string{
				"response_type":         "code",
				"client_id":             p.Config("", "").ClientID,
				"redirect_uri":          redirectFor("mock"),
				"scope":                 "openid email profile",
				"code_challenge_method": "S256",
			} {
				if got := q.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			for name, v := range map[string]string{"state": state, "nonce": nonce} {
				if b, err := base64.RawURLEncoding.DecodeString(v); err != nil || len(b) < 16 {
					t.Errorf("%s %q is not >= 128 random bits", name, v)
				}
			}
			// The challenge is S256 of the verifier kept for the callback; the state
			// itself is not a key in Redis.
			pend := stored(t, rdb, state)
			sum := sha256.Sum256([]byte(pend.Verifier))
			if want := base64.RawURLEncoding.EncodeToString(sum[:]); challenge != want {
				t.Errorf("code_challenge = %q, want S256(stored verifier) %q", challenge, want)
			}
			if pend.Provider != "mock" || pend.Nonce != nonce {
				t.Errorf("stored %+v, want provider mock and the URL's nonce", pend)
			}
			if n, _ := rdb.Exists(context.Background(), state).Result(); n != 0 {
				t.Error("the raw state is a Redis key")
			}
			if ttl := rdb.TTL(context.Background(), stateKey(state)).Val(); ttl <= StateTTL-time.Minute || ttl > StateTTL {
				t.Errorf("state TTL = %s, want about %s", ttl, StateTTL)
			}

			cb, err := url.Parse(p.Authorize(t, au))
			if err != nil {
				t.Fatal(err)
			}
			if got := cb.Scheme + "://" + cb.Host + cb.Path; got != redirectFor("mock") {
				t.Fatalf("callback %q, want %q", got, redirectFor("mock"))
			}
			if cb.Query().Get("state") != state {
				t.Fatalf("callback state %q, want %q", cb.Query().Get("state"), state)
			}
			id, err := c.Exchange(context.Background(), "mock", cb.Query().Get("code"), state)
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			want := Identity{Provider: "mock", Subject: "sub-ada", Email: "ada@example.com", EmailVerified: tt.verified, Name: "ada"}
			if id != want {
				t.Fatalf("identity = %+v, want %+v", id, want)
			}
			if n, _ := rdb.Exists(context.Background(), stateKey(state)).Result(); n != 0 {
				t.Error("the state outlived its callback")
			}
		})
	}
}

func TestExchangeRefusesBadState(t *testing.T) {
	t.Parallel()
	a, b := oidctest.Start(t), oidctest.Start(t)
	c, rdb := newClient(t, a.Config("a", redirectFor("a")), b.Config("b", redirectFor("b")))
	ctx := context.Background()

	tests := []struct {
		give string
		// exchange returns the provider, code and state the callback presents.
		exchange func(t *testing.T) (provider, code, state string)
	}{
		{give: "forged state", exchange: func(t *testing.T) (string, string, string) {
			code, _ := login(t, c, a, "a")
			return "a", code, randomToken()
		}},
		{give: "empty state", exchange: func(t *testing.T) (string, string, string) {
			code, _ := login(t, c, a, "a")
			return "a", code, ""
		}},
		{give: "oversized state", exchange: func(t *testing.T) (string, string, string) {
			code, _ := login(t, c, a, "a")
			return "a", code, strings.Repeat("x", maxStateLen+1)
		}},
		{give: "replayed state", exchange: func(t *testing.T) (string, string, string) {
			code, state := login(t, c, a, "a")
			if _, err := c.Exchange(ctx, "a", code, state); err != nil {
				t.Fatalf("first Exchange: %v", err)
			}
			code2, _ := login(t, c, a, "a") // a fresh code does not revive the state
			return "a", code2, state
		}},
		{give: "state of another provider", exchange: func(t *testing.T) (string, string, string) {
			_, stateA := login(t, c, a, "a")
			codeB, _ := login(t, c, b, "b")
			return "b", codeB, stateA
		}},
		{give: "expired state", exchange: func(t *testing.T) (string, string, string) {
			code, state := login(t, c, a, "a")
			if err := rdb.PExpire(ctx, stateKey(state), time.Millisecond).Err(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for rdb.Exists(ctx, stateKey(state)).Val() != 0 {
				if time.Now().After(deadline) {
					t.Fatal("the state did not expire")
				}
				time.Sleep(time.Millisecond)
			}
			return "a", code, state
		}},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			provider, code, state := tt.exchange(t)
			_, err := c.Exchange(ctx, provider, code, state)
			wantErr(t, err, ErrInvalidState)
			if errs.KindOf(err) != errs.Invalid {
				t.Fatalf("kind = %s, want invalid", errs.KindOf(err))
			}
		})
	}

	t.Run("state presented to the wrong provider is used up", func(t *testing.T) {
		codeA, stateA := login(t, c, a, "a")
		_, err := c.Exchange(ctx, "b", codeA, stateA)
		wantErr(t, err, ErrInvalidState)
		_, err = c.Exchange(ctx, "a", codeA, stateA)
		wantErr(t, err, ErrInvalidState)
	})
}

// TestExchangeStateIsSingleUse races callbacks carrying one state: exactly one wins.
func TestExchangeStateIsSingleUse(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t)
	c, _ := newClient(t, p.Config("mock", redirectFor("mock")))
	code, state := login(t, c, p, "mock")

	const n = 16
	var (
		wg                      sync.WaitGroup
		mu                      sync.Mutex
		won, refused, otherErrs int
	)
	for range n {
		wg.Go(func() {
			_, err := c.Exchange(context.Background(), "mock", code, state)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, ErrInvalidState):
				refused++
			default:
				otherErrs++
				t.Errorf("Exchange: %v", err)
			}
		})
	}
	wg.Wait()
	if won != 1 || refused != n-1 {
		t.Fatalf("won %d, refused %d, other errors %d; want 1, %d, 0", won, refused, otherErrs, n-1)
	}
}

func TestExchangeRequiresPKCEVerifier(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t)
	c, rdb := newClient(t, p.Config("mock", redirectFor("mock")))
	tests := []struct {
		give     string
		verifier string
	}{
		{give: "another verifier", verifier: oauth2.GenerateVerifier()},
		{give: "no verifier", verifier: ""},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			code, state := login(t, c, p, "mock")
			orig := stored(t, rdb, state).Verifier
			tamper(t, rdb, state, func(pd *pending) { pd.Verifier = tt.verifier })
			_, err := c.Exchange(context.Background(), "mock", code, state)
			wantErr(t, err, ErrExchange)
			if errs.KindOf(err) != errs.Unauthenticated {
				t.Fatalf("kind = %s, want unauthenticated", errs.KindOf(err))
			}
			if !strings.Contains(err.Error(), "invalid_grant") {
				t.Errorf("err = %v, want the token endpoint's invalid_grant", err)
			}
			for _, secret := range []string{code, orig, p.Config("", "").ClientSecret} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("err %q leaks a code, verifier or secret", err)
				}
			}
		})
	}
}

func TestExchangeRequiresNonce(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t)
	c, rdb := newClient(t, p.Config("mock", redirectFor("mock")))
	tests := []struct {
		give  string
		nonce string
	}{
		{give: "another nonce", nonce: randomToken()},
		{give: "no nonce", nonce: ""},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			code, state := login(t, c, p, "mock")
			tamper(t, rdb, state, func(pd *pending) { pd.Nonce = tt.nonce })
			_, err := c.Exchange(context.Background(), "mock", code, state)
			wantErr(t, err, ErrExchange)
			if !strings.Contains(err.Error(), "nonce") {
				t.Errorf("err = %v, want a nonce mismatch", err)
			}
		})
	}
}

func TestExchangeRefusesExpiredIDToken(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t)
	c, _ := newClient(t, p.Config("mock", redirectFor("mock")))
	code, state := login(t, c, p, "mock")
	p.SetClockSkew(-time.Hour) // tokens minted now expired 50 minutes ago
	_, err := c.Exchange(context.Background(), "mock", code, state)
	wantErr(t, err, ErrExchange)
	if !strings.Contains(err.Error(), "expired") {
		t.Errorf("err = %v, want an expired token", err)
	}
}

func TestExchangeRefusesMissingCode(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t)
	c, _ := newClient(t, p.Config("mock", redirectFor("mock")))
	_, state := login(t, c, p, "mock")
	_, err := c.Exchange(context.Background(), "mock", "", state)
	wantErr(t, err, ErrExchange)
	_, err = c.Exchange(context.Background(), "mock", "made-up", randomToken())
	wantErr(t, err, ErrInvalidState)
}

func TestUnknownProvider(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t)
	c, _ := newClient(t, p.Config("mock", redirectFor("mock")))
	_, err := c.AuthorizeURL(context.Background(), "nope")
	wantErr(t, err, ErrUnknownProvider)
	_, err = c.Exchange(context.Background(), "nope", "code", randomToken())
	wantErr(t, err, ErrUnknownProvider)
	if errs.KindOf(err) != errs.NotFound {
		t.Fatalf("kind = %s, want not_found", errs.KindOf(err))
	}
	if p.DiscoveryRequests() != 0 {
		t.Fatal("an unknown provider name caused a discovery request")
	}
}

func TestProviderDownAtStartup(t *testing.T) {
	t.Parallel()
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now: connections are refused
		c, _ := newClient(t, oidctest.ProviderConfig{Name: "gone", Issuer: "http://" + addr + "/oidc",
			ClientID: "id", ClientSecret: "secret", RedirectURL: redirectFor("gone")})
		_, err = c.AuthorizeURL(context.Background(), "gone")
		wantErr(t, err, ErrProviderUnavailable)
		if errs.KindOf(err) != errs.Unavailable {
			t.Fatalf("kind = %s, want unavailable", errs.KindOf(err))
		}
		if e, _ := errs.As(err); strings.Contains(e.Detail, addr) {
			t.Errorf("detail %q shows clients the provider's address", e.Detail)
		}
	})
	t.Run("comes back", func(t *testing.T) {
		t.Parallel()
		p := oidctest.Start(t)
		p.SetDown(true)
		c, _ := newClient(t, p.Config("mock", redirectFor("mock")))
		for range 2 { // every call tries again
			_, err := c.AuthorizeURL(context.Background(), "mock")
			wantErr(t, err, ErrProviderUnavailable)
		}
		if got := p.DiscoveryRequests(); got != 2 {
			t.Fatalf("discovery requests = %d, want 2", got)
		}
		_, err := c.Exchange(context.Background(), "mock", "code", randomToken())
		wantErr(t, err, ErrProviderUnavailable)

		p.SetDown(false)
		p.QueueUser("bob@example.com", true, "sub-bob")
		code, state := login(t, c, p, "mock")
		id, err := c.Exchange(context.Background(), "mock", code, state)
		if err != nil {
			t.Fatalf("Exchange after the provider came back: %v", err)
		}
		if id.Subject != "sub-bob" {
			t.Fatalf("subject = %q, want sub-bob", id.Subject)
		}
	})
}

// TestDiscoveryIsCached: concurrent first calls share one discovery, later calls none.
func TestDiscoveryIsCached(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t)
	c, _ := newClient(t, p.Config("mock", redirectFor("mock")))
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := c.AuthorizeURL(context.Background(), "mock"); err != nil {
				t.Errorf("AuthorizeURL: %v", err)
			}
		})
	}
	wg.Wait()
	code, state := login(t, c, p, "mock")
	if _, err := c.Exchange(context.Background(), "mock", code, state); err != nil {
		t.Fatal(err)
	}
	if got := p.DiscoveryRequests(); got != 1 {
		t.Fatalf("discovery requests = %d, want 1", got)
	}
}

func TestCustomScopesKeepOpenID(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t)
	cfg := p.Config("mock", redirectFor("mock"))
	cfg.Scopes = []string{"email"}
	c, _ := newClient(t, cfg)
	p.QueueUser("cy@example.com", true, "sub-cy")
	au, err := c.AuthorizeURL(context.Background(), "mock")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(au)
	if got := u.Query().Get("scope"); got != "openid email" {
		t.Fatalf("scope = %q, want %q", got, "openid email")
	}
	cb, _ := url.Parse(p.Authorize(t, au))
	id, err := c.Exchange(context.Background(), "mock", cb.Query().Get("code"), cb.Query().Get("state"))
	if err != nil {
		t.Fatal(err)
	}
	if id.Email != "cy@example.com" || !id.EmailVerified || id.Name != "" { // no profile scope, no name
		t.Fatalf("identity = %+v", id)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	rdb := redisxtest.Client(t)
	ok := ProviderConfig{Name: "google", Issuer: "https://accounts.google.com", ClientID: "id",
		ClientSecret: "secret", RedirectURL: "https://mall.example/api/v1/auth/oauth/google/callback"}
	with := func(f func(*ProviderConfig)) []ProviderConfig {
		p := ok
		f(&p)
		return []ProviderConfig{p}
	}
	tests := []struct {
		give    string
		give2   []ProviderConfig
		wantKey string // "" = valid
	}{
		{give: "valid", give2: []ProviderConfig{ok}},
		{give: "none", give2: nil},
		{give: "http issuer on loopback", give2: with(func(p *ProviderConfig) { p.Issuer = "http://127.0.0.1:5556/dex" })},
		{give: "no client secret (public client)", give2: with(func(p *ProviderConfig) { p.ClientSecret = "" })},
		{give: "empty name", give2: with(func(p *ProviderConfig) { p.Name = "" }), wantKey: "auth.oidc[0].name"},
		{give: "name with a slash", give2: with(func(p *ProviderConfig) { p.Name = "a/b" }), wantKey: "auth.oidc[0].name"},
		{give: "duplicate name", give2: []ProviderConfig{ok, ok}, wantKey: "auth.oidc[1].name"},
		{give: "http issuer elsewhere", give2: with(func(p *ProviderConfig) { p.Issuer = "http://accounts.example" }), wantKey: "auth.oidc[0].issuer"},
		{give: "relative issuer", give2: with(func(p *ProviderConfig) { p.Issuer = "/oidc" }), wantKey: "auth.oidc[0].issuer"},
		{give: "no client id", give2: with(func(p *ProviderConfig) { p.ClientID = "" }), wantKey: "auth.oidc[0].client_id"},
		{give: "relative redirect", give2: with(func(p *ProviderConfig) { p.RedirectURL = "/callback" }), wantKey: "auth.oidc[0].redirect_url"},
		{give: "blank scope", give2: with(func(p *ProviderConfig) { p.Scopes = []string{"openid", ""} }), wantKey: "auth.oidc[0].scopes"},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			c, err := New(context.Background(), tt.give2, rdb, nil)
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if len(c.Providers()) != len(tt.give2) {
					t.Fatalf("providers = %v", c.Providers())
				}
				return
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Key != tt.wantKey {
				t.Fatalf("err = %v, want a config error for %s", err, tt.wantKey)
			}
		})
	}
	t.Run("no redis", func(t *testing.T) {
		if _, err := New(context.Background(), nil, nil, nil); err == nil {
			t.Fatal("New accepted a nil Redis client")
		}
	})
	t.Run("providers in config order", func(t *testing.T) {
		b := ok
		b.Name = "apple"
		c, err := New(context.Background(), []ProviderConfig{ok, b}, rdb, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(c.Providers(), ","); got != "google,apple" {
			t.Fatalf("providers = %s", got)
		}
	})
}

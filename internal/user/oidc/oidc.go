// Package oidc is the relying-party half of third-party login: the OAuth2 authorization
// code flow with PKCE (S256), a single-use state kept in Redis and a nonce bound into the ID
// token, for the providers listed in auth.oidc.
//
// Nothing here logs, and no error carries a code, token, verifier, nonce or client secret.
package oidc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/errs"
)

// Identity is who the provider says logged in. Email is only as trustworthy as
// EmailVerified says.
type Identity struct {
	Provider      string
	Subject       string
	Email         string
	EmailVerified bool
	Name          string
	// LinkUserID is set when the login was started by AuthorizeLinkURL: the signed-in user
	// who asked to link this identity to their account.
	LinkUserID int64
}

var (
	ErrUnknownProvider = errs.New(errs.NotFound, "auth.oauth_provider_not_found")
	// ErrInvalidState: the state is unknown, already used, expired or was issued for
	// another provider.
	ErrInvalidState = errs.New(errs.Invalid, "auth.oauth_invalid_state")
	// ErrExchange: the code exchange, the ID token or its nonce did not verify.
	ErrExchange = errs.New(errs.Unauthenticated, "auth.oauth_failed")
	// ErrProviderUnavailable: the provider's discovery document could not be fetched; the
	// next call tries again.
	ErrProviderUnavailable = errs.New(errs.Unavailable, "auth.oauth_provider_unavailable")
)

const (
	// StateTTL is how long a user has to come back from the provider.
	StateTTL = 10 * time.Minute
	// stateKeyPrefix + hex(sha256(state)): the state itself is never stored, so a Redis
	// dump holds nothing a callback would accept.
	stateKeyPrefix = "mall:oidc:state:"
	// maxStateLen bounds what is hashed; ours are 43 characters.
	maxStateLen = 256
	// DefaultHTTPTimeout bounds each request to a provider when New gets no client.
	DefaultHTTPTimeout = 10 * time.Second
)

// DefaultScopes are requested when a provider's config lists none.
var DefaultScopes = []string{gooidc.ScopeOpenID, "email", "profile"}

// ProviderConfig is one third-party login provider (auth.oidc[i]; authorization code + PKCE).
type ProviderConfig struct {
	Name         string   `mapstructure:"name"`
	Issuer       string   `mapstructure:"issuer"`
	ClientID     string   `mapstructure:"client_id"`
	ClientSecret string   `mapstructure:"client_secret"`
	RedirectURL  string   `mapstructure:"redirect_url"`
	Scopes       []string `mapstructure:"scopes"`
}

// CheckProviders validates a provider list; each error is a *config.Error naming
// prefix[i].field. It is what New checks, for the configuration's own validation.
func CheckProviders(prefix string, providers []ProviderConfig) error {
	var errs []error
	seen := map[string]bool{}
	for i, p := range providers {
		key := fmt.Sprintf("%s[%d]", prefix, i)
		if err := validate(key, p); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[p.Name] {
			errs = append(errs, &config.Error{Key: key + ".name", Msg: fmt.Sprintf("%q is listed twice", p.Name)})
		}
		seen[p.Name] = true
	}
	return errors.Join(errs...)
}

// Client starts logins and finishes them. It is safe for concurrent use.
type Client struct {
	rdb       redis.UniversalClient
	hc        *http.Client
	names     []string
	providers map[string]*provider
}

type provider struct {
	cfg    ProviderConfig
	scopes []string
	// sem lets one discovery run at a time; ready caches its result once it succeeds.
	// Failures are not cached, so the next call tries again.
	sem   chan struct{}
	ready atomic.Pointer[endpoints]
}

type endpoints struct {
	oauth    *oauth2.Config
	verifier *gooidc.IDTokenVerifier
}

// pending is what a state stands for, stored under stateKey(state) until the callback.
type pending struct {
	Provider string `json:"p"`
	Verifier string `json:"v"`
	Nonce    string `json:"n"`
	// LinkUser is the user who started a link (AuthorizeLinkURL); 0 for a login.
	LinkUser int64 `json:"u,omitempty"`
}

var providerNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// New validates the provider list and returns a client; it makes no network calls (each
// provider is discovered on first use), so an unreachable provider does not keep the
// application from starting. hc is used for every request to a provider; nil means a
// client with DefaultHTTPTimeout.
func New(ctx context.Context, providers []ProviderConfig, rdb redis.UniversalClient, hc *http.Client) (*Client, error) {
	if rdb == nil {
		return nil, errors.New("oidc: a Redis client is required")
	}
	if hc == nil {
		hc = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	if err := CheckProviders("auth.oidc", providers); err != nil {
		return nil, err
	}
	c := &Client{rdb: rdb, hc: hc, providers: make(map[string]*provider, len(providers))}
	for _, p := range providers {
		scopes := DefaultScopes
		if len(p.Scopes) > 0 {
			scopes = p.Scopes
			if !slices.Contains(scopes, gooidc.ScopeOpenID) { // no openid, no ID token
				scopes = append([]string{gooidc.ScopeOpenID}, scopes...)
			}
		}
		p.Scopes = nil
		c.providers[p.Name] = &provider{cfg: p, scopes: slices.Clone(scopes), sem: make(chan struct{}, 1)}
		c.names = append(c.names, p.Name)
	}
	return c, nil
}

func validate(key string, p ProviderConfig) error {
	if !providerNameRE.MatchString(p.Name) {
		return &config.Error{Key: key + ".name", Msg: "must be 1-64 letters, digits, '-' or '_' (it is a URL path segment)"}
	}
	iss, err := url.Parse(p.Issuer)
	if err != nil || iss.Host == "" || iss.RawQuery != "" || iss.Fragment != "" || iss.User != nil {
		return &config.Error{Key: key + ".issuer", Msg: "must be an absolute URL without query or fragment"}
	}
	// Tokens and the client secret cross this connection: plain HTTP only to this machine.
	if iss.Scheme != "https" && (iss.Scheme != "http" || !isLoopback(iss.Hostname())) {
		return &config.Error{Key: key + ".issuer", Msg: "must be https (http only for localhost)"}
	}
	if p.ClientID == "" {
		return &config.Error{Key: key + ".client_id", Msg: "is required"}
	}
	ru, err := url.Parse(p.RedirectURL)
	if err != nil || ru.Host == "" || (ru.Scheme != "https" && ru.Scheme != "http") {
		return &config.Error{Key: key + ".redirect_url", Msg: "must be an absolute http(s) URL"}
	}
	for _, s := range p.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			return &config.Error{Key: key + ".scopes", Msg: fmt.Sprintf("%q is not a scope", s)}
		}
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Providers returns the configured provider names in config order.
func (c *Client) Providers() []string { return slices.Clone(c.names) }

// AuthorizeURL starts a login: it records a fresh state, nonce and PKCE verifier for
// StateTTL and returns the provider URL to redirect the browser to.
func (c *Client) AuthorizeURL(ctx context.Context, provider string) (string, error) {
	return c.authorizeURL(ctx, provider, 0)
}

// AuthorizeLinkURL starts linking an identity to the signed-in user userID: like
// AuthorizeURL, and the state remembers the user, so Exchange returns it in LinkUserID.
func (c *Client) AuthorizeLinkURL(ctx context.Context, provider string, userID int64) (string, error) {
	return c.authorizeURL(ctx, provider, userID)
}

func (c *Client) authorizeURL(ctx context.Context, provider string, linkUser int64) (string, error) {
	p, err := c.provider(provider)
	if err != nil {
		return "", err
	}
	ep, err := c.discover(ctx, p)
	if err != nil {
		return "", err
	}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	val, err := json.Marshal(pending{Provider: provider, Verifier: verifier, Nonce: nonce, LinkUser: linkUser})
	if err != nil {
		return "", fmt.Errorf("oidc: encode state: %w", err)
	}
	if err := c.rdb.Set(ctx, stateKey(state), val, StateTTL).Err(); err != nil {
		return "", fmt.Errorf("%w: %w", errs.ErrUnavailable.WithDetail("the login state store is unavailable"), err)
	}
	return ep.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), gooidc.Nonce(nonce)), nil
}

// Exchange finishes a login from the callback's code and state. The state is consumed
// whatever the outcome, also when it was presented for the wrong provider.
func (c *Client) Exchange(ctx context.Context, provider, code, state string) (Identity, error) {
	p, err := c.provider(provider)
	if err != nil {
		return Identity{}, err
	}
	if state == "" || len(state) > maxStateLen {
		return Identity{}, ErrInvalidState
	}
	// Discover before taking the state, so a provider that is down does not burn it.
	ep, err := c.discover(ctx, p)
	if err != nil {
		return Identity{}, err
	}
	pend, err := c.takeState(ctx, state)
	if err != nil {
		return Identity{}, err
	}
	if pend.Provider != provider {
		return Identity{}, ErrInvalidState.WithDetail("the state was issued for another provider")
	}
	if code == "" {
		return Identity{}, ErrExchange.WithDetail("the callback carries no code")
	}

	hctx := gooidc.ClientContext(ctx, c.hc)
	tok, err := ep.oauth.Exchange(hctx, code, oauth2.VerifierOption(pend.Verifier))
	if err != nil {
		return Identity{}, ErrExchange.WithDetail("code exchange: %s", describeTokenError(err))
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return Identity{}, ErrExchange.WithDetail("the token response carries no id_token")
	}
	idt, err := ep.verifier.Verify(hctx, rawID)
	if err != nil {
		return Identity{}, ErrExchange.WithDetail("id token: %s", clip(err.Error(), 200))
	}
	// An empty stored nonce would match a token without one: refuse it outright.
	if pend.Nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(pend.Nonce)) != 1 {
		return Identity{}, ErrExchange.WithDetail("id token: nonce mismatch")
	}
	if idt.AccessTokenHash != "" { // optional in the code flow; checked when present
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return Identity{}, ErrExchange.WithDetail("id token: at_hash mismatch")
		}
	}
	if idt.Subject == "" {
		return Identity{}, ErrExchange.WithDetail("id token: no sub claim")
	}
	var claims struct {
		Email         string          `json:"email"`
		EmailVerified json.RawMessage `json:"email_verified"`
		Name          string          `json:"name"`
	}
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, ErrExchange.WithDetail("id token claims: %s", clip(err.Error(), 200))
	}
	return Identity{
		Provider:      provider,
		Subject:       idt.Subject,
		Email:         claims.Email,
		EmailVerified: claims.Email != "" && isTrue(claims.EmailVerified),
		Name:          claims.Name,
		LinkUserID:    pend.LinkUser,
	}, nil
}

func (c *Client) provider(name string) (*provider, error) {
	p, ok := c.providers[name]
	if !ok {
		return nil, ErrUnknownProvider.WithDetail("no provider named %q", clip(name, 64))
	}
	return p, nil
}

// discover returns the provider's endpoints, fetching its discovery document on first
// use. Concurrent callers wait for the one fetch in flight rather than each starting one.
func (c *Client) discover(ctx context.Context, p *provider) (*endpoints, error) {
	if ep := p.ready.Load(); ep != nil {
		return ep, nil
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, c.unavailable(p, ctx.Err())
	}
	defer func() { <-p.sem }()
	if ep := p.ready.Load(); ep != nil {
		return ep, nil
	}
	// go-oidc keeps the client from this context for fetching signing keys later.
	op, err := gooidc.NewProvider(gooidc.ClientContext(ctx, c.hc), p.cfg.Issuer)
	if err != nil {
		return nil, c.unavailable(p, err)
	}
	ep := &endpoints{
		oauth: &oauth2.Config{
			ClientID:     p.cfg.ClientID,
			ClientSecret: p.cfg.ClientSecret,
			Endpoint:     op.Endpoint(),
			RedirectURL:  p.cfg.RedirectURL,
			Scopes:       p.scopes,
		},
		// Checks signature (algorithms pinned to what discovery lists), issuer, audience
		// = our client ID, and expiry.
		verifier: op.Verifier(&gooidc.Config{ClientID: p.cfg.ClientID}),
	}
	p.ready.Store(ep)
	return ep, nil
}

// unavailable keeps the cause out of Detail (which clients see) but in Error (which logs see).
func (c *Client) unavailable(p *provider, cause error) error {
	return fmt.Errorf("%w (%s)", ErrProviderUnavailable.WithDetail("provider %q cannot be reached; try again later", p.cfg.Name),
		clip(cause.Error(), 300))
}

// takeState atomically fetches and deletes the state: a second callback with it fails.
func (c *Client) takeState(ctx context.Context, state string) (pending, error) {
	raw, err := c.rdb.GetDel(ctx, stateKey(state)).Bytes()
	if errors.Is(err, redis.Nil) {
		return pending{}, ErrInvalidState
	}
	if err != nil {
		return pending{}, fmt.Errorf("%w: %w", errs.ErrUnavailable.WithDetail("the login state store is unavailable"), err)
	}
	var p pending
	if err := json.Unmarshal(raw, &p); err != nil {
		return pending{}, ErrInvalidState
	}
	return p, nil
}

func stateKey(state string) string {
	sum := sha256.Sum256([]byte(state))
	return stateKeyPrefix + hex.EncodeToString(sum[:])
}

// randomToken returns 256 random bits, base64url without padding.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// describeTokenError names what the token endpoint said without its body, which may echo
// the code (mockoidc's does).
func describeTokenError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code := re.ErrorCode
		if code == "" {
			code = "no error code"
		}
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return fmt.Sprintf("the token endpoint answered %d (%s)", status, clip(code, 64))
	}
	return clip(err.Error(), 200)
}

// isTrue reads email_verified, which some providers send as the string "true".
func isTrue(raw json.RawMessage) bool {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b
	}
	var s string
	return json.Unmarshal(raw, &s) == nil && strings.EqualFold(s, "true")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

package oidctest_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/mallhq/mall/internal/user/oidc/oidctest"
)

type client struct {
	oauth    *oauth2.Config
	verifier *gooidc.IDTokenVerifier
}

func newClient(t *testing.T, p *oidctest.Provider) client {
	t.Helper()
	cfg := p.Config("mock", "http://127.0.0.1:1/callback")
	op, err := gooidc.NewProvider(context.Background(), cfg.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	return client{
		oauth: &oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: op.Endpoint(),
			RedirectURL: cfg.RedirectURL, Scopes: []string{"openid", "email", "profile"}},
		verifier: op.Verifier(&gooidc.Config{ClientID: cfg.ClientID}),
	}
}

func TestAuthorizeRefusesRequestsWithoutPKCEOrNonce(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t)
	c := newClient(t, p)
	verifier := oauth2.GenerateVerifier()
	tests := []struct {
		give string
		opts []oauth2.AuthCodeOption
	}{
		{give: "no code_challenge", opts: []oauth2.AuthCodeOption{gooidc.Nonce("n")}},
		{give: "plain method", opts: []oauth2.AuthCodeOption{gooidc.Nonce("n"),
			oauth2.SetAuthURLParam("code_challenge", verifier), oauth2.SetAuthURLParam("code_challenge_method", "plain")}},
		{give: "no nonce", opts: []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}},
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			res, err := hc.Get(c.oauth.AuthCodeURL("state", tt.opts...))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400", res.StatusCode)
			}
		})
	}
}

func TestTokenEndpointChecksVerifier(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t)
	c := newClient(t, p)
	tests := []struct {
		give    string
		verify  func(verifier string) string
		wantErr bool
	}{
		{give: "right verifier", verify: func(v string) string { return v }},
		{give: "wrong verifier", verify: func(string) string { return oauth2.GenerateVerifier() }, wantErr: true},
		{give: "no verifier", verify: func(string) string { return "" }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			p.QueueUser("dee@example.com", false, "")
			verifier := oauth2.GenerateVerifier()
			cb, err := url.Parse(p.Authorize(t, c.oauth.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), gooidc.Nonce("nonce-1"))))
			if err != nil {
				t.Fatal(err)
			}
			if cb.Query().Get("state") != "st" {
				t.Fatalf("callback %s lost the state", cb)
			}
			tok, err := c.oauth.Exchange(context.Background(), cb.Query().Get("code"), oauth2.VerifierOption(tt.verify(verifier)))
			if tt.wantErr {
				if err == nil {
					t.Fatal("the token endpoint accepted a wrong code_verifier")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			idt, err := c.verifier.Verify(context.Background(), tok.Extra("id_token").(string))
			if err != nil {
				t.Fatal(err)
			}
			var claims struct {
				Email         string `json:"email"`
				EmailVerified *bool  `json:"email_verified"`
				Name          string `json:"name"`
			}
			if err := idt.Claims(&claims); err != nil {
				t.Fatal(err)
			}
			if idt.Nonce != "nonce-1" || idt.Subject == "" || claims.Email != "dee@example.com" ||
				claims.EmailVerified == nil || *claims.EmailVerified || claims.Name != "dee" {
				t.Fatalf("id token nonce %q sub %q claims %+v", idt.Nonce, idt.Subject, claims)
			}
		})
	}
}

func TestSetDown(t *testing.T) {
	t.Parallel()
	p := oidctest.Start(t)
	p.SetDown(true)
	if _, err := gooidc.NewProvider(context.Background(), p.Issuer()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("discovery while down: %v, want 503", err)
	}
	p.SetDown(false)
	if _, err := gooidc.NewProvider(context.Background(), p.Issuer()); err != nil {
		t.Fatalf("discovery after coming back: %v", err)
	}
	if got := p.DiscoveryRequests(); got != 2 {
		t.Fatalf("discovery requests = %d, want 2", got)
	}
}

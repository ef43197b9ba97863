package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// scenarios are the rows of docs/benchmarks.md, in order. The first is the baseline: every
// other row's rate is shown as a ratio to it, because the load generator shares the machine
// with the server and absolute numbers only compare within one run.
//
// To add a row, append a Scenario. Setup runs once, unmeasured: it prepares what the row needs
// through the public API (register and log in, create a product, ...) and returns the request
// generator, which may vary each request (a fresh Idempotency-Key, a different product). A
// sketch of a logged-in row:
//
//	{
//		Name:   "GET /api/v1/me (logged in)",
//		Target: TargetMall,
//		Setup: func(ctx context.Context, env *Env) (Next, error) {
//			var tok struct{ AccessToken string `json:"access_token"` }
//			login := map[string]string{"email": "bench@example.com", "password": "..."}
//			if err := env.Call(ctx, "POST", env.MallURL+"/api/v1/auth/login", nil, login, &tok); err != nil {
//				return nil, err
//			}
//			h := http.Header{"Authorization": {"Bearer " + tok.AccessToken}}
//			return func(w int, i int64) Request {
//				return Request{Method: "GET", Path: "/api/v1/me", Header: h}
//			}, nil
//		},
//	},
//
// Keep a full run under about three minutes: each row costs warm-up + duration (12 s by
// default). `BENCH_RUN=regexp make bench` runs a subset.
var scenarios = []Scenario{
	{
		Name:   "baseline: trivial echo handler",
		Target: TargetBaseline,
		Setup:  Static(http.MethodGet, "/healthz", nil),
	},
	{
		Name:   "GET /healthz",
		Target: TargetMall,
		Setup:  Static(http.MethodGet, "/healthz", nil),
	},
	{
		// Token verification (Ed25519), the deny-list lookup (one Redis round trip) and the
		// profile (cached in process). Target: at least half the baseline's rate.
		Name:   "GET /api/v1/me (logged in)",
		Target: TargetMall,
		Setup: func(ctx context.Context, env *Env) (Next, error) {
			tok, err := benchLogin(ctx, env, "bench-me")
			if err != nil {
				return nil, err
			}
			h := http.Header{"Authorization": {"Bearer " + tok}}
			return func(int, int64) Request { return Request{Method: http.MethodGet, Path: "/api/v1/me", Header: h} }, nil
		},
	},
	{
		// Bounded by argon2id (m=19 MiB, t=2) and auth.password.max_concurrent_hashes
		// (GOMAXPROCS): the rate shows how many logins per second the machine can hash.
		Name:   "POST /api/v1/auth/login (argon2id)",
		Target: TargetMall,
		Setup: func(ctx context.Context, env *Env) (Next, error) {
			email := benchEmail("bench-login")
			if _, err := benchLogin(ctx, env, email); err != nil {
				return nil, err
			}
			body, _ := json.Marshal(map[string]string{"email": email, "password": benchPassword})
			h := http.Header{"Content-Type": {"application/json"}}
			return func(int, int64) Request {
				return Request{Method: http.MethodPost, Path: "/api/v1/auth/login", Header: h, Body: body}
			}, nil
		},
	},
}

const benchPassword = "bench password 1234"

// benchEmail makes an address unique to this run (the bench databases are recreated each
// run, but a rerun of one row against a live server should not collide).
func benchEmail(prefix string) string {
	return fmt.Sprintf("%s-%d@bench.example.com", prefix, time.Now().UnixNano())
}

// benchLogin registers email (a prefix without "@" gets a unique address) and returns an
// access token.
func benchLogin(ctx context.Context, env *Env, email string) (string, error) {
	if !strings.Contains(email, "@") {
		email = benchEmail(email)
	}
	creds := map[string]string{"email": email, "password": benchPassword}
	if err := env.Call(ctx, http.MethodPost, env.MallURL+"/api/v1/auth/register", nil, creds, nil); err != nil {
		return "", err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := env.Call(ctx, http.MethodPost, env.MallURL+"/api/v1/auth/login", nil, creds, &tok); err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

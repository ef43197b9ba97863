package main

import "net/http"

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
}

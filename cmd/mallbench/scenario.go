package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Target is the server a scenario's requests go to.
type Target int

const (
	TargetBaseline Target = iota // mallbench baseline
	TargetMall                   // bin/mall serve (seeded with `mall seed`)
	// TargetMallNoL1 is a second bin/mall serve on the same databases and Redis with the
	// detail cache's in-process level off (MALL_CATALOG_DETAIL_CACHE_L1_SIZE=0).
	TargetMallNoL1
	// TargetSearch is a bin/mall serve whose database holds the large seed (mall seed
	// --products 100000) with its search index caught up.
	TargetSearch
	// TargetWS is `mallbench ws-server`: the realtime hub behind Mall's HTTP stack (ws.go).
	TargetWS
)

// String names the target in skip reasons.
func (t Target) String() string {
	switch t {
	case TargetBaseline:
		return "-baseline"
	case TargetMall:
		return "-mall"
	case TargetMallNoL1:
		return "-mall-nol1"
	case TargetSearch:
		return "-mall-search"
	case TargetWS:
		return "-ws"
	}
	return fmt.Sprintf("target %d", int(t))
}

// A Scenario is one row of docs/benchmarks.md.
type Scenario struct {
	Name   string
	Target Target
	// Setup runs once, unmeasured, before the load: log in, create fixtures through the public
	// API, ... It returns the request generator.
	Setup func(ctx context.Context, env *Env) (Next, error)
	// OK reports whether a status counts as success; nil means 2xx and 3xx.
	OK func(status int) bool
	// Rate, when set, sends that many requests per second on a fixed schedule (open loop)
	// instead of keeping every connection busy; latency counts from the scheduled start, so
	// a slow answer shows in p99 instead of slowing the client down.
	Rate float64
	// Measure, when set, replaces Setup and the HTTP load: the row measures itself (the
	// WebSocket rows) and returns its result and goal text.
	Measure func(ctx context.Context, env *Env) (Result, string, error)
	// Goal, when set, states the row's target and whether res (base: the baseline row)
	// meets it, for the report's goal column.
	Goal func(res, base Result) string
}

// Next returns request i of worker w. Workers call it concurrently, each with its own w, so it
// must not share mutable state across workers without synchronisation.
type Next func(w int, i int64) Request

// Request is one request to send; Path is appended to the target's base URL.
type Request struct {
	Method string
	Path   string
	Header http.Header // read-only: shared by every request that returns it
	Body   []byte
}

// Static is the Setup of a scenario that sends the same request again and again.
func Static(method, path string, header http.Header) func(context.Context, *Env) (Next, error) {
	r := Request{Method: method, Path: path, Header: header}
	return func(context.Context, *Env) (Next, error) {
		return func(int, int64) Request { return r }, nil
	}
}

// Env is what a scenario's Setup may use.
type Env struct {
	MallURL     string // base URL of bin/mall serve, e.g. http://127.0.0.1:18080
	MallNoL1URL string // TargetMallNoL1 ("" = not running)
	SearchURL   string // TargetSearch ("" = not running)
	WSURL       string // TargetWS ("" = not running)
	// WSRedis and WSRedisDB are the Redis of the ws server (the WebSocket rows publish there).
	WSRedis     string
	WSRedisDB   int
	BaselineURL string
	// Kafka is the address of the TargetMall server's embedded broker (its
	// kafka.embedded_port); "" skips the rows that produce to it.
	Kafka  string
	Client *http.Client
	// SeedPassword is the password `mall seed` gave the demo accounts of the servers.
	SeedPassword string
	// SearchMin is how many on-sale products TargetSearch's index must hold.
	SearchMin int

	once sync.Map // key -> *onceValue: setup work shared by rows (see Env.Once)
}

// URL is the base URL of t.
func (e *Env) URL(t Target) string {
	switch t {
	case TargetMall:
		return e.MallURL
	case TargetMallNoL1:
		return e.MallNoL1URL
	case TargetSearch:
		return e.SearchURL
	case TargetWS:
		return e.WSURL
	}
	return e.BaselineURL
}

type onceValue struct {
	once sync.Once
	v    any
	err  error
}

// Once runs fn the first time key is asked for and returns its result every time: rows
// that share fixtures (hot product IDs, search queries) prepare them once.
func (e *Env) Once(key string, fn func() (any, error)) (any, error) {
	o, _ := e.once.LoadOrStore(key, &onceValue{})
	ov := o.(*onceValue)
	ov.once.Do(func() { ov.v, ov.err = fn() })
	return ov.v, ov.err
}

// Call sends one JSON request (in may be nil) and decodes the JSON answer into out (may be
// nil). A status outside 2xx is an error that quotes the response body.
func (e *Env) Call(ctx context.Context, method, url string, header http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, url, err)
	}
	return nil
}

// waitReady polls url until it answers 200 or the timeout passes.
func waitReady(ctx context.Context, c *http.Client, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (last: %s)", url, timeout, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

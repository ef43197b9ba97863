package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
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
// Keep the rows of a full run under about three minutes: each row costs warm-up + duration
// (12 s by default); the first run's 100k search seed comes on top (later runs reuse it).
// `BENCH_RUN=regexp make bench` runs a subset.
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
	{
		// A few hot on-sale products of the seeded server, each answered from the in-process
		// level of the detail cache (catalog.detail_cache.l1_size > 0) after the first request.
		// Target: at least half the baseline's rate.
		Name:   "GET /api/v1/products/{id} (detail, L1 hit)",
		Target: TargetMall,
		Setup:  productDetail(TargetMall),
		Goal:   atLeastBaseline(0.5),
	},
	{
		// The same products from a second server on the same databases and Redis with the
		// in-process level off (MALL_CATALOG_DETAIL_CACHE_L1_SIZE=0): every request reads
		// Redis (L2), none reaches MySQL.
		Name:   "GET /api/v1/products/{id} (detail, L2 hit, L1 disabled)",
		Target: TargetMallNoL1,
		Setup:  productDetail(TargetMallNoL1),
	},
	{
		// Keyword + category + price range, facets included, over ~100,000 seeded products
		// (bleve by default), a few keywords and categories in turn.
		Name:   "GET /api/v1/search 100k (keyword + filter + facets)",
		Target: TargetSearch,
		Setup:  searchQueries,
	},
	{
		// The same queries at a fixed 100 queries/s: the latency a steady client sees.
		Name:   "GET /api/v1/search 100k at 100 q/s (open loop)",
		Target: TargetSearch,
		Setup:  searchQueries,
		Rate:   100,
		Goal:   p99AtMost(50 * time.Millisecond),
	},
	{
		// Bid attempts on one hot lot by 200 bidders, most already too low when they land
		// (turned away by the Redis gate), each with its own Idempotency-Key (bid.go).
		Name:   "POST /api/v1/auctions/{id}/bids (one hot lot)",
		Target: TargetMall,
		Setup:  bidSetup,
		OK:     bidOK,
		Goal:   bidGoal(3000, 50*time.Millisecond),
	},
	{
		// Event delivery: checkouts (two orders, two order.created events each) at a fixed
		// 50/s; latency is an event's occurred_at to the order topic's consumer group taking
		// it up (mall_kafka_consumer_event_lag_seconds, lag.go): the outbox relay, woken by the
		// commit, then Kafka and the consumer's fetch. occurred_at is stamped inside the
		// order's transaction just before its commit, so the commit's own time counts too.
		// Before the order rows, so their backlog does not weigh on it.
		Name:    "order.created commit -> consumer at 50 checkouts/s (open loop)",
		Target:  TargetMall,
		Rate:    50,
		Measure: eventLag(50, 10*time.Second),
	},
	{
		// Checkout of one unit from each of the two seeded merchants (two orders and their
		// stock reservations) by a pool of fresh buyers in turn, each
		// request with its own Idempotency-Key (orders.go). scripts/bench.sh runs MariaDB with
		// innodb_flush_log_at_trx_commit=1 for these rows. Last: their outbox events and
		// unpaid holds should not weigh on other rows.
		Name:   "POST /api/v1/orders (2 lines, 2 merchants)",
		Target: TargetMall,
		Setup:  orderCreate,
		Goal:   atLeastRate(500),
	},
	{
		// The same at a fixed 300 orders/s.
		Name:   "POST /api/v1/orders (2 lines, 2 merchants) at 300/s (open loop)",
		Target: TargetMall,
		Setup:  orderCreate,
		Rate:   300,
		Goal:   p99AtMost(100 * time.Millisecond),
	},
	{
		// Orders of random SKUs (50 of each merchant) instead of the same two: the checkout
		// path without a hot SKU row, for comparison with the rows above.
		Name:   "POST /api/v1/orders (2 lines, 2 merchants, SKUs spread)",
		Target: TargetMall,
		Setup:  orderSpread,
	},
}

// atLeastBaseline is the goal "rate >= f x the baseline's".
func atLeastBaseline(f float64) func(res, base Result) string {
	return func(res, base Result) string {
		mark := "✗"
		if base.Rate() > 0 && res.Rate() >= f*base.Rate() {
			mark = "✓"
		}
		return fmt.Sprintf("%s ≥ %.2g × baseline", mark, f)
	}
}

// p99AtMost is the goal "p99 <= d, without errors".
func p99AtMost(d time.Duration) func(res, _ Result) string {
	return func(res, _ Result) string {
		mark := "✗"
		if res.Requests > 0 && res.P99 <= d && res.Errors == 0 {
			mark = "✓"
		}
		return fmt.Sprintf("%s p99 ≤ %s", mark, fmtDur(d))
	}
}

// The demo merchants' owners (`mall seed`).
var seedOwners = []string{"owner1@mall.local", "owner2@mall.local"}

// hotProductCount is how many products the detail rows cycle through: few enough that each
// stays in every cache level, more than one so requests do not all hit one key.
const hotProductCount = 16

// hotProducts returns on-sale product IDs of the seeded server at base: the demo merchants'
// newest, read through the merchant API (the storefront has no list besides search).
func hotProducts(ctx context.Context, env *Env, base string) ([]string, error) {
	var ids []string
	for _, email := range seedOwners {
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		creds := map[string]string{"email": email, "password": env.SeedPassword}
		if err := env.Call(ctx, http.MethodPost, base+"/api/v1/auth/login", nil, creds, &tok); err != nil {
			return nil, fmt.Errorf("log in as the seeded %s (is the server seeded with `mall seed`, -seed-password?): %w", email, err)
		}
		var list struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		h := http.Header{"Authorization": {"Bearer " + tok.AccessToken}}
		path := fmt.Sprintf("/api/v1/merchant/products?status=on_sale&limit=%d", hotProductCount/len(seedOwners))
		if err := env.Call(ctx, http.MethodGet, base+path, h, nil, &list); err != nil {
			return nil, err
		}
		for _, it := range list.Items {
			ids = append(ids, it.ID)
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("the seeded merchants have no products on sale (run `mall seed`)")
	}
	return ids, nil
}

// productDetail is the Setup of a detail row on target: the hot products (found once, on
// the first seeded server), each requested once unmeasured so the caches hold it.
func productDetail(target Target) func(context.Context, *Env) (Next, error) {
	return func(ctx context.Context, env *Env) (Next, error) {
		v, err := env.Once("hot products", func() (any, error) {
			base := env.MallURL
			if base == "" {
				base = env.URL(target)
			}
			return hotProducts(ctx, env, base)
		})
		if err != nil {
			return nil, err
		}
		ids := v.([]string)
		reqs := make([]Request, len(ids))
		for i, id := range ids {
			reqs[i] = Request{Method: http.MethodGet, Path: "/api/v1/products/" + id}
			if err := env.Call(ctx, http.MethodGet, env.URL(target)+reqs[i].Path, nil, nil, nil); err != nil {
				return nil, fmt.Errorf("warm the cache: %w", err)
			}
		}
		return func(w int, i int64) Request { return reqs[(int64(w)+i)%int64(len(reqs))] }, nil
	}
}

// searchKeywords pair a keyword with the name (Chinese or English, as `mall seed` names
// categories "中文 English") of the category it is filtered to; the seed's titles use both.
var searchKeywords = []struct{ q, category string }{
	{"保温杯", "Vacuum Flask"}, {"Smartphone", "Phones"}, {"蓝牙耳机", "Audio"}, {"Sneakers", "Shoes"},
	{"咖啡", "Drinks"}, {"Pro", "Digital"}, {"纯棉", "Apparel"}, {"Classic", "Home"},
	{"面霜", "Skincare"}, {"Portable", "Wearables"}, {"坚果", "Snacks"}, {"Mug", "Drinkware"},
}

// searchPriceRanges are price_min..price_max filters in fen.
var searchPriceRanges = [][2]int64{{0, 10000}, {5000, 50000}, {10000, 500000}, {1000, 1000000}}

// searchQueries is the Setup of the search rows: it waits until the index of the search
// server holds env.SearchMin products, then builds keyword + category + price queries from
// its category tree.
func searchQueries(ctx context.Context, env *Env) (Next, error) {
	v, err := env.Once("search queries", func() (any, error) {
		if err := WaitIndexed(ctx, env.Client, env.SearchURL, env.SearchMin, 10*time.Minute, nil); err != nil {
			return nil, err
		}
		var tree []category
		if err := env.Call(ctx, http.MethodGet, env.SearchURL+"/api/v1/categories", nil, nil, &tree); err != nil {
			return nil, err
		}
		byName := map[string]string{}
		var walk func([]category)
		walk = func(cs []category) {
			for _, c := range cs {
				zh, en, _ := strings.Cut(c.Name, " ")
				byName[zh], byName[en], byName[c.Name] = c.ID, c.ID, c.ID
				walk(c.Children)
			}
		}
		walk(tree)
		var reqs []Request
		for i, k := range searchKeywords {
			id, ok := byName[k.category]
			if !ok {
				return nil, fmt.Errorf("no category %q on the search server: is it seeded with `mall seed`?", k.category)
			}
			for j, pr := range searchPriceRanges {
				if (i+j)%2 == 1 {
					continue // half the combinations: 24 distinct queries
				}
				q := url.Values{"q": {k.q}, "category_id": {id},
					"price_min": {strconv.FormatInt(pr[0], 10)}, "price_max": {strconv.FormatInt(pr[1], 10)}}
				reqs = append(reqs, Request{Method: http.MethodGet, Path: "/api/v1/search?" + q.Encode()})
			}
		}
		for _, r := range reqs { // each answers 200 before the load
			if err := env.Call(ctx, http.MethodGet, env.SearchURL+r.Path, nil, nil, nil); err != nil {
				return nil, err
			}
		}
		return reqs, nil
	})
	if err != nil {
		return nil, err
	}
	reqs := v.([]Request)
	return func(w int, i int64) Request { return reqs[(int64(w)*7+i)%int64(len(reqs))] }, nil
}

type category struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	Children []category `json:"children"`
}

// searchTotal is the total of an unfiltered search: the products in the index.
func searchTotal(ctx context.Context, c *http.Client, base string) (int, error) {
	env := Env{Client: c}
	var res struct {
		Total int `json:"total"`
	}
	err := env.Call(ctx, http.MethodGet, base+"/api/v1/search?limit=1", nil, nil, &res)
	return res.Total, err
}

// outboxBacklog reads mall_outbox_backlog (summed over databases) from /metrics; ok is
// false when the metric is missing.
func outboxBacklog(ctx context.Context, c *http.Client, base string) (float64, bool, error) {
	resp, err := getMetrics(ctx, c, base)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false, err
	}
	sum, found := 0.0, false
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "mall_outbox_backlog") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum, found = sum+v, true
		}
	}
	return sum, found, nil
}

// WaitIndexed polls the search server at base until its index holds at least min products,
// its outbox backlog is empty (no events on their way to the indexer) and the total held
// still for two polls; min 0 waits for the backlog only. progress (may be nil) gets a line
// now and then.
func WaitIndexed(ctx context.Context, c *http.Client, base string, min int, timeout time.Duration, progress io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last, stable := -1, 0
	var lastErr error
	for n := 0; ; n++ {
		total, err := 0, error(nil)
		if min > 0 { // min 0: only wait for the outbox to drain
			total, err = searchTotal(ctx, c, base)
		}
		backlog, _, berr := outboxBacklog(ctx, c, base)
		switch {
		case err != nil:
			lastErr, stable = err, 0
		case berr != nil:
			lastErr, stable = berr, 0
		case total >= min && backlog == 0 && total == last:
			stable++
		default:
			stable = 0
		}
		if err == nil {
			last = total
		}
		if stable >= 2 {
			return nil
		}
		if progress != nil && n%20 == 0 {
			fmt.Fprintf(progress, "mallbench: search index at %s holds %d of %d products (outbox backlog %.0f)\n", base, total, min, backlog)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("search index at %s: %d of %d products after %s (last error: %v)", base, last, min, timeout, lastErr)
		case <-time.After(500 * time.Millisecond):
		}
	}
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

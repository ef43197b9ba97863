package catalog_test

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/platform/cache"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/kafkax"
)

// replicas starts two instances of the whole application on the same MySQL, Redis and
// Kafka, as two replicas behind a load balancer. Each app started with kafka.embedded runs
// its own kfake broker, so the second one is pointed at the first's broker instead
// (kafka.embedded false, kafka.brokers = the first broker's address): both then share the
// outbox's topics and the detail cache consumer group, and an event is applied once, by
// either replica.
func replicas(t *testing.T, tune func(*config.Config)) (*harness, *harness) {
	t.Helper()
	cfg := apptest.Config(t)
	if tune != nil {
		tune(&cfg)
	}
	var broker *kafkax.Broker
	a := &harness{t: t}
	a.App = apptest.Start(t, cfg, apptest.Options{Populate: []any{&a.stock, &a.svc, &broker}})
	_, tk := a.Admin()
	a.admin = tk.AccessToken

	cfg2 := cfg
	cfg2.App.NodeID = cfg.App.NodeID + 1
	cfg2.Search.Bleve.Path = filepath.Join(t.TempDir(), "search")
	cfg2.Kafka.Embedded = false
	cfg2.Kafka.Brokers = broker.Seeds()
	b := &harness{t: t, admin: a.admin} // same JWT keys directory: tokens are valid on both
	b.App = apptest.Start(t, cfg2, apptest.Options{Populate: []any{&b.stock, &b.svc}})
	return a, b
}

// onSale creates a product (SKU prices 1999 and 2599, stock 5 and 0) and puts it on sale.
func (h *harness) onSale() (merchantID int64, token string, p productBody) {
	h.t.Helper()
	cat := h.colorCategory()
	merchantID, token = h.merchant()
	p = h.product(token, cat)
	h.putOnSale(token, p.ID)
	return merchantID, token, p
}

// detail reads the public detail; ok is false for 404 catalog.product_not_found.
func (h *harness) detail(t testing.TB, id string) (productBody, bool) {
	t.Helper()
	r := h.req(http.MethodGet, "/api/v1/products/"+id, nil, "")
	if r.Status == http.StatusNotFound && r.Code() == "catalog.product_not_found" {
		return productBody{}, false
	}
	var p productBody
	r.Want(t, http.StatusOK, "").Decode(t, &p)
	return p, true
}

func skuPrice(t testing.TB, p productBody, skuID string) int64 {
	t.Helper()
	for _, k := range p.SKUs {
		if k.ID == skuID {
			return k.Price
		}
	}
	t.Fatalf("SKU %s not in %+v", skuID, p)
	return 0
}

func setPrice(t testing.TB, h *harness, token, productID, skuID string, price int64) {
	t.Helper()
	h.req(http.MethodPatch, productPath(productID, ""), map[string]any{"skus": []map[string]any{
		{"id": skuID, "price": price}}}, token).Want(t, http.StatusOK, "")
}

// cacheLoads is the replica's count of detail cache loader calls, from /metrics.
func (h *harness) cacheLoads(t testing.TB) int {
	t.Helper()
	r := h.req(http.MethodGet, "/metrics", nil, "").Want(t, http.StatusOK, "")
	prefix := cache.MetricLoads + `{cache="` + catalog.DetailCacheName + `"} `
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", sc.Text(), err)
			}
			return int(n)
		}
	}
	return 0
}

// waitPrice polls h's detail until the SKU has price want, failing after within; from then
// on, every read must keep it (the old price never reappears).
func waitPrice(t *testing.T, h *harness, name, productID, skuID string, want int64, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		p, ok := h.detail(t, productID)
		if !ok {
			t.Fatalf("%s: product %s not found", name, productID)
		}
		if skuPrice(t, p, skuID) == want {
			break
		}
		if time.Since(start) > within {
			t.Fatalf("%s: price still %d after %s, want %d", name, skuPrice(t, p, skuID), within, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	for i := range 20 {
		p, _ := h.detail(t, productID)
		if got := skuPrice(t, p, skuID); got != want {
			t.Fatalf("%s: read %d after the new price was seen: %d, want %d", name, i, got, want)
		}
	}
	return took
}

// TestDetailNeverServesStalePriceAcrossReplicas: both replicas have the product in L1; a
// price change through one replica is served at once by the writer (post-commit
// invalidation) and, within the cache bus's delivery, by the other. The consumer's
// invalidation is switched off so the post-commit path is tested alone; writers alternate.
func TestDetailNeverServesStalePriceAcrossReplicas(t *testing.T) {
	a, b := replicas(t, nil)
	catalog.SetSkipInvalidation(a.svc, false, true)
	catalog.SetSkipInvalidation(b.svc, false, true)
	_, mt, p := a.onSale()
	sku := p.SKUs[0].ID

	price := int64(1999)
	for round, writer := range []*harness{a, b, a, b} {
		for _, h := range []*harness{a, b} { // warm both L1s (and L2)
			for range 3 {
				got, ok := h.detail(t, p.ID)
				if !ok || skuPrice(t, got, sku) != price {
					t.Fatalf("round %d: warm read = %+v, %v; want price %d", round, got, ok, price)
				}
			}
		}
		price += 100
		setPrice(t, writer, mt, p.ID, sku, price)
		// The writer reads its own write immediately.
		if got, _ := writer.detail(t, p.ID); skuPrice(t, got, sku) != price {
			t.Fatalf("round %d: writer serves %d right after the change to %d", round, skuPrice(t, got, sku), price)
		}
		other := a
		if writer == a {
			other = b
		}
		took := waitPrice(t, other, "other replica", p.ID, sku, price, 2*time.Second)
		waitPrice(t, writer, "writer", p.ID, sku, price, 0)
		t.Logf("round %d: other replica served the new price after %s", round, took)
	}
}

// TestDetailInvalidatedByEventWhenPostCommitLost: the writer "crashes" between commit and
// invalidation (the post-commit invalidation is skipped on both replicas), so only the
// detail cache consumer's invalidation on catalog.product_changed makes the new price
// appear, on both replicas, within 5 s.
func TestDetailInvalidatedByEventWhenPostCommitLost(t *testing.T) {
	a, b := replicas(t, nil)
	catalog.SetSkipInvalidation(a.svc, true, false)
	catalog.SetSkipInvalidation(b.svc, true, false)
	_, mt, p := a.onSale()
	sku := p.SKUs[0].ID
	for _, h := range []*harness{a, b} {
		if got, ok := h.detail(t, p.ID); !ok || skuPrice(t, got, sku) != 1999 {
			t.Fatalf("warm read = %+v, %v", got, ok)
		}
	}
	setPrice(t, a, mt, p.ID, sku, 4321)
	ta := waitPrice(t, a, "writer", p.ID, sku, 4321, 5*time.Second)
	tb := waitPrice(t, b, "other replica", p.ID, sku, 4321, 5*time.Second)
	t.Logf("new price through the event path after %s (writer) and %s (other)", ta, tb)
}

// TestDetailAvailabilityFollowsStock: PUT .../stock on one replica shows in `available` of
// the detail on both within seconds (stock.level_changed -> SKU's product -> invalidate).
func TestDetailAvailabilityFollowsStock(t *testing.T) {
	a, b := replicas(t, nil)
	_, mt, p := a.onSale()
	blue := p.SKUs[1].ID
	avail := func(h *harness) int64 {
		got, ok := h.detail(t, p.ID)
		if !ok {
			t.Fatal("product not found")
		}
		for _, k := range got.SKUs {
			if k.ID == blue {
				return k.Available
			}
		}
		t.Fatalf("SKU %s missing: %+v", blue, got)
		return 0
	}
	for _, h := range []*harness{a, b} {
		if n := avail(h); n != 0 {
			t.Fatalf("available before = %d", n)
		}
	}
	a.req(http.MethodPut, "/api/v1/merchant/skus/"+blue+"/stock", map[string]any{"available": 42}, mt).
		Want(t, http.StatusOK, "")
	start := time.Now()
	for _, h := range []*harness{a, b} {
		for avail(h) != 42 {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("available still %d 5s after the stock change", avail(h))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("availability updated on both replicas after %s", time.Since(start))
}

// TestDetailStampedeLoadsOnce: 1,000 concurrent requests for a cold product cause one
// database load (singleflight in process, the lease and L2 behind it), with L1 on and off.
func TestDetailStampedeLoadsOnce(t *testing.T) {
	tests := []struct {
		name   string
		l1Size int
	}{
		{name: "L1 and L2", l1Size: 10000},
		{name: "L2 only", l1Size: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := catalog.ConfigSection.With(apptest.Config(t), func(c *catalog.Config) { c.DetailCache.L1Size = tt.l1Size })
			// Per-request rate limiting would add 1,000 Redis calls of its own; a Redis
			// error on the cache's read falls back to the loader (by design) and would
			// count as a second load.
			cfg.RateLimit.Enabled = false
			h := &harness{t: t}
			h.App = apptest.Start(t, cfg, apptest.Options{Populate: []any{&h.stock, &h.svc}})
			_, tk := h.Admin()
			h.admin = tk.AccessToken
			// Events of the product's creation must not invalidate it mid-stampede.
			catalog.SetSkipInvalidation(h.svc, false, true)
			_, _, p := h.onSale()
			before := h.cacheLoads(t)

			const n = 1000
			client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
				MaxConnsPerHost: n, MaxIdleConnsPerHost: n, MaxIdleConns: n}}
			t.Cleanup(client.CloseIdleConnections)
			var (
				wg    sync.WaitGroup
				start = make(chan struct{})
				mu    sync.Mutex
				bad   []string
			)
			for range n {
				wg.Go(func() {
					<-start
					res, err := client.Get(h.URL + "/api/v1/products/" + p.ID)
					if err != nil {
						mu.Lock()
						bad = append(bad, err.Error())
						mu.Unlock()
						return
					}
					var buf bytes.Buffer
					_, _ = buf.ReadFrom(res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK || !strings.Contains(buf.String(), `"price":1999`) {
						mu.Lock()
						bad = append(bad, strconv.Itoa(res.StatusCode)+" "+buf.String())
						mu.Unlock()
					}
				})
			}
			close(start)
			wg.Wait()
			if len(bad) > 0 {
				t.Fatalf("%d of %d requests failed, first: %s", len(bad), n, bad[0])
			}
			if loads := h.cacheLoads(t) - before; loads != 1 {
				t.Fatalf("%d concurrent misses caused %d loads, want 1", n, loads)
			}
		})
	}
}

// TestDetailValuesAreCopies: what PublicProduct returns is the caller's own, although the
// cache shares one value between requests.
func TestDetailValuesAreCopies(t *testing.T) {
	h := newHarness(t)
	_, _, p := h.onSale()
	id := mustInt(t, p.ID)
	first, err := h.svc.PublicProduct(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	first.SKUs[0].Price = 1
	first.SKUs[0].Attrs["color"] = "mutated"
	first.Specs["material"] = "mutated"
	first.Images[0] = "mutated"
	second, err := h.svc.PublicProduct(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if second.SKUs[0].Price != 1999 || second.SKUs[0].Attrs["color"] != "red" ||
		second.Specs["material"] != "steel" || second.Images[0] != "https://img.example.com/1.jpg" ||
		second.Status != catalog.StatusOnSale || second.SKUs[0].ProductID != id {
		t.Fatalf("second read = %+v", second)
	}
}

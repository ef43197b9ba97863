package order_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/stock"
)

// The tests in this file share one application per test function (starting one costs
// seconds) and talk to it over HTTP with a client that keeps enough connections open for
// hundreds of requests in flight.

// sub is the harness reporting to a subtest.
func (h *harness) sub(t *testing.T) *harness {
	c := *h
	a := *h.App
	a.T = t
	c.App, c.t = &a, t
	return &c
}

// loadClient is an HTTP client for concurrent load: up to 256 connections to the app.
var loadClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
	MaxIdleConns: 256, MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}}

// post sends a JSON POST with the buyer's token and an Idempotency-Key through loadClient;
// safe in goroutines (no test failure, only the error).
func (h *harness) post(path string, body any, token, key string) (response, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return response{}, err
	}
	req, err := http.NewRequest(http.MethodPost, h.URL+path, bytes.NewReader(raw))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", h.IP)
	req.Header.Set("Authorization", "Bearer "+token)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := loadClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Header: res.Header, Body: b}, err
}

// buyers creates n buyers (account, login, address) with a few requests in flight at once.
func (h *harness) buyers(n int) []buyer {
	h.t.Helper()
	out := make([]buyer, n)
	errc := make(chan error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			b, err := h.tryBuyer()
			out[i] = b
			errc <- err
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			h.t.Fatal(err)
		}
	}
	return out
}

func (h *harness) tryBuyer() (buyer, error) {
	email := apptest.UniqueEmail("buyer")
	cred := map[string]string{"email": email, "password": apptest.Password}
	var acc apptest.Account
	var tk apptest.Tokens
	var addr idBody
	for _, step := range []struct {
		path, token string
		body        any
		status      int
		out         any
	}{
		{"/api/v1/auth/register", "", cred, http.StatusCreated, &acc},
		{"/api/v1/auth/login", "", cred, http.StatusOK, &tk},
		{"/api/v1/me/addresses", "", map[string]string{"name": "Han Meimei", "phone": "13912345678",
			"province": "Zhejiang", "city": "Hangzhou", "district": "Xihu", "detail": "1 Lake Road"}, http.StatusCreated, &addr},
	} {
		token := step.token
		if step.out == &addr {
			token = tk.AccessToken
		}
		r, err := h.Do(http.MethodPost, step.path, step.body, apptest.Bearer(token)...)
		if err != nil {
			return buyer{}, err
		}
		if r.Status != step.status {
			return buyer{}, fmt.Errorf("%s: %s", step.path, r)
		}
		if err := json.Unmarshal(r.Body, step.out); err != nil {
			return buyer{}, err
		}
	}
	var id int64
	if _, err := fmt.Sscan(acc.ID, &id); err != nil {
		return buyer{}, err
	}
	return buyer{id: id, token: tk.AccessToken, address: addr.ID}, nil
}

// attempt is one checkout attempt of a load round.
type attempt struct {
	b     buyer
	lines []line
}

// storm sends every attempt at once (each with its own Idempotency-Key) and returns the
// responses in order; a transport error fails the test.
func (h *harness) storm(attempts []attempt) []response {
	h.t.Helper()
	res := make([]response, len(attempts))
	errs := make([]error, len(attempts))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, a := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res[i], errs[i] = h.post("/api/v1/orders", placeBody(a.b, a.lines...), a.b.token, newKey())
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			h.t.Fatalf("attempt %d: %v", i, err)
		}
	}
	return res
}

// orderedUnits sums the quantities of the SKU in stored orders over every shard.
func (h *harness) orderedUnits(sku int64) (orders, units int64) {
	h.t.Helper()
	seen := map[any]bool{}
	for _, db := range h.Cluster.Shards() {
		if seen[db] {
			continue
		}
		seen[db] = true
		var r struct {
			N int64 `db:"n"`
			Q int64 `db:"q"`
		}
		if err := db.GetContext(context.Background(), &r,
			`SELECT COUNT(*) AS n, COALESCE(SUM(quantity), 0) AS q FROM order_items WHERE sku_id = ?`, sku); err != nil {
			h.t.Fatal(err)
		}
		orders += r.N
		units += r.Q
	}
	return orders, units
}

// checkLevel asserts the SKU's counters: reserved as given, nothing sold, and on_hand =
// available + reserved + sold = units.
func (h *harness) checkLevel(sku, units, reserved int64) stock.Level {
	h.t.Helper()
	l := h.level(sku)
	if l.Reserved != reserved || l.Sold != 0 || l.Available != units-reserved || l.OnHand != units ||
		l.OnHand != l.Available+l.Reserved+l.Sold {
		h.t.Errorf("SKU %d: level %+v, want %d of %d units reserved", sku, l, reserved, units)
	}
	return l
}

// TestCheckoutsAtScale runs the checkout's concurrency guarantees over HTTP on two shards:
// no oversell with 1,000 concurrent attempts for 50 units (20 rounds), multi-merchant
// baskets in random line order without a 5xx or a deadlock reaching a client, and one
// Idempotency-Key sent 100 times at once making one checkout.
func TestCheckoutsAtScale(t *testing.T) {
	h := newHarness(t, testConfig())
	m1, _ := h.merchant()
	m2, _ := h.merchant()
	t0 := time.Now()
	buyers := h.buyers(200)
	t.Logf("200 buyers in %s", time.Since(t0))

	// 200 buyers x 5 attempts of 1 unit each at a SKU of 50 units: exactly 50 checkouts,
	// 950 stock.insufficient, nothing else; the counters and the stored orders agree.
	t.Run("Oversell", func(t *testing.T) {
		h := h.sub(t)
		const units, perBuyer = 50, 5
		rounds := oversellRounds()
		for round := range rounds {
			sku := h.sku(m1, 990, units)
			attempts := make([]attempt, 0, len(buyers)*perBuyer)
			for range perBuyer {
				for _, b := range buyers {
					attempts = append(attempts, attempt{b: b, lines: []line{{sku, 1}}})
				}
			}
			t0 := time.Now()
			res := h.storm(attempts)
			took := time.Since(t0)
			ok, insufficient := 0, 0
			for i, r := range res {
				switch {
				case r.Status == http.StatusCreated:
					ok++
				case r.Status == http.StatusConflict && r.Code() == "stock.insufficient":
					insufficient++
				default:
					t.Fatalf("round %d attempt %d: %s", round, i, r)
				}
			}
			if ok != units || insufficient != len(attempts)-units {
				t.Fatalf("round %d: %d checkouts and %d stock.insufficient of %d attempts; want %d checkouts",
					round, ok, insufficient, len(attempts), units)
			}
			h.checkLevel(sku, units, units)
			if n, q := h.orderedUnits(sku); n != units || q != units {
				t.Fatalf("round %d: %d orders of %d units stored, want %d", round, n, q, units)
			}
			t.Logf("round %d: %d attempts in %s", round, len(attempts), took)
		}
		h.checkStock()
	})

	// Baskets of 2 to 4 SKUs of two merchants, lines in random order, 1 to 3 units each,
	// against scarce stock: every answer is 201 or 409 stock.insufficient, and each SKU's
	// reserved units are exactly what the stored orders hold.
	t.Run("MultiSKUBaskets", func(t *testing.T) {
		h := h.sub(t)
		const perSKU = 40
		var skus []int64
		for i := range 6 {
			m := m1
			if i%2 == 1 {
				m = m2
			}
			skus = append(skus, h.sku(m, int64(100+i), perSKU))
		}
		rng := rand.New(rand.NewPCG(1, 2))
		attempts := make([]attempt, 0, 2*len(buyers))
		for range 2 {
			for _, b := range buyers {
				n := 2 + rng.IntN(3)
				// At least one SKU of each merchant (even indexes m1, odd m2).
				picked := []int64{skus[2*rng.IntN(3)], skus[2*rng.IntN(3)+1]}
				for len(picked) < n {
					s := skus[rng.IntN(len(skus))]
					if !containsSKU(picked, s) {
						picked = append(picked, s)
					}
				}
				rng.Shuffle(len(picked), func(i, j int) { picked[i], picked[j] = picked[j], picked[i] })
				lines := make([]line, len(picked))
				for i, s := range picked {
					lines[i] = line{s, 1 + int64(rng.IntN(3))}
				}
				attempts = append(attempts, attempt{b: b, lines: lines})
			}
		}
		t0 := time.Now()
		res := h.storm(attempts)
		ok := 0
		for i, r := range res {
			switch {
			case r.Status == http.StatusCreated:
				var c checkoutBody
				r.Decode(t, &c)
				if len(c.Orders) != 2 {
					t.Errorf("attempt %d: %d orders, want one per merchant", i, len(c.Orders))
				}
				ok++
			case r.Status == http.StatusConflict && r.Code() == "stock.insufficient":
			default:
				t.Fatalf("attempt %d (%v): %s", i, attempts[i].lines, r)
			}
		}
		t.Logf("%d baskets in %s: %d checkouts", len(attempts), time.Since(t0), ok)
		if ok == 0 {
			t.Fatal("no basket got through")
		}
		for _, s := range skus {
			_, q := h.orderedUnits(s)
			h.checkLevel(s, perSKU, q)
		}
		h.checkStock()
	})

	// 100 requests at once with one Idempotency-Key and one body: one checkout, reserved
	// once; every answer is that checkout (201) or 409 idempotency.in_progress. The key with
	// another body is 422.
	t.Run("OneIdempotencyKey", func(t *testing.T) {
		h := h.sub(t)
		const n = 100
		sku := h.sku(m2, 700, 10)
		b := h.buyer()
		key := newKey()
		body := placeBody(b, line{sku, 2})
		res, errs := atOnce(n, func(int) (response, error) { return h.post("/api/v1/orders", body, b.token, key) })
		checkouts := map[string]int{}
		inProgress := 0
		for i, r := range res {
			switch {
			case errs[i] != nil:
				t.Fatalf("request %d: %v", i, errs[i])
			case r.Status == http.StatusCreated:
				var c checkoutBody
				r.Decode(t, &c)
				checkouts[c.CheckoutID]++
			case r.Status == http.StatusConflict && r.Code() == "idempotency.in_progress":
				inProgress++
			default:
				t.Fatalf("request %d: %s", i, r)
			}
		}
		if len(checkouts) != 1 {
			t.Fatalf("%d distinct checkouts answered: %v", len(checkouts), checkouts)
		}
		t.Logf("%d x 201 (one checkout), %d x 409 in_progress", n-inProgress, inProgress)
		var stored int
		if err := h.Cluster.ForUser(b.id).GetContext(context.Background(), &stored,
			`SELECT COUNT(*) FROM order_checkouts WHERE buyer_id = ?`, b.id); err != nil || stored != 1 {
			t.Fatalf("%d checkouts stored (%v), want 1", stored, err)
		}
		h.checkLevel(sku, 10, 2)
		// Once done, the key replays the checkout; with another body it is refused.
		r, err := h.post("/api/v1/orders", body, b.token, key)
		if err != nil || r.Status != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay: %s %v", r, err)
		}
		for c := range checkouts {
			if !strings.Contains(string(r.Body), c) {
				t.Errorf("replay %s is not checkout %s", r, c)
			}
		}
		r, err = h.post("/api/v1/orders", placeBody(b, line{sku, 3}), b.token, key)
		if err != nil || r.Status != http.StatusUnprocessableEntity || r.Code() != "idempotency.key_reused" {
			t.Fatalf("another body with the key: %s %v", r, err)
		}
		h.checkLevel(sku, 10, 2)
		h.checkStock()
	})
}

// oversellRounds is 20, 3 with -short; MALL_TEST_OVERSELL_ROUNDS overrides both.
func oversellRounds() int {
	if n, err := strconv.Atoi(os.Getenv("MALL_TEST_OVERSELL_ROUNDS")); err == nil && n > 0 {
		return n
	}
	if testing.Short() {
		return 3
	}
	return 20
}

func containsSKU(s []int64, v int64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

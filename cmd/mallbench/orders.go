package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Order rows: POST /api/v1/orders with one line from each of the two seeded merchants, by a
// pool of fresh buyers (registered, logged in and given an address before the load; no other
// history) in turn. The orders stay unpaid, so each holds its units until the payment timeout:
// the SKUs get a large stock first, and the pool is large enough that no buyer comes near
// stock.max_hold_per_buyer (200 unpaid units per SKU by default) in a run.

const (
	// orderBuyers is the size of the buyer pool. Each order holds one unit of each SKU for
	// its buyer, so a run can place orderBuyers x 200 orders (default hold cap) before a
	// buyer is refused: 40,000, more than two rows of 12 s at a few thousand orders/s.
	orderBuyers = 200
	// orderBuyerWorkers register buyers in parallel (argon2id bounds the server anyway).
	orderBuyerWorkers = 8
	// orderStock is the available stock each of the two SKUs gets before the rows.
	orderStock = 100_000_000
)

// orderFixture is what the order rows share: the two hot SKUs, the SKUs the spread row picks
// from (orderSpreadSKUs per merchant, the hot one first) and the buyers.
type orderFixture struct {
	SKUs   [2]string
	Spread [2][]string
	Buyers []orderBuyer
}

type orderBuyer struct {
	Auth    string // "Bearer ..."
	Address string // the buyer's address ID
	Body    []byte // the order: both hot SKUs, one unit each, to this buyer's address
}

// orderSpreadSKUs is how many SKUs of each merchant the spread row picks from.
const orderSpreadSKUs = 50

// orderSpread is the Setup of the spread row: like orderCreate, but each order takes one
// unit of a random SKU of each merchant (of orderSpreadSKUs each), so orders rarely meet on
// a SKU row: the checkout path without a hot row.
func orderSpread(ctx context.Context, env *Env) (Next, error) {
	v, err := env.Once("order fixture", func() (any, error) { return newOrderFixture(ctx, env) })
	if err != nil {
		return nil, err
	}
	fx := v.(*orderFixture)
	run := time.Now().UnixNano()
	var n atomic.Int64
	return func(w int, i int64) Request {
		k := n.Add(1) - 1
		b := fx.Buyers[k%int64(len(fx.Buyers))]
		a, c := fx.Spread[0], fx.Spread[1]
		// A cheap deterministic spread (no shared RNG between workers).
		x := uint64(k)*0x9E3779B97F4A7C15 + uint64(w)
		body := fmt.Appendf(nil, `{"items":[{"sku_id":%q,"quantity":1},{"sku_id":%q,"quantity":1}],"address_id":%q}`,
			a[x%uint64(len(a))], c[(x>>32)%uint64(len(c))], b.Address)
		h := http.Header{
			"Authorization":   {b.Auth},
			"Content-Type":    {"application/json"},
			"Idempotency-Key": {fmt.Sprintf("bench-s%x-%d-%d", run, w, i)},
		}
		return Request{Method: http.MethodPost, Path: "/api/v1/orders", Header: h, Body: body}
	}, nil
}

// orderCreate is the Setup of the order rows: the fixture (made once), then a generator that
// gives each request the next buyer of the pool and a fresh Idempotency-Key.
func orderCreate(ctx context.Context, env *Env) (Next, error) {
	v, err := env.Once("order fixture", func() (any, error) { return newOrderFixture(ctx, env) })
	if err != nil {
		return nil, err
	}
	fx := v.(*orderFixture)
	run := time.Now().UnixNano() // keys differ between rows (a repeated key replays the order)
	var n atomic.Int64
	return func(w int, i int64) Request {
		b := fx.Buyers[(n.Add(1)-1)%int64(len(fx.Buyers))]
		h := http.Header{
			"Authorization":   {b.Auth},
			"Content-Type":    {"application/json"},
			"Idempotency-Key": {fmt.Sprintf("bench-%x-%d-%d", run, w, i)},
		}
		return Request{Method: http.MethodPost, Path: "/api/v1/orders", Header: h, Body: b.Body}
	}, nil
}

// newOrderFixture picks an on-sale SKU of each seeded merchant, sets its stock to orderStock
// as the merchant's owner, creates the buyer pool and places one order to check it all.
func newOrderFixture(ctx context.Context, env *Env) (*orderFixture, error) {
	fx := &orderFixture{}
	for i, email := range seedOwners {
		skus, err := ownerSKUs(ctx, env, email, orderSpreadSKUs)
		if err != nil {
			return nil, err
		}
		fx.SKUs[i], fx.Spread[i] = skus[0], skus
	}
	buyers, err := orderBuyerPool(ctx, env, fx.SKUs)
	if err != nil {
		return nil, err
	}
	fx.Buyers = buyers
	// One order before the load: a 201 here means the rows measure working checkouts.
	b := buyers[0]
	h := http.Header{"Authorization": {b.Auth}, "Idempotency-Key": {fmt.Sprintf("bench-check-%d", time.Now().UnixNano())}}
	var body any
	_ = json.Unmarshal(b.Body, &body)
	if err := env.Call(ctx, http.MethodPost, env.MallURL+"/api/v1/orders", h, body, nil); err != nil {
		return nil, fmt.Errorf("check order: %w", err)
	}
	return fx, nil
}

// ownerSKUs logs in as a seeded merchant owner, takes the first SKU of each of its n newest
// on-sale products and sets each one's available stock to orderStock.
func ownerSKUs(ctx context.Context, env *Env, email string, n int) ([]string, error) {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	creds := map[string]string{"email": email, "password": env.SeedPassword}
	if err := env.Call(ctx, http.MethodPost, env.MallURL+"/api/v1/auth/login", nil, creds, &tok); err != nil {
		return nil, fmt.Errorf("log in as the seeded %s (is the server seeded with `mall seed`, -seed-password?): %w", email, err)
	}
	h := http.Header{"Authorization": {"Bearer " + tok.AccessToken}}
	var list struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if err := env.Call(ctx, http.MethodGet, fmt.Sprintf("%s/api/v1/merchant/products?status=on_sale&limit=%d", env.MallURL, n), h, nil, &list); err != nil {
		return nil, err
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("%s's merchant has no product on sale (run `mall seed`)", email)
	}
	var skus []string
	for _, it := range list.Items {
		var p struct {
			SKUs []struct {
				ID string `json:"id"`
			} `json:"skus"`
		}
		if err := env.Call(ctx, http.MethodGet, env.MallURL+"/api/v1/merchant/products/"+it.ID, h, nil, &p); err != nil {
			return nil, err
		}
		if len(p.SKUs) == 0 {
			continue
		}
		sku := p.SKUs[0].ID
		if err := env.Call(ctx, http.MethodPut, env.MallURL+"/api/v1/merchant/skus/"+sku+"/stock", h,
			map[string]int64{"available": orderStock}, nil); err != nil {
			return nil, fmt.Errorf("set the stock of SKU %s: %w", sku, err)
		}
		skus = append(skus, sku)
	}
	if len(skus) == 0 {
		return nil, fmt.Errorf("%s's products have no SKUs", email)
	}
	return skus, nil
}

// orderBuyerPool registers orderBuyers buyers in parallel, logs each in and gives it an
// address; each buyer's order body is prepared here.
func orderBuyerPool(ctx context.Context, env *Env, skus [2]string) ([]orderBuyer, error) {
	buyers := make([]orderBuyer, orderBuyers)
	prefix := fmt.Sprintf("bench-buyer-%d", time.Now().UnixNano())
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range orderBuyerWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(buyers) || ctx.Err() != nil {
					return
				}
				b, err := newOrderBuyer(ctx, env, fmt.Sprintf("%s-%d@bench.example.com", prefix, i), skus)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("buyer %d: %w", i, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				buyers[i] = b
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return buyers, nil
}

func newOrderBuyer(ctx context.Context, env *Env, email string, skus [2]string) (orderBuyer, error) {
	tok, err := benchLogin(ctx, env, email)
	if err != nil {
		return orderBuyer{}, err
	}
	h := http.Header{"Authorization": {"Bearer " + tok}}
	addr := map[string]string{"name": "Bench Buyer", "phone": "13800138000", "province": "上海市",
		"city": "上海市", "district": "浦东新区", "detail": "世纪大道 100 号"}
	var a struct {
		ID string `json:"id"`
	}
	if err := env.Call(ctx, http.MethodPost, env.MallURL+"/api/v1/me/addresses", h, addr, &a); err != nil {
		return orderBuyer{}, fmt.Errorf("add an address: %w", err)
	}
	if a.ID == "" {
		return orderBuyer{}, errors.New("add an address: no id in the answer")
	}
	type line struct {
		SKUID    string `json:"sku_id"`
		Quantity int64  `json:"quantity"`
	}
	body, err := json.Marshal(map[string]any{
		"items":      []line{{skus[0], 1}, {skus[1], 1}},
		"address_id": a.ID,
	})
	if err != nil {
		return orderBuyer{}, err
	}
	return orderBuyer{Auth: "Bearer " + tok, Address: a.ID, Body: body}, nil
}

// atLeastRate is the goal "at least r successful requests per second".
func atLeastRate(r float64) func(res, _ Result) string {
	return func(res, _ Result) string {
		mark := "✗"
		if res.Duration > 0 && float64(res.Requests-res.Errors)/res.Duration.Seconds() >= r {
			mark = "✓"
		}
		return fmt.Sprintf("%s ≥ %s/s", mark, thousands(r))
	}
}

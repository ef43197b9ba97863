package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Flash-sale rows (issue 13), on a seeded merchant's SKU (stock orderStock) and the order rows'
// buyer pool. The intake row first: a sale of flashIntakeUnits units, every buyer attempting
// until all are accepted (a full queue), then the time until the intake has placed them all
// (the merchant's `sold`); bench.sh raises flash_sale.intake_rate so the row measures the
// intake, not its pacing. Then the attempts row: one hot sale, every worker attempting with a
// fresh key as the pool's buyers in turn; a 202 and the gate's 409 refusals are answers.

const (
	flashLagMetric   = "mall_flashsale_intake_lag_seconds"
	flashIntakeUnits = 10_000
	flashPerUser     = 100 // per-user limit of both sales: the pool of 200 buyers reaches 20,000
)

var flashScenarios = []Scenario{
	{
		Name:    fmt.Sprintf("flash-sale intake: %d queued attempts to orders", flashIntakeUnits),
		Target:  TargetMall,
		Measure: flashIntake,
	},
	{
		Name:   "POST /api/v1/flash-sales/{id}/attempts (one hot sale, 64 connections)",
		Target: TargetMall,
		Setup:  flashAttempts,
		// The gate's refusals are answers: 409 (sold out, limit) and 429 (the intake's queue
		// is full: 20,000 acceptable attempts meet an intake of a few hundred per second).
		OK: func(status int) bool {
			return status == http.StatusAccepted || status == http.StatusConflict || status == http.StatusTooManyRequests
		},
		Goal: func(res, base Result) string {
			mark := "✗"
			if res.Rate() >= 8000 && res.P99 <= 20*time.Millisecond && res.Errors == 0 {
				mark = "✓"
			}
			return fmt.Sprintf("%s ≥ 8,000/s floor (20,000/s goal), p99 ≤ 20 ms", mark)
		},
	},
}

// flashSale creates a sale of units on the fixture's first SKU as its merchant's owner and
// returns its ID and the owner's header.
func flashSale(ctx context.Context, env *Env, units int64) (string, http.Header, error) {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := env.Call(ctx, http.MethodPost, env.MallURL+"/api/v1/auth/login", nil,
		map[string]string{"email": seedOwners[0], "password": env.SeedPassword}, &tok); err != nil {
		return "", nil, fmt.Errorf("log in as %s: %w", seedOwners[0], err)
	}
	v, err := env.Once("order fixture", func() (any, error) { return newOrderFixture(ctx, env) })
	if err != nil {
		return "", nil, err
	}
	fx := v.(*orderFixture)
	h := http.Header{"Authorization": {"Bearer " + tok.AccessToken}}
	var sale struct {
		ID string `json:"id"`
	}
	now := time.Now().UTC()
	if err := env.Call(ctx, http.MethodPost, env.MallURL+"/api/v1/merchant/flash-sales", h, map[string]any{
		"sku_id": fx.SKUs[0], "price": 1, "quantity": units, "per_user_limit": flashPerUser,
		"starts_at": now.Add(-time.Second).Format(time.RFC3339), "ends_at": now.Add(time.Hour).Format(time.RFC3339),
	}, &sale); err != nil {
		return "", nil, fmt.Errorf("create the flash sale: %w", err)
	}
	return sale.ID, h, nil
}

func flashAttempts(ctx context.Context, env *Env) (Next, error) {
	id, _, err := flashSale(ctx, env, 100_000)
	if err != nil {
		return nil, err
	}
	v, _ := env.Once("order fixture", nil)
	fx := v.(*orderFixture)
	run := time.Now().UnixNano()
	var n atomic.Int64
	path := "/api/v1/flash-sales/" + id + "/attempts"
	return func(w int, i int64) Request {
		b := fx.Buyers[(n.Add(1)-1)%int64(len(fx.Buyers))]
		h := http.Header{"Authorization": {b.Auth}, "Content-Type": {"application/json"},
			"Idempotency-Key": {fmt.Sprintf("fs-%x-%d-%d", run, w, i)}}
		return Request{Method: http.MethodPost, Path: path, Header: h,
			Body: fmt.Appendf(nil, `{"quantity":1,"address_id":%q}`, b.Address)}
	}, nil
}

// flashIntake: accepted attempts for every unit as fast as 64 workers can (the queue fills),
// then wait for the merchant's view to show them all sold. Rate is orders placed per second
// from the first acceptance; p50/p99 are the tickets' time from acceptance to final state
// (mall_flashsale_intake_lag_seconds).
func flashIntake(ctx context.Context, env *Env) (Result, string, error) {
	id, owner, err := flashSale(ctx, env, flashIntakeUnits)
	if err != nil {
		return Result{}, "", err
	}
	v, _ := env.Once("order fixture", nil)
	fx := v.(*orderFixture)
	before, err := readHistogram(ctx, env.Client, env.MallURL, flashLagMetric, "")
	if err != nil {
		return Result{}, "", err
	}
	var (
		accepted, refused atomic.Int64
		next              atomic.Int64
		wg                sync.WaitGroup
		firstErr          atomic.Value
	)
	start := time.Now()
	path := env.MallURL + "/api/v1/flash-sales/" + id + "/attempts"
	for w := range 64 {
		wg.Go(func() {
			for accepted.Load() < flashIntakeUnits && ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= flashIntakeUnits*2 {
					return
				}
				b := fx.Buyers[i%int64(len(fx.Buyers))]
				h := http.Header{"Authorization": {b.Auth}, "Idempotency-Key": {fmt.Sprintf("fsi-%d-%d-%d", start.UnixNano(), w, i)}}
				var out struct {
					Status string `json:"status"`
				}
				if err := env.Call(ctx, http.MethodPost, path, h, map[string]any{"quantity": 1, "address_id": b.Address}, &out); err != nil {
					refused.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				accepted.Add(1)
			}
		})
	}
	wg.Wait()
	queued := time.Since(start)
	want := accepted.Load()
	var sale struct {
		Sold int64 `json:"sold"`
	}
	for deadline := time.Now().Add(5 * time.Minute); ; {
		if err := env.Call(ctx, http.MethodGet, env.MallURL+"/api/v1/merchant/flash-sales/"+id, owner, nil, &sale); err != nil {
			return Result{}, "", err
		}
		if sale.Sold >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	d := time.Since(start)
	after, err := readHistogram(ctx, env.Client, env.MallURL, flashLagMetric, "")
	if err != nil {
		return Result{}, "", err
	}
	delta := after.Sub(before)
	res := Result{Requests: sale.Sold, Duration: d, P50: delta.Quantile(0.5), P99: delta.Quantile(0.99),
		ErrKinds: map[string]int64{}}
	if missing := want - sale.Sold; missing > 0 {
		res.Errors, res.ErrKinds["tickets not ordered"] = missing, missing
	}
	mark := "✗"
	if res.Rate() >= 500 && res.Errors == 0 {
		mark = "✓"
	}
	note := fmt.Sprintf("%s ≥ 500 orders/s floor (%d accepted in %s, %d refused", mark, want, fmtDur(queued), refused.Load())
	if e, ok := firstErr.Load().(string); ok {
		note += "; first refusal: " + e
	}
	return res, note + ")", nil
}

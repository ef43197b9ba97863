package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The bid row: POST /api/v1/auctions/{id}/bids on one hot lot by a pool of bidders, each
// request with its own Idempotency-Key. A poller follows the lot's price and every attempt
// bids one to four increments over the last price it saw, so at high concurrency most
// attempts are already too low when they arrive: the Redis gate answers them (409
// auction.bid_too_low) without MySQL, and the few that lead commit. Both 201 and 409 are
// answers the row counts; the goal column adds how many bids the lot accepted.

const (
	bidBuyers       = 200
	bidIncrement    = 10
	bidPollInterval = 20 * time.Millisecond
)

type bidFixture struct {
	Lot    string
	Auths  []string
	price  atomic.Int64
	start  atomic.Int64 // bid_count when the measured load began (approximately: at Setup)
	cancel context.CancelFunc
}

// benchLot is the fixture of the last bid row set up, for its goal column.
var benchLot struct {
	sync.Mutex
	fx  *bidFixture
	env *Env
}

func bidSetup(ctx context.Context, env *Env) (Next, error) {
	v, err := env.Once("bid fixture", func() (any, error) { return newBidFixture(ctx, env) })
	if err != nil {
		return nil, err
	}
	fx := v.(*bidFixture)
	if n, _, err := lotState(ctx, env, fx.Lot); err == nil {
		fx.start.Store(n)
	}
	benchLot.Lock()
	benchLot.fx, benchLot.env = fx, env
	benchLot.Unlock()
	run := time.Now().UnixNano()
	return func(w int, i int64) Request {
		amount := fx.price.Load() + bidIncrement*int64(1+rand.IntN(4))
		h := http.Header{
			"Authorization":   {fx.Auths[(int64(w)*7919+i)%int64(len(fx.Auths))]},
			"Content-Type":    {"application/json"},
			"Idempotency-Key": {fmt.Sprintf("bid-%x-%d-%d", run, w, i)},
		}
		return Request{Method: http.MethodPost, Path: "/api/v1/auctions/" + fx.Lot + "/bids", Header: h,
			Body: []byte(fmt.Sprintf(`{"amount":%d}`, amount))}
	}, nil
}

// bidOK: an acknowledged bid or a refusal for being too low (or a leader bidding again).
func bidOK(status int) bool { return status == http.StatusCreated || status == http.StatusConflict }

func newBidFixture(ctx context.Context, env *Env) (*bidFixture, error) {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	creds := map[string]string{"email": seedOwners[0], "password": env.SeedPassword}
	if err := env.Call(ctx, http.MethodPost, env.MallURL+"/api/v1/auth/login", nil, creds, &tok); err != nil {
		return nil, fmt.Errorf("log in as the seeded %s: %w", seedOwners[0], err)
	}
	now := time.Now().UTC()
	var lot struct {
		ID string `json:"id"`
	}
	if err := env.Call(ctx, http.MethodPost, env.MallURL+"/api/v1/merchant/auctions",
		http.Header{"Authorization": {"Bearer " + tok.AccessToken}},
		map[string]any{"title": "Bench hot lot", "start_price": 100, "increment": bidIncrement,
			"starts_at": now.Add(-time.Second).Format(time.RFC3339Nano), "ends_at": now.Add(2 * time.Hour).Format(time.RFC3339Nano)},
		&lot); err != nil {
		return nil, fmt.Errorf("create the lot: %w", err)
	}
	fx := &bidFixture{Lot: lot.ID}
	prefix := fmt.Sprintf("bench-bidder-%d", time.Now().UnixNano())
	fx.Auths = make([]string, bidBuyers)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range orderBuyerWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= bidBuyers {
					return
				}
				t, err := benchLogin(ctx, env, fmt.Sprintf("%s-%d@bench.example.com", prefix, i))
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				fx.Auths[i] = "Bearer " + t
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	// One bid before the load: a 201 here means the row measures working bids.
	h := http.Header{"Authorization": {fx.Auths[0]}, "Idempotency-Key": {fmt.Sprintf("bid-check-%d", time.Now().UnixNano())}}
	if err := env.Call(ctx, http.MethodPost, env.MallURL+"/api/v1/auctions/"+fx.Lot+"/bids", h, map[string]int64{"amount": 100}, nil); err != nil {
		return nil, fmt.Errorf("check bid: %w", err)
	}
	// The poller lives as long as the bench run.
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	fx.cancel = cancel
	go func() {
		t := time.NewTicker(bidPollInterval)
		defer t.Stop()
		for {
			if _, p, err := lotState(pctx, env, fx.Lot); err == nil {
				fx.price.Store(p)
			}
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return fx, nil
}

// lotState reads the lot's bid count and current price.
func lotState(ctx context.Context, env *Env, lot string) (bids, price int64, err error) {
	var l struct {
		BidCount     int64 `json:"bid_count"`
		CurrentPrice int64 `json:"current_price"`
	}
	if err := env.Call(ctx, http.MethodGet, env.MallURL+"/api/v1/auctions/"+lot, nil, nil, &l); err != nil {
		return 0, 0, err
	}
	return l.BidCount, l.CurrentPrice, nil
}

// bidGoal is the row's target (attempts/s and p99) plus the bids the lot accepted.
func bidGoal(rate float64, p99 time.Duration) func(res, _ Result) string {
	return func(res, _ Result) string {
		mark := "✗"
		if res.Duration > 0 && float64(res.Requests-res.Errors)/res.Duration.Seconds() >= rate && res.P99 <= p99 && res.Errors == 0 {
			mark = "✓"
		}
		out := fmt.Sprintf("%s ≥ %s attempts/s, p99 ≤ %s", mark, thousands(rate), fmtDur(p99))
		benchLot.Lock()
		fx, env := benchLot.fx, benchLot.env
		benchLot.Unlock()
		if fx != nil && res.Duration > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if n, _, err := lotState(ctx, env, fx.Lot); err == nil {
				acc := n - fx.start.Load()
				// Includes the warm-up's bids: an upper bound of the measured window's.
				out += fmt.Sprintf("; %s bids accepted (≤ %.0f/s)", thousands(float64(acc)), float64(acc)/res.Duration.Seconds())
			}
		}
		return out
	}
}

package auction_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/auction"
	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/stock"
)

type response = apptest.Response

type harness struct {
	*apptest.App
	t        testing.TB
	admin    string
	category int64
	catalog  catalog.Service
	stock    stock.Service
	auctions auction.Service
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	cfg := catalog.ConfigSection.With(apptest.Config(t), func(c *catalog.Config) { c.ReviewRequired = false })
	cfg = auction.ConfigSection.With(cfg, func(c *auction.Config) { c.ScheduleInterval = 100 * time.Millisecond })
	h := &harness{t: t}
	h.App = apptest.Start(t, cfg, apptest.Options{Populate: []any{&h.catalog, &h.stock, &h.auctions}})
	_, tk := h.Admin()
	h.admin = tk.AccessToken
	id, err := h.catalog.CreateCategory(context.Background(), catalog.NewCategory{Name: "antiques"})
	if err != nil {
		t.Fatal(err)
	}
	h.category = id
	return h
}

func (h *harness) req(method, path string, body any, token string, headers ...string) response {
	h.t.Helper()
	return h.Req(method, path, body, append(apptest.Bearer(token), headers...)...)
}

// product creates an on-sale product of the merchant with one SKU and stock.
func (h *harness) product(merchantID, units int64) (productID, skuID int64) {
	h.t.Helper()
	ctx := context.Background()
	p, err := h.catalog.CreateProduct(ctx, merchantID, catalog.ProductInput{Title: "Vase", Description: "a vase",
		CategoryID: h.category, SKUs: []catalog.SKUInput{{Code: "v1", Price: 100000, Stock: units}}})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.catalog.Submit(ctx, merchantID, p.ID); err != nil {
		h.t.Fatal(err)
	}
	return p.ID, p.SKUs[0].ID
}

type bidder struct {
	id    int64
	token string
}

// bidders registers n buyers over HTTP, a few at a time (withAddress: each adds one).
func (h *harness) bidders(n int, withAddress ...bool) []bidder {
	h.t.Helper()
	out := make([]bidder, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range out {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			email := apptest.UniqueEmail("bidder")
			r, err := h.Do(http.MethodPost, "/api/v1/auth/register", map[string]string{"email": email, "password": apptest.Password})
			if err != nil || r.Status != http.StatusCreated {
				h.t.Errorf("register: %v %s", err, r)
				return
			}
			var acc apptest.Account
			r.Decode(h.t, &acc)
			r, err = h.Do(http.MethodPost, "/api/v1/auth/login", map[string]string{"email": email, "password": apptest.Password})
			if err != nil || r.Status != http.StatusOK {
				h.t.Errorf("login: %v %s", err, r)
				return
			}
			var tk apptest.Tokens
			r.Decode(h.t, &tk)
			id, _ := strconv.ParseInt(acc.ID, 10, 64)
			out[i] = bidder{id: id, token: tk.AccessToken}
			if len(withAddress) > 0 && withAddress[0] {
				r, err = h.Do(http.MethodPost, "/api/v1/me/addresses", map[string]string{"name": "Han Meimei",
					"phone": "13912345678", "province": "Zhejiang", "city": "Hangzhou", "district": "Xihu",
					"detail": "1 Lake Road"}, "Authorization", "Bearer "+tk.AccessToken)
				if err != nil || r.Status != http.StatusCreated {
					h.t.Errorf("address: %v %s", err, r)
				}
			}
		}()
	}
	wg.Wait()
	if h.t.Failed() {
		h.t.FailNow()
	}
	return out
}

type lotBody struct {
	ID            string    `json:"id"`
	Status        string    `json:"status"`
	CurrentPrice  int64     `json:"current_price"`
	MinNextBid    int64     `json:"min_next_bid"`
	BidCount      int64     `json:"bid_count"`
	LeaderID      string    `json:"leader_id"`
	EndsAt        time.Time `json:"ends_at"`
	ReserveMet    bool      `json:"reserve_met"`
	Version       int64     `json:"version"`
	OrderState    string    `json:"order_state"`
	OrderError    string    `json:"order_error"`
	WinnerOrderID string    `json:"winner_order_id"`
}

type bidBody struct {
	BidID        string    `json:"bid_id"`
	Amount       int64     `json:"amount"`
	Kind         string    `json:"kind"`
	CurrentPrice int64     `json:"current_price"`
	Leading      bool      `json:"leading"`
	EndsAt       time.Time `json:"ends_at"`
}

type bidItem struct {
	ID        string    `json:"id"`
	Seq       int64     `json:"seq"`
	BidderID  string    `json:"bidder_id"`
	Amount    int64     `json:"amount"`
	Kind      string    `json:"kind"`
	CreatedAt time.Time `json:"created_at"`
}

// create schedules a lot over HTTP and returns its ID.
func (h *harness) create(token string, body map[string]any) string {
	h.t.Helper()
	var out struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	h.req(http.MethodPost, "/api/v1/merchant/auctions", body, token).Want(h.t, http.StatusCreated, "").Decode(h.t, &out)
	if out.Status != "scheduled" {
		h.t.Fatalf("created %+v", out)
	}
	return out.ID
}

func (h *harness) lot(id string) lotBody {
	h.t.Helper()
	var l lotBody
	h.req(http.MethodGet, "/api/v1/auctions/"+id, nil, "").Want(h.t, http.StatusOK, "").Decode(h.t, &l)
	return l
}

var keySeq atomic.Int64

func newKey() string { return fmt.Sprintf("bid-%d-%d", time.Now().UnixNano(), keySeq.Add(1)) }

// bid posts a bid with a fresh Idempotency-Key (maxAmount 0: none).
func (h *harness) bid(token, lot string, amount, maxAmount int64) (response, error) {
	body := map[string]any{"amount": amount}
	if maxAmount > 0 {
		body["max_amount"] = maxAmount
	}
	return h.Do(http.MethodPost, "/api/v1/auctions/"+lot+"/bids", body, "Authorization", "Bearer "+token,
		"Idempotency-Key", newKey())
}

// history reads every bid of the lot, oldest first.
func (h *harness) history(lot string) []bidItem {
	h.t.Helper()
	var all []bidItem
	cursor := ""
	for {
		var page struct {
			Items      []bidItem `json:"items"`
			NextCursor string    `json:"next_cursor"`
		}
		h.req(http.MethodGet, "/api/v1/auctions/"+lot+"/bids?limit=100&cursor="+cursor, nil, "").
			Want(h.t, http.StatusOK, "").Decode(h.t, &page)
		all = append(all, page.Items...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
		all[i], all[j] = all[j], all[i]
	}
	return all
}

func (h *harness) eventually(what string, within time.Duration, ok func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

package flashsale_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/flashsale"
	"github.com/mallhq/mall/internal/merchant"
	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/stock"
	"github.com/mallhq/mall/internal/user"
)

type app struct {
	*apptest.App
	t     testing.TB
	admin string
	stock stock.Service
	rdb   redis.UniversalClient
}

func newApp(t testing.TB, extra ...fx.Option) *app {
	t.Helper()
	a := &app{t: t}
	cfg := catalog.ConfigSection.With(apptest.Config(t), func(c *catalog.Config) { c.ReviewRequired = false })
	cfg = order.ConfigSection.With(cfg, func(c *order.Config) { c.SweepInterval = 200 * time.Millisecond })
	a.App = apptest.Start(t, cfg, apptest.Options{
		Modules: append([]fx.Option{user.Module, merchant.Module, stock.Module, catalog.Module, order.Module,
			order.Gateways, flashsale.Module}, extra...),
		Populate: []any{&a.stock, &a.rdb},
	})
	_, tk := a.Admin()
	a.admin = tk.AccessToken
	return a
}

type idBody struct {
	ID string `json:"id"`
}

// product creates an on-sale product of the merchant with one SKU of price and stock.
func (a *app) product(owner string, price, units int64) (skuID string) {
	a.t.Helper()
	var cat idBody
	a.Req(http.MethodPost, "/api/v1/admin/categories", map[string]any{"name": "cat" + fmt.Sprint(time.Now().UnixNano())},
		apptest.Bearer(a.admin)...).Want(a.t, http.StatusCreated, "").Decode(a.t, &cat)
	var p struct {
		ID   string   `json:"id"`
		SKUs []idBody `json:"skus"`
	}
	a.Req(http.MethodPost, "/api/v1/merchant/products", map[string]any{"title": "Thermos", "category_id": cat.ID,
		"skus": []map[string]any{{"code": "one", "attrs": map[string]string{}, "price": price, "stock": units}}},
		apptest.Bearer(owner)...).Want(a.t, http.StatusCreated, "").Decode(a.t, &p)
	a.Req(http.MethodPost, "/api/v1/merchant/products/"+p.ID+"/submit", nil, apptest.Bearer(owner)...).
		Want(a.t, http.StatusOK, "")
	return p.SKUs[0].ID
}

type saleBody struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Quantity  int64  `json:"quantity"`
	Remaining int64  `json:"remaining"`
	Sold      int64  `json:"sold"`
	Price     int64  `json:"price"`
}

type ticketBody struct {
	ID      string `json:"ticket_id"`
	Status  string `json:"status"`
	OrderID string `json:"order_id"`
	Code    string `json:"code"`
}

func (a *app) sale(owner, sku string, units, limit int64, starts, ends time.Time) saleBody {
	a.t.Helper()
	var s saleBody
	a.Req(http.MethodPost, "/api/v1/merchant/flash-sales", map[string]any{"sku_id": sku, "price": 99, "quantity": units,
		"per_user_limit": limit, "starts_at": starts.UTC().Format(time.RFC3339Nano), "ends_at": ends.UTC().Format(time.RFC3339Nano)},
		apptest.Bearer(owner)...).Want(a.t, http.StatusCreated, "").Decode(a.t, &s)
	return s
}

type buyer struct {
	token, address string
}

func (a *app) attempt(b buyer, saleID, key string) apptest.Response {
	r, err := a.Do(http.MethodPost, "/api/v1/flash-sales/"+saleID+"/attempts", map[string]any{"quantity": 1,
		"address_id": b.address}, append(apptest.Bearer(b.token), "Idempotency-Key", key)...)
	if err != nil {
		a.t.Fatal(err)
	}
	return r
}

func (a *app) count(q string, args ...any) int {
	a.t.Helper()
	var n int
	if err := a.Cluster.Main().GetContext(context.Background(), &n, q, args...); err != nil {
		a.t.Fatal(err)
	}
	return n
}

func (a *app) flashOrders(saleID string) int {
	a.t.Helper()
	n := 0
	seen := map[any]bool{}
	for _, db := range a.Cluster.Shards() {
		if seen[db] {
			continue
		}
		seen[db] = true
		var k int
		if err := db.GetContext(context.Background(), &k, `SELECT COUNT(*) FROM order_orders WHERE flash_sale_id = ?`,
			saleID); err != nil {
			a.t.Fatal(err)
		}
		n += k
	}
	return n
}

func (a *app) eventually(what string, d time.Duration, cond func() bool) {
	a.t.Helper()
	for deadline := time.Now().Add(d); !cond(); {
		if time.Now().After(deadline) {
			a.t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFlashSaleBurst: 1,000 concurrent attempts from 200 buyers (5 keys each) on a sale of
// 50 units with a limit of 1: exactly 50 orders, no buyer with two, every ticket final, no
// 5xx, stock invariants; a repeated key answers its ticket; a cancelled flash order's unit
// is bought by a later attempt; the merchant's cancel returns the rest to the SKU.
func TestFlashSaleBurst(t *testing.T) {
	a := newApp(t)
	_, _, owner := a.Merchant(a.admin)
	sku := a.product(owner, 1999, 80)
	s := a.sale(owner, sku, 50, 1, time.Now().Add(-time.Second), time.Now().Add(time.Hour))
	if s.Status != "running" || s.Remaining != 50 {
		t.Fatalf("sale %+v", s)
	}
	if l, _ := a.stock.Levels(context.Background(), mustInt(t, sku)); l[mustInt(t, sku)].Available != 30 {
		t.Fatalf("the sale's units are not carved out: %+v", l)
	}

	const buyers, keys = 200, 5
	bs := make([]buyer, buyers)
	var wg sync.WaitGroup
	for i := range bs {
		wg.Go(func() {
			_, tk := a.NewUser("fs")
			bs[i] = buyer{token: tk.AccessToken, address: a.Address(tk.AccessToken)}
		})
	}
	wg.Wait()

	var mu sync.Mutex
	codes := map[string]int{}
	accepted := map[string]int{} // ticket -> buyer
	sem := make(chan struct{}, 64)
	for i := range buyers * keys {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			b := i % buyers
			r := a.attempt(bs[b], s.ID, fmt.Sprintf("k-%d", i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.Status == http.StatusAccepted:
				var tk ticketBody
				r.Decode(t, &tk)
				accepted[tk.ID] = b
				codes["202"]++
			case r.Status >= 500:
				t.Errorf("attempt %d: %s", i, r)
			default:
				codes[fmt.Sprint(r.Status, " ", r.Code())]++
			}
		})
	}
	wg.Wait()
	t.Logf("outcomes: %v", codes)
	if len(accepted) != 50 {
		t.Fatalf("%d attempts accepted for 50 units", len(accepted))
	}
	a.eventually("every ticket final", 30*time.Second, func() bool {
		return a.count(`SELECT COUNT(*) FROM flashsale_tickets WHERE sale_id = ?`, s.ID) == len(accepted)
	})
	perBuyer := map[int]int{}
	for id, b := range accepted {
		var tk ticketBody
		a.Req(http.MethodGet, "/api/v1/flash-sales/tickets/"+id, nil, apptest.Bearer(bs[b].token)...).
			Want(t, http.StatusOK, "").Decode(t, &tk)
		if tk.Status != "ordered" || tk.OrderID == "" {
			t.Fatalf("ticket %+v", tk)
		}
		perBuyer[b]++
		if perBuyer[b] > 1 {
			t.Fatalf("buyer %d has two orders", b)
		}
	}
	if n := a.flashOrders(s.ID); n != 50 {
		t.Fatalf("%d flash orders, want 50", n)
	}
	checkStock(t, a)

	// The same key again: the same ticket. Another buyer's ticket: 404.
	var first string
	for id := range accepted {
		first = id
		break
	}
	b0 := bs[accepted[first]]
	a.Req(http.MethodGet, "/api/v1/flash-sales/tickets/"+first, nil, apptest.Bearer(bs[(accepted[first]+1)%buyers].token)...).
		Want(t, http.StatusNotFound, "flash_sale.ticket_not_found")
	a.attempt(bs[0], s.ID, "fresh").Want(t, http.StatusConflict, "")

	// Sold out. One order cancelled: its unit goes back, and a later attempt buys it.
	var tk ticketBody
	a.Req(http.MethodGet, "/api/v1/flash-sales/tickets/"+first, nil, apptest.Bearer(b0.token)...).Decode(t, &tk)
	a.Req(http.MethodPost, "/api/v1/orders/"+tk.OrderID+"/cancel", nil, apptest.Bearer(b0.token)...).
		Want(t, http.StatusOK, "")
	var late buyer
	{
		_, ltk := a.NewUser("late")
		late = buyer{token: ltk.AccessToken, address: a.Address(ltk.AccessToken)}
	}
	var got apptest.Response
	a.eventually("the cancelled unit back on sale", 15*time.Second, func() bool {
		got = a.attempt(late, s.ID, "late-1")
		return got.Status == http.StatusAccepted
	})
	var lt ticketBody
	got.Decode(t, &lt)
	a.eventually("the late ticket ordered", 15*time.Second, func() bool {
		var cur ticketBody
		a.Req(http.MethodGet, "/api/v1/flash-sales/tickets/"+lt.ID, nil, apptest.Bearer(late.token)...).Decode(t, &cur)
		return cur.Status == "ordered"
	})
	checkStock(t, a)

	// The merchant cancels: nothing is left in the pool; attempts are refused.
	var cs saleBody
	a.Req(http.MethodPost, "/api/v1/merchant/flash-sales/"+s.ID+"/cancel", nil, apptest.Bearer(owner)...).
		Want(t, http.StatusOK, "").Decode(t, &cs)
	if cs.Status != "cancelled" || cs.Sold != 50 {
		t.Fatalf("cancelled sale %+v", cs)
	}
	a.attempt(late, s.ID, "after-cancel").Want(t, http.StatusConflict, "flash_sale.not_running")
	checkStock(t, a)
}

// TestFlashSaleRefusals: bad bodies, another merchant's SKU, a price not below the SKU's,
// more units than available, a sale not started; nothing changes.
func TestFlashSaleRefusals(t *testing.T) {
	a := newApp(t)
	_, _, owner := a.Merchant(a.admin)
	_, _, other := a.Merchant(a.admin)
	sku := a.product(owner, 1999, 10)
	start, end := time.Now().Add(time.Hour), time.Now().Add(2*time.Hour)
	body := func(m map[string]any) map[string]any {
		b := map[string]any{"sku_id": sku, "price": 99, "quantity": 5, "per_user_limit": 1,
			"starts_at": start.UTC().Format(time.RFC3339), "ends_at": end.UTC().Format(time.RFC3339)}
		for k, v := range m {
			b[k] = v
		}
		return b
	}
	post := func(tok string, b map[string]any) apptest.Response {
		return a.Req(http.MethodPost, "/api/v1/merchant/flash-sales", b, apptest.Bearer(tok)...)
	}
	post(owner, body(map[string]any{"quantity": 11})).Want(t, http.StatusConflict, "stock.insufficient")
	post(owner, body(map[string]any{"price": 1999})).Want(t, http.StatusBadRequest, "request.validation")
	post(owner, body(map[string]any{"ends_at": start.Add(-time.Minute).UTC().Format(time.RFC3339)})).
		Want(t, http.StatusBadRequest, "request.validation")
	post(owner, body(map[string]any{"per_user_limit": 0})).Want(t, http.StatusBadRequest, "")
	post(other, body(nil)).Want(t, http.StatusNotFound, "catalog.product_not_found")
	if l, _ := a.stock.Levels(context.Background(), mustInt(t, sku)); l[mustInt(t, sku)].Available != 10 {
		t.Fatalf("a refused sale took units: %+v", l)
	}
	s := a.sale(owner, sku, 5, 1, start, end)
	if s.Status != "scheduled" {
		t.Fatalf("sale %+v", s)
	}
	_, tk := a.NewUser("early")
	b := buyer{token: tk.AccessToken, address: a.Address(tk.AccessToken)}
	a.attempt(b, s.ID, "k").Want(t, http.StatusConflict, "flash_sale.not_running")
	r, err := a.Do(http.MethodPost, "/api/v1/flash-sales/"+s.ID+"/attempts", map[string]any{"quantity": 1,
		"address_id": b.address}, apptest.Bearer(b.token)...)
	if err != nil || r.Status != http.StatusBadRequest {
		t.Fatalf("without a key: %s %v", r, err)
	}
	a.Req(http.MethodGet, "/api/v1/merchant/flash-sales/"+s.ID, nil, apptest.Bearer(other)...).
		Want(t, http.StatusNotFound, "flash_sale.not_found")
	var list struct {
		Items []saleBody `json:"items"`
	}
	a.Req(http.MethodGet, "/api/v1/flash-sales?status=scheduled", nil).Want(t, http.StatusOK, "").Decode(t, &list)
	if len(list.Items) != 1 || list.Items[0].ID != s.ID {
		t.Fatalf("public list %+v", list)
	}
	checkStock(t, a)
}

func checkStock(t *testing.T, a *app) {
	t.Helper()
	rep, err := a.stock.Check(context.Background())
	if err != nil || !rep.OK() {
		t.Fatalf("stock check: %+v %v", rep, err)
	}
}

func mustInt(t testing.TB, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestGateLossTimeoutsAndEnd: the gate is lost in the middle of a burst (its keys deleted, as
// a Redis restart or FLUSHALL would) and rebuilt from MySQL: never more orders than units
// nor a buyer above the limit, every ticket final, no unit lost. Unpaid flash orders time
// out and their units are bought by later attempts; after the end the rest is back on the
// SKU.
func TestGateLossTimeoutsAndEnd(t *testing.T) {
	a := newApp(t, fx.Replace(flashsale.Config{PaymentTimeout: 2 * time.Second, IntakeRate: 1000, IntakeBatch: 20, MaxQueued: 1000,
		ProduceTimeout: 2 * time.Second, SoldOutMemory: 0, SweepInterval: 200 * time.Millisecond}))
	ctx := context.Background()
	_, _, owner := a.Merchant(a.admin)
	sku := a.product(owner, 1999, 40)
	end := time.Now().Add(10 * time.Second)
	s := a.sale(owner, sku, 30, 2, time.Now().Add(-time.Second), end)

	const buyers = 40
	bs := make([]buyer, buyers)
	var wg sync.WaitGroup
	for i := range bs {
		wg.Go(func() {
			_, tk := a.NewUser("gl")
			bs[i] = buyer{token: tk.AccessToken, address: a.Address(tk.AccessToken)}
		})
	}
	wg.Wait()
	var mu sync.Mutex
	accepted := 0
	for i := range buyers * 4 {
		wg.Go(func() {
			if i == buyers*2 {
				g := "{fs:" + s.ID + "}"
				if err := a.rdb.Del(ctx, g+":g", g+":u", g+":k").Err(); err != nil {
					t.Error(err)
				}
			}
			r := a.attempt(bs[i%buyers], s.ID, fmt.Sprintf("g-%d", i))
			if r.Status >= 500 {
				t.Errorf("attempt: %s", r)
			}
			if r.Status == http.StatusAccepted {
				mu.Lock()
				accepted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	a.eventually("every ticket final", 30*time.Second, func() bool {
		return a.count(`SELECT COUNT(*) FROM flashsale_tickets WHERE sale_id = ?`, s.ID) >= accepted
	})
	ordered := a.count(`SELECT COALESCE(SUM(quantity), 0) FROM flashsale_tickets WHERE sale_id = ? AND status = 'ordered'`, s.ID)
	over := a.count(`SELECT COUNT(*) FROM (SELECT buyer_id FROM flashsale_tickets WHERE sale_id = ? AND status = 'ordered'
		GROUP BY buyer_id HAVING SUM(quantity) > 2) x`, s.ID)
	p, err := a.stock.PoolOf(ctx, mustInt(t, s.ID))
	if err != nil {
		t.Fatal(err)
	}
	if ordered > 30 || over != 0 || a.flashOrders(s.ID) != ordered || int64(ordered)+p.Remaining != 30 {
		t.Fatalf("after the gate's loss: %d ordered (%d orders), %d buyers over the limit, pool %+v", ordered,
			a.flashOrders(s.ID), over, p)
	}
	checkStock(t, a)

	// Nobody pays: the orders time out, their units return to the sale, later attempts buy them.
	a.eventually("unpaid flash orders cancelled and their units back", 20*time.Second, func() bool {
		p, _ := a.stock.PoolOf(ctx, mustInt(t, s.ID))
		return p.Remaining == 30
	})
	_, tk := a.NewUser("after")
	late := buyer{token: tk.AccessToken, address: a.Address(tk.AccessToken)}
	a.eventually("a later attempt accepted", 10*time.Second, func() bool {
		return a.attempt(late, s.ID, "late").Status == http.StatusAccepted
	})
	a.eventually("the later ticket ordered", 10*time.Second, func() bool {
		return a.count(`SELECT COUNT(*) FROM flashsale_tickets t WHERE sale_id = ? AND status = 'ordered' AND returned = 0`,
			s.ID) == 1
	})
	checkStock(t, a)

	// The end: the pool is closed and every unit is back on the SKU (the late order was
	// not paid either, so it timed out too).
	a.eventually("the rest back on the SKU after the end", time.Until(end)+15*time.Second, func() bool {
		p, _ := a.stock.PoolOf(ctx, mustInt(t, s.ID))
		l, _ := a.stock.Levels(ctx, mustInt(t, sku))
		return !p.Open && l[mustInt(t, sku)].Available == 40
	})
	var ended saleBody
	a.Req(http.MethodGet, "/api/v1/flash-sales/"+s.ID, nil).Want(t, http.StatusOK, "").Decode(t, &ended)
	if ended.Status != "ended" {
		t.Fatalf("after the end: %+v", ended)
	}
	checkStock(t, a)
}

// TestMeChannelAcrossReplicas: a buyer connected to /ws/me on replica B gets the result of a
// ticket that replica A took (and the new order's status), through the hub's Redis fan-out;
// /ws/me without a token is refused.
func TestMeChannelAcrossReplicas(t *testing.T) {
	a := newApp(t)
	cfg2 := a.Cfg
	cfg2.App.NodeID = a.Cfg.App.NodeID%200 + 1 + 50
	cfg2.Search.Bleve.Path = filepath.Join(t.TempDir(), "search")
	b := apptest.Start(t, cfg2, apptest.Options{Modules: []fx.Option{user.Module, merchant.Module, stock.Module,
		catalog.Module, order.Module, order.Gateways, flashsale.Module}})
	_, _, owner := a.Merchant(a.admin)
	sku := a.product(owner, 1999, 10)
	s := a.sale(owner, sku, 5, 1, time.Now().Add(-time.Second), time.Now().Add(time.Hour))
	_, tk := a.NewUser("me")
	by := buyer{token: tk.AccessToken, address: a.Address(tk.AccessToken)}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws := "ws" + strings.TrimPrefix(b.URL, "http") + "/ws/me"
	if c, _, err := websocket.Dial(ctx, ws, nil); err == nil {
		c.CloseNow()
		t.Fatal("/ws/me without a token was accepted")
	}
	c, _, err := websocket.Dial(ctx, ws+"?access_token="+by.token, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	var tkt ticketBody
	a.attempt(by, s.ID, "me-1").Want(t, http.StatusAccepted, "").Decode(t, &tkt)
	var gotTicket, gotStatus bool
	for !gotTicket || !gotStatus {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("reading /ws/me (ticket %v, status %v): %v", gotTicket, gotStatus, err)
		}
		var m struct {
			Type     string `json:"type"`
			TicketID string `json:"ticket_id"`
			Status   string `json:"status"`
			OrderID  string `json:"order_id"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		switch m.Type {
		case "flash_sale.ticket":
			if m.TicketID != tkt.ID || m.Status != "ordered" || m.OrderID == "" {
				t.Fatalf("ticket message %s", data)
			}
			gotTicket = true
		case "order.status":
			gotStatus = m.Status == "pending_payment"
		}
	}
}

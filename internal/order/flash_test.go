package order_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/stock"
	"github.com/mallhq/mall/internal/user"
)

// TestFlashOrders: a ticket's order takes the sale's price and payment window and its units
// from the sale's pool, once per ticket; the pool caps concurrent tickets; a cancelled
// flash order's unit goes back to the pool; the events say which sale.
func TestFlashOrders(t *testing.T) {
	h := newHarness(t, testConfig())
	ctx := context.Background()
	m, _ := h.merchant()
	sku := h.sku(m, 1000, 10)
	const sale = 777001
	if err := h.stock.OpenPool(ctx, stock.Pool{ID: sale, SKUID: sku, MerchantID: m, Quantity: 3,
		ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	b := h.buyer()
	ticket := func(id int64, who buyer) order.FlashOrder {
		return order.FlashOrder{TicketID: id, FlashSaleID: sale, BuyerID: who.id, AddressID: mustInt(t, who.address),
			SKUID: sku, Quantity: 1, Price: 499, PaymentTimeout: 5 * time.Minute}
	}
	h.req(http.MethodPut, "/api/v1/cart/items/"+id(sku), map[string]int{"quantity": 2}, b.token).Want(t, http.StatusOK, "")

	before := time.Now()
	c, err := h.orders.PlaceFlashOrder(ctx, ticket(1, b))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Orders[0]
	if o.FlashSaleID != sale || o.TotalAmount != 499 || o.Items[0].Price != 499 || c.ExpiresAt.Sub(before) > 5*time.Minute+time.Second ||
		c.ExpiresAt.Sub(before) < 5*time.Minute-time.Second {
		t.Fatalf("flash order %+v (checkout expires %s)", o, c.ExpiresAt)
	}
	again, err := h.orders.PlaceFlashOrder(ctx, ticket(1, b))
	if err != nil || again.ID != c.ID {
		t.Fatalf("the ticket again: %+v %v", again, err)
	}
	if p, _ := h.stock.PoolOf(ctx, sale); p.Remaining != 2 {
		t.Fatalf("pool after one ticket (twice): %+v", p)
	}
	var cart struct {
		Items []struct {
			Quantity int64 `json:"quantity"`
		} `json:"items"`
	}
	h.req(http.MethodGet, "/api/v1/cart", nil, b.token).Want(t, http.StatusOK, "").Decode(t, &cart)
	if len(cart.Items) != 1 || cart.Items[0].Quantity != 2 {
		t.Fatalf("a flash order took from the cart: %+v", cart)
	}
	var got struct {
		FlashSaleID string `json:"flash_sale_id"`
		TotalAmount int64  `json:"total_amount"`
	}
	h.req(http.MethodGet, "/api/v1/orders/"+id(o.ID), nil, b.token).Want(t, http.StatusOK, "").Decode(t, &got)
	if got.FlashSaleID != id(sale) || got.TotalAmount != 499 {
		t.Fatalf("GET order: %+v", got)
	}
	var ev order.OrderEvent
	if raw := h.orderPayloads(id(o.ID), order.EventCreated); len(raw) != 1 || json.Unmarshal(raw[0], &ev) != nil ||
		ev.FlashSaleID != sale {
		t.Fatalf("order.created: %s", raw)
	}

	// Five more tickets at once for the 2 units left.
	var mu sync.Mutex
	won, short := 0, 0
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			_, err := h.orders.PlaceFlashOrder(ctx, ticket(int64(10+i), h.buyer()))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, stock.ErrInsufficient):
				short++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won != 2 || short != 3 {
		t.Fatalf("5 tickets for 2 units: %d won, %d short", won, short)
	}

	// Cancelled: the unit goes back to the sale, not to the SKU.
	h.req(http.MethodPost, "/api/v1/orders/"+id(o.ID)+"/cancel", nil, b.token).Want(t, http.StatusOK, "")
	h.eventually("the unit back in the pool", func() bool {
		p, _ := h.stock.PoolOf(ctx, sale)
		return p.Remaining == 1
	})
	if l := h.level(sku); l.Available != 7 || l.Reserved != 3 {
		t.Fatalf("level after the cancel: %+v", l)
	}
	h.checkStock()

	// Another buyer's address is refused before any unit is taken.
	other := h.buyer()
	bad := ticket(20, other)
	bad.AddressID = mustInt(t, b.address)
	if _, err := h.orders.PlaceFlashOrder(ctx, bad); !errors.Is(err, user.ErrAddressNotFound) {
		t.Fatalf("another buyer's address: %v", err)
	}
	if p, _ := h.stock.PoolOf(ctx, sale); p.Remaining != 1 {
		t.Fatalf("pool after a refused ticket: %+v", p)
	}
}

// TestFlashOrderBatches: a batch of tickets (the intake's) is placed with one pool
// transaction: exactly the units there are, the rest refused as sold out, a bad address
// refused alone; the batch again answers the same checkouts; a PlacedOnly ticket keeps
// the order placed for it before and is refused without one; concurrent batches on one
// pool never take more than it has.
func TestFlashOrderBatches(t *testing.T) {
	h := newHarness(t, testConfig())
	ctx := context.Background()
	m, _ := h.merchant()
	sku := h.sku(m, 1000, 100)
	const sale = 777101
	if err := h.stock.OpenPool(ctx, stock.Pool{ID: sale, SKUID: sku, MerchantID: m, Quantity: 10,
		ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	ticket := func(id int64, who buyer) order.FlashOrder {
		return order.FlashOrder{TicketID: id, FlashSaleID: sale, BuyerID: who.id, AddressID: mustInt(t, who.address),
			SKUID: sku, Quantity: 1, Price: 499, PaymentTimeout: 5 * time.Minute}
	}
	var in []order.FlashOrder
	for i := range 8 {
		in = append(in, ticket(int64(100+i), h.buyer()))
	}
	in[3].AddressID = mustInt(t, h.buyer().address) // another buyer's address
	in[5].Quantity = 2
	out, err := h.orders.PlaceFlashOrders(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range out {
		switch {
		case i == 3 && !errors.Is(p.Err, user.ErrAddressNotFound):
			t.Fatalf("ticket 3 (another's address): %+v", p)
		case i != 3 && (p.Err != nil || len(p.Checkout.Orders) != 1 || p.Checkout.Orders[0].FlashSaleID != sale):
			t.Fatalf("ticket %d: %+v", i, p)
		}
	}
	if p, _ := h.stock.PoolOf(ctx, sale); p.Remaining != 2 { // 10 − 6×1 − 2
		t.Fatalf("pool after the batch: %+v", p)
	}
	again, err := h.orders.PlaceFlashOrders(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if i != 3 && (again[i].Err != nil || again[i].Checkout.ID != out[i].Checkout.ID) {
			t.Fatalf("ticket %d again: %+v, first %+v", i, again[i], out[i])
		}
	}
	placedOnly := in[0]
	placedOnly.PlacedOnly = true
	fresh := ticket(200, h.buyer())
	fresh.PlacedOnly = true
	po, err := h.orders.PlaceFlashOrders(ctx, []order.FlashOrder{placedOnly, fresh})
	if err != nil || po[0].Checkout.ID != out[0].Checkout.ID || !errors.Is(po[1].Err, order.ErrFlashLimit) {
		t.Fatalf("PlacedOnly: %+v %v", po, err)
	}
	if p, _ := h.stock.PoolOf(ctx, sale); p.Remaining != 2 {
		t.Fatalf("pool after the repeats: %+v", p)
	}

	// Four concurrent batches of 5 for the 2 units left: 2 orders in all.
	var (
		mu         sync.Mutex
		won, short int
		wg         sync.WaitGroup
	)
	for g := range 4 {
		wg.Go(func() {
			var batch []order.FlashOrder
			for i := range 5 {
				batch = append(batch, ticket(int64(300+10*g+i), h.buyer()))
			}
			res, err := h.orders.PlaceFlashOrders(ctx, batch)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			for _, p := range res {
				switch {
				case p.Err == nil:
					won++
				case errors.Is(p.Err, stock.ErrInsufficient):
					short++
				default:
					t.Error(p.Err)
				}
			}
		})
	}
	wg.Wait()
	if won != 2 || short != 18 {
		t.Fatalf("20 tickets in 4 batches for 2 units: %d won, %d short", won, short)
	}
	// A crash between the pool's commit and the orders': the ticket's own order IDs find
	// the units the first try held, and nothing is taken twice.
	if err := h.stock.OpenPool(ctx, stock.Pool{ID: sale + 1, SKUID: sku, MerchantID: m, Quantity: 3,
		ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var crashed []order.FlashOrder
	var held []stock.Hold
	for i := range 3 {
		f := ticket(int64(500+i), h.buyer())
		f.FlashSaleID = sale + 1
		f.CheckoutID, f.OrderID = h.IDs.Next(sqldb.LogicalShard(f.BuyerID)), h.IDs.Next(sqldb.LogicalShard(f.BuyerID))
		crashed = append(crashed, f)
		held = append(held, stock.Hold{OrderID: f.OrderID, BuyerID: f.BuyerID,
			Lines: []stock.Line{{SKUID: sku, Quantity: 1}}, ExpiresAt: time.Now().Add(time.Hour)})
	}
	if refused, err := h.stock.ReserveManyFromPool(ctx, sale+1, held[:2]); err != nil || refused[0] != nil || refused[1] != nil {
		t.Fatalf("the first try's holds: %v %v", refused, err)
	}
	res, err := h.orders.PlaceFlashOrders(ctx, crashed)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range res {
		if p.Err != nil || p.Checkout.ID != crashed[i].CheckoutID || p.Checkout.Orders[0].ID != crashed[i].OrderID {
			t.Fatalf("ticket %d after the crash: %+v", i, p)
		}
	}
	if p, _ := h.stock.PoolOf(ctx, sale+1); p.Remaining != 0 {
		t.Fatalf("pool after the crashed batch: %+v", p)
	}
	if _, err := h.stock.ClosePool(ctx, sale); err != nil {
		t.Fatal(err)
	}
	closed, err := h.orders.PlaceFlashOrders(ctx, []order.FlashOrder{ticket(400, h.buyer())})
	if err != nil || !errors.Is(closed[0].Err, stock.ErrPoolClosed) {
		t.Fatalf("a batch on a closed pool: %+v %v", closed, err)
	}
	h.checkStock()
}

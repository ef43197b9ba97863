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

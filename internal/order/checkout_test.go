package order_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/outbox"
)

func TestCheckoutTwoMerchants(t *testing.T) {
	h := newHarness(t, testConfig())
	m1, _ := h.merchant()
	m2, _ := h.merchant()
	a1, a2 := h.sku(m1, 1999, 10), h.sku(m1, 500, 10)
	b1 := h.sku(m2, 12345, 3)
	b := h.buyer()

	key := newKey()
	body := placeBody(b, line{a1, 2}, line{b1, 1}, line{a2, 3})
	var c checkoutBody
	h.req(http.MethodPost, "/api/v1/orders", body, b.token, "Idempotency-Key", key).
		Want(t, http.StatusCreated, "").Decode(t, &c)
	if len(c.Orders) != 2 || c.Currency != "CNY" || c.CheckoutID == "" || c.ExpiresAt.IsZero() {
		t.Fatalf("checkout %+v", c)
	}
	want := map[string]int64{id(m1): 2*1999 + 3*500, id(m2): 12345}
	var total int64
	for _, o := range c.Orders {
		if o.Status != "pending_payment" || o.TotalAmount != want[o.MerchantID] || o.CheckoutID != c.CheckoutID {
			t.Errorf("order %+v, want total %d", o, want[o.MerchantID])
		}
		if h.shardOf(o.ID) != h.Cluster.ForUser(b.id) {
			t.Errorf("order %s is not on the buyer's shard", o.ID)
		}
		if h.orderEvents(o.ID, order.EventCreated) != 1 {
			t.Errorf("order %s: want one order.created", o.ID)
		}
		total += o.TotalAmount
	}
	if c.TotalAmount != total || total != 2*1999+3*500+12345 {
		t.Errorf("checkout total %d, orders %d", c.TotalAmount, total)
	}
	if l := h.level(a1); l.Reserved != 2 || l.Available != 8 {
		t.Errorf("a1 level %+v", l)
	}

	// The same key and body replays the same checkout; nothing is reserved twice.
	var again checkoutBody
	h.req(http.MethodPost, "/api/v1/orders", body, b.token, "Idempotency-Key", key).
		Want(t, http.StatusCreated, "").Decode(t, &again)
	if again.CheckoutID != c.CheckoutID {
		t.Errorf("replay gave checkout %s, want %s", again.CheckoutID, c.CheckoutID)
	}
	if l := h.level(a1); l.Reserved != 2 {
		t.Errorf("a1 after replay %+v", l)
	}
	var n int
	if err := h.Cluster.ForUser(b.id).GetContext(context.Background(), &n,
		`SELECT COUNT(*) FROM order_checkouts WHERE buyer_id = ?`, b.id); err != nil || n != 1 {
		t.Errorf("checkouts: %d %v", n, err)
	}

	// The crash case: the checkout committed but the process died before the idempotency
	// middleware stored its response. (a) The key is left in flight past its lock: the retry
	// takes it over (idempotency.Resumed) and Place finds the checkout by its key. (b) The key
	// row is gone: the retry runs as new, and the checkout's unique key turns its insert into
	// the same answer. Either way: the same checkout, nothing reserved twice; the same key
	// with other lines is a reuse.
	db := h.Cluster.Main()
	died := func() {
		if _, err := db.ExecContext(context.Background(), `UPDATE platform_idempotency_keys SET state = 0,
			lock_token = X'00', response_status = NULL, response_headers = NULL, response_body = NULL,
			locked_until = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND WHERE user_id = ? AND idem_key = ?`, b.id, key); err != nil {
			t.Fatal(err)
		}
	}
	forget := func() {
		if _, err := db.ExecContext(context.Background(),
			`DELETE FROM platform_idempotency_keys WHERE user_id = ? AND idem_key = ?`, b.id, key); err != nil {
			t.Fatal(err)
		}
	}
	for _, lose := range []func(){died, forget} {
		lose()
		var retried checkoutBody
		h.req(http.MethodPost, "/api/v1/orders", body, b.token, "Idempotency-Key", key).
			Want(t, http.StatusCreated, "").Decode(t, &retried)
		if retried.CheckoutID != c.CheckoutID || len(retried.Orders) != 2 || retried.TotalAmount != c.TotalAmount {
			t.Errorf("retry after a lost response gave %+v, want checkout %s", retried, c.CheckoutID)
		}
		if l := h.level(a1); l.Reserved != 2 {
			t.Errorf("a1 after the retry %+v", l)
		}
	}
	forget()
	h.req(http.MethodPost, "/api/v1/orders", placeBody(b, line{a1, 1}), b.token, "Idempotency-Key", key).
		Want(t, http.StatusUnprocessableEntity, "idempotency.key_reused")
	if l := h.level(a1); l.Reserved != 2 {
		t.Errorf("a1 after a reused key %+v", l)
	}

	// The buyer reads the order back; the list has both.
	o := h.getOrder(b, c.Orders[0].ID)
	if len(o.Items) == 0 || o.Items[0].Price == 0 {
		t.Errorf("order %+v", o)
	}
	var list struct {
		Items []orderBody `json:"items"`
	}
	h.req(http.MethodGet, "/api/v1/orders?status=pending_payment", nil, b.token).Want(t, 200, "").Decode(t, &list)
	if len(list.Items) != 2 {
		t.Errorf("list %+v", list)
	}
	h.checkStock()
}

func TestCheckoutRefusals(t *testing.T) {
	h := newHarness(t, testConfig())
	m, _ := h.merchant()
	sku := h.sku(m, 1000, 5)
	b, other := h.buyer(), h.buyer()
	post := func(body any, tok string) response {
		return h.req(http.MethodPost, "/api/v1/orders", body, tok, "Idempotency-Key", newKey())
	}

	// A client price is an unknown field: refused, prices come from the catalog only.
	tampered := map[string]any{"address_id": b.address,
		"items": []map[string]any{{"sku_id": id(sku), "quantity": 1, "price": 1}}}
	post(tampered, b.token).Want(t, http.StatusBadRequest, "")
	tampered = map[string]any{"address_id": b.address, "total_amount": 1,
		"items": []map[string]any{{"sku_id": id(sku), "quantity": 1}}}
	post(tampered, b.token).Want(t, http.StatusBadRequest, "")
	var c checkoutBody
	post(placeBody(b, line{sku, 2}), b.token).Want(t, http.StatusCreated, "").Decode(t, &c)
	if c.TotalAmount != 2000 || c.Orders[0].Items[0].Price != 1000 {
		t.Errorf("checkout %+v", c)
	}

	post(placeBody(b, line{sku + 1, 1}), b.token).Want(t, http.StatusNotFound, "catalog.product_not_found")
	// Another user's address.
	post(placeBody(buyer{address: other.address}, line{sku, 1}), b.token).Want(t, http.StatusNotFound, "user.address_not_found")
	post(placeBody(b, line{sku, 4}), b.token).Want(t, http.StatusConflict, "stock.insufficient")
	h.req(http.MethodPost, "/api/v1/orders", placeBody(b, line{sku, 1}), b.token).Want(t, http.StatusBadRequest, "idempotency.key_required")
	post(placeBody(b), b.token).Want(t, http.StatusBadRequest, "")
	post(placeBody(b, line{sku, 1}), "").Want(t, http.StatusUnauthorized, "")
	// More than one payment can carry: refused before any stock is held.
	dear := h.sku(m, order.MaxCheckoutAmount/2+1, 5)
	post(placeBody(b, line{dear, 1}), b.token).Want(t, http.StatusCreated, "")
	post(placeBody(b, line{dear, 2}), b.token).Want(t, http.StatusBadRequest, "request.validation")
	if l := h.level(dear); l.Reserved != 1 {
		t.Errorf("a refused checkout held stock: %+v", l)
	}

	// Off shelf: not on sale any more, for checkout and for the cart.
	offSKU, offProduct := h.product(m, 300, 5)
	post(placeBody(b, line{offSKU, 1}), b.token).Want(t, http.StatusCreated, "")
	if _, err := h.catalog.OffShelf(context.Background(), m, offProduct); err != nil {
		t.Fatal(err)
	}
	post(placeBody(b, line{offSKU, 1}), b.token).Want(t, http.StatusNotFound, "catalog.product_not_found")
	post(placeBody(b, line{sku, 1}, line{offSKU, 1}), b.token).Want(t, http.StatusNotFound, "catalog.product_not_found")
	h.req(http.MethodPut, "/api/v1/cart/items/"+id(offSKU), map[string]int{"quantity": 1}, b.token).
		Want(t, http.StatusNotFound, "catalog.product_not_found")
	if l := h.level(sku); l.Reserved != 2 || l.Available != 3 {
		t.Errorf("level %+v", l)
	}
	h.checkStock()
}

// failingOutbox fails every write: the checkout's buyer-shard transaction rolls back.
type failingOutbox struct{}

func (failingOutbox) Add(context.Context, ...outbox.Event) error { return errors.New("outbox down") }

// TestCheckoutRollbackReleasesStock: when the buyer-shard transaction fails after the
// reservations, every reservation is released and no order row remains.
func TestCheckoutRollbackReleasesStock(t *testing.T) {
	h := newHarness(t, testConfig())
	m1, _ := h.merchant()
	m2, _ := h.merchant()
	s1, s2 := h.sku(m1, 100, 5), h.sku(m2, 200, 5)
	b := h.buyer()
	svc, err := order.New(order.Params{DB: h.Cluster, IDs: h.IDs, Catalog: h.catalog, Stock: h.stock, Users: h.Users,
		Outbox: failingOutbox{}, Config: order.Config{PaymentTimeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Place(context.Background(), order.PlaceOrder{BuyerID: b.id, AddressID: mustInt(t, b.address),
		Items: []order.LineInput{{SKUID: s1, Quantity: 2}, {SKUID: s2, Quantity: 3}}})
	if err == nil {
		t.Fatal("Place succeeded with a failing outbox")
	}
	for _, sku := range []int64{s1, s2} {
		if l := h.level(sku); l.Available != 5 || l.Reserved != 0 {
			t.Errorf("SKU %d after the rollback: %+v", sku, l)
		}
	}
	var n int
	if err := h.Cluster.ForUser(b.id).GetContext(context.Background(), &n,
		`SELECT (SELECT COUNT(*) FROM order_orders WHERE buyer_id = ?) + (SELECT COUNT(*) FROM order_checkouts WHERE buyer_id = ?)`,
		b.id, b.id); err != nil || n != 0 {
		t.Errorf("%d rows left (%v)", n, err)
	}
	h.checkStock()
}

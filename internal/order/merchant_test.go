package order_test

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestMerchantOrdersFanOut: a merchant's orders from buyers on both physical shards come
// back in one list, newest first, paged with the opaque cursor without gaps or repeats.
func TestMerchantOrdersFanOut(t *testing.T) {
	h := newHarness(t, testConfig())
	m, tok := h.merchant()
	other, _ := h.merchant()
	sku, otherSKU := h.sku(m, 300, 1000), h.sku(other, 300, 1000)
	var want []string
	shards := map[string]int{}
	for len(want) < 9 || len(shards) < 2 {
		if len(want) > 40 {
			t.Fatalf("buyers all landed on %v", shards)
		}
		b := h.buyer()
		c := h.place(b, line{sku, 1})
		want = append(want, c.Orders[0].ID)
		shards[h.shardOf(c.Orders[0].ID).Name]++
		h.place(b, line{otherSKU, 1}) // another merchant's: never listed
	}
	t.Logf("%d orders over shards %v", len(want), shards)
	slices.Reverse(want) // newest first

	var got []string
	var last orderBody
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 20 {
			t.Fatal("paging does not end")
		}
		var page struct {
			Items      []orderBody `json:"items"`
			NextCursor string      `json:"next_cursor"`
		}
		h.req(http.MethodGet, "/api/v1/merchant/orders?limit=4&cursor="+cursor, nil, tok).Want(t, 200, "").Decode(t, &page)
		for _, o := range page.Items {
			if o.MerchantID != id(m) || len(o.Items) != 1 {
				t.Fatalf("listed %+v", o)
			}
			if last.ID != "" && (o.CreatedAt.After(last.CreatedAt) || (o.CreatedAt.Equal(last.CreatedAt) && o.ID >= last.ID)) {
				t.Errorf("%s listed after %s out of order", o.ID, last.ID)
			}
			last = o
			got = append(got, o.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if !slices.Equal(got, want) {
		t.Errorf("listed %v\nwant    %v", got, want)
	}
	var paid struct {
		Items []orderBody `json:"items"`
	}
	h.req(http.MethodGet, "/api/v1/merchant/orders?status=paid", nil, tok).Want(t, 200, "").Decode(t, &paid)
	if len(paid.Items) != 0 {
		t.Errorf("paid filter: %+v", paid.Items)
	}
	h.req(http.MethodGet, "/api/v1/merchant/orders?cursor=AAAA", nil, tok).Want(t, http.StatusBadRequest, "")
	h.req(http.MethodGet, "/api/v1/merchant/orders?status=bogus", nil, tok).Want(t, http.StatusBadRequest, "")
	// A buyer without a merchant role: 403.
	b := h.buyer()
	h.req(http.MethodGet, "/api/v1/merchant/orders", nil, b.token).Want(t, http.StatusForbidden, "")
}

// TestMerchantOrderRoutesIsolation is generated from the route table: every order route
// under /api/v1/merchant/ called by merchant B with A's order ID answers 404 and changes
// nothing; the list shows none of A's orders.
func TestMerchantOrderRoutesIsolation(t *testing.T) {
	h := newHarness(t, testConfig())
	mA, _ := h.merchant()
	_, tokB := h.merchant()
	sku := h.sku(mA, 800, 10)
	b := h.buyer()
	c := h.place(b, line{sku, 1})
	oid := c.Orders[0].ID
	h.pay(b, c.CheckoutID)
	h.req(http.MethodPost, "/api/v1/orders/"+oid+"/refund", map[string]string{"reason": "x"}, b.token).Want(t, 200, "")

	param := regexp.MustCompile(`:[A-Za-z_]+`)
	checked := 0
	for _, r := range h.Server.Echo().Routes() {
		if !strings.HasPrefix(r.Path, "/api/v1/merchant/orders") || r.Method == echo.RouteNotFound {
			continue
		}
		var body any
		if r.Method != http.MethodGet {
			body = map[string]string{"carrier": "SF", "tracking_no": "HIJACK"}
		}
		before := h.snapshot()
		if param.MatchString(r.Path) {
			path := param.ReplaceAllString(r.Path, oid)
			got := h.req(r.Method, path, body, tokB)
			if got.Status != http.StatusNotFound {
				t.Errorf("%s %s with A's order as B: %s, want 404", r.Method, r.Path, got)
			}
		} else {
			got := h.req(r.Method, r.Path, body, tokB)
			if got.Status >= 500 || strings.Contains(string(got.Body), oid) {
				t.Errorf("%s %s as B: %s", r.Method, r.Path, got)
			}
		}
		if after := h.snapshot(); after != before {
			t.Errorf("%s %s as B changed the database:\n%s\n->\n%s", r.Method, r.Path, before, after)
		}
		checked++
	}
	if checked < 5 {
		t.Errorf("checked only %d merchant order routes", checked)
	}
	if o := h.getOrder(b, oid); o.Status != "refund_requested" {
		t.Errorf("A's order is %s", o.Status)
	}
}

func TestCart(t *testing.T) {
	h := newHarness(t, testConfig())
	m, _ := h.merchant()
	s1, s2 := h.sku(m, 250, 10), h.sku(m, 1000, 10)
	b, other := h.buyer(), h.buyer()
	type cart struct {
		Items []struct {
			SKUID    string `json:"sku_id"`
			Quantity int64  `json:"quantity"`
			Price    int64  `json:"price"`
			OnSale   bool   `json:"on_sale"`
		} `json:"items"`
		TotalAmount int64 `json:"total_amount"`
	}
	h.req(http.MethodPut, "/api/v1/cart/items/"+id(s1), map[string]int{"quantity": 2}, b.token).Want(t, 200, "")
	h.req(http.MethodPut, "/api/v1/cart/items/"+id(s2), map[string]int{"quantity": 1}, b.token).Want(t, 200, "")
	h.req(http.MethodPut, "/api/v1/cart/items/"+id(s1), map[string]int{"quantity": 3}, b.token).Want(t, 200, "")
	h.req(http.MethodPut, "/api/v1/cart/items/"+id(s1), map[string]any{"quantity": 1, "price": 1}, b.token).Want(t, 400, "")
	h.req(http.MethodPut, "/api/v1/cart/items/"+id(s1), map[string]int{"quantity": 0}, b.token).Want(t, 400, "")
	h.req(http.MethodPut, "/api/v1/cart/items/"+id(s2+1), map[string]int{"quantity": 1}, b.token).Want(t, 404, "catalog.product_not_found")
	var c cart
	h.req(http.MethodGet, "/api/v1/cart", nil, b.token).Want(t, 200, "").Decode(t, &c)
	if len(c.Items) != 2 || c.TotalAmount != 3*250+1000 {
		t.Fatalf("cart %+v", c)
	}
	var oc cart
	h.req(http.MethodGet, "/api/v1/cart", nil, other.token).Want(t, 200, "").Decode(t, &oc)
	if len(oc.Items) != 0 {
		t.Errorf("another buyer's cart %+v", oc)
	}
	h.req(http.MethodDelete, "/api/v1/cart/items/"+id(s2), nil, b.token).Want(t, http.StatusNoContent, "")
	h.req(http.MethodGet, "/api/v1/cart", nil, b.token).Want(t, 200, "").Decode(t, &c)
	if len(c.Items) != 1 || c.Items[0].SKUID != id(s1) || c.Items[0].Quantity != 3 || c.Items[0].Price != 250 || !c.Items[0].OnSale {
		t.Errorf("cart after delete %+v", c)
	}
	h.req(http.MethodGet, "/api/v1/cart", nil, "").Want(t, http.StatusUnauthorized, "")
}

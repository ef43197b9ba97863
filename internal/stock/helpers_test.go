package stock_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/stock"
	"github.com/mallhq/mall/internal/user"
)

type response = apptest.Response

type harness struct {
	*apptest.App
	t     testing.TB
	stock stock.Service
}

// newHarness starts the whole application until the test ends.
func newHarness(t testing.TB) *harness {
	t.Helper()
	h := &harness{t: t}
	h.App = apptest.New(t, apptest.Options{Populate: []any{&h.stock}})
	return h
}

// do sends a request with a bearer token ("" for none); safe from many goroutines.
func (h *harness) do(method, path string, body any, token string) (response, error) {
	return h.Do(method, path, body, apptest.Bearer(token)...)
}

func (h *harness) req(method, path string, body any, token string) response {
	h.t.Helper()
	return h.Req(method, path, body, apptest.Bearer(token)...)
}

// newUser registers and logs in a fresh account; merchantID > 0 makes it that merchant's
// owner first, so its token carries the merchant.
func (h *harness) newUser(prefix string, merchantID int64) string {
	h.t.Helper()
	if merchantID > 0 {
		_, tk := h.MerchantUser(prefix, user.RoleMerchantOwner, merchantID)
		return tk.AccessToken
	}
	_, tk := h.NewUser(prefix)
	return tk.AccessToken
}

type levelBody struct {
	SKUID     string `json:"sku_id"`
	Available int64  `json:"available"`
	Reserved  int64  `json:"reserved"`
	Sold      int64  `json:"sold"`
}

func stockPath(skuID int64) string {
	return "/api/v1/merchant/skus/" + strconv.FormatInt(skuID, 10) + "/stock"
}

// row reads a level straight from the table.
func (h *harness) row(skuID int64) stock.Level {
	h.t.Helper()
	return rowOf(h.t, h, skuID)
}

// rowOf is row for another test (fuzz iterations must not use the F).
func rowOf(t testing.TB, h *harness, skuID int64) stock.Level {
	t.Helper()
	var l stock.Level
	err := h.Cluster.Main().QueryRowContext(context.Background(),
		`SELECT sku_id, merchant_id, available, reserved, sold, version FROM stock_levels WHERE sku_id = ?`, skuID).
		Scan(&l.SKUID, &l.MerchantID, &l.Available, &l.Reserved, &l.Sold, &l.Version)
	if err != nil {
		t.Fatalf("read level %d: %v", skuID, err)
	}
	return l
}

// events returns the payloads of the SKU's stock.level_changed events in the outbox, in
// ID order.
func (h *harness) events(skuID int64) []stock.LevelChanged {
	h.t.Helper()
	return apptest.Events[stock.LevelChanged](h.App, stock.Topic, stock.EventLevelChanged, strconv.FormatInt(skuID, 10))
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// doContentType sends body with the given Content-Type.
func (h *harness) doContentType(method, path, contentType, body, token string) (response, error) {
	return h.Do(method, path, body, append(apptest.Bearer(token), "Content-Type", contentType)...)
}

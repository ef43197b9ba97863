package live_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/live"
	"github.com/mallhq/mall/internal/platform/config"
)

type idBody struct {
	ID string `json:"id"`
}

// roomBody is the room as the API shows it.
type roomBody struct {
	ID              string  `json:"id"`
	Title           string  `json:"title"`
	MerchantID      string  `json:"merchant_id"`
	Status          string  `json:"status"`
	HLSURL          string  `json:"hls_url"`
	PinnedProductID *string `json:"pinned_product_id"`
	ViewerCount     int64   `json:"viewer_count"`
	StreamKey       string  `json:"stream_key"`
	RTMPURL         string  `json:"rtmp_url"`
}

// env is a running application with an admin, a merchant (owner token) and a category.
type env struct {
	t        testing.TB
	a        *apptest.App
	admin    string
	merchant int64
	owner    string
	category string
}

const testSecret = "test-rtmp-secret-0123456789"

// testConfig is apptest's configuration with the live keys for a private nginx on rtmpAddr
// and httpAddr (host:port), and a short viewer interval.
func testConfig(t testing.TB, rtmpAddr, httpAddr string) config.Config {
	return live.ConfigSection.With(apptest.Config(t), func(c *live.Config) {
		c.HLSPushURL = "rtmp://" + rtmpAddr + "/hls"
		c.RTMPSecret = testSecret
		c.RTMPURL = "rtmp://" + rtmpAddr + "/live"
		c.HLSURL = "http://" + httpAddr + "/hls"
		c.ViewersInterval = 300 * time.Millisecond
	})
}

// liveConfig is the live module's configuration of the running application.
func (e *env) liveConfig() live.Config {
	e.t.Helper()
	c, err := live.ConfigSection.From(e.a.Cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func newEnvWith(t testing.TB, cfg config.Config) *env {
	t.Helper()
	a := apptest.Start(t, cfg, apptest.Options{})
	_, adm := a.Admin()
	mid, _, owner := a.Merchant(adm.AccessToken)
	e := &env{t: t, a: a, admin: adm.AccessToken, merchant: mid, owner: owner}
	var cat idBody
	a.Req(http.MethodPost, "/api/v1/admin/categories", map[string]any{"name": "cups"}, apptest.Bearer(e.admin)...).
		Want(t, http.StatusCreated, "").Decode(t, &cat)
	a.Req(http.MethodPut, "/api/v1/admin/categories/"+cat.ID+"/attributes", map[string]any{
		"spec": []map[string]any{}, "sale": []map[string]any{{"name": "color", "values": []string{"red", "blue"}}},
	}, apptest.Bearer(e.admin)...).Want(t, http.StatusOK, "")
	e.category = cat.ID
	return e
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t, testConfig(t, "127.0.0.1:1935", "127.0.0.1:8088"))
}

// fork is another merchant (with its own owner) in e's application, for a subtest t.
func (e *env) fork(t *testing.T) *env {
	t.Helper()
	f := *e
	f.t = t
	f.merchant, _, f.owner = e.a.Merchant(e.admin)
	return &f
}

// product creates a product of the merchant whose token is owner; onSale submits it and
// has the admin approve it.
func (e *env) product(owner string, onSale bool) string {
	e.t.Helper()
	var p idBody
	e.a.Req(http.MethodPost, "/api/v1/merchant/products", map[string]any{
		"title": "Thermos 保温杯", "category_id": e.category, "images": []string{"https://img.example.com/t.jpg"},
		"skus": []map[string]any{{"code": "red", "attrs": map[string]string{"color": "red"}, "price": 1999, "stock": 5}},
	}, apptest.Bearer(owner)...).Want(e.t, http.StatusCreated, "").Decode(e.t, &p)
	if onSale {
		e.a.Req(http.MethodPost, "/api/v1/merchant/products/"+p.ID+"/submit", nil, apptest.Bearer(owner)...).Want(e.t, http.StatusOK, "")
		e.a.Req(http.MethodPost, "/api/v1/admin/products/"+p.ID+"/approve", nil, apptest.Bearer(e.admin)...).Want(e.t, http.StatusOK, "")
	}
	return p.ID
}

// room creates a room of the env's merchant.
func (e *env) room(title string) roomBody {
	e.t.Helper()
	var r roomBody
	e.a.Req(http.MethodPost, "/api/v1/merchant/live-rooms", map[string]any{"title": title}, apptest.Bearer(e.owner)...).
		Want(e.t, http.StatusCreated, "").Decode(e.t, &r)
	return r
}

func (e *env) get(id string) roomBody {
	e.t.Helper()
	var r roomBody
	e.a.Req(http.MethodGet, "/api/v1/live-rooms/"+id, nil).Want(e.t, http.StatusOK, "").Decode(e.t, &r)
	return r
}

// notify posts an nginx-rtmp notification form as nginx does.
func (e *env) notify(call, secret string, form url.Values) apptest.Response {
	e.t.Helper()
	path := "/internal/rtmp/" + call
	if secret != "" {
		path += "?secret=" + url.QueryEscape(secret)
	}
	return e.a.Req(http.MethodPost, path, form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
}

func publishForm(key, clientID string) url.Values {
	return url.Values{"call": {"publish"}, "app": {"live"}, "name": {key}, "type": {"live"},
		"addr": {"127.0.0.1"}, "clientid": {clientID}, "flashver": {"FMLE/3.0"}, "tcurl": {"rtmp://127.0.0.1/live"}}
}

// waitFor polls cond every 100 ms until it holds or timeout passes (generous: the box may
// be loaded).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

package merchant_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/merchant"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/user"
)

// The harness is internal/app/apptest's running application (the platform, the user
// module and this one) plus this module's helpers.

type harness struct {
	*apptest.App
	t   testing.TB
	svc merchant.Service
}

func newHarness(t testing.TB, extra ...httpx.Route) *harness {
	t.Helper()
	h := &harness{t: t}
	h.App = apptest.New(t, apptest.Options{
		Modules:  []fx.Option{user.Module, merchant.Module},
		Routes:   extra,
		Populate: []any{&h.svc},
	})
	return h
}

type response struct {
	status int
	body   []byte
}

func (r response) code() string { return apptest.Response{Body: r.body}.Code() }

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	apptest.Response{Body: r.body}.Decode(t, v)
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body)) }

func (r response) want(t testing.TB, status int, code string) response {
	t.Helper()
	if r.status != status || (code != "" && r.code() != code) {
		t.Fatalf("got %s, want %d %s", r, status, code)
	}
	return r
}

// do sends a request with a JSON body (nil for none; []byte as is) as the caller with the
// access token tok ("" for none); it is safe in goroutines.
func (h *harness) do(tok, method, path string, body any) (response, error) {
	r, err := h.Do(method, path, body, apptest.Bearer(tok)...)
	return response{status: r.Status, body: r.Body}, err
}

// req is do failing the test on a transport error.
func (h *harness) req(tok, method, path string, body any) response {
	h.t.Helper()
	r, err := h.do(tok, method, path, body)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

const goodPassword = apptest.Password

type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

type account struct {
	ID    string
	Email string
	tok   tokens
}

type me struct {
	ID         string   `json:"id"`
	Roles      []string `json:"roles"`
	MerchantID string   `json:"merchant_id"`
}

func (h *harness) login(email string) tokens {
	h.t.Helper()
	var tk tokens
	h.req("", "POST", "/api/v1/auth/login", map[string]string{"email": email, "password": goodPassword}).
		want(h.t, 200, "").decode(h.t, &tk)
	return tk
}

// newUser registers and logs in a fresh buyer.
func (h *harness) newUser(prefix string) account {
	h.t.Helper()
	var a struct {
		ID    string `json:"id"`
		Email string `json:"email"`
	}
	h.req("", "POST", "/api/v1/auth/register", map[string]string{"email": apptest.UniqueEmail(prefix), "password": goodPassword}).
		want(h.t, 201, "").decode(h.t, &a)
	h.VerifyEmail(a.Email) // with the mailed token, as its owner does
	return account{ID: a.ID, Email: a.Email, tok: h.login(a.Email)}
}

// relogin logs the account in again so its token carries roles granted since.
func (h *harness) relogin(a *account) { a.tok = h.login(a.Email) }

func (h *harness) me(a account) me {
	h.t.Helper()
	var m me
	h.req(a.tok.AccessToken, "GET", "/api/v1/me", nil).want(h.t, 200, "").decode(h.t, &m)
	return m
}

// admin creates a platform admin the way `mall admin create` does and logs it in.
func (h *harness) admin() account {
	h.t.Helper()
	email := apptest.UniqueEmail("admin")
	id, _, err := user.EnsureAdmin(context.Background(), h.Cfg, h.Cluster, h.IDs, email, goodPassword)
	if err != nil {
		h.t.Fatal(err)
	}
	return account{ID: fmt.Sprint(id), Email: email, tok: h.login(email)}
}

func applicationBody(shop string) map[string]string {
	return map[string]string{"shop_name": shop, "company_name": shop + " Ltd", "license_no": "91310000" + shop,
		"contact_name": "Li Lei", "contact_phone": "13812345678"}
}

// apply files an application as a and returns its ID.
func (h *harness) apply(a account, shop string) string {
	h.t.Helper()
	var out struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	h.req(a.tok.AccessToken, "POST", "/api/v1/merchant-applications", applicationBody(shop)).want(h.t, 201, "").decode(h.t, &out)
	if out.Status != "pending" || out.ID == "" {
		h.t.Fatalf("apply: %+v", out)
	}
	return out.ID
}

func (h *harness) approve(adm account, appID string) string {
	h.t.Helper()
	var out struct {
		MerchantID string `json:"merchant_id"`
	}
	h.req(adm.tok.AccessToken, "POST", "/api/v1/admin/merchant-applications/"+appID+"/approve", nil).
		want(h.t, 200, "").decode(h.t, &out)
	return out.MerchantID
}

// newMerchant makes a fresh user the owner of a fresh approved merchant and logs it in again.
func (h *harness) newMerchant(adm account, shop string) (account, string) {
	h.t.Helper()
	owner := h.newUser("owner")
	mid := h.approve(adm, h.apply(owner, shop))
	h.relogin(&owner)
	return owner, mid
}

// addStaff invites a fresh user as staff of owner's merchant with role; the user accepts
// and logs in again.
func (h *harness) addStaff(owner account, role string) account {
	h.t.Helper()
	s := h.newUser(role)
	h.req(owner.tok.AccessToken, "POST", "/api/v1/merchant/staff", map[string]string{"email": s.Email, "role": role}).
		want(h.t, 201, "")
	h.AcceptStaffInvitation(s.tok.AccessToken)
	h.relogin(&s)
	return s
}

// count runs a COUNT query on db.main.
func (h *harness) count(q string, args ...any) int {
	h.t.Helper()
	var n int
	if err := h.Cluster.Main().GetContext(context.Background(), &n, q, args...); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// events returns the types of the merchant events in platform_outbox for aggregate.
func (h *harness) events(aggregate string) []string {
	h.t.Helper()
	var out []string
	if err := h.Cluster.Main().SelectContext(context.Background(), &out,
		`SELECT event_type FROM platform_outbox WHERE topic = ? AND aggregate_id = ? ORDER BY created_at, id`,
		merchant.Topic, aggregate); err != nil {
		h.t.Fatal(err)
	}
	return out
}

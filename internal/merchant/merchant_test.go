package merchant_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/merchant"
)

type application struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	Reason     string `json:"reason"`
	MerchantID string `json:"merchant_id"`
}

type profile struct {
	ID          string `json:"id"`
	ShopName    string `json:"shop_name"`
	Description string `json:"description"`
	Status      string `json:"status"`
}

// TestApplyApproveOwner: apply → approve → the owner logs in again and sees merchant_owner
// and merchant_id in /me, reads and patches the profile; events are in the outbox.
func TestApplyApproveOwner(t *testing.T) {
	h := newHarness(t)
	adm := h.admin()
	owner := h.newUser("owner")
	appID := h.apply(owner, "teashop")

	// One pending application per user.
	h.req(owner.tok.AccessToken, "POST", "/api/v1/merchant-applications", applicationBody("other")).
		want(t, 409, "merchant.application_pending")

	var mine struct{ Items []application }
	h.req(owner.tok.AccessToken, "GET", "/api/v1/merchant-applications/mine", nil).want(t, 200, "").decode(t, &mine)
	if len(mine.Items) != 1 || mine.Items[0].ID != appID || mine.Items[0].Status != "pending" {
		t.Fatalf("mine = %+v", mine.Items)
	}
	var pending struct{ Items []application }
	h.req(adm.tok.AccessToken, "GET", "/api/v1/admin/merchant-applications?status=pending", nil).want(t, 200, "").decode(t, &pending)
	if !slices.ContainsFunc(pending.Items, func(a application) bool { return a.ID == appID }) {
		t.Fatalf("pending = %+v, want %s", pending.Items, appID)
	}
	h.req(adm.tok.AccessToken, "GET", "/api/v1/admin/merchant-applications?status=bogus", nil).want(t, 400, "")

	mid := h.approve(adm, appID)
	if again := h.approve(adm, appID); again != mid {
		t.Fatalf("second approve = %s, want %s", again, mid)
	}
	// The owner's old token has no merchant; a refresh brings the role.
	var tk tokens
	h.req("", "POST", "/api/v1/auth/refresh", map[string]string{"refresh_token": owner.tok.RefreshToken}).
		want(t, 200, "").decode(t, &tk)
	owner.tok = tk
	m := h.me(owner)
	if !slices.Contains(m.Roles, "merchant_owner") || m.MerchantID != mid {
		t.Fatalf("/me = %+v, want merchant_owner of %s", m, mid)
	}

	var p profile
	h.req(owner.tok.AccessToken, "GET", "/api/v1/merchant/profile", nil).want(t, 200, "").decode(t, &p)
	if p.ID != mid || p.ShopName != "teashop" || p.Status != "active" {
		t.Fatalf("profile = %+v", p)
	}
	h.req(owner.tok.AccessToken, "PATCH", "/api/v1/merchant/profile", map[string]string{"shop_name": "Tea House", "description": "green tea"}).
		want(t, 200, "").decode(t, &p)
	if p.ShopName != "Tea House" || p.Description != "green tea" {
		t.Fatalf("patched profile = %+v", p)
	}
	got, err := h.svc.Get(context.Background(), mustID(t, mid))
	if err != nil || got.ShopName != "Tea House" || got.OwnerID != mustID(t, owner.ID) {
		t.Fatalf("Service.Get = %+v, %v", got, err)
	}
	if ok, err := h.svc.IsActive(context.Background(), got.ID); !ok || err != nil {
		t.Fatalf("IsActive = %v, %v", ok, err)
	}
	if ok, err := h.svc.IsActive(context.Background(), 12345); ok || err != nil {
		t.Fatalf("IsActive(unknown) = %v, %v", ok, err)
	}

	h.req(adm.tok.AccessToken, "GET", "/api/v1/admin/merchant-applications?status=approved", nil).want(t, 200, "").decode(t, &pending)
	if !slices.ContainsFunc(pending.Items, func(a application) bool { return a.ID == appID && a.MerchantID == mid }) {
		t.Fatalf("approved = %+v", pending.Items)
	}
	if ev := h.events(appID); !slices.Equal(ev, []string{merchant.EventApplicationSubmitted}) {
		t.Errorf("application events = %v", ev)
	}
	if ev := h.events(mid); !slices.Equal(ev, []string{merchant.EventApproved}) {
		t.Errorf("merchant events = %v", ev)
	}
}

func mustID(t testing.TB, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReject: a rejected application keeps its reason, cannot be approved, and its
// applicant may apply again.
func TestReject(t *testing.T) {
	h := newHarness(t)
	adm := h.admin()
	u := h.newUser("applicant")
	appID := h.apply(u, "badshop")
	path := "/api/v1/admin/merchant-applications/" + appID + "/reject"
	h.req(adm.tok.AccessToken, "POST", path, map[string]string{}).want(t, 400, "")
	h.req(adm.tok.AccessToken, "POST", path, map[string]string{"reason": "license expired"}).want(t, 200, "")
	h.req(adm.tok.AccessToken, "POST", "/api/v1/admin/merchant-applications/"+appID+"/approve", nil).
		want(t, 409, "merchant.application_reviewed")
	h.req(adm.tok.AccessToken, "POST", "/api/v1/admin/merchant-applications/999/approve", nil).
		want(t, 404, "merchant.application_not_found")

	var mine struct{ Items []application }
	h.req(u.tok.AccessToken, "GET", "/api/v1/merchant-applications/mine", nil).want(t, 200, "").decode(t, &mine)
	if len(mine.Items) != 1 || mine.Items[0].Status != "rejected" || mine.Items[0].Reason != "license expired" {
		t.Fatalf("mine = %+v", mine.Items)
	}
	if m := h.me(u); slices.Contains(m.Roles, "merchant_owner") {
		t.Fatalf("rejected applicant has roles %v", m.Roles)
	}
	h.apply(u, "goodshop")
	if ev := h.events(appID); !slices.Equal(ev, []string{merchant.EventApplicationSubmitted, merchant.EventRejected}) {
		t.Errorf("events = %v", ev)
	}
}

// TestValidation: unknown fields, missing fields, bad content type and bad IDs → 4xx.
func TestValidation(t *testing.T) {
	h := newHarness(t)
	adm := h.admin()
	owner, _ := h.newMerchant(adm, "valid")
	u := h.newUser("buyer")
	tests := []struct {
		give       string
		tok        string
		method     string
		path       string
		body       any
		wantStatus int
	}{
		{"unknown field", u.tok.AccessToken, "POST", "/api/v1/merchant-applications",
			[]byte(`{"shop_name":"a","company_name":"b","license_no":"c","contact_name":"d","contact_phone":"e","status":"approved"}`), 400},
		{"missing field", u.tok.AccessToken, "POST", "/api/v1/merchant-applications", map[string]string{"shop_name": "a"}, 400},
		{"too long", u.tok.AccessToken, "POST", "/api/v1/merchant-applications",
			map[string]string{"shop_name": strings.Repeat("x", 65), "company_name": "b", "license_no": "c", "contact_name": "d", "contact_phone": "e"}, 400},
		{"not json", u.tok.AccessToken, "POST", "/api/v1/merchant-applications", []byte(`{`), 400},
		{"anonymous", "", "POST", "/api/v1/merchant-applications", applicationBody("x"), 401},
		{"profile unknown field", owner.tok.AccessToken, "PATCH", "/api/v1/merchant/profile", []byte(`{"status":"active"}`), 400},
		{"profile owner field", owner.tok.AccessToken, "PATCH", "/api/v1/merchant/profile", []byte(`{"owner_id":"1"}`), 400},
		{"profile empty name", owner.tok.AccessToken, "PATCH", "/api/v1/merchant/profile", map[string]string{"shop_name": ""}, 400},
		{"staff bad role", owner.tok.AccessToken, "POST", "/api/v1/merchant/staff", map[string]string{"email": u.Email, "role": "admin"}, 400},
		{"staff unknown email", owner.tok.AccessToken, "POST", "/api/v1/merchant/staff", map[string]string{"email": "nobody@example.com", "role": "operator"}, 404},
		{"bad id", adm.tok.AccessToken, "POST", "/api/v1/admin/merchant-applications/abc/approve", nil, 400},
		{"buyer on merchant route", u.tok.AccessToken, "GET", "/api/v1/merchant/profile", nil, 403},
		{"buyer on admin route", u.tok.AccessToken, "GET", "/api/v1/admin/merchant-applications", nil, 403},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			if got := h.req(tt.tok, tt.method, tt.path, tt.body); got.status != tt.wantStatus {
				t.Errorf("got %s, want %d", got, tt.wantStatus)
			}
		})
	}
}

// TestSuspend: a suspended merchant's routes (this module's and any other module's under
// /api/v1/merchant/) answer 403 merchant.suspended; unsuspending restores them.
func TestSuspend(t *testing.T) {
	h := newHarness(t, otherModuleRoute())
	adm := h.admin()
	owner, mid := h.newMerchant(adm, "sus")
	staff := h.addStaff(owner, "operator")
	h.req(owner.tok.AccessToken, "GET", "/api/v1/merchant/profile", nil).want(t, 200, "")
	h.req(owner.tok.AccessToken, "GET", "/api/v1/merchant/other-module", nil).want(t, 200, "")

	h.req(adm.tok.AccessToken, "POST", "/api/v1/admin/merchants/"+mid+"/suspend", nil).want(t, 200, "")
	for _, who := range []account{owner, staff} {
		h.req(who.tok.AccessToken, "GET", "/api/v1/merchant/profile", nil).want(t, 403, "merchant.suspended")
		h.req(who.tok.AccessToken, "GET", "/api/v1/merchant/other-module", nil).want(t, 403, "merchant.suspended")
	}
	h.req(owner.tok.AccessToken, "PATCH", "/api/v1/merchant/profile", map[string]string{"shop_name": "x"}).want(t, 403, "merchant.suspended")
	if ok, err := h.svc.IsActive(context.Background(), mustID(t, mid)); ok || err != nil {
		t.Fatalf("IsActive after suspend = %v, %v", ok, err)
	}
	// Suspending twice is a no-op (no second event).
	h.req(adm.tok.AccessToken, "POST", "/api/v1/admin/merchants/"+mid+"/suspend", nil).want(t, 200, "")
	h.req(adm.tok.AccessToken, "POST", "/api/v1/admin/merchants/999/suspend", nil).want(t, 404, "merchant.not_found")

	h.req(adm.tok.AccessToken, "POST", "/api/v1/admin/merchants/"+mid+"/unsuspend", nil).want(t, 200, "")
	h.req(owner.tok.AccessToken, "GET", "/api/v1/merchant/profile", nil).want(t, 200, "")
	h.req(staff.tok.AccessToken, "GET", "/api/v1/merchant/other-module", nil).want(t, 200, "")
	if ev := h.events(mid); !slices.Equal(ev, []string{merchant.EventApproved, merchant.EventStaffAdded,
		merchant.EventSuspended, merchant.EventUnsuspended}) {
		t.Errorf("events = %v", ev)
	}
}

// TestStaff: owners add operators and customer service by email; staff read the profile
// but cannot edit it or add staff; a user of another merchant cannot be added.
func TestStaff(t *testing.T) {
	h := newHarness(t)
	adm := h.admin()
	owner, mid := h.newMerchant(adm, "staffed")
	other, _ := h.newMerchant(adm, "other")

	op := h.addStaff(owner, "operator")
	cs := h.addStaff(owner, "customer_service")
	for _, s := range []account{op, cs} {
		m := h.me(s)
		if !slices.Contains(m.Roles, "merchant_staff") || m.MerchantID != mid {
			t.Fatalf("/me of staff = %+v, want merchant_staff of %s", m, mid)
		}
		h.req(s.tok.AccessToken, "GET", "/api/v1/merchant/profile", nil).want(t, 200, "")
		h.req(s.tok.AccessToken, "PATCH", "/api/v1/merchant/profile", map[string]string{"shop_name": "mine"}).want(t, 403, "auth.forbidden")
		h.req(s.tok.AccessToken, "POST", "/api/v1/merchant/staff", map[string]string{"email": apptest.UniqueEmail("x"), "role": "operator"}).
			want(t, 403, "auth.forbidden")
	}
	// Already staff here, owner of another merchant, staff of this one: 409.
	for _, email := range []string{op.Email, other.Email, owner.Email} {
		h.req(owner.tok.AccessToken, "POST", "/api/v1/merchant/staff", map[string]string{"email": email, "role": "operator"}).
			want(t, 409, "merchant.staff_conflict")
	}
	h.req(other.tok.AccessToken, "POST", "/api/v1/merchant/staff", map[string]string{"email": cs.Email, "role": "operator"}).
		want(t, 409, "merchant.staff_conflict")

	var list struct {
		Items []struct {
			UserID string `json:"user_id"`
			Email  string `json:"email"`
			Role   string `json:"role"`
		}
		NextCursor string `json:"next_cursor"`
	}
	h.req(owner.tok.AccessToken, "GET", "/api/v1/merchant/staff?limit=1", nil).want(t, 200, "").decode(t, &list)
	if len(list.Items) != 1 || list.NextCursor == "" {
		t.Fatalf("first page = %+v", list)
	}
	first := list.Items[0]
	h.req(owner.tok.AccessToken, "GET", "/api/v1/merchant/staff?limit=1&cursor="+list.NextCursor, nil).want(t, 200, "").decode(t, &list)
	if len(list.Items) != 1 || list.Items[0].UserID == first.UserID {
		t.Fatalf("second page = %+v", list)
	}
	h.req(owner.tok.AccessToken, "GET", "/api/v1/merchant/staff/"+cs.ID, nil).want(t, 200, "")
	if n := h.count(`SELECT COUNT(*) FROM merchant_staff WHERE merchant_id = ?`, mid); n != 2 {
		t.Fatalf("staff rows = %d, want 2", n)
	}
	if ev := h.events(mid); !slices.Equal(ev, []string{merchant.EventApproved, merchant.EventStaffAdded, merchant.EventStaffAdded}) {
		t.Errorf("events = %v", ev)
	}

	// Removal: staff cannot remove anyone, the owner is not staff, another merchant's owner
	// cannot touch them; the owner removes the operator, whose session ends at once.
	h.req(cs.tok.AccessToken, "DELETE", "/api/v1/merchant/staff/"+op.ID, nil).want(t, 403, "auth.forbidden")
	h.req(owner.tok.AccessToken, "DELETE", "/api/v1/merchant/staff/"+owner.ID, nil).want(t, 404, "merchant.staff_not_found")
	h.req(other.tok.AccessToken, "DELETE", "/api/v1/merchant/staff/"+op.ID, nil).want(t, 404, "merchant.staff_not_found")
	h.req(owner.tok.AccessToken, "DELETE", "/api/v1/merchant/staff/"+op.ID, nil).want(t, 204, "")
	h.req(owner.tok.AccessToken, "DELETE", "/api/v1/merchant/staff/"+op.ID, nil).want(t, 404, "merchant.staff_not_found")
	h.req(op.tok.AccessToken, "GET", "/api/v1/merchant/profile", nil).want(t, 401, "")
	h.req("", "POST", "/api/v1/auth/refresh", map[string]string{"refresh_token": op.tok.RefreshToken}).want(t, 401, "")
	h.relogin(&op)
	if m := h.me(op); slices.Contains(m.Roles, "merchant_staff") || m.MerchantID != "" {
		t.Fatalf("/me after removal = %+v, want a plain buyer", m)
	}
	h.req(op.tok.AccessToken, "GET", "/api/v1/merchant/profile", nil).want(t, 403, "auth.forbidden")
	h.req(cs.tok.AccessToken, "GET", "/api/v1/merchant/profile", nil).want(t, 200, "") // untouched
	if n := h.count(`SELECT COUNT(*) FROM merchant_staff WHERE merchant_id = ?`, mid); n != 1 {
		t.Fatalf("staff rows after removal = %d, want 1", n)
	}
	// A removed operator can be hired by another merchant.
	h.req(other.tok.AccessToken, "POST", "/api/v1/merchant/staff", map[string]string{"email": op.Email, "role": "operator"}).
		want(t, 201, "")
	if ev := h.events(mid); !slices.Equal(ev, []string{merchant.EventApproved, merchant.EventStaffAdded, merchant.EventStaffAdded,
		merchant.EventStaffRemoved}) {
		t.Errorf("events = %v", ev)
	}
}

// TestConcurrentApprove: ten operators approving one application at once create one merchant
// and all answer with its ID.
func TestConcurrentApprove(t *testing.T) {
	h := newHarness(t)
	adm := h.admin()
	u := h.newUser("racer")
	appID := h.apply(u, "race")
	const n = 10
	ids := make([]string, n)
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := h.do(adm.tok.AccessToken, "POST", "/api/v1/admin/merchant-applications/"+appID+"/approve", nil)
			if err != nil {
				t.Error(err)
				return
			}
			statuses[i] = r.status
			if r.status == http.StatusOK {
				var out struct {
					MerchantID string `json:"merchant_id"`
				}
				if err := json.Unmarshal(r.body, &out); err != nil {
					t.Error(err)
				}
				ids[i] = out.MerchantID
			}
		})
	}
	wg.Wait()
	for i := range n {
		if statuses[i] != 200 || ids[i] == "" || ids[i] != ids[0] {
			t.Fatalf("approve %d: status %d merchant %q (first %q)", i, statuses[i], ids[i], ids[0])
		}
	}
	if c := h.count(`SELECT COUNT(*) FROM merchant_merchants WHERE application_id = ?`, appID); c != 1 {
		t.Fatalf("%d merchants for one application", c)
	}
	if c := h.count(`SELECT COUNT(*) FROM platform_outbox WHERE event_type = ? AND aggregate_id = ?`, merchant.EventApproved, ids[0]); c != 1 {
		t.Fatalf("%d approved events", c)
	}
	h.relogin(&u)
	if m := h.me(u); m.MerchantID != ids[0] {
		t.Fatalf("/me merchant = %s, want %s", m.MerchantID, ids[0])
	}
}

// TestStaffNeedsConsent (issue 14): adding staff by e-mail used to grant the role to whoever
// had registered the address, without their knowing. Now it invites a verified account, and
// only the invitee's acceptance makes them staff.
func TestStaffNeedsConsent(t *testing.T) {
	h := newHarness(t)
	adm := h.admin()
	owner, mid := h.newMerchant(adm, "consent")
	victim := h.newUser("victim")

	var inv struct {
		UserID string `json:"user_id"`
		Status string `json:"status"`
	}
	h.req(owner.tok.AccessToken, "POST", "/api/v1/merchant/staff", map[string]string{"email": victim.Email, "role": "operator"}).
		want(t, 201, "").decode(t, &inv)
	if inv.Status != "invited" || inv.UserID != victim.ID {
		t.Fatalf("add staff answered %+v, want an invitation of %s", inv, victim.ID)
	}
	h.relogin(&victim)
	if m := h.me(victim); slices.Contains(m.Roles, "merchant_staff") || m.MerchantID != "" {
		t.Fatalf("/me of an invitee who did not accept = %+v", m)
	}
	h.req(victim.tok.AccessToken, "GET", "/api/v1/merchant/profile", nil).want(t, 403, "auth.forbidden")
	h.req(owner.tok.AccessToken, "GET", "/api/v1/merchant/staff/"+victim.ID, nil).want(t, 404, "merchant.staff_not_found")

	// Nobody else accepts it; an unverified account is not invited at all.
	stranger := h.newUser("stranger")
	h.req(stranger.tok.AccessToken, "POST", "/api/v1/me/staff-invitations/"+mid+"/accept", nil).want(t, 404, "merchant.invitation_not_found")
	unverified := h.RegisterUnverified(apptest.UniqueEmail("unverified"))
	h.req(owner.tok.AccessToken, "POST", "/api/v1/merchant/staff", map[string]string{"email": unverified.Email, "role": "operator"}).
		want(t, 409, "merchant.user_unverified")

	// The invitee sees it and accepts.
	var list struct {
		Items []struct {
			MerchantID string `json:"merchant_id"`
			ShopName   string `json:"shop_name"`
			Role       string `json:"role"`
		} `json:"items"`
	}
	h.req(victim.tok.AccessToken, "GET", "/api/v1/me/staff-invitations", nil).want(t, 200, "").decode(t, &list)
	if len(list.Items) != 1 || list.Items[0].MerchantID != mid || list.Items[0].ShopName != "consent" || list.Items[0].Role != "operator" {
		t.Fatalf("invitations = %+v", list)
	}
	h.req(victim.tok.AccessToken, "POST", "/api/v1/me/staff-invitations/"+mid+"/accept", nil).want(t, 200, "")
	h.req(victim.tok.AccessToken, "POST", "/api/v1/me/staff-invitations/"+mid+"/accept", nil).want(t, 409, "merchant.staff_conflict")
	h.relogin(&victim)
	if m := h.me(victim); !slices.Contains(m.Roles, "merchant_staff") || m.MerchantID != mid {
		t.Fatalf("/me after accepting = %+v", m)
	}

	// Declining drops an invitation and grants nothing.
	other := h.newUser("decliner")
	h.req(owner.tok.AccessToken, "POST", "/api/v1/merchant/staff", map[string]string{"email": other.Email, "role": "customer_service"}).want(t, 201, "")
	h.req(other.tok.AccessToken, "POST", "/api/v1/me/staff-invitations/"+mid+"/decline", nil).want(t, 204, "")
	h.req(other.tok.AccessToken, "POST", "/api/v1/me/staff-invitations/"+mid+"/accept", nil).want(t, 404, "merchant.invitation_not_found")
	if n := h.count(`SELECT COUNT(*) FROM merchant_staff WHERE merchant_id = ?`, mid); n != 1 {
		t.Fatalf("staff rows = %d, want 1", n)
	}
}

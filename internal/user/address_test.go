package user_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/user"
)

type addressOut struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Phone    string `json:"phone"`
	Province string `json:"province"`
	City     string `json:"city"`
	District string `json:"district"`
	Detail   string `json:"detail"`
}

func newAddress(phone string) map[string]string {
	return map[string]string{"name": "Li Lei", "phone": phone, "province": "Zhejiang", "city": "Hangzhou",
		"district": "Xihu", "detail": "No. 1 Wensan Road"}
}

func TestAddresses(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	alice, at := h.NewUser("alice")
	_, bt := h.NewUser("bob")
	aliceID, _ := strconv.ParseInt(alice.ID, 10, 64)
	ctx := context.Background()

	var a1 addressOut
	h.Req("POST", "/api/v1/me/addresses", newAddress("138 1234-5678"), apptest.Bearer(at.AccessToken)...).
		Want(t, http.StatusCreated, "").Decode(t, &a1)
	if a1.Phone != "138****5678" || a1.Name != "Li Lei" || a1.ID == "" {
		t.Fatalf("created %+v; want the phone masked as 138****5678", a1)
	}
	addrID, _ := strconv.ParseInt(a1.ID, 10, 64)

	t.Run("stored on the owner's shard, phone encrypted", func(t *testing.T) {
		if idgen.Shard(addrID) != sqldb.LogicalShard(aliceID) {
			t.Fatalf("address ID carries logical shard %d, the owner's is %d", idgen.Shard(addrID), sqldb.LogicalShard(aliceID))
		}
		var raw []byte
		err := h.cl.ForUser(aliceID).GetContext(ctx, &raw, `SELECT phone_enc FROM user_addresses WHERE id = ?`, addrID)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte("13812345678")) || bytes.Contains(raw, []byte("5678")) || len(raw) < 5+12+16+11 || raw[0] != 1 {
			t.Fatalf("phone_enc %x is not the v1 ciphertext of the number", raw)
		}
		// The other shard does not have it.
		other := h.cl.Shards()[0]
		if other == h.cl.ForUser(aliceID) {
			other = h.cl.Shards()[1]
		}
		var n int
		if err := other.GetContext(ctx, &n, `SELECT COUNT(*) FROM user_addresses WHERE id = ?`, addrID); err != nil || n != 0 {
			t.Fatalf("address found on the other shard: %d %v", n, err)
		}
		// Other modules get the plain number through the Service.
		a, err := h.svc.Address(ctx, aliceID, addrID)
		if err != nil || a.Phone != "13812345678" || a.MaskedPhone() != "138****5678" {
			t.Fatalf("Service.Address = %+v, %v", a, err)
		}
	})

	var a2 addressOut
	h.Req("POST", "/api/v1/me/addresses", newAddress("+8613900001111"), apptest.Bearer(at.AccessToken)...).
		Want(t, http.StatusCreated, "").Decode(t, &a2)
	if a2.Phone != "+86139****1111" {
		t.Fatalf("masked %q", a2.Phone)
	}
	if latest, err := h.svc.LatestAddress(ctx, aliceID); err != nil || strconv.FormatInt(latest.ID, 10) != a2.ID {
		t.Fatalf("LatestAddress = %+v, %v; want %s", latest, err, a2.ID)
	}

	var list struct {
		Items      []addressOut `json:"items"`
		NextCursor string       `json:"next_cursor"`
	}
	h.Req("GET", "/api/v1/me/addresses", nil, apptest.Bearer(at.AccessToken)...).Want(t, http.StatusOK, "").Decode(t, &list)
	if len(list.Items) != 2 || list.Items[0].ID != a2.ID || list.NextCursor != "" {
		t.Fatalf("list %+v", list)
	}
	h.Req("GET", "/api/v1/me/addresses?limit=1", nil, apptest.Bearer(at.AccessToken)...).Want(t, http.StatusOK, "").Decode(t, &list)
	if len(list.Items) != 1 || list.NextCursor == "" {
		t.Fatalf("page 1 %+v", list)
	}
	h.Req("GET", "/api/v1/me/addresses?limit=1&cursor="+list.NextCursor, nil, apptest.Bearer(at.AccessToken)...).Want(t, http.StatusOK, "").Decode(t, &list)
	if len(list.Items) != 1 || list.Items[0].ID != a1.ID || list.NextCursor != "" {
		t.Fatalf("page 2 %+v", list)
	}

	var patched addressOut
	h.Req("PATCH", "/api/v1/me/addresses/"+a1.ID, map[string]string{"city": "Ningbo", "phone": "13700002222"}, apptest.Bearer(at.AccessToken)...).
		Want(t, http.StatusOK, "").Decode(t, &patched)
	if patched.City != "Ningbo" || patched.Name != "Li Lei" || patched.Phone != "137****2222" {
		t.Fatalf("patched %+v", patched)
	}

	t.Run("another user's address is 404", func(t *testing.T) {
		for _, r := range []response{
			h.Req("GET", "/api/v1/me/addresses/"+a1.ID, nil, apptest.Bearer(bt.AccessToken)...),
			h.Req("PATCH", "/api/v1/me/addresses/"+a1.ID, map[string]string{"city": "X"}, apptest.Bearer(bt.AccessToken)...),
			h.Req("DELETE", "/api/v1/me/addresses/"+a1.ID, nil, apptest.Bearer(bt.AccessToken)...),
		} {
			r.Want(t, http.StatusNotFound, "user.address_not_found")
		}
		h.Req("GET", "/api/v1/me/addresses", nil, apptest.Bearer(bt.AccessToken)...).Want(t, http.StatusOK, "").Decode(t, &list)
		if len(list.Items) != 0 {
			t.Fatalf("bob sees %+v", list.Items)
		}
		h.Req("GET", "/api/v1/me/addresses/"+a1.ID, nil, apptest.Bearer(at.AccessToken)...).Want(t, http.StatusOK, "") // still there
	})

	t.Run("validation", func(t *testing.T) {
		h.Req("POST", "/api/v1/me/addresses", newAddress("call me"), apptest.Bearer(at.AccessToken)...).Want(t, http.StatusBadRequest, "request.validation")
		bad := newAddress("13812345678")
		delete(bad, "city")
		h.Req("POST", "/api/v1/me/addresses", bad, apptest.Bearer(at.AccessToken)...).Want(t, http.StatusBadRequest, "request.validation")
		h.Req("PATCH", "/api/v1/me/addresses/"+a1.ID, map[string]string{"name": "  "}, apptest.Bearer(at.AccessToken)...).
			Want(t, http.StatusBadRequest, "request.validation")
		h.Req("GET", "/api/v1/me/addresses/abc", nil, apptest.Bearer(at.AccessToken)...).Want(t, http.StatusBadRequest, "request.invalid")
		h.Req("POST", "/api/v1/me/addresses", newAddress("13812345678")).Want(t, http.StatusUnauthorized, "auth.unauthenticated")
	})

	h.Req("DELETE", "/api/v1/me/addresses/"+a1.ID, nil, apptest.Bearer(at.AccessToken)...).Want(t, http.StatusNoContent, "")
	h.Req("GET", "/api/v1/me/addresses/"+a1.ID, nil, apptest.Bearer(at.AccessToken)...).Want(t, http.StatusNotFound, "user.address_not_found")
	if _, err := h.svc.Address(ctx, aliceID, addrID); !errors.Is(err, user.ErrAddressNotFound) {
		t.Fatalf("Service.Address after delete: %v", err)
	}
}

func TestAddressLimit(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	_, tk := h.NewUser("hoarder")
	for i := range user.MaxAddresses {
		h.Req("POST", "/api/v1/me/addresses", newAddress("1380000"+strconv.Itoa(1000+i)), apptest.Bearer(tk.AccessToken)...).
			Want(t, http.StatusCreated, "")
	}
	h.Req("POST", "/api/v1/me/addresses", newAddress("13800009999"), apptest.Bearer(tk.AccessToken)...).
		Want(t, http.StatusConflict, "user.address_limit")
}

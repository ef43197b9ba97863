package usertest_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/user"
	"github.com/mallhq/mall/internal/user/usertest"
)

func TestMiddlewareAndRequirePermission(t *testing.T) {
	e := echo.New()
	e.HTTPErrorHandler = httpx.ErrorHandler(slog.New(slog.DiscardHandler))
	e.Use(usertest.Middleware)
	e.GET("/m", func(c echo.Context) error {
		mid, err := user.MerchantFrom(c.Request().Context())
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, mid)
	}, user.RequirePermission(user.PermMerchantProducts))
	tests := []struct {
		give string
		want int
	}{
		{"", http.StatusUnauthorized},
		{usertest.Caller(1, 0), http.StatusForbidden},
		{usertest.Caller(1, 0, user.PermMerchantProducts), http.StatusForbidden}, // no merchant
		{usertest.Caller(1, 9, user.PermMerchantProducts), http.StatusOK},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodGet, "/m", nil)
		if tt.give != "" {
			req.Header.Set(usertest.HeaderCaller, tt.give)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("%q: %d %s, want %d", tt.give, rec.Code, rec.Body, tt.want)
		}
	}
}

func TestFake(t *testing.T) {
	ctx := context.Background()
	var f usertest.Fake
	u := f.AddUser(user.User{Email: " A@Example.com"})
	if got, err := f.FindByEmail(ctx, "a@example.com"); err != nil || got.ID != u.ID {
		t.Fatalf("FindByEmail: %+v %v", got, err)
	}
	if err := f.GrantRole(ctx, u.ID, user.RoleMerchantOwner, 0); !errors.Is(err, user.ErrMerchantRequired) {
		t.Fatalf("merchant role without merchant: %v", err)
	}
	if err := f.GrantRole(ctx, u.ID, user.RoleMerchantOwner, 5); err != nil {
		t.Fatal(err)
	}
	if err := f.GrantRole(ctx, u.ID, user.RoleMerchantStaff, 6); !errors.Is(err, user.ErrMerchantConflict) {
		t.Fatalf("second merchant: %v", err)
	}
	f.AddAddress(user.Address{UserID: u.ID, Phone: "1"})
	a2 := f.AddAddress(user.Address{UserID: u.ID, Phone: "2"})
	if got, err := f.LatestAddress(ctx, u.ID); err != nil || got.ID != a2.ID {
		t.Fatalf("LatestAddress: %+v %v", got, err)
	}
	if _, err := f.Address(ctx, u.ID+1, a2.ID); !errors.Is(err, user.ErrAddressNotFound) {
		t.Fatalf("another user's address: %v", err)
	}
}

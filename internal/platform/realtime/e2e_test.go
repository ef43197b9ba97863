package realtime_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/realtime"
)

// TestTokenAuthentication runs the whole application: the access token of a WebSocket
// handshake is verified by the user module's middleware (signature, expiry, deny-list).
func TestTokenAuthentication(t *testing.T) {
	var hub *realtime.Hub
	open := func(_ echo.Context, who realtime.Identity) (realtime.Room, error) {
		return realtime.Room{Name: "test:auth", Welcome: []any{map[string]string{"user_id": strconv.FormatInt(who.UserID, 10)}}}, nil
	}
	a := apptest.New(t, apptest.Options{
		Routes: []httpx.Route{{Method: http.MethodGet, Path: "/ws/test", Summary: "test WebSocket",
			Handler: func(c echo.Context) error { return hub.Handler(open)(c) }}},
		Populate: []any{&hub},
	})
	acc, tok := a.NewUser("ws")
	base := "ws" + strings.TrimPrefix(a.URL, "http") + "/ws/test"

	whoAmI := func(t *testing.T, url string, opts *websocket.DialOptions) (string, *websocket.Conn) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, url, opts)
		if err != nil {
			t.Fatalf("dial: %v (%v)", err, resp)
		}
		t.Cleanup(func() { c.CloseNow() })
		var w struct {
			UserID string `json:"user_id"`
		}
		readJSON(t, c, &w)
		return w.UserID, c
	}
	refused := func(t *testing.T, url string, opts *websocket.DialOptions) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, url, opts)
		if err == nil {
			c.CloseNow()
			t.Fatal("accepted")
		}
		if resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("dial: %v, want 401", err)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
			t.Fatalf("content type %q", ct)
		}
	}

	t.Run("anonymous", func(t *testing.T) {
		if id, _ := whoAmI(t, base, nil); id != "0" {
			t.Fatalf("user %s, want 0", id)
		}
	})
	t.Run("query parameter", func(t *testing.T) {
		if id, _ := whoAmI(t, base+"?access_token="+tok.AccessToken, nil); id != acc.ID {
			t.Fatalf("user %s, want %s", id, acc.ID)
		}
	})
	t.Run("subprotocol", func(t *testing.T) {
		id, c := whoAmI(t, base, &websocket.DialOptions{Subprotocols: []string{"bearer", tok.AccessToken}})
		if id != acc.ID {
			t.Fatalf("user %s, want %s", id, acc.ID)
		}
		if c.Subprotocol() != "bearer" {
			t.Fatalf("negotiated %q, want bearer (never the token)", c.Subprotocol())
		}
	})
	t.Run("invalid token", func(t *testing.T) {
		refused(t, base+"?access_token=not-a-token", nil)
		refused(t, base, &websocket.DialOptions{Subprotocols: []string{"bearer", tok.AccessToken + "x"}})
	})
	t.Run("revoked token", func(t *testing.T) {
		_, tok2 := a.NewUser("ws-revoked")
		a.Req(http.MethodPost, "/api/v1/auth/logout", map[string]string{"refresh_token": tok2.RefreshToken},
			apptest.Bearer(tok2.AccessToken)...).Want(t, http.StatusNoContent, "")
		refused(t, base+"?access_token="+tok2.AccessToken, nil)
	})
}

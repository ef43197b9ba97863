package realtime_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// TestTwoAppReplicas: two whole applications (each on its own databases) sharing Redis, as
// two replicas behind a load balancer: clients on either receive the same messages in the
// same order, published from both, and both count every viewer.
func TestTwoAppReplicas(t *testing.T) {
	type replicaApp struct {
		hub *realtime.Hub
		url string
	}
	room := "test:replicas:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	start := func() replicaApp {
		var hub *realtime.Hub
		open := func(echo.Context, realtime.Identity) (realtime.Room, error) { return realtime.Room{Name: room}, nil }
		cfg := apptest.Config(t)
		cfg.Realtime.SendQueue = 4096 // about order, not slow clients: they read after the burst
		a := apptest.Start(t, cfg, apptest.Options{
			Routes: []httpx.Route{{Method: http.MethodGet, Path: "/ws/test", Summary: "test WebSocket",
				Handler: func(c echo.Context) error { return hub.Handler(open)(c) }}},
			Populate: []any{&hub},
		})
		return replicaApp{hub: hub, url: "ws" + strings.TrimPrefix(a.URL, "http") + "/ws/test"}
	}
	apps := []replicaApp{start(), start()}
	var clients []*websocket.Conn
	for range 2 {
		for _, a := range apps {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			c, _, err := websocket.Dial(ctx, a.url, nil)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.CloseNow() })
			clients = append(clients, c)
		}
	}
	for _, a := range apps {
		waitViewers(t, a.hub, room, int64(len(clients)))
	}

	const perApp = 100
	var pubs sync.WaitGroup
	for i, a := range apps {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for n := range perApp {
				if err := a.hub.Publish(context.Background(), room, numbered{Type: "n", From: strconv.Itoa(i), N: n}); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		}()
	}
	pubs.Wait()
	var first []numbered
	for i, c := range clients {
		var got []numbered
		for range 2 * perApp {
			var m numbered
			readJSON(t, c, &m)
			got = append(got, m)
		}
		if i == 0 {
			first = got
			continue
		}
		if !slices.Equal(got, first) {
			t.Fatalf("client %d saw a different sequence than client 0", i)
		}
	}
}

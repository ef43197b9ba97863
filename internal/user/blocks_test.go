package user_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	"github.com/mallhq/mall/internal/platform/realtime"
	"github.com/mallhq/mall/internal/user"
)

// replica is one app instance with a test WebSocket route (/ws/test: a room per user).
type replica struct {
	*apptest.App
	hub *realtime.Hub
}

func startReplica(t *testing.T, cfg config.Config) *replica {
	t.Helper()
	r := &replica{}
	route := httpx.Route{Method: http.MethodGet, Path: "/ws/test", Summary: "test socket", Handler: func(c echo.Context) error {
		return r.hub.Handler(func(_ echo.Context, who realtime.Identity) (realtime.Room, error) {
			return realtime.Room{Name: "test:" + strconv.FormatInt(who.UserID, 10)}, nil
		})(c)
	}}
	r.App = apptest.Start(t, cfg, apptest.Options{Modules: []fx.Option{user.Module}, Routes: []httpx.Route{route},
		Populate: []any{&r.hub}})
	return r
}

// twoReplicas starts two instances on one database and one Redis.
func twoReplicas(t *testing.T) (*replica, *replica) {
	t.Helper()
	cfg := testConfig(t)
	a := startReplica(t, cfg)
	cfg.App.NodeID = cfg.App.NodeID%200 + 1 + 50 // IDs must not collide
	return a, startReplica(t, cfg)
}

func (r *replica) dial(t *testing.T, token string) (*websocket.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(r.URL, "http") + "/ws/test?access_token=" + url.QueryEscape(token)
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"X-Forwarded-For": {r.IP}}})
	if err == nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, err
}

// closedWith waits up to d for c to be closed by the server and returns the close code.
func closedWith(c *websocket.Conn, d time.Duration) (websocket.StatusCode, time.Duration) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, time.Since(start)
			}
			return -1, time.Since(start)
		}
	}
}

// within polls f until it is true, failing after d.
func within(t *testing.T, d time.Duration, what string, f func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !f() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// TestBlockUserOnBothReplicas (done-when 5): blocking a user on one replica stops their
// access token, their refresh and their WebSockets on both replicas within 2 s; lifting
// the block lets them log in again.
func TestBlockUserOnBothReplicas(t *testing.T) {
	a, b := twoReplicas(t)
	_, admin := a.Admin()
	victim := a.Register(apptest.UniqueEmail("blocked"))
	ta, tb := a.Login(victim.Email), b.Login(victim.Email)
	wsA, err := a.dial(t, ta.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	wsB, err := b.dial(t, tb.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	_, bystander := b.NewUser("bystander")
	wsOther, err := b.dial(t, bystander.AccessToken)
	if err != nil {
		t.Fatal(err)
	}

	var blk struct {
		ID    string `json:"id"`
		Kind  string `json:"kind"`
		Value string `json:"value"`
	}
	start := time.Now()
	a.Req(http.MethodPost, "/api/v1/admin/blocks", map[string]any{"kind": "user", "value": victim.ID, "reason": "fraud"},
		apptest.Bearer(admin.AccessToken)...).Want(t, http.StatusCreated, "").Decode(t, &blk)
	if blk.Kind != "user" || blk.Value != victim.ID {
		t.Fatalf("block %+v", blk)
	}
	for _, ws := range []*websocket.Conn{wsA, wsB} {
		code, _ := closedWith(ws, 2*time.Second-time.Since(start))
		if code != realtime.StatusBlocked {
			t.Fatalf("WebSocket close code %d, want %d within 2 s", code, realtime.StatusBlocked)
		}
	}
	wsDone := time.Since(start)
	for _, r := range []*replica{a, b} {
		for _, tk := range []tokens{ta, tb} {
			within(t, 2*time.Second-time.Since(start), "access token refused", func() bool {
				return r.Req(http.MethodGet, "/api/v1/me", nil, apptest.Bearer(tk.AccessToken)...).Code() == "access.blocked"
			})
			res := r.Req(http.MethodPost, "/api/v1/auth/refresh", map[string]string{"refresh_token": tk.RefreshToken})
			if res.Status != http.StatusForbidden && res.Status != http.StatusUnauthorized {
				t.Fatalf("refresh of a blocked user's session: %s", res)
			}
		}
		r.Req(http.MethodPost, "/api/v1/auth/login", map[string]string{"email": victim.Email, "password": goodPassword}).
			Want(t, http.StatusForbidden, "access.blocked")
		if _, err := r.dial(t, tb.AccessToken); err == nil {
			t.Fatal("a blocked user opened a WebSocket")
		}
	}
	t.Logf("blocked: WebSockets closed on both replicas in %s, tokens refused on both in %s",
		wsDone.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	// Others are untouched.
	b.Me(bystander.AccessToken)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, _, err := wsOther.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a bystander's WebSocket ended: %v", err)
	}

	var list struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	b.Req(http.MethodGet, "/api/v1/admin/blocks", nil, apptest.Bearer(admin.AccessToken)...).Want(t, http.StatusOK, "").Decode(t, &list)
	if len(list.Items) != 1 || list.Items[0].ID != blk.ID {
		t.Fatalf("blocks %+v, want [%s]", list.Items, blk.ID)
	}
	b.Req(http.MethodDelete, "/api/v1/admin/blocks/"+blk.ID, nil, apptest.Bearer(admin.AccessToken)...).Want(t, http.StatusNoContent, "")
	b.Req(http.MethodDelete, "/api/v1/admin/blocks/"+blk.ID, nil, apptest.Bearer(admin.AccessToken)...).
		Want(t, http.StatusNotFound, "access.block_not_found")
	within(t, 2*time.Second, "login after the block is lifted", func() bool {
		return a.Req(http.MethodPost, "/api/v1/auth/login", map[string]string{"email": victim.Email, "password": goodPassword}).Status == http.StatusOK
	})
}

// TestBlockAddress: an address or a network is refused everywhere (anonymous requests
// included) on both replicas, with expiry; an admin cannot block themselves.
func TestBlockAddress(t *testing.T) {
	a, b := twoReplicas(t)
	_, admin := a.Admin()
	auth := apptest.Bearer(admin.AccessToken)
	a.Req(http.MethodPost, "/api/v1/admin/blocks", map[string]any{"kind": "ip", "value": a.IP, "reason": "me"}, auth...).
		Want(t, http.StatusBadRequest, "access.block_self")

	bad := "198.51.100.7"
	as := func(r *replica, ip string) response {
		return r.Req(http.MethodPost, "/api/v1/auth/login", map[string]string{"email": "x@example.com", "password": "whatever1"},
			"X-Forwarded-For", ip)
	}
	exp := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339Nano)
	a.Req(http.MethodPost, "/api/v1/admin/blocks", map[string]any{"kind": "ip", "value": bad, "reason": "scraper", "expires_at": exp}, auth...).
		Want(t, http.StatusCreated, "")
	a.Req(http.MethodPost, "/api/v1/admin/blocks", map[string]any{"kind": "cidr", "value": "2001:db8:bad::/48", "reason": "botnet"}, auth...).
		Want(t, http.StatusCreated, "")
	for _, r := range []*replica{a, b} {
		within(t, 2*time.Second, "blocked address refused", func() bool { return as(r, bad).Code() == "access.blocked" })
		as(r, "2001:db8:bad:1::9").Want(t, http.StatusForbidden, "access.blocked")
		as(r, "198.51.100.8").Want(t, http.StatusUnauthorized, "auth.invalid_credentials")
	}
	within(t, 5*time.Second, "the block expires", func() bool { return as(b, bad).Status == http.StatusUnauthorized })

	for _, tt := range []struct{ give, code string }{
		{`{"kind":"cidr","value":"0.0.0.0/0","reason":"all"}`, "request.validation"},
		{`{"kind":"ip","value":"not an ip","reason":"x"}`, "request.validation"},
		{`{"kind":"user","value":"12","reason":"x"}`, "user.not_found"},
		{`{"kind":"host","value":"1.2.3.4","reason":"x"}`, "request.validation"},
		{`{"kind":"ip","value":"1.2.3.4","reason":"x","expires_at":"2001-01-01T00:00:00Z"}`, "request.validation"},
	} {
		r := a.Req(http.MethodPost, "/api/v1/admin/blocks", []byte(tt.give), auth...)
		if r.Status < 400 || r.Status >= 500 || (tt.code != "" && r.Code() != tt.code) {
			t.Errorf("%s: %s", tt.give, r)
		}
	}
}

// TestWebSocketEndsWithSession: logout closes the session's WebSockets on the other replica,
// the token's expiry closes them too, and the per-user cap holds.
func TestWebSocketEndsWithSession(t *testing.T) {
	t.Parallel() // waits a minute for a token to expire
	cfg := withAuth(testConfig(t), func(c *user.Config) { c.JWT.AccessTTL = time.Minute })
	cfg.Realtime.MaxConnectionsPerUser = 2
	a := startReplica(t, cfg)
	cfg.App.NodeID = cfg.App.NodeID%200 + 1 + 50
	b := startReplica(t, cfg)

	acc, s1 := a.NewUser("ws")
	s2 := a.Login(acc.Email)
	ws1, err := b.dial(t, s1.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	ws2, err := b.dial(t, s2.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.dial(t, s2.AccessToken); err == nil {
		t.Fatal("a third connection of one user passed max_connections_per_user = 2")
	}
	a.Req(http.MethodPost, "/api/v1/auth/logout", nil, apptest.Bearer(s1.AccessToken)...).Want(t, http.StatusNoContent, "")
	if code, took := closedWith(ws1, 2*time.Second); code != realtime.StatusSessionEnded {
		t.Fatalf("after logout on the other replica: close code %d after %s, want %d", code, took, realtime.StatusSessionEnded)
	}
	// The other session stays until its token expires (a minute after login).
	code, took := closedWith(ws2, 70*time.Second)
	if code != realtime.StatusSessionEnded {
		t.Fatalf("at token expiry: close code %d after %s, want %d", code, took, realtime.StatusSessionEnded)
	}
	t.Logf("closed at token expiry after %s", took.Round(time.Second))
}

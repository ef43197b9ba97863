package live_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/live"
)

// wsMsg is any server message of /ws/live/{id}.
type wsMsg struct {
	Type      string  `json:"type"`
	RoomID    string  `json:"room_id"`
	Status    string  `json:"status"`
	HLSURL    string  `json:"hls_url"`
	ProductID *string `json:"product_id"`
	Title     string  `json:"title"`
	PriceMin  int64   `json:"price_min"`
	UserID    string  `json:"user_id"`
	Nickname  string  `json:"nickname"`
	Text      string  `json:"text"`
	Count     int64   `json:"count"`
	Code      string  `json:"code"`
	Detail    string  `json:"detail"`
}

func (e *env) wsURL(roomID, token string) string {
	u := "ws" + strings.TrimPrefix(e.a.URL, "http") + "/ws/live/" + roomID
	if token != "" {
		u += "?access_token=" + url.QueryEscape(token)
	}
	return u
}

func (e *env) dialErr(roomID, token string, h http.Header) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if h == nil {
		h = http.Header{}
	}
	h.Set("X-Forwarded-For", e.a.IP)
	return websocket.Dial(ctx, e.wsURL(roomID, token), &websocket.DialOptions{HTTPHeader: h})
}

func (e *env) dial(roomID, token string) *websocket.Conn {
	e.t.Helper()
	c, res, err := e.dialErr(roomID, token, nil)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		e.t.Fatalf("dial room %s: %v (status %d)", roomID, err, status)
	}
	e.t.Cleanup(func() { c.CloseNow() })
	return c
}

// next reads until a message of type typ arrives (viewer counts and other traffic are
// skipped) and returns it.
func next(t testing.TB, c *websocket.Conn, typ string) wsMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %q: %v", typ, err)
		}
		var m wsMsg
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("decode %s: %v", data, err)
		}
		if m.Type == typ {
			return m
		}
	}
}

func send(t testing.TB, c *websocket.Conn, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

func chat(text string) map[string]string { return map[string]string{"type": "chat", "text": text} }

// testRoomSocketWelcomePinAndChat: a viewer gets the state and the pinned product first,
// then pin changes, state changes and chat; anonymous viewers may watch but not chat; chat
// HTML is stripped and the nickname comes from the verified token's account.
func testRoomSocketWelcomePinAndChat(t *testing.T, e *env) {
	prod := e.product(e.owner, true)
	r := e.room("Spring sale")
	e.a.Req(http.MethodPost, "/api/v1/merchant/live-rooms/"+r.ID+"/pin", map[string]any{"product_id": prod},
		apptest.Bearer(e.owner)...).Want(t, http.StatusOK, "")

	anon := e.dial(r.ID, "")
	if m := next(t, anon, "state"); m.Status != "scheduled" || m.RoomID != r.ID || m.HLSURL != r.HLSURL {
		t.Fatalf("welcome state: %+v", m)
	}
	if m := next(t, anon, "pinned"); m.ProductID == nil || *m.ProductID != prod || m.Title == "" || m.PriceMin != 1999 {
		t.Fatalf("welcome pinned: %+v", m)
	}

	// Anonymous chat is refused to that client only, with auth.required.
	send(t, anon, chat("hello"))
	if m := next(t, anon, "error"); m.Code != "auth.required" {
		t.Fatalf("anonymous chat: %+v", m)
	}

	acc, tk := e.a.NewUser("viewer")
	viewer := e.dial(r.ID, tk.AccessToken)
	next(t, viewer, "pinned")
	send(t, viewer, chat(`  <b>hi</b> <script>alert(1)</script><img src=x onerror=alert(2)>there  `))
	for _, c := range []*websocket.Conn{viewer, anon} {
		m := next(t, c, "chat")
		if m.Text != "hi there" || m.UserID != acc.ID || m.Nickname != live.DisplayName(acc.Nickname, acc.Email) ||
			strings.Contains(acc.Email, m.Nickname) {
			t.Fatalf("chat as broadcast: %+v (want text %q from %s)", m, "hi there", acc.ID)
		}
	}

	// Bad chat: too long, empty once stripped, not a chat message.
	for _, tt := range []struct {
		give any
		want string
	}{
		{chat(strings.Repeat("长", 201)), "live.chat_too_long"},
		{chat("<p></p>  "), "live.chat_empty"},
		{map[string]string{"type": "state", "text": "x"}, "live.chat_invalid"},
		{map[string]any{"type": "chat", "text": "x", "user_id": "1"}, "live.chat_invalid"},
	} {
		send(t, viewer, tt.give)
		if m := next(t, viewer, "error"); m.Code != tt.want {
			t.Fatalf("%v: %+v, want %s", tt.give, m, tt.want)
		}
	}

	// Unpin and pin broadcast; going live broadcasts the state.
	e.a.Req(http.MethodDelete, "/api/v1/merchant/live-rooms/"+r.ID+"/pin", nil, apptest.Bearer(e.owner)...).Want(t, http.StatusOK, "")
	if m := next(t, anon, "pinned"); m.ProductID != nil {
		t.Fatalf("after unpin: %+v", m)
	}
	e.notify("on_publish", testSecret, publishForm(r.StreamKey, "1")).Want(t, http.StatusFound, "")
	if m := next(t, anon, "state"); m.Status != "live" {
		t.Fatalf("after publish: %+v", m)
	}
	e.a.Req(http.MethodPost, "/api/v1/merchant/live-rooms/"+r.ID+"/end", nil, apptest.Bearer(e.owner)...).Want(t, http.StatusOK, "")
	if m := next(t, anon, "state"); m.Status != "ended" {
		t.Fatalf("after end: %+v", m)
	}
	// An ended room takes no more chat.
	send(t, viewer, chat("still there?"))
	if m := next(t, viewer, "error"); m.Code != "live.room_closed" {
		t.Fatalf("chat in an ended room: %+v", m)
	}
}

// testRoomSocketRefusals: unknown and banned rooms are 404 before the upgrade, a foreign
// Origin is 403, an invalid token is 401, and an oversized frame closes the connection.
func testRoomSocketRefusals(t *testing.T, e *env) {
	r := e.room("Refusals")

	status := func(roomID, token string, h http.Header) int {
		c, res, err := e.dialErr(roomID, token, h)
		if err == nil {
			c.CloseNow()
			return http.StatusSwitchingProtocols
		}
		if res == nil {
			t.Fatalf("dial: %v", err)
		}
		return res.StatusCode
	}
	if got := status("999999", "", nil); got != http.StatusNotFound {
		t.Fatalf("unknown room: %d", got)
	}
	if got := status("abc", "", nil); got != http.StatusBadRequest {
		t.Fatalf("malformed room ID: %d", got)
	}
	if got := status(r.ID, "", http.Header{"Origin": {"https://evil.example.com"}}); got != http.StatusForbidden {
		t.Fatalf("foreign origin: %d", got)
	}
	if got := status(r.ID, "not-a-token", nil); got != http.StatusUnauthorized {
		t.Fatalf("invalid token: %d", got)
	}

	// A frame beyond realtime.max_message_bytes closes the connection (1009).
	_, tk := e.a.NewUser("big")
	c := e.dial(r.ID, tk.AccessToken)
	next(t, c, "pinned")
	send(t, c, chat(strings.Repeat("a", int(e.a.Cfg.Realtime.MaxMessageBytes)+10)))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
				t.Fatalf("oversized frame: %v, want close 1009", err)
			}
			break
		}
	}

	e.a.Req(http.MethodPost, "/api/v1/admin/live-rooms/"+r.ID+"/ban", nil, apptest.Bearer(e.admin)...).Want(t, http.StatusOK, "")
	if got := status(r.ID, "", nil); got != http.StatusNotFound {
		t.Fatalf("banned room: %d", got)
	}
}

// testChatRateLimitPerUser: N concurrent messages of one user: exactly the burst is sent,
// the rest are refused with live.chat_rate_limited; another user is not affected.
func testChatRateLimitPerUser(t *testing.T, e *env) {
	r := e.room("Busy chat")
	_, tk := e.a.NewUser("chatty")
	burst := e.liveConfig().ChatBurst
	const n = 12
	conns := make([]*websocket.Conn, 3)
	for i := range conns {
		conns[i] = e.dial(r.ID, tk.AccessToken) // one user, three tabs
		next(t, conns[i], "pinned")
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := json.Marshal(chat("msg"))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = conns[i%len(conns)].Write(ctx, websocket.MessageText, b)
		}()
	}
	wg.Wait()
	// Every tab sees every sent chat (counted on tab 0); each refusal goes to the tab that
	// sent it. Read until all n outcomes are in, then a little longer for any surplus.
	type outcome struct{ chat, limited bool }
	outcomes := make(chan outcome, 4*n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i, c := range conns {
		go func() {
			for {
				_, data, err := c.Read(ctx)
				if err != nil {
					return
				}
				var m wsMsg
				_ = json.Unmarshal(data, &m)
				switch {
				case m.Type == "chat" && i == 0:
					outcomes <- outcome{chat: true}
				case m.Type == "error" && m.Code == "live.chat_rate_limited":
					outcomes <- outcome{limited: true}
				case m.Type == "error":
					t.Errorf("tab %d: unexpected error %+v", i, m)
				}
			}
		}()
	}
	sent, limited := 0, 0
	timeout := time.After(20 * time.Second)
	var settle <-chan time.Time
collect:
	for {
		select {
		case o := <-outcomes:
			if o.chat {
				sent++
			} else {
				limited++
			}
			if sent+limited == n {
				settle = time.After(500 * time.Millisecond)
			}
		case <-settle:
			break collect
		case <-timeout:
			break collect
		}
	}
	cancel()
	if sent != burst || limited != n-burst {
		t.Fatalf("sent %d, rate limited %d; want %d and %d", sent, limited, burst, n-burst)
	}
	// Another user still chats.
	_, tk2 := e.a.NewUser("calm")
	c2 := e.dial(r.ID, tk2.AccessToken)
	next(t, c2, "pinned")
	send(t, c2, chat("my turn"))
	if m := next(t, c2, "chat"); m.Text != "my turn" {
		t.Fatalf("other user: %+v", m)
	}
}

// testViewerCountPushed: K viewers get {"type":"viewers","count":K} pushed, and the room's
// viewer_count says K; after they leave, the count drops.
func testViewerCountPushed(t *testing.T, e *env) {
	r := e.room("Counting")
	e.notify("on_publish", testSecret, publishForm(r.StreamKey, "7")).Want(t, http.StatusFound, "")
	const k = 4
	conns := make([]*websocket.Conn, k)
	for i := range conns {
		conns[i] = e.dial(r.ID, "")
	}
	for i, c := range conns {
		deadline := time.Now().Add(20 * time.Second)
		for {
			m := next(t, c, "viewers")
			if m.Count == k && m.RoomID == r.ID {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("viewer %d: last count %d, want %d", i, m.Count, k)
			}
		}
	}
	if got := e.get(r.ID).ViewerCount; got != k {
		t.Fatalf("viewer_count %d, want %d", got, k)
	}
	for _, c := range conns[1:] {
		c.Close(websocket.StatusNormalClosure, "")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := next(t, conns[0], "viewers"); m.Count == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the count did not drop to 1")
		}
	}
}

// TestViewerPushOneReplicaPerTick: two replicas on one database and Redis, a viewer on
// each. Both see the count of both (presence across replicas), and the room gets one push
// per interval, not one per replica: over a window the pushes a viewer receives stay under
// what a single pusher can send (the per-room SET NX expires at 0.9 of the interval).
func TestViewerPushOneReplicaPerTick(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg2 := e.a.Cfg
	cfg2.App.NodeID = e.a.Cfg.App.NodeID%200 + 1 + 50             // another node: IDs must not collide
	cfg2.Search.Bleve.Path = filepath.Join(t.TempDir(), "search") // one bleve index per process
	b := apptest.Start(t, cfg2, apptest.Options{})
	r := e.room("Two replicas")
	e.notify("on_publish", testSecret, publishForm(r.StreamKey, "9")).Want(t, http.StatusFound, "")

	ca := e.dial(r.ID, "")
	eb := &env{t: t, a: b}
	cb := eb.dial(r.ID, "")
	for _, c := range []*websocket.Conn{ca, cb} {
		deadline := time.Now().Add(20 * time.Second)
		for next(t, c, "viewers").Count != 2 {
			if time.Now().After(deadline) {
				t.Fatal("the viewers across both replicas were not counted")
			}
		}
	}
	interval := e.liveConfig().ViewersInterval
	window := 15 * interval
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	got := 0
	for {
		_, data, err := ca.Read(ctx)
		if err != nil {
			break
		}
		var m wsMsg
		_ = json.Unmarshal(data, &m)
		if m.Type == "viewers" {
			got++
		}
	}
	if most := int(window/(interval*9/10)) + 2; got > most || got == 0 {
		t.Fatalf("%d viewer pushes in %s at %s intervals: want 1..%d (one pusher per tick)", got, window, interval, most)
	}
	t.Logf("%d viewer pushes in %s with two replicas", got, window)
}

package live_test

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/live"
)

// testRTMPNotifications: the shared secret guards every callback; on_publish allows exactly
// a scheduled room's key (answering the relay to the HLS application as room-<id>);
// on_update and on_publish_done act only for the session that published.
func testRTMPNotifications(t *testing.T, e *env) {
	r := e.room("Notify")
	form := publishForm(r.StreamKey, "11")

	for _, call := range []string{"on_publish", "on_update", "on_publish_done"} {
		e.notify(call, "", form).Want(t, http.StatusForbidden, "live.rtmp_forbidden")
		e.notify(call, "wrong-"+testSecret, form).Want(t, http.StatusForbidden, "live.rtmp_forbidden")
		e.notify(call, testSecret[:len(testSecret)-1], form).Want(t, http.StatusForbidden, "live.rtmp_forbidden")
	}
	for _, bad := range []url.Values{
		publishForm("lk_"+strings.Repeat("a", 32), "11"), // unknown key
		publishForm("", "11"),
		publishForm(strings.Repeat("x", 5000), "11"),
		publishForm("room-"+r.ID, "11"), // the public name is not a key
		func() url.Values { f := publishForm(r.StreamKey, "11"); f.Set("app", "hls"); return f }(),
	} {
		e.notify("on_publish", testSecret, bad).Want(t, http.StatusForbidden, "live.publish_refused")
	}
	if got := e.get(r.ID).Status; got != "scheduled" {
		t.Fatalf("after refused publishes the room is %s", got)
	}

	relay := func(app, name string) url.Values { return url.Values{"app": {app}, "name": {name}, "clientid": {"3"}} }
	e.notify("on_relay", testSecret, relay("hls", "room-"+r.ID)).Want(t, http.StatusForbidden, "live.publish_refused")
	res := e.notify("on_publish", testSecret, form).Want(t, http.StatusFound, "")
	// The HLS application takes the live room's relay, and nothing else.
	e.notify("on_relay", "", relay("hls", "room-"+r.ID)).Want(t, http.StatusForbidden, "live.rtmp_forbidden")
	e.notify("on_relay", testSecret, relay("hls", "room-"+r.ID)).Want(t, http.StatusOK, "")
	for _, bad := range []url.Values{relay("live", "room-"+r.ID), relay("hls", "room-0"+r.ID), relay("hls", "room-1"),
		relay("hls", r.StreamKey), relay("hls", "room-"), relay("hls", "room-+"+r.ID)} {
		e.notify("on_relay", testSecret, bad).Want(t, http.StatusForbidden, "live.publish_refused")
	}
	if loc, want := res.Header.Get("Location"), e.liveConfig().HLSPushURL+"/room-"+r.ID; loc != want {
		t.Fatalf("Location %q, want %q", loc, want)
	}
	if got := e.get(r.ID).Status; got != "live" {
		t.Fatalf("after on_publish the room is %s", got)
	}
	// The owner's session keeps streaming; another session (same key) is refused and cut.
	e.notify("on_update", testSecret, form).Want(t, http.StatusOK, "")
	other := publishForm(r.StreamKey, "12")
	e.notify("on_publish", testSecret, other).Want(t, http.StatusForbidden, "live.publish_refused")
	e.notify("on_update", testSecret, other).Want(t, http.StatusForbidden, "live.publish_refused")
	// The refused session's done changes nothing.
	e.notify("on_publish_done", testSecret, other).Want(t, http.StatusOK, "")
	if got := e.get(r.ID).Status; got != "live" {
		t.Fatalf("another session's publish_done made the room %s", got)
	}
	e.notify("on_publish_done", testSecret, form).Want(t, http.StatusOK, "")
	if got := e.get(r.ID).Status; got != "ended" {
		t.Fatalf("after publish_done the room is %s", got)
	}
	e.notify("on_update", testSecret, form).Want(t, http.StatusForbidden, "live.publish_refused")
	e.notify("on_publish", testSecret, form).Want(t, http.StatusForbidden, "live.publish_refused")
	e.notify("on_relay", testSecret, relay("hls", "room-"+r.ID)).Want(t, http.StatusForbidden, "live.publish_refused")

	// The decisions are counted for Prometheus.
	metrics := string(e.a.Req(http.MethodGet, "/metrics", nil).Want(t, http.StatusOK, "").Body)
	for _, want := range []string{`mall_live_publish_decisions_total{result="allowed"}`,
		`mall_live_publish_decisions_total{result="refused"}`, `mall_live_publish_decisions_total{result="cut"}`,
		`mall_live_room_events_total{event="live.room_started"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}

	// Events through the outbox, in order.
	for typ, n := range map[string]int{live.EventRoomCreated: 1, live.EventRoomStarted: 1, live.EventRoomEnded: 1} {
		evs := apptest.Events[live.RoomChanged](e.a, live.Topic, typ, r.ID)
		if len(evs) != n {
			t.Fatalf("%s events: %d, want %d", typ, len(evs), n)
		}
	}
	ended := apptest.Events[live.RoomChanged](e.a, live.Topic, live.EventRoomEnded, r.ID)[0]
	if ended.Status != live.StatusEnded || strconv.FormatInt(ended.RoomID, 10) != r.ID || ended.MerchantID != e.merchant {
		t.Fatalf("room_ended event: %+v", ended)
	}
}

// testConcurrentPublishOneWins: N encoders publish with the same key at once; exactly one
// is allowed, the room records that session, and one room_started event is written.
func testConcurrentPublishOneWins(t *testing.T, e *env) {
	r := e.room("Race")
	const n = 24
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.a.Do(http.MethodPost, "/internal/rtmp/on_publish?secret="+testSecret,
				publishForm(r.StreamKey, strconv.Itoa(100+i)).Encode(), "Content-Type", "application/x-www-form-urlencoded")
			if err != nil {
				t.Error(err)
				return
			}
			codes[i] = res.Status
		}()
	}
	wg.Wait()
	won, refused, winner := 0, 0, -1
	for i, c := range codes {
		switch c {
		case http.StatusFound:
			won++
			winner = i
		case http.StatusForbidden:
			refused++
		default:
			t.Fatalf("publisher %d: status %d", i, c)
		}
	}
	if won != 1 || refused != n-1 {
		t.Fatalf("%d allowed, %d refused; want 1 and %d", won, refused, n-1)
	}
	if evs := apptest.Events[live.RoomChanged](e.a, live.Topic, live.EventRoomStarted, r.ID); len(evs) != 1 {
		t.Fatalf("%d room_started events", len(evs))
	}
	// Only the winner's session may keep the stream.
	for i := range n {
		want := http.StatusForbidden
		if i == winner {
			want = http.StatusOK
		}
		if got := e.notify("on_update", testSecret, publishForm(r.StreamKey, strconv.Itoa(100+i))); got.Status != want {
			t.Fatalf("on_update of publisher %d: %s, want %d", i, got, want)
		}
	}
}

// testStreamKeyStoredHashedAndRotated: the database holds only the key's SHA-256; rotation
// shows a new key once, the old one stops working, and a live room's key cannot rotate.
func testStreamKeyStoredHashedAndRotated(t *testing.T, e *env) {
	r := e.room("Keys")
	if len(r.StreamKey) < 3+26 { // "lk_" + 160 bits in base32
		t.Fatalf("stream key %q is too short", r.StreamKey)
	}
	var hash []byte
	if err := e.a.Cluster.Main().GetContext(context.Background(), &hash, `SELECT key_hash FROM live_rooms WHERE id = ?`, r.ID); err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256([]byte(r.StreamKey)); string(hash) != string(want[:]) {
		t.Fatal("key_hash is not the key's SHA-256")
	}
	var dump string
	if err := e.a.Cluster.Main().GetContext(context.Background(), &dump,
		`SELECT CONCAT_WS('|', id, merchant_id, title, status, publisher, HEX(key_hash)) FROM live_rooms WHERE id = ?`, r.ID); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(dump), strings.ToLower(r.StreamKey[3:])) {
		t.Fatal("the stream key is stored in clear")
	}
	// Reads never show the key.
	for _, path := range []string{"/api/v1/live-rooms/" + r.ID, "/api/v1/merchant/live-rooms/" + r.ID, "/api/v1/merchant/live-rooms"} {
		if got := e.a.Req(http.MethodGet, path, nil, apptest.Bearer(e.owner)...); strings.Contains(string(got.Body), r.StreamKey) {
			t.Fatalf("%s shows the stream key", path)
		}
	}

	var rot roomBody
	e.a.Req(http.MethodPost, "/api/v1/merchant/live-rooms/"+r.ID+"/stream-key", nil, apptest.Bearer(e.owner)...).
		Want(t, http.StatusOK, "").Decode(t, &rot)
	if rot.StreamKey == "" || rot.StreamKey == r.StreamKey || rot.ID != r.ID {
		t.Fatalf("rotated: %+v", rot)
	}
	e.notify("on_publish", testSecret, publishForm(r.StreamKey, "1")).Want(t, http.StatusForbidden, "live.publish_refused")
	e.notify("on_publish", testSecret, publishForm(rot.StreamKey, "1")).Want(t, http.StatusFound, "")
	e.a.Req(http.MethodPost, "/api/v1/merchant/live-rooms/"+r.ID+"/stream-key", nil, apptest.Bearer(e.owner)...).
		Want(t, http.StatusConflict, "live.status_conflict")
}

// testPinRules: only an on_sale product of the room's own merchant can be pinned.
func testPinRules(t *testing.T, e *env) {
	r := e.room("Pins")
	pin := func(productID string) apptest.Response {
		return e.a.Req(http.MethodPost, "/api/v1/merchant/live-rooms/"+r.ID+"/pin", map[string]any{"product_id": productID},
			apptest.Bearer(e.owner)...)
	}
	draft := e.product(e.owner, false)
	pin(draft).Want(t, http.StatusUnprocessableEntity, "live.product_not_on_sale")
	// Another merchant's on_sale product does not exist for this merchant (404, as every
	// other merchant-scoped lookup answers).
	_, _, otherOwner := e.a.Merchant(e.admin)
	foreign := e.product(otherOwner, true)
	pin(foreign).Want(t, http.StatusNotFound, "catalog.product_not_found")
	pin("999999").Want(t, http.StatusNotFound, "catalog.product_not_found")
	pin("0").Want(t, http.StatusBadRequest, "")
	e.a.Req(http.MethodPost, "/api/v1/merchant/live-rooms/"+r.ID+"/pin", []byte(`{"product_id":"1","x":1}`),
		apptest.Bearer(e.owner)...).Want(t, http.StatusBadRequest, "")

	mine := e.product(e.owner, true)
	var got roomBody
	pin(mine).Want(t, http.StatusOK, "").Decode(t, &got)
	if got.PinnedProductID == nil || *got.PinnedProductID != mine {
		t.Fatalf("pinned: %+v", got)
	}
	if pub := e.get(r.ID); pub.PinnedProductID == nil || *pub.PinnedProductID != mine {
		t.Fatalf("public room: %+v", pub)
	}
	// Unpin twice is fine; an ended room takes no pins.
	e.a.Req(http.MethodDelete, "/api/v1/merchant/live-rooms/"+r.ID+"/pin", nil, apptest.Bearer(e.owner)...).Want(t, http.StatusOK, "")
	e.a.Req(http.MethodDelete, "/api/v1/merchant/live-rooms/"+r.ID+"/pin", nil, apptest.Bearer(e.owner)...).Want(t, http.StatusOK, "")
	e.a.Req(http.MethodPost, "/api/v1/merchant/live-rooms/"+r.ID+"/end", nil, apptest.Bearer(e.owner)...).Want(t, http.StatusOK, "")
	pin(mine).Want(t, http.StatusConflict, "live.room_closed")
	if evs := apptest.Events[live.RoomChanged](e.a, live.Topic, live.EventProductPinned, r.ID); len(evs) != 1 || strconv.FormatInt(evs[0].PinnedProductID, 10) != mine {
		t.Fatalf("pinned events: %+v", evs)
	}
}

// testRoomAccessAndValidation: who may call what, and bad input answers 4xx problems.
func testRoomAccessAndValidation(t *testing.T, e *env) {
	_, buyer := e.a.NewUser("buyer")
	create := "/api/v1/merchant/live-rooms"
	e.a.Req(http.MethodPost, create, map[string]any{"title": "x"}).Want(t, http.StatusUnauthorized, "")
	e.a.Req(http.MethodPost, create, map[string]any{"title": "x"}, apptest.Bearer(buyer.AccessToken)...).Want(t, http.StatusForbidden, "")
	for _, body := range []any{
		map[string]any{},
		map[string]any{"title": ""},
		map[string]any{"title": "   "},
		map[string]any{"title": strings.Repeat("长", live.MaxTitleRunes+1)},
		map[string]any{"title": "a\u0000b"},
		map[string]any{"title": "ok", "status": "live"},
		map[string]any{"title": "ok", "scheduled_at": "tomorrow"},
		map[string]any{"title": "ok", "scheduled_at": "2001-01-01T00:00:00Z"},
		map[string]any{"title": "ok", "scheduled_at": time.Now().AddDate(2, 0, 0).UTC().Format(time.RFC3339)},
		[]byte(`{"title":`),
	} {
		got := e.a.Req(http.MethodPost, create, body, apptest.Bearer(e.owner)...)
		if got.Status != http.StatusBadRequest {
			t.Errorf("create %v: %s, want 400", body, got)
		}
	}
	e.a.Req(http.MethodPost, create, "title=x", append(apptest.Bearer(e.owner), "Content-Type", "text/plain")...).
		Want(t, http.StatusUnsupportedMediaType, "")

	r := e.room("Access")
	e.a.Req(http.MethodPost, "/api/v1/admin/live-rooms/"+r.ID+"/ban", nil, apptest.Bearer(e.owner)...).Want(t, http.StatusForbidden, "")
	e.a.Req(http.MethodPost, "/api/v1/admin/live-rooms/999/ban", nil, apptest.Bearer(e.admin)...).Want(t, http.StatusNotFound, "live.room_not_found")
	e.a.Req(http.MethodGet, "/api/v1/live-rooms/12x", nil).Want(t, http.StatusBadRequest, "")
	e.a.Req(http.MethodGet, "/api/v1/live-rooms?status=paused", nil).Want(t, http.StatusBadRequest, "")
	e.a.Req(http.MethodGet, "/api/v1/live-rooms?cursor=AAAA", nil).Want(t, http.StatusBadRequest, "")
	e.a.Req(http.MethodGet, "/api/v1/live-rooms?limit=0", nil).Want(t, http.StatusBadRequest, "")
	// A banned room cannot be ended by its merchant or restarted.
	e.a.Req(http.MethodPost, "/api/v1/admin/live-rooms/"+r.ID+"/ban", nil, apptest.Bearer(e.admin)...).Want(t, http.StatusOK, "")
	e.a.Req(http.MethodPost, "/api/v1/admin/live-rooms/"+r.ID+"/ban", nil, apptest.Bearer(e.admin)...).Want(t, http.StatusOK, "")
	e.a.Req(http.MethodPost, "/api/v1/merchant/live-rooms/"+r.ID+"/end", nil, apptest.Bearer(e.owner)...).Want(t, http.StatusConflict, "live.status_conflict")
	if evs := apptest.Events[live.RoomChanged](e.a, live.Topic, live.EventRoomBanned, r.ID); len(evs) != 1 {
		t.Fatalf("%d banned events for two bans", len(evs))
	}
}

// TestRoomLists: ?status= filters, banned rooms stay hidden from the public, merchants see
// only their own rooms, and pages chain by cursor.
func TestRoomLists(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var ids []string
	for i := range 5 {
		ids = append(ids, e.room("Room "+strconv.Itoa(i)).ID)
	}
	// ids[4] live, ids[3] banned.
	var key roomBody
	e.a.Req(http.MethodPost, "/api/v1/merchant/live-rooms/"+ids[4]+"/stream-key", nil, apptest.Bearer(e.owner)...).Decode(t, &key)
	e.notify("on_publish", testSecret, publishForm(key.StreamKey, "1")).Want(t, http.StatusFound, "")
	e.a.Req(http.MethodPost, "/api/v1/admin/live-rooms/"+ids[3]+"/ban", nil, apptest.Bearer(e.admin)...).Want(t, http.StatusOK, "")
	_, _, other := e.a.Merchant(e.admin)
	var foreign roomBody
	e.a.Req(http.MethodPost, "/api/v1/merchant/live-rooms", map[string]any{"title": "Theirs"}, apptest.Bearer(other)...).Decode(t, &foreign)

	type list struct {
		Items      []roomBody `json:"items"`
		NextCursor string     `json:"next_cursor"`
	}
	var l list
	e.a.Req(http.MethodGet, "/api/v1/live-rooms?status=live", nil).Want(t, http.StatusOK, "").Decode(t, &l)
	if len(l.Items) != 1 || l.Items[0].ID != ids[4] || l.Items[0].Status != "live" {
		t.Fatalf("live rooms: %+v", l)
	}
	e.a.Req(http.MethodGet, "/api/v1/live-rooms?status=banned", nil).Want(t, http.StatusOK, "").Decode(t, &l)
	if len(l.Items) != 0 {
		t.Fatalf("banned rooms are public: %+v", l)
	}
	// Public, all statuses, two per page: newest first, no banned room.
	var seen []string
	cursor := ""
	for page := 0; page < 10; page++ {
		path := "/api/v1/live-rooms?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		l = list{}
		e.a.Req(http.MethodGet, path, nil).Want(t, http.StatusOK, "").Decode(t, &l)
		for _, it := range l.Items {
			seen = append(seen, it.ID)
		}
		if cursor = l.NextCursor; cursor == "" {
			break
		}
	}
	want := []string{foreign.ID, ids[4], ids[2], ids[1], ids[0]}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Fatalf("public pages: %v, want %v", seen, want)
	}
	e.a.Req(http.MethodGet, "/api/v1/merchant/live-rooms?limit=100", nil, apptest.Bearer(e.owner)...).Want(t, http.StatusOK, "").Decode(t, &l)
	if len(l.Items) != 5 {
		t.Fatalf("merchant sees %d rooms, want its 5", len(l.Items))
	}
	for _, it := range l.Items {
		if it.ID == foreign.ID || it.MerchantID != strconv.FormatInt(e.merchant, 10) {
			t.Fatalf("merchant list shows %+v", it)
		}
	}
	e.a.Req(http.MethodGet, "/api/v1/merchant/live-rooms?status=banned", nil, apptest.Bearer(e.owner)...).Decode(t, &l)
	if len(l.Items) != 1 || l.Items[0].ID != ids[3] {
		t.Fatalf("merchant's banned rooms: %+v", l)
	}
}

// TestSuspendedMerchantGoesDark: a suspended merchant's live stream is cut at the next
// on_update, its other rooms cannot publish, and its rooms leave the public API.
func TestSuspendedMerchantGoesDark(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	liveRoom, waiting := e.room("On air"), e.room("Later")
	form := publishForm(liveRoom.StreamKey, "5")
	e.notify("on_publish", testSecret, form).Want(t, http.StatusFound, "")
	e.a.Req(http.MethodPost, "/api/v1/admin/merchants/"+strconv.FormatInt(e.merchant, 10)+"/suspend",
		map[string]any{"reason": "fraud"}, apptest.Bearer(e.admin)...).Want(t, http.StatusOK, "")
	// The merchant module's status cache bounds how soon this replica sees it.
	waitFor(t, 30*time.Second, "on_update to cut the suspended merchant's stream", func() bool {
		return e.notify("on_update", testSecret, form).Status == http.StatusForbidden
	})
	e.notify("on_publish", testSecret, publishForm(waiting.StreamKey, "6")).Want(t, http.StatusForbidden, "live.publish_refused")
	e.a.Req(http.MethodGet, "/api/v1/live-rooms/"+liveRoom.ID, nil).Want(t, http.StatusNotFound, "live.room_not_found")
	var l struct {
		Items []roomBody `json:"items"`
	}
	e.a.Req(http.MethodGet, "/api/v1/live-rooms", nil).Want(t, http.StatusOK, "").Decode(t, &l)
	if len(l.Items) != 0 {
		t.Fatalf("a suspended merchant's rooms are listed: %+v", l.Items)
	}
}

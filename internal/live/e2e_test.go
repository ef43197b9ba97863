package live_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/app/apptest"
)

// fetch GETs url and returns the status and body (0 on a transport error).
func fetch(url string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return 0, ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, string(b)
}

// TestLiveStreamThroughNginxRTMP is issue 6's first "done when": a real nginx-rtmp and a
// real ffmpeg. The right key makes the room live and its HLS playlist is served at the
// hls_url the API gives (named after the room, not the key); a wrong key is refused by
// nginx; a second encoder with the right key is refused while the first streams; stopping
// the encoder ends the room; an ended room's key publishes no more.
func TestLiveStreamThroughNginxRTMP(t *testing.T) {
	t.Parallel()
	in := newIngest(t)
	e := newEnvWith(t, testConfig(t, in.RTMPAddr, in.HTTPAddr))
	in.start(t, e.a.URL, testSecret, "2s")

	r := e.room("Spring sale")
	if r.Status != "scheduled" || !strings.HasPrefix(r.StreamKey, "lk_") || r.RTMPURL != in.RTMPBase() {
		t.Fatalf("created room: %+v", r)
	}
	if want := "http://" + in.HTTPAddr + "/hls/room-" + r.ID + ".m3u8"; r.HLSURL != want || strings.Contains(r.HLSURL, r.StreamKey) {
		t.Fatalf("hls_url %q, want %q (never the key)", r.HLSURL, want)
	}

	// A wrong key: nginx asks the app, gets 403 and drops the encoder; the room stays.
	wrong := publish(t, in.RTMPBase()+"/lk_"+strings.Repeat("a", 32), 30)
	if !wrong.wait(30 * time.Second) {
		t.Fatalf("ffmpeg with a wrong key still publishing after 30s:\n%s", wrong.out)
	}
	if wrong.err == nil {
		t.Fatalf("ffmpeg with a wrong key exited 0:\n%s", wrong.out)
	}
	if got := e.get(r.ID).Status; got != "scheduled" {
		t.Fatalf("after a wrong key the room is %s", got)
	}

	// Publishing straight to the HLS application under the room's public name (from an
	// address it trusts) is refused: the room is not live.
	direct := publish(t, "rtmp://"+in.RTMPAddr+"/hls/room-"+r.ID, 30)
	if !direct.wait(30*time.Second) || direct.err == nil {
		t.Fatalf("a direct publish to the HLS application was not refused:\n%s", direct.out)
	}

	// The right key.
	ff := publish(t, r.RTMPURL+"/"+r.StreamKey, 120)
	waitFor(t, 30*time.Second, "the room to go live", func() bool {
		if !ff.running() {
			t.Fatalf("ffmpeg exited: %v\n%s", ff.err, ff.out)
		}
		return e.get(r.ID).Status == "live"
	})
	var playlist string
	waitFor(t, 45*time.Second, "the HLS playlist at "+r.HLSURL, func() bool {
		code, body := fetch(r.HLSURL)
		playlist = body
		return code == http.StatusOK && strings.HasPrefix(body, "#EXTM3U") && strings.Contains(body, ".ts")
	})
	// The segments the playlist names are served too.
	var seg string
	for _, l := range strings.Split(playlist, "\n") {
		if strings.HasSuffix(strings.TrimSpace(l), ".ts") {
			seg = strings.TrimSpace(l)
		}
	}
	if strings.Contains(playlist, r.StreamKey) {
		t.Fatalf("the playlist reveals the stream key:\n%s", playlist)
	}
	if code, body := fetch("http://" + in.HTTPAddr + "/hls/" + seg); code != http.StatusOK || len(body) == 0 {
		t.Fatalf("segment %s: %d (%d bytes)", seg, code, len(body))
	}
	// Nothing is ever served under the key's name.
	if code, _ := fetch("http://" + in.HTTPAddr + "/hls/" + r.StreamKey + ".m3u8"); code != http.StatusNotFound {
		t.Fatalf("playlist under the key's name: %d", code)
	}

	// A second encoder with the same key is refused; the first keeps streaming.
	second := publish(t, r.RTMPURL+"/"+r.StreamKey, 30)
	if !second.wait(30 * time.Second) {
		t.Fatalf("a second publisher with the same key is still publishing:\n%s", second.out)
	}
	time.Sleep(2500 * time.Millisecond) // one on_update interval: the first must survive it
	if !ff.running() || e.get(r.ID).Status != "live" {
		t.Fatalf("the first publisher was disturbed by the refused second one (running %v, room %s):\n%s",
			ff.running(), e.get(r.ID).Status, ff.out)
	}

	// Stop: nginx posts on_publish_done and the room ends.
	ff.stop(t)
	waitFor(t, 30*time.Second, "the room to end", func() bool { return e.get(r.ID).Status == "ended" })

	// An ended room's key is refused.
	again := publish(t, r.RTMPURL+"/"+r.StreamKey, 30)
	if !again.wait(30*time.Second) || again.err == nil {
		t.Fatalf("publishing to an ended room was not refused:\n%s", again.out)
	}
	if got := e.get(r.ID).Status; got != "ended" {
		t.Fatalf("after a refused publish the room is %s", got)
	}
}

// TestBanCutsRunningStream: the platform bans a live room; nginx's next on_update gets 403
// and drops the encoder, and the room stays banned (publish_done does not "end" it).
func TestBanCutsRunningStream(t *testing.T) {
	t.Parallel()
	in := newIngest(t)
	e := newEnvWith(t, testConfig(t, in.RTMPAddr, in.HTTPAddr))
	in.start(t, e.a.URL, testSecret, "1s")

	r := e.room("Flash deal")
	ff := publish(t, r.RTMPURL+"/"+r.StreamKey, 120)
	waitFor(t, 30*time.Second, "the room to go live", func() bool { return e.get(r.ID).Status == "live" })

	e.a.Req(http.MethodPost, "/api/v1/admin/live-rooms/"+r.ID+"/ban", nil, apptest.Bearer(e.admin)...).
		Want(t, http.StatusOK, "")
	if !ff.wait(30 * time.Second) {
		t.Fatalf("the banned room's encoder is still publishing after 30s:\n%s", ff.out)
	}
	// Banned rooms are hidden from the public and refuse publishing.
	e.a.Req(http.MethodGet, "/api/v1/live-rooms/"+r.ID, nil).Want(t, http.StatusNotFound, "live.room_not_found")
	var m roomBody
	e.a.Req(http.MethodGet, "/api/v1/merchant/live-rooms/"+r.ID, nil, apptest.Bearer(e.owner)...).
		Want(t, http.StatusOK, "").Decode(t, &m)
	if m.Status != "banned" {
		t.Fatalf("after the ban and publish_done the room is %s", m.Status)
	}
	again := publish(t, r.RTMPURL+"/"+r.StreamKey, 30)
	if !again.wait(30*time.Second) || again.err == nil {
		t.Fatalf("publishing to a banned room was not refused:\n%s", again.out)
	}
}

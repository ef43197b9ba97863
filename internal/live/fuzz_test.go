package live_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/live"
	"github.com/mallhq/mall/internal/platform/errs"
)

// Fuzz targets for every parser of outside input in the module: chat text (sanitizer),
// client WebSocket frames, and nginx-rtmp's notification forms through the real server.
// Seeds live in testdata/fuzz/<Target>/.

func TestSanitizeChat(t *testing.T) {
	tests := []struct {
		give, want, err string
	}{
		{give: "hello", want: "hello"},
		{give: "  <b>bold</b>  ", want: "bold"},
		{give: "<script>alert(1)</script>hi", want: "hi"},
		{give: `<img src=x onerror="alert(1)">`, err: "live.chat_empty"},
		{give: "a < b & c", want: "a &lt; b &amp; c"},
		{give: "line1\nline2\ttab", want: "line1 line2 tab"},
		{give: "rtl\u202eevil", want: "rtlevil"},
		{give: "你好，直播间！", want: "你好，直播间！"},
		{give: strings.Repeat("好", 200), want: strings.Repeat("好", 200)},
		{give: strings.Repeat("好", 201), err: "live.chat_too_long"},
		{give: "\xff\xfe", err: "live.chat_invalid"},
		{give: "   ", err: "live.chat_empty"},
	}
	for _, tt := range tests {
		got, err := live.SanitizeChat(tt.give, 200)
		if tt.err != "" {
			if e, ok := errs.As(err); !ok || e.Code != tt.err {
				t.Errorf("SanitizeChat(%q) = %q, %v; want %s", tt.give, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("SanitizeChat(%q) = %q, %v; want %q", tt.give, got, err, tt.want)
		}
	}
}

func TestDisplayName(t *testing.T) {
	tests := []struct{ nick, email, want string }{
		{"Li Lei", "lilei@example.com", "Li Lei"},
		{"lilei", "lilei@example.com", "l***i"},
		{"LiLei", "lilei@example.com", "L***i"},
		{"ab", "ab@example.com", "a***"},
		{"<b>Boss</b>", "x@example.com", "Boss"},
		{"小明", "xiaoming@example.com", "小明"},
	}
	for _, tt := range tests {
		if got := live.DisplayName(tt.nick, tt.email); got != tt.want {
			t.Errorf("DisplayName(%q, %q) = %q, want %q", tt.nick, tt.email, got, tt.want)
		}
	}
}

func FuzzSanitizeChat(f *testing.F) {
	for _, s := range []string{"hi", "<b>x</b>", "<script>x</script>", "<a href=\"javascript:alert(1)\">x</a>",
		"a<b", "&lt;script&gt;", "\u202e", "<<script>script>alert(1)<</script>/script>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		out, err := live.SanitizeChat(text, 200)
		if err != nil {
			if e, ok := errs.As(err); !ok || e.Kind != errs.Invalid || !strings.HasPrefix(e.Code, "live.chat_") {
				t.Fatalf("uncoded error for %q: %v", text, err)
			}
			return
		}
		if out == "" || !utf8.ValidString(out) || strings.ContainsAny(out, "<>\"\x00") {
			t.Fatalf("SanitizeChat(%q) = %q: empty, invalid or markup left", text, out)
		}
		if strings.TrimSpace(out) != out {
			t.Fatalf("SanitizeChat(%q) = %q: not trimmed", text, out)
		}
	})
}

func FuzzParseClientMessage(f *testing.F) {
	for _, s := range []string{`{"type":"chat","text":"hi"}`, `{"type":"chat"}`, `{"type":"x"}`, `[]`, `null`,
		`{"type":"chat","text":"a"}{"type":"chat","text":"b"}`, `{"type":"chat","text":1}`, `{"type":"chat","text":"x","y":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		text, err := live.ParseClientMessage(data)
		if err != nil {
			if !errors.Is(err, live.ErrChatInvalid) {
				t.Fatalf("ParseClientMessage(%q): %v, want live.chat_invalid", data, err)
			}
			return
		}
		var m struct{ Type, Text string }
		if json.Unmarshal(data, &m) != nil || m.Type != "chat" || m.Text != text {
			t.Fatalf("ParseClientMessage(%q) = %q, not a chat message's text", data, text)
		}
	})
}

// FuzzRTMPNotify posts arbitrary form bodies to on_publish, on_update and on_publish_done
// with the right secret: nginx must get 302 (a real key only), 200 or a 403/4xx problem,
// never a 5xx or a panic. "$KEY" in a body is replaced by a real scheduled room's key.
func FuzzRTMPNotify(f *testing.F) {
	e := newEnv(f)
	r := e.room("Fuzz")
	calls := []string{"on_publish", "on_update", "on_publish_done", "on_relay"}
	f.Add(uint8(0), []byte("app=live&name=$KEY&clientid=1&addr=127.0.0.1"))
	f.Fuzz(func(t *testing.T, call uint8, body []byte) {
		body = bytes.ReplaceAll(body, []byte("$KEY"), []byte(r.StreamKey))
		req := httptest.NewRequest(http.MethodPost, "/internal/rtmp/"+calls[int(call)%len(calls)]+"?secret="+testSecret,
			bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		e.a.Server.Handler().ServeHTTP(rec, req)
		apptest.CheckOutcome(t, rec, body, http.StatusOK, http.StatusFound)
	})
}

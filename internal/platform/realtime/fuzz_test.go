package realtime

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// Parsers of outside input: the envelope and presence values read from Redis, and the
// handshake headers a client sends (Origin, Sec-WebSocket-Protocol, the token parameter).

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(encodeEnvelope(time.Unix(1700000000, 5), []byte(`{"type":"bid"}`)))
	f.Add("1 x")
	f.Add(" {}")
	f.Add("-5 {}")
	f.Add("99999999999999999999 {}")
	f.Fuzz(func(t *testing.T, s string) {
		at, payload, err := decodeEnvelope(s)
		if err != nil {
			return
		}
		if payload == "" || at.UnixNano() <= 0 {
			t.Fatalf("accepted %q as (%v, %q)", s, at, payload)
		}
		at2, payload2, err := decodeEnvelope(encodeEnvelope(at, []byte(payload)))
		if err != nil || !at2.Equal(at) || payload2 != payload {
			t.Fatalf("round trip of %q: (%v, %q, %v)", s, at2, payload2, err)
		}
	})
}

func FuzzDecodePresence(f *testing.F) {
	f.Add(encodePresence(3, time.UnixMilli(1700000000000)))
	f.Add("0:0")
	f.Add(":")
	f.Add("-1:5")
	f.Add("1:99999999999999999999")
	f.Fuzz(func(t *testing.T, s string) {
		n, exp, err := decodePresence(s)
		if err != nil {
			return
		}
		if n < 0 || exp.UnixMilli() < 0 {
			t.Fatalf("accepted %q as (%d, %v)", s, n, exp)
		}
		n2, exp2, err := decodePresence(encodePresence(int(n), exp))
		if err != nil || n2 != n || !exp2.Equal(exp) {
			t.Fatalf("round trip of %q: (%d, %v, %v)", s, n2, exp2, err)
		}
	})
}

func FuzzHandshake(f *testing.F) {
	f.Add("https://shop.example.com", "bearer, abc.def.ghi", "access_token=tok&x=1", "mall.example")
	f.Add("", "", "", "mall.example")
	f.Add("null", "bearer", "access_token=", "mall.example")
	f.Add("http://[::1", "chat, bearer,,", "access_token=a%20b;c", "x")
	f.Add("https://MALL.example", "BEARER ,  t  ", "%zz", "mall.example")
	patterns := []string{"shop.example.com", "https://*.mall.example"}
	f.Fuzz(func(t *testing.T, origin, protocol, rawQuery, host string) {
		req, err := http.NewRequest(http.MethodGet, "http://mall.example/ws/live/1", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		req.URL.RawQuery = rawQuery
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if protocol != "" {
			req.Header.Set("Sec-WebSocket-Protocol", protocol)
		}
		if originAllowed(req, patterns) && origin != "" {
			u, err := url.Parse(origin)
			if err != nil || u.Host == "" {
				t.Fatalf("origin %q allowed but unparsable", origin)
			}
		}
		tok, ok := protocolToken(req)
		if ok && (tok == "" || strings.Contains(tok, ",")) {
			t.Fatalf("protocol %q gave token %q", protocol, tok)
		}
		if _, err := identify(req); err != nil && !ok && !req.URL.Query().Has(TokenParam) {
			t.Fatalf("identify refused a request without a token: %v", err)
		}
		if liftToken(req) == nil {
			if a := req.Header.Get(echo.HeaderAuthorization); !strings.HasPrefix(a, "Bearer ") || len(a) == len("Bearer ") {
				t.Fatalf("lifted Authorization %q", a)
			}
		}
		if req.URL.Query().Has(TokenParam) {
			t.Fatalf("token left in the URL: %q", req.URL.RawQuery)
		}
	})
}

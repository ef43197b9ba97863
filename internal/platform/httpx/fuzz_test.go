package httpx_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/httpx"
	mlog "github.com/mallhq/mall/internal/platform/log"
)

// FuzzBind feeds arbitrary bodies and content types through the real middleware chain and
// Bind: the outcome must be 201 or a 4xx problem with a code, never a panic or a 5xx.
// Seeds live in testdata/fuzz/FuzzBind.
func FuzzBind(f *testing.F) {
	e, err := httpx.NewEcho(testHTTPConfig(), mlog.NewWriter(io.Discard, config.Log{Level: "error"}), nil)
	if err != nil {
		f.Fatal(err)
	}
	if err := httpx.Register(e, testRoutes()); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		req := httptest.NewRequest(http.MethodPost, "/things", bytes.NewReader(body))
		if contentType != "" {
			req.Header.Set(echo.HeaderContentType, contentType)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)

		switch {
		case rec.Code == http.StatusCreated:
			var out struct {
				OwnerID httpx.ID `json:"owner_id"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.OwnerID <= 0 {
				t.Fatalf("201 with bad body %q: %v", rec.Body.Bytes(), err)
			}
		case rec.Code >= 400 && rec.Code < 500:
			var p httpx.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Code == "" || p.Status != rec.Code {
				t.Fatalf("%d without a problem body: %q (%v)", rec.Code, rec.Body.Bytes(), err)
			}
			if ct := rec.Header().Get(echo.HeaderContentType); ct != httpx.ContentTypeProblem {
				t.Fatalf("%d with Content-Type %q", rec.Code, ct)
			}
		default:
			t.Fatalf("status %d for body %q, content type %q: %s", rec.Code, body, contentType, rec.Body.Bytes())
		}
	})
}

// FuzzIDCursor: a cursor decodes only when it is 8 bytes of a positive number, and a
// decoded one encodes back to the same bytes.
func FuzzIDCursor(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 7})
	f.Add([]byte{0xff, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte("x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := httpx.ParseIDCursor(b)
		if b == nil {
			return
		}
		ok := len(b) == 8 && int64(binary.BigEndian.Uint64(b)) > 0
		if (err == nil) != ok {
			t.Fatalf("httpx.ParseIDCursor(%x) = %d, %v", b, v, err)
		}
		if ok && !bytes.Equal(httpx.IDCursor(v), b) {
			t.Fatalf("round trip %x -> %d -> %x", b, v, httpx.IDCursor(v))
		}
	})
}

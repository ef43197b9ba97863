package order

import (
	"testing"
	"time"

	"github.com/mallhq/mall/internal/platform/httpx"
)

// FuzzCursor: a client-supplied cursor never panics, and every cursor the API issues
// reads back as the position it encodes.
func FuzzCursor(f *testing.F) {
	f.Add([]byte{}, int64(1), int64(1))
	f.Add(make([]byte, 16), time.Now().UnixMicro(), int64(123456789))
	f.Add([]byte("not a cursor at all"), int64(-1), int64(0))
	f.Fuzz(func(t *testing.T, raw []byte, us, id int64) {
		if c, err := parseCursor(raw); err == nil && c != nil && (c.ID <= 0 || c.CreatedAt.UnixMicro() <= 0) {
			t.Fatalf("accepted %x as %+v", raw, c)
		}
		if us <= 0 || id <= 0 {
			return
		}
		o := orderResponse{ID: httpx.ID(id), CreatedAt: time.UnixMicro(us).UTC()}
		c, err := parseCursor(orderCursor(o))
		if err != nil || c.ID != id || !c.CreatedAt.Equal(o.CreatedAt) {
			t.Fatalf("round trip of (%d, %d): %+v %v", us, id, c, err)
		}
	})
}

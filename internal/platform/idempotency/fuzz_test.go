package idempotency

import (
	"bytes"
	"net/http"
	"testing"
)

// FuzzValidKey: a key is accepted exactly when it is 1–255 bytes of printable ASCII.
func FuzzValidKey(f *testing.F) {
	for _, s := range []string{"", "k", "order-2026-11-28/1", "a\tb", "clé", string(bytes.Repeat([]byte("k"), 256)), "\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		printable := len(k) >= 1 && len(k) <= MaxKeyLen
		for i := 0; i < len(k); i++ {
			printable = printable && k[i] >= ' ' && k[i] <= '~'
		}
		if err := validKey(k); (err == nil) != printable {
			t.Fatalf("validKey(%q) = %v, printable ASCII of valid length: %v", k, err, printable)
		}
	})
}

// FuzzRequestHash: two requests hash alike only when method, request URI and body all
// match (the separators keep "a"+"bc" apart from "ab"+"c").
func FuzzRequestHash(f *testing.F) {
	f.Add("/api/v1/orders", []byte(`{"a":1}`), "/api/v1/orders", []byte(`{"a":2}`))
	f.Add("/api/v1/auctions/1/bids", []byte(`x`), "/api/v1/auctions/1/bid", []byte(`sx`))
	f.Fuzz(func(t *testing.T, path1 string, body1 []byte, path2 string, body2 []byte) {
		r1, err1 := newPost(path1)
		r2, err2 := newPost(path2)
		if err1 != nil || err2 != nil {
			return // not a request target a client could send
		}
		same := r1.URL.RequestURI() == r2.URL.RequestURI() && bytes.Equal(body1, body2)
		if got := bytes.Equal(requestHash(r1, body1), requestHash(r2, body2)); got != same {
			t.Fatalf("hash equal = %v for %q %q vs %q %q", got, r1.URL.RequestURI(), body1, r2.URL.RequestURI(), body2)
		}
	})
}

func newPost(target string) (*http.Request, error) {
	return http.NewRequest(http.MethodPost, "http://mall.test/"+target, nil)
}

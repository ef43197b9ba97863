package text_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mallhq/mall/internal/platform/text"
)

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"hello", 10, "hello"},
		{"hello", 5, "hello"},
		{"hello", 3, "hel"},
		{"保温杯", 7, "保温"}, // 3 bytes a character: 7 bytes hold two
		{"保温杯", 6, "保温"},
		{"保温杯", 2, ""},
		{"a保", 3, "a"},
		{"x", 0, ""},
	} {
		if got := text.Truncate(c.s, c.n); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}

func TestEllipsis(t *testing.T) {
	if got := text.Ellipsis("保温杯", 7); got != "保温…" {
		t.Errorf("Ellipsis = %q", got)
	}
	if got := text.Ellipsis("cup", 3); got != "cup" {
		t.Errorf("Ellipsis = %q", got)
	}
}

func FuzzTruncate(f *testing.F) {
	f.Add("保温杯 thermos", 5)
	f.Fuzz(func(t *testing.T, s string, n int) {
		got := text.Truncate(s, n)
		if len(got) > max(n, 0) || !strings.HasPrefix(s, got) {
			t.Fatalf("Truncate(%q, %d) = %q", s, n, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Truncate(%q, %d) = %q splits a character", s, n, got)
		}
	})
}

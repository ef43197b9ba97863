package payment

import (
	"regexp"
	"testing"
)

func TestFormatYuan(t *testing.T) {
	tests := []struct {
		give int64
		want string
	}{
		{0, "0.00"},
		{1, "0.01"},
		{10, "0.10"},
		{99, "0.99"},
		{100, "1.00"},
		{12345, "123.45"},
		{maxFen, "100000000.00"},
	}
	for _, tt := range tests {
		if got := FormatYuan(tt.give); got != tt.want {
			t.Errorf("FormatYuan(%d) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestParseYuan(t *testing.T) {
	tests := []struct {
		give string
		want int64 // -1: error
	}{
		{"0", 0},
		{"0.01", 1},
		{"0.1", 10},
		{"0.10", 10},
		{"1", 100},
		{"1.5", 150},
		{"123.45", 12345},
		{"100000000.00", maxFen},
		{"100000000.01", -1},
		{"9999999999", -1},
		{"99999999999999999999", -1},
		{"1.234", -1},
		{"-1", -1},
		{"+1", -1},
		{"1e3", -1},
		{"1E3", -1},
		{" 1", -1},
		{"1 ", -1},
		{"01", -1},
		{"00.01", -1},
		{"1.", -1},
		{".5", -1},
		{".", -1},
		{"", -1},
		{"1,00", -1},
		{"1..0", -1},
		{"1.0.0", -1},
		{"0x10", -1},
		{"NaN", -1},
		{"Infinity", -1},
		{"１", -1},
	}
	for _, tt := range tests {
		got, err := ParseYuan(tt.give)
		if tt.want < 0 {
			if err == nil {
				t.Errorf("ParseYuan(%q) = %d, want an error", tt.give, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseYuan(%q) = %d, %v, want %d", tt.give, got, err, tt.want)
		}
	}
}

var yuanSyntax = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.[0-9]{1,2})?$`)

func FuzzParseYuan(f *testing.F) {
	for _, s := range []string{"0.01", "123.45", "1", "1.234", "-1", "1e3", "100000000.00", "01", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fen, err := ParseYuan(s)
		if err != nil {
			return
		}
		if !yuanSyntax.MatchString(s) {
			t.Fatalf("ParseYuan accepted %q", s)
		}
		if fen < 0 || fen > maxFen {
			t.Fatalf("ParseYuan(%q) = %d out of range", s, fen)
		}
		back, err := ParseYuan(FormatYuan(fen))
		if err != nil || back != fen {
			t.Fatalf("round trip of %q: %d -> %q -> %d, %v", s, fen, FormatYuan(fen), back, err)
		}
	})
}

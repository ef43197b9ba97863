package ratelimit_test

import (
	"testing"

	"github.com/mallhq/mall/internal/platform/ratelimit"
)

func TestClientKey(t *testing.T) {
	tests := []struct{ give, want string }{
		{"203.0.113.9", "203.0.113.9"},
		{"::ffff:203.0.113.9", "203.0.113.9"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not an ip", "not an ip"},
	}
	for _, tt := range tests {
		if got := ratelimit.ClientKey(tt.give); got != tt.want {
			t.Errorf("ClientKey(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestTrusted(t *testing.T) {
	tr, err := ratelimit.ParseTrusted([]string{"10.1.0.0/16", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		give string
		want bool
	}{{"10.1.2.3", true}, {"::ffff:10.1.2.3", true}, {"10.2.0.1", false}, {"2001:db8:5::1", true}, {"x", false}} {
		if got := tr.Contains(tt.give); got != tt.want {
			t.Errorf("Contains(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
	if _, err := ratelimit.ParseTrusted([]string{"10.0.0.0"}); err == nil {
		t.Error("a bare address parsed as a CIDR")
	}
}

package ratelimit

import (
	"net/http"
	"testing"

	"github.com/mallhq/mall/internal/platform/config"
)

// TestFairKeys: authenticated callers have the user class's budget (not the per-IP one),
// IPv6 clients share their /64's budget, and trusted clients are not limited per IP.
func TestFairKeys(t *testing.T) {
	f := newFixture(t, sharedRedis(t), config.RateLimit{Enabled: true, DefaultPerMinute: 3, UserPerMinute: 6, AuthPerMinute: 3,
		TrustedClients: []string{"192.0.2.0/24"}})
	const path = "/api/v1/products/1"
	tests := []struct {
		name string
		who  caller
		want int // refusals out of 8
	}{
		{"a user has user_per_minute", caller{ip: "198.51.100.1", user: 7}, 2},
		{"an IPv6 host", caller{ip: "2001:db8:1:1::1"}, 5},
		{"another address in its /64 shares the budget", caller{ip: "2001:db8:1:1::2"}, 8},
		{"the next /64 has its own", caller{ip: "2001:db8:1:2::1"}, 5},
		{"a trusted client is not limited per IP", caller{ip: "192.0.2.10"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := f.burst(t, http.MethodGet, path, tt.who, 8); got != tt.want {
				t.Fatalf("%d of 8 refused, want %d", got, tt.want)
			}
		})
	}
}

package ratelimit

import (
	"fmt"
	"net/netip"
	"strings"
)

// ClientKey is the network a client address is limited as: an IPv4 address itself, an
// IPv6 address's /64 (one host or home gets a whole /64 and can rotate addresses in it at
// will, so a per-address limit would not hold). IPv4-mapped IPv6 counts as IPv4. A string
// that is not an address is returned as is (it can only come from a misconfigured proxy
// chain and then at least stays one bucket).
func ClientKey(ip string) string {
	a, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// Trusted is the parsed ratelimit.trusted_clients list: our own server-side callers.
type Trusted []netip.Prefix

// ParseTrusted parses CIDRs (config validation has checked them already).
func ParseTrusted(cidrs []string) (Trusted, error) {
	out := make(Trusted, 0, len(cidrs))
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return nil, fmt.Errorf("ratelimit: trusted_clients: %q: %w", c, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Contains reports whether ip is in one of the networks.
func (t Trusted) Contains(ip string) bool {
	if len(t) == 0 {
		return false
	}
	a, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

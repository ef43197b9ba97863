package merchant_test

import (
	"testing"
)

// TestLogoURLOnlyHTTP: a merchant's logo is shown as an image and a link, so only http(s)
// URLs are accepted; script and data URLs are a 400 naming the field, and change nothing.
func TestLogoURLOnlyHTTP(t *testing.T) {
	h := newHarness(t)
	adm := h.admin()
	owner, _ := h.newMerchant(adm, "logos")
	tok := owner.tok.AccessToken
	for _, bad := range []string{"javascript:alert(1)", "JavaScript:alert(document.cookie)", "data:text/html,<script>alert(1)</script>",
		"vbscript:msgbox(1)", "//evil.example/logo.png", "ftp://files.example/logo.png", "https://"} {
		r := h.req(tok, "PATCH", "/api/v1/merchant/profile", map[string]any{"logo_url": bad}).want(t, 400, "request.validation")
		if string(r.body) == "" {
			t.Fatalf("%q: empty problem", bad)
		}
	}
	var p struct {
		LogoURL string `json:"logo_url"`
	}
	h.req(tok, "GET", "/api/v1/merchant/profile", nil).want(t, 200, "").decode(t, &p)
	if p.LogoURL != "" {
		t.Fatalf("logo_url after refused patches = %q", p.LogoURL)
	}
	for _, good := range []string{"https://cdn.example.com/logo.png", "http://img.example.cn/a/b.jpg?v=2"} {
		p.LogoURL = ""
		h.req(tok, "PATCH", "/api/v1/merchant/profile", map[string]any{"logo_url": good}).want(t, 200, "").decode(t, &p)
		if p.LogoURL != good {
			t.Fatalf("logo_url = %q, want %q", p.LogoURL, good)
		}
	}
}

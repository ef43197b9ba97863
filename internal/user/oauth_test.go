package user_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/user"
	"github.com/mallhq/mall/internal/user/oidc"
	"github.com/mallhq/mall/internal/user/oidc/oidctest"
)

// TestOIDCLogin runs third-party login end to end against a local OpenID provider: our
// authorize route redirects to it (code flow, PKCE S256, state, nonce — the mock refuses
// requests without them), the browser comes back to our callback, and we answer tokens.
func TestOIDCLogin(t *testing.T) {
	p := oidctest.Start(t)
	cfg := testConfig(t)
	cfg.HTTP.Addr = apptest.FreeAddr(t)
	base := "http://" + cfg.HTTP.Addr
	cfg = withAuth(cfg, func(c *user.Config) {
		c.OIDC = []oidc.ProviderConfig{oidc.ProviderConfig(p.Config("mock", base+"/api/v1/auth/oauth/mock/callback"))}
	})
	h := start(t, cfg, harnessOptions{password: cheapPassword})

	// login runs the browser's part: authorize -> provider -> back to our callback.
	login := func(t *testing.T) (callback string, r response) {
		t.Helper()
		auth := h.Req("GET", "/api/v1/auth/oauth/mock/authorize", nil).Want(t, http.StatusFound, "")
		loc := auth.Header.Get("Location")
		u, err := url.Parse(loc)
		if err != nil || !strings.HasPrefix(loc, p.Issuer()) {
			t.Fatalf("authorize redirected to %q, want the provider %s", loc, p.Issuer())
		}
		q := u.Query()
		if q.Get("code_challenge_method") != "S256" || q.Get("state") == "" || q.Get("nonce") == "" || q.Get("response_type") != "code" {
			t.Fatalf("authorization request lacks PKCE/state/nonce: %s", u.RawQuery)
		}
		callback = p.Authorize(t, loc)
		if !strings.HasPrefix(callback, base+"/api/v1/auth/oauth/mock/callback?") {
			t.Fatalf("provider redirected to %q", callback)
		}
		cookie := strings.SplitN(auth.Header.Get("Set-Cookie"), ";", 2)[0]
		if !strings.HasPrefix(cookie, "mall_oauth_state=") {
			t.Fatalf("authorize set no state cookie: %q", auth.Header.Get("Set-Cookie"))
		}
		return callback, h.Req("GET", strings.TrimPrefix(callback, base), nil, "Cookie", cookie)
	}
	tokensOf := func(t *testing.T, r response) tokens {
		t.Helper()
		var tk tokens
		r.Want(t, http.StatusOK, "").Decode(t, &tk)
		if tk.TokenType != "Bearer" || tk.AccessToken == "" || tk.RefreshToken == "" {
			t.Fatalf("callback answered %s", r)
		}
		return tk
	}

	t.Run("first login creates the account, the next finds it", func(t *testing.T) {
		email := apptest.UniqueEmail("ada")
		p.QueueUser(email, true, "ada-sub")
		_, r := login(t)
		first := h.Me(tokensOf(t, r).AccessToken)
		if first.Email != email {
			t.Fatalf("/me after OIDC login: %+v", first)
		}
		p.QueueUser("ada-new-address@example.com", true, "ada-sub") // same subject, email changed at the provider
		_, r = login(t)
		if again := h.Me(tokensOf(t, r).AccessToken); again.ID != first.ID {
			t.Fatalf("second login made another account: %s vs %s", again.ID, first.ID)
		}
	})

	// Issue 14: someone who registers the victim's address with a password of their own must
	// not end up sharing the account the victim reaches through their provider.
	t.Run("a verified email never links to a password account; its owner links while signed in", func(t *testing.T) {
		email := apptest.UniqueEmail("bob")
		squatted := h.RegisterUnverified(email) // the squatter's password, an address nobody proved
		p.QueueUser(strings.ToUpper(email), true, "bob-sub")
		_, r := login(t)
		r.Want(t, http.StatusConflict, "auth.oauth_link_required") // it used to answer the squatter's account
		// Verified or not, a password account is linked only by its owner, signed in.
		h.VerifyEmail(email)
		p.QueueUser(email, true, "bob-sub")
		_, r = login(t)
		r.Want(t, http.StatusConflict, "auth.oauth_link_required")

		linkAs := func(t *testing.T, access, subject string) response {
			t.Helper()
			var lr struct {
				AuthorizeURL string `json:"authorize_url"`
			}
			res := h.Req("POST", "/api/v1/me/identities/mock/link", nil, apptest.Bearer(access)...).Want(t, http.StatusOK, "")
			res.Decode(t, &lr)
			cookie := strings.SplitN(res.Header.Get("Set-Cookie"), ";", 2)[0]
			if !strings.HasPrefix(lr.AuthorizeURL, p.Issuer()) || !strings.HasPrefix(cookie, "mall_oauth_state=") {
				t.Fatalf("link start: %q, cookie %q", lr.AuthorizeURL, cookie)
			}
			p.QueueUser(apptest.UniqueEmail("other-address"), true, subject)
			return h.Req("GET", strings.TrimPrefix(p.Authorize(t, lr.AuthorizeURL), base), nil, "Cookie", cookie)
		}
		owner := h.Login(email)
		if m := h.Me(tokensOf(t, linkAs(t, owner.AccessToken, "bob-sub")).AccessToken); m.ID != squatted.ID {
			t.Fatalf("link answered user %s, want %s", m.ID, squatted.ID)
		}
		p.QueueUser(email, true, "bob-sub")
		_, r = login(t)
		if m := h.Me(tokensOf(t, r).AccessToken); m.ID != squatted.ID {
			t.Fatalf("login after the link: user %s, want %s", m.ID, squatted.ID)
		}
		h.Login(email) // the password still works
		// The identity is taken: another account cannot link it; anonymous callers cannot start a link.
		_, other := h.NewUser("other")
		linkAs(t, other.AccessToken, "bob-sub").Want(t, http.StatusConflict, "user.identity_taken")
		h.Req("POST", "/api/v1/me/identities/mock/link", nil).Want(t, http.StatusUnauthorized, "")
		h.Req("POST", "/api/v1/me/identities/nope/link", nil, apptest.Bearer(other.AccessToken)...).
			Want(t, http.StatusNotFound, "auth.oauth_provider_not_found")
	})

	t.Run("a verified email links to a verified account without a password", func(t *testing.T) {
		email := apptest.UniqueEmail("dora")
		p.QueueUser(email, true, "dora-first")
		_, r := login(t)
		first := h.Me(tokensOf(t, r).AccessToken)
		if !first.EmailVerified {
			t.Fatalf("the provider's verified address is not verified: %+v", first)
		}
		p.QueueUser(email, true, "dora-second") // another provider account, same verified address
		_, r = login(t)
		if m := h.Me(tokensOf(t, r).AccessToken); m.ID != first.ID {
			t.Fatalf("verified email did not link: %+v, want user %s", m, first.ID)
		}
	})

	t.Run("an unverified email never links", func(t *testing.T) {
		carol := h.Register(apptest.UniqueEmail("carol"))
		p.QueueUser(carol.Email, false, "mallory-sub")
		_, r := login(t)
		m := h.Me(tokensOf(t, r).AccessToken)
		if m.ID == carol.ID || m.Email != "" {
			t.Fatalf("unverified email: %+v (carol is %s)", m, carol.ID)
		}
	})

	t.Run("forged or replayed state is refused", func(t *testing.T) {
		p.QueueUser(apptest.UniqueEmail("eve"), true, "")
		callback, r := login(t)
		tokensOf(t, r)
		// The same callback from a browser that did not start the login (login CSRF).
		p.QueueUser(apptest.UniqueEmail("csrf"), true, "")
		auth := h.Req("GET", "/api/v1/auth/oauth/mock/authorize", nil).Want(t, http.StatusFound, "")
		cb := p.Authorize(t, auth.Header.Get("Location"))
		h.Req("GET", strings.TrimPrefix(cb, base), nil).Want(t, http.StatusBadRequest, "auth.oauth_invalid_state")
		h.Req("GET", strings.TrimPrefix(cb, base), nil, "Cookie", "mall_oauth_state=someone-else").Want(t, http.StatusBadRequest, "auth.oauth_invalid_state")
		// The same callback again: the state was single-use.
		h.Req("GET", strings.TrimPrefix(callback, base), nil).Want(t, http.StatusBadRequest, "auth.oauth_invalid_state")
		// A state we never issued, with a code the provider did.
		u, _ := url.Parse(callback)
		q := u.Query()
		q.Set("state", "forged-state-forged-state-forged-state-0000")
		h.Req("GET", "/api/v1/auth/oauth/mock/callback?"+q.Encode(), nil).Want(t, http.StatusBadRequest, "auth.oauth_invalid_state")
		h.Req("GET", "/api/v1/auth/oauth/mock/callback?code=abc", nil).Want(t, http.StatusBadRequest, "auth.oauth_invalid_state")
	})

	t.Run("provider errors and unknown providers", func(t *testing.T) {
		h.Req("GET", "/api/v1/auth/oauth/mock/callback?error=access_denied&state=x", nil).Want(t, http.StatusUnauthorized, "auth.oauth_failed")
		h.Req("GET", "/api/v1/auth/oauth/nope/authorize", nil).Want(t, http.StatusNotFound, "auth.oauth_provider_not_found")
		h.Req("GET", "/api/v1/auth/oauth/nope/callback?code=a&state=b", nil).Want(t, http.StatusNotFound, "auth.oauth_provider_not_found")
	})
}

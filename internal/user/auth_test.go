package user_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/user"
)

func TestRegisterLoginMe(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	email := apptest.UniqueEmail("ada")

	var a account
	h.Req("POST", "/api/v1/auth/register", map[string]string{"email": "  " + strings.ToUpper(email) + " ", "password": goodPassword, "nickname": "Ada"}).
		Want(t, http.StatusCreated, "").Decode(t, &a)
	if a.Email != email || a.Nickname != "Ada" || a.ID == "" {
		t.Fatalf("register answered %+v; want the normalized email %s", a, email)
	}
	if _, err := strconv.ParseInt(a.ID, 10, 64); err != nil {
		t.Fatalf("id %q is not a decimal string", a.ID)
	}

	t.Run("duplicate email, any case", func(t *testing.T) {
		h.Req("POST", "/api/v1/auth/register", map[string]string{"email": strings.ToUpper(email), "password": goodPassword}).
			Want(t, http.StatusConflict, "user.email_taken")
	})
	t.Run("validation", func(t *testing.T) {
		for _, body := range []map[string]any{
			{"email": "not-an-email", "password": goodPassword},
			{"email": apptest.UniqueEmail("x"), "password": "short"},
			{"email": apptest.UniqueEmail("x"), "password": strings.Repeat("p", 129)},
			{"email": apptest.UniqueEmail("x"), "password": goodPassword, "nickname": strings.Repeat("n", 65)},
			{"email": apptest.UniqueEmail("x"), "password": goodPassword, "id": "1"}, // server-owned: unknown field
			{"email": "a b@example.com", "password": goodPassword},
		} {
			if r := h.Req("POST", "/api/v1/auth/register", body); r.Status != http.StatusBadRequest {
				t.Errorf("%v: got %s, want 400", body, r)
			}
		}
		h.Req("POST", "/api/v1/auth/register", []byte(`{"email":"x@example.com"}`), "Content-Type", "text/plain").
			Want(t, http.StatusUnsupportedMediaType, "")
	})

	var tk tokens
	h.Req("POST", "/api/v1/auth/login", map[string]string{"email": strings.ToUpper(email), "password": goodPassword}).
		Want(t, http.StatusOK, "").Decode(t, &tk)
	if tk.TokenType != "Bearer" || tk.ExpiresIn != 900 || tk.AccessToken == "" || len(tk.RefreshToken) != 43 {
		t.Fatalf("login answered %+v", tk)
	}
	m := h.Me(tk.AccessToken)
	if m.ID != a.ID || m.Email != email || m.Nickname != "Ada" || !slices.Equal(m.Roles, []string{"buyer"}) || m.MerchantID != "" {
		t.Fatalf("/me = %+v", m)
	}

	t.Run("wrong password", func(t *testing.T) {
		h.Req("POST", "/api/v1/auth/login", map[string]string{"email": email, "password": "wrong password"}).
			Want(t, http.StatusUnauthorized, "auth.invalid_credentials")
	})
	t.Run("unknown user", func(t *testing.T) {
		h.Req("POST", "/api/v1/auth/login", map[string]string{"email": apptest.UniqueEmail("nobody"), "password": goodPassword}).
			Want(t, http.StatusUnauthorized, "auth.invalid_credentials")
	})
	t.Run("anonymous on a login-only route", func(t *testing.T) {
		r := h.Req("GET", "/api/v1/me", nil).Want(t, http.StatusUnauthorized, "auth.unauthenticated")
		if r.Header.Get("WWW-Authenticate") == "" {
			t.Error("401 without WWW-Authenticate")
		}
	})
}

// TestUnknownUserTimingMatchesWrongPassword measures, with the production argon2id
// parameters, that a login for an email nobody registered takes as long as a wrong
// password: without the dummy hash it would answer in a millisecond and reveal which
// emails have accounts.
func TestUnknownUserTimingMatchesWrongPassword(t *testing.T) {
	h := newHarness(t, harnessOptions{password: &user.DefaultPasswordParams})
	a := h.Register(apptest.UniqueEmail("timing"))
	const rounds = 7
	var known, unknown []time.Duration
	measure := func(email string) time.Duration {
		start := time.Now()
		h.Req("POST", "/api/v1/auth/login", map[string]string{"email": email, "password": "not the password"}).
			Want(t, http.StatusUnauthorized, "auth.invalid_credentials")
		return time.Since(start)
	}
	for range rounds { // interleaved, so drift affects both alike
		known = append(known, measure(a.Email))
		unknown = append(unknown, measure(apptest.UniqueEmail("ghost")))
	}
	mk, mu := median(known), median(unknown)
	t.Logf("median wrong password %s, unknown user %s", mk, mu)
	if ratio := float64(mu) / float64(mk); ratio < 0.4 || ratio > 2.5 {
		t.Fatalf("unknown user median %s vs wrong password %s: ratio %.2f outside [0.4, 2.5]", mu, mk, ratio)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// signingKey reads the server's current signing key from its keys directory.
func (h *harness) signingKey(t *testing.T) (string, ed25519.PrivateKey) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(authOf(t, h.cfg).JWT.KeysDir, "*.pem"))
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".pub.pem") {
			kids = append(kids, strings.TrimSuffix(filepath.Base(f), ".pem"))
		}
	}
	if len(kids) == 0 {
		t.Fatal("no signing key in the keys directory")
	}
	slices.Sort(kids)
	kid := kids[len(kids)-1]
	b, err := os.ReadFile(filepath.Join(authOf(t, h.cfg).JWT.KeysDir, kid+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return kid, k.(ed25519.PrivateKey)
}

func (h *harness) claims(sub string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": authOf(h.t, h.cfg).JWT.Issuer, "aud": authOf(h.t, h.cfg).JWT.Audience, "sub": sub,
		"exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(), "jti": rand.Text(), "sid": "1",
		"roles": []string{"buyer"},
	}
}

func sign(t *testing.T, method jwt.SigningMethod, key any, kid, typ string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	if typ != "" {
		tok.Header["typ"] = typ
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAccessTokenChecks forges tokens that differ from a valid one in one respect each; the
// valid one (made the same way) proves the forging itself is sound.
func TestAccessTokenChecks(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	a, _ := h.NewUser("forge")
	kid, key := h.signingKey(t)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	pub := key.Public().(ed25519.PublicKey)
	with := func(k string, v any) jwt.MapClaims {
		c := h.claims(a.ID)
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	ed := jwt.SigningMethodEdDSA

	valid := sign(t, ed, key, kid, "at+jwt", h.claims(a.ID))
	h.Req("GET", "/api/v1/me", nil, apptest.Bearer(valid)...).Want(t, http.StatusOK, "")

	tests := []struct {
		name  string
		token string
	}{
		{"expired", sign(t, ed, key, kid, "at+jwt", with("exp", time.Now().Add(-time.Hour).Unix()))},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, "at+jwt", h.claims(a.ID))},
		{"HS256 keyed with the public key", sign(t, jwt.SigningMethodHS256, []byte(pub), kid, "at+jwt", h.claims(a.ID))},
		{"another key under our kid", sign(t, ed, otherKey, kid, "at+jwt", h.claims(a.ID))},
		{"another key, unknown kid", sign(t, ed, otherKey, "attacker", "at+jwt", h.claims(a.ID))},
		{"no kid", sign(t, ed, key, "", "at+jwt", h.claims(a.ID))},
		{"wrong audience", sign(t, ed, key, kid, "at+jwt", with("aud", "another-api"))},
		{"wrong issuer", sign(t, ed, key, kid, "at+jwt", with("iss", "someone-else"))},
		{"no exp", sign(t, ed, key, kid, "at+jwt", with("exp", nil))},
		{"no iat", sign(t, ed, key, kid, "at+jwt", with("iat", nil))},
		{"iat in the future", sign(t, ed, key, kid, "at+jwt", with("iat", time.Now().Add(time.Hour).Unix()))},
		{"no jti", sign(t, ed, key, kid, "at+jwt", with("jti", nil))},
		{"not an access token (typ JWT)", sign(t, ed, key, kid, "JWT", h.claims(a.ID))},
		{"tampered payload", tamper(valid)},
		{"garbage", "not.a.jwt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.Req("GET", "/api/v1/me", nil, apptest.Bearer(tt.token)...).Want(t, http.StatusUnauthorized, "auth.invalid_token")
			if !strings.Contains(r.Header.Get("WWW-Authenticate"), "invalid_token") {
				t.Errorf("WWW-Authenticate = %q", r.Header.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("other schemes", func(t *testing.T) {
		h.Req("GET", "/api/v1/me", nil, "Authorization", "Basic "+valid).Want(t, http.StatusUnauthorized, "auth.invalid_token")
		h.Req("GET", "/api/v1/me", nil, "Authorization", "Bearer").Want(t, http.StatusUnauthorized, "auth.invalid_token")
	})
	t.Run("checked on public routes too", func(t *testing.T) {
		h.Req("POST", "/api/v1/auth/register", map[string]string{"email": apptest.UniqueEmail("p"), "password": goodPassword},
			apptest.Bearer(tamper(valid))...).Want(t, http.StatusUnauthorized, "auth.invalid_token")
	})
}

// tamper flips the role list in the payload and keeps the signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload, _ := jwt.NewParser().DecodeSegment(parts[1])
	payload = []byte(strings.Replace(string(payload), `"buyer"`, `"platform_admin"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func (h *harness) refresh(rt string) response {
	h.t.Helper()
	return h.Req("POST", "/api/v1/auth/refresh", map[string]string{"refresh_token": rt})
}

func TestRefreshRotationAndReuse(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	a, t1 := h.NewUser("rotate")
	other := h.Login(a.Email) // a second session of the same user, another family

	var t2, t3 tokens
	h.refresh(t1.RefreshToken).Want(t, http.StatusOK, "").Decode(t, &t2)
	if t2.RefreshToken == t1.RefreshToken || t2.AccessToken == t1.AccessToken || t2.TokenType != "Bearer" {
		t.Fatalf("refresh did not rotate: %+v -> %+v", t1, t2)
	}
	h.Me(t2.AccessToken)
	h.refresh(t2.RefreshToken).Want(t, http.StatusOK, "").Decode(t, &t3)
	h.Me(t3.AccessToken)

	// t1's refresh token was used: presenting it again revokes the whole family.
	h.refresh(t1.RefreshToken).Want(t, http.StatusUnauthorized, "auth.refresh_reused")
	h.refresh(t3.RefreshToken).Want(t, http.StatusUnauthorized, "auth.invalid_refresh_token")
	h.Req("GET", "/api/v1/me", nil, apptest.Bearer(t3.AccessToken)...).Want(t, http.StatusUnauthorized, "auth.invalid_token")
	h.Req("GET", "/api/v1/me", nil, apptest.Bearer(t1.AccessToken)...).Want(t, http.StatusUnauthorized, "auth.invalid_token")
	// Presenting it yet again still reads as reuse.
	h.refresh(t1.RefreshToken).Want(t, http.StatusUnauthorized, "auth.refresh_reused")

	// The other session is untouched.
	h.Me(other.AccessToken)
	h.refresh(other.RefreshToken).Want(t, http.StatusOK, "")

	t.Run("malformed and unknown", func(t *testing.T) {
		h.refresh("short").Want(t, http.StatusUnauthorized, "auth.invalid_refresh_token")
		h.refresh(strings.Repeat("A", 43)).Want(t, http.StatusUnauthorized, "auth.invalid_refresh_token")
		h.Req("POST", "/api/v1/auth/refresh", map[string]string{}).Want(t, http.StatusBadRequest, "request.validation")
	})
}

// TestConcurrentRefreshOneWins presents one refresh token from many goroutines at once:
// exactly one gets new tokens; the rest see a used token.
func TestConcurrentRefreshOneWins(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for round := range 3 {
		_, tk := h.NewUser("race" + strconv.Itoa(round))
		const n = 12
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			results = map[int]int{}
			codes   = map[string]int{}
			gate    = make(chan struct{})
		)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				r := h.refresh(tk.RefreshToken)
				mu.Lock()
				results[r.Status]++
				codes[r.Code()]++
				mu.Unlock()
			}()
		}
		close(gate)
		wg.Wait()
		if results[http.StatusOK] != 1 || results[http.StatusUnauthorized] != n-1 {
			t.Fatalf("round %d: statuses %v (codes %v), want exactly one 200 and %d 401", round, results, codes, n-1)
		}
	}
}

func TestLogout(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	a, s1 := h.NewUser("logout")
	s2 := h.Login(a.Email)
	s3 := h.Login(a.Email)

	h.Req("POST", "/api/v1/auth/logout", map[string]string{"refresh_token": s1.RefreshToken}, apptest.Bearer(s1.AccessToken)...).
		Want(t, http.StatusNoContent, "")
	h.Req("GET", "/api/v1/me", nil, apptest.Bearer(s1.AccessToken)...).Want(t, http.StatusUnauthorized, "auth.invalid_token")
	h.refresh(s1.RefreshToken).Want(t, http.StatusUnauthorized, "")
	h.Me(s2.AccessToken) // other sessions live on

	// Without a body, logout still ends the access token's session, refresh token included.
	h.Req("POST", "/api/v1/auth/logout", nil, apptest.Bearer(s2.AccessToken)...).Want(t, http.StatusNoContent, "")
	h.Req("GET", "/api/v1/me", nil, apptest.Bearer(s2.AccessToken)...).Want(t, http.StatusUnauthorized, "auth.invalid_token")
	h.refresh(s2.RefreshToken).Want(t, http.StatusUnauthorized, "")

	// Logging out twice with the same token is a 401: that token no longer authenticates.
	h.Req("POST", "/api/v1/auth/logout", nil, apptest.Bearer(s2.AccessToken)...).Want(t, http.StatusUnauthorized, "auth.invalid_token")
	h.Req("POST", "/api/v1/auth/logout", nil).Want(t, http.StatusUnauthorized, "auth.unauthenticated")

	// Another user's refresh token in the body is ignored, not revoked.
	_, mallory := h.NewUser("mallory")
	h.Req("POST", "/api/v1/auth/logout", map[string]string{"refresh_token": s3.RefreshToken}, apptest.Bearer(mallory.AccessToken)...).
		Want(t, http.StatusNoContent, "")
	h.refresh(s3.RefreshToken).Want(t, http.StatusOK, "")
}

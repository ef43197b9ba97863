package user_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/user"
)

// The fuzz targets feed arbitrary JSON bodies to every route that decodes one, through the
// real server (global middleware, authentication, rate limits, the handler, the database):
// the answer must be the route's success status or a 4xx problem with a code, never a panic
// or a 5xx. Seeds live in testdata/fuzz/<Target>/.

type fuzzer struct {
	h      *harness
	kid    string
	key    ed25519.PrivateKey
	userID int64
	jwt    user.JWTConfig
}

func newFuzzer(f *testing.F) *fuzzer {
	cfg := withAuth(testConfig(f), func(c *user.Config) {
		c.Login.MaxFailuresPerAccount = 1 << 30
		c.Login.MaxFailuresPerIP = 1 << 30
	})
	h := start(f, cfg, harnessOptions{password: cheapPassword})
	z := &fuzzer{h: h, jwt: authOf(f, cfg).JWT}
	z.kid, z.key = readSigningKey(f, z.jwt.KeysDir)
	// One real account for the authenticated routes.
	email := apptest.UniqueEmail("fuzz")
	rec := z.serve(http.MethodPost, "/api/v1/auth/register", []byte(`{"email":"`+email+`","password":"`+goodPassword+`"}`), "")
	if rec.Code != http.StatusCreated {
		f.Fatalf("register: %d %s", rec.Code, rec.Body)
	}
	var a account
	_ = json.Unmarshal(rec.Body.Bytes(), &a)
	z.userID, _ = strconv.ParseInt(a.ID, 10, 64)
	return z
}

func readSigningKey(t testing.TB, dir string) (string, ed25519.PrivateKey) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.pem"))
	slices.Sort(files)
	for i := len(files) - 1; i >= 0; i-- {
		if strings.HasSuffix(files[i], ".pub.pem") {
			continue
		}
		b, err := os.ReadFile(files[i])
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(filepath.Base(files[i]), ".pem"), k.(ed25519.PrivateKey)
	}
	t.Fatal("no signing key")
	return "", nil
}

// token mints a fresh access token (its own jti and session) for the fuzz account, so a
// logout in one run does not turn the next runs into 401s.
func (z *fuzzer) token(roles ...string) string {
	now := time.Now()
	c := jwt.MapClaims{
		"iss": z.jwt.Issuer, "aud": z.jwt.Audience, "sub": strconv.FormatInt(z.userID, 10),
		"exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(), "jti": rand.Text(),
		"sid": strconv.FormatInt(time.Now().UnixNano(), 10), "roles": append([]string{"buyer"}, roles...),
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"], tok.Header["typ"] = z.kid, "at+jwt"
	s, err := tok.SignedString(z.key)
	if err != nil {
		panic(err)
	}
	return s
}

func (z *fuzzer) serve(method, path string, body []byte, token string) *httptest.ResponseRecorder {
	return z.h.Serve(method, path, body, token)
}

func FuzzRegister(f *testing.F) {
	z := newFuzzer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		apptest.CheckOutcome(t, z.serve(http.MethodPost, "/api/v1/auth/register", body, ""), body, http.StatusCreated)
	})
}

func FuzzLogin(f *testing.F) {
	z := newFuzzer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		apptest.CheckOutcome(t, z.serve(http.MethodPost, "/api/v1/auth/login", body, ""), body, http.StatusOK)
	})
}

func FuzzRefresh(f *testing.F) {
	z := newFuzzer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		apptest.CheckOutcome(t, z.serve(http.MethodPost, "/api/v1/auth/refresh", body, ""), body, http.StatusOK)
	})
}

func FuzzLogout(f *testing.F) {
	z := newFuzzer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		apptest.CheckOutcome(t, z.serve(http.MethodPost, "/api/v1/auth/logout", body, z.token()), body, http.StatusNoContent)
	})
}

// FuzzAddresses sends each body as a new address and as a change to an existing one.
func FuzzAddresses(f *testing.F) {
	z := newFuzzer(f)
	tok := z.token()
	rec := z.serve(http.MethodPost, "/api/v1/me/addresses",
		[]byte(`{"name":"a","phone":"13812345678","province":"p","city":"c","district":"d","detail":"x"}`), tok)
	if rec.Code != http.StatusCreated {
		f.Fatalf("seed address: %d %s", rec.Code, rec.Body)
	}
	var a struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &a)
	f.Fuzz(func(t *testing.T, body []byte) {
		apptest.CheckOutcome(t, z.serve(http.MethodPost, "/api/v1/me/addresses", body, tok), body, http.StatusCreated)
		apptest.CheckOutcome(t, z.serve(http.MethodPatch, "/api/v1/me/addresses/"+a.ID, body, tok), body, http.StatusOK)
	})
}

func FuzzGrantRole(f *testing.F) {
	z := newFuzzer(f)
	path := "/api/v1/admin/users/" + strconv.FormatInt(z.userID, 10) + "/roles"
	admin := z.token(string(user.RolePlatformAdmin))
	f.Fuzz(func(t *testing.T, body []byte) {
		apptest.CheckOutcome(t, z.serve(http.MethodPost, path, body, admin), body, http.StatusNoContent)
	})
}

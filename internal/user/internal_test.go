package user

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mallhq/mall/internal/platform/authn"
	"github.com/mallhq/mall/internal/platform/errs"
	"github.com/mallhq/mall/internal/platform/redisx/redisxtest"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/platform/sqldb/sqldbtest"
)

func TestKeyringReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	if _, err := newKeyring(dir, false); err == nil {
		t.Fatal("no keys and generate off: want an error")
	}
	ring, err := newKeyring(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	iss := newTokenIssuer(ring, "mall", "mall-api", 15*time.Minute, time.Now)
	grant := accessGrant{UserID: 42, Roles: []Role{RoleBuyer}, SessionID: 7}
	first := ring.current().signKID
	tok1, _, err := iss.issue(grant)
	if err != nil {
		t.Fatal(err)
	}

	second, err := GenerateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := ring.reload(); err != nil || !changed {
		t.Fatalf("reload after adding a key: %v %v", changed, err)
	}
	if changed, err := ring.reload(); err != nil || changed {
		t.Fatalf("reload of an unchanged directory: %v %v", changed, err)
	}
	if got := ring.current().signKID; got != second {
		t.Fatalf("signing key %s, want the newest %s", got, second)
	}
	tok2, _, _ := iss.issue(grant)
	for _, tok := range []string{tok1, tok2} {
		if vt, err := iss.verify(tok); err != nil || vt.UserID != 42 || vt.SessionID != "7" {
			t.Fatalf("verify: %+v %v", vt, err)
		}
	}

	// An active file overrides name order; naming a missing key keeps the previous set.
	if err := os.WriteFile(filepath.Join(dir, activeFile), []byte(first+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ring.reload(); err != nil || ring.current().signKID != first {
		t.Fatalf("active file: signer %s, err %v", ring.current().signKID, err)
	}
	if err := os.WriteFile(filepath.Join(dir, activeFile), []byte("nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ring.reload(); err == nil || ring.current().signKID != first {
		t.Fatalf("bad active file: err %v, signer %s", err, ring.current().signKID)
	}
	os.Remove(filepath.Join(dir, activeFile))

	// Removing the first key: its tokens stop verifying at the next reload.
	if err := os.Remove(filepath.Join(dir, first+privateSuffix)); err != nil {
		t.Fatal(err)
	}
	if _, err := ring.reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := iss.verify(tok1); err == nil {
		t.Fatal("token of a removed key still verifies")
	}
	if _, err := iss.verify(tok2); err != nil {
		t.Fatal(err)
	}

	// Keys other than Ed25519 are refused (tokens are EdDSA only).
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	der, _ := x509.MarshalPKCS8PrivateKey(rk)
	if err := os.WriteFile(filepath.Join(dir, "rsa.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadKeySet(dir); err == nil {
		t.Fatal("an RSA key was accepted")
	}
}

func TestExpiredTokenHonoursLeewayOnly(t *testing.T) {
	ring, err := newKeyring(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clock := func() time.Time { return now }
	iss := newTokenIssuer(ring, "mall", "mall-api", 15*time.Minute, clock)
	tok, _, _ := iss.issue(accessGrant{UserID: 1, SessionID: 1})
	now = now.Add(15*time.Minute + clockLeeway - time.Second)
	if _, err := iss.verify(tok); err != nil {
		t.Fatalf("within the leeway: %v", err)
	}
	now = now.Add(2 * time.Second)
	if _, err := iss.verify(tok); err == nil {
		t.Fatal("expired token verified")
	}
}

func TestHasher(t *testing.T) {
	ctx := context.Background()
	cheap := PasswordParams{Memory: 64, Time: 1, Threads: 1}
	h, err := newHasher(cheap, 1)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := h.Hash(ctx, "secret password")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		give, password   string
		wantOK, wantHash bool
	}{
		{enc, "secret password", true, false},
		{enc, "Secret password", false, false},
		{"", "secret password", false, false}, // no hash: checked against the dummy, never true
	}
	for _, tt := range tests {
		ok, rehash, err := h.Verify(ctx, tt.give, tt.password)
		if err != nil || ok != tt.wantOK || rehash != tt.wantHash {
			t.Errorf("Verify(%q, %q) = %v, %v, %v", tt.give, tt.password, ok, rehash, err)
		}
	}
	// A hash made with other parameters verifies and asks for a rehash.
	h2, _ := newHasher(PasswordParams{Memory: 128, Time: 1, Threads: 1}, 1)
	if ok, rehash, err := h2.Verify(ctx, enc, "secret password"); !ok || !rehash || err != nil {
		t.Fatalf("old parameters: %v %v %v", ok, rehash, err)
	}
	if _, _, err := h.Verify(ctx, "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", "x"); err == nil {
		t.Fatal("absurd parameters accepted")
	}

	// The slot is taken: a waiting hash gives up with its context.
	h.slots <- struct{}{}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := h.Hash(cctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Hash with every slot taken: %v", err)
	}
	<-h.slots
}

func TestMaskPhone(t *testing.T) {
	tests := []struct{ give, want string }{
		{"13812345678", "138****5678"},
		{"+8613812345678", "+86138****5678"},
		{"1234567", "*****67"},
		{"12", "**"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := MaskPhone(tt.give); got != tt.want {
			t.Errorf("MaskPhone(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestPhoneCipher(t *testing.T) {
	key := "ZGV2LW9ubHktZW5jcnlwdGlvbi1rZXktMzJieXRlcyE="
	pc, err := newPhoneCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	a, b := pc.seal("13812345678", 1), pc.seal("13812345678", 1)
	if string(a) == string(b) {
		t.Fatal("two encryptions are equal: the nonce is not random")
	}
	if got, err := pc.open(a, 1); err != nil || got != "13812345678" {
		t.Fatalf("open = %q, %v", got, err)
	}
	if _, err := pc.open(a, 2); err == nil {
		t.Fatal("a ciphertext moved to another address decrypted")
	}
	tampered := append([]byte(nil), a...)
	tampered[len(tampered)-1] ^= 1
	if _, err := pc.open(tampered, 1); err == nil {
		t.Fatal("tampered ciphertext decrypted")
	}
	other, _ := newPhoneCipher("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	if _, err := other.open(a, 1); err == nil {
		t.Fatal("decrypted under another key")
	}
	// Rotation: the new key encrypts, the old one still decrypts.
	rotated, _ := newPhoneCipher("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", key)
	if got, err := rotated.open(a, 1); err != nil || got != "13812345678" {
		t.Fatalf("old ciphertext after rotation: %q %v", got, err)
	}
	if _, err := newPhoneCipher("c2hvcnQ="); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestGrants(t *testing.T) {
	if NewGrants(0, PermMerchantProducts).Has(PermMerchantProducts) {
		t.Error("merchant permission without a merchant")
	}
	g := NewGrants(9, PermMerchantProducts, PermAdminUsers)
	if !g.Has(PermMerchantProducts, PermAdminUsers) || g.Has(PermMerchantProducts, PermCatalogManage) || g.MerchantID() != 9 {
		t.Errorf("grants %v", g.List())
	}
	for _, p := range Permissions {
		if !p.Known() {
			t.Errorf("%s not Known", p)
		}
	}

	ok := func(c echo.Context) error { return c.NoContent(http.StatusOK) }
	mw := RequirePermission(PermCatalogManage)(ok)
	tests := []struct {
		name string
		ctx  func(context.Context) context.Context
		want errs.Kind
	}{
		{"anonymous", func(c context.Context) context.Context { return c }, errs.Unauthenticated},
		{"no grants", func(c context.Context) context.Context { return authn.With(c, authn.Principal{UserID: 1}) }, errs.Forbidden},
		{"missing permission", func(c context.Context) context.Context {
			return WithGrants(authn.With(c, authn.Principal{UserID: 1}), NewGrants(0, PermAdminUsers))
		}, errs.Forbidden},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		c := echo.New().NewContext(req.WithContext(tt.ctx(req.Context())), httptest.NewRecorder())
		if err := mw(c); errs.KindOf(err) != tt.want {
			t.Errorf("%s: %v, want kind %s", tt.name, err, tt.want)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	ctx := WithGrants(authn.With(req.Context(), authn.Principal{UserID: 1}), NewGrants(0, PermCatalogManage))
	if err := mw(echo.New().NewContext(req.WithContext(ctx), httptest.NewRecorder())); err != nil {
		t.Errorf("granted: %v", err)
	}
}

func TestJanitorDeletesExpiredRefreshTokens(t *testing.T) {
	cl, _ := sqldbtest.NewCluster(t, sqldbtest.Options{Migrations: []sqldb.Migrations{Migrations, ShardMigrations}})
	s := &service{st: &store{cl: cl}, now: time.Now, log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	now := time.Now().UTC()
	for i, exp := range []time.Time{now.Add(-48 * time.Hour), now.Add(-25 * time.Hour), now.Add(-time.Hour), now.Add(time.Hour)} {
		_, h := newRefreshToken()
		if err := s.st.insertRefresh(ctx, int64(i+1), h, 1, 1, exp, now); err != nil {
			t.Fatal(err)
		}
	}
	s.deleteExpiredRefreshTokens(ctx)
	var ids []int64
	if err := cl.Main().SelectContext(ctx, &ids, `SELECT id FROM user_refresh_tokens ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	// Expired more than a day ago: gone; recently expired rows stay so late reuse still reads as reuse.
	if len(ids) != 2 || ids[0] != 3 || ids[1] != 4 {
		t.Fatalf("rows left %v, want [3 4]", ids)
	}
}

// TestDenyListBatchesConcurrentLookups: lookups that share pipelines each get their own
// answer.
func TestDenyListBatchesConcurrentLookups(t *testing.T) {
	rdb := redisxtest.Client(t)
	d := newDenyList(rdb, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	uid := time.Now().UnixNano() // keys unique to this run
	for i := 0; i < 200; i += 3 {
		if err := d.deny(ctx, time.Minute, denyTokenKey(uid, strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	d.local = expiringSet{} // ask Redis, not the in-process copy
	var wg sync.WaitGroup
	errc := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := d.denied(ctx, uid, strconv.Itoa(i), "no-session")
			if err != nil || got != (i%3 == 0) {
				errc <- fmt.Errorf("token %d: denied=%v err=%v", i, got, err)
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

package user_test

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mallhq/mall/internal/app/apptest"
	"github.com/mallhq/mall/internal/user"
)

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Kid string `json:"kid"`
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr.Alg != "EdDSA" || hdr.Typ != "at+jwt" || hdr.Kid == "" {
		t.Fatalf("token header %+v", hdr)
	}
	return hdr.Kid
}

// TestKeyRotation: the development key is generated on first start (0700 directory, 0600
// file); a new key signs after the next (re)load while tokens of the old one keep verifying;
// keeping only the old public key still verifies; removing it rejects them.
func TestKeyRotation(t *testing.T) {
	cfg := testConfig(t)
	dir := authOf(t, cfg).JWT.KeysDir
	h := start(t, cfg, harnessOptions{password: cheapPassword})

	files, _ := filepath.Glob(filepath.Join(dir, "*.pem"))
	if len(files) != 1 {
		t.Fatalf("generated keys: %v", files)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("keys dir mode %v (%v), want 0700", st.Mode().Perm(), err)
	}
	if st, err := os.Stat(files[0]); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", st.Mode().Perm(), err)
	}

	a, old := h.NewUser("rotate")
	oldKid := kidOf(t, old.AccessToken)

	newKid, err := user.GenerateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	h.stop()
	h = start(t, cfg, harnessOptions{password: cheapPassword})
	h.Me(old.AccessToken) // the previous key still verifies
	fresh := h.Login(a.Email)
	if got := kidOf(t, fresh.AccessToken); got != newKid || got == oldKid {
		t.Fatalf("new tokens signed by %s, want the new key %s", got, newKid)
	}

	// Retire the old private key, keeping its public half for verification.
	oldPem := filepath.Join(dir, oldKid+".pem")
	writePublicHalf(t, oldPem, filepath.Join(dir, oldKid+".pub.pem"))
	if err := os.Remove(oldPem); err != nil {
		t.Fatal(err)
	}
	h.stop()
	h = start(t, cfg, harnessOptions{password: cheapPassword})
	h.Me(old.AccessToken)
	h.Me(fresh.AccessToken)

	// Remove it entirely: its tokens are refused, the new key's are not.
	if err := os.Remove(filepath.Join(dir, oldKid+".pub.pem")); err != nil {
		t.Fatal(err)
	}
	h.stop()
	h = start(t, cfg, harnessOptions{password: cheapPassword})
	h.Req("GET", "/api/v1/me", nil, apptest.Bearer(old.AccessToken)...).Want(t, http.StatusUnauthorized, "auth.invalid_token")
	h.Me(fresh.AccessToken)
}

func writePublicHalf(t *testing.T, privPath, pubPath string) {
	t.Helper()
	b, err := os.ReadFile(privPath)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(k.(ed25519.PrivateKey).Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

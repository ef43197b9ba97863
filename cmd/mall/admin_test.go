package main

import (
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/mallhq/mall/internal/platform/sqldb"
)

func mainDB(t *testing.T, environ []string) *sqlx.DB {
	t.Helper()
	for _, kv := range environ {
		if dsn, ok := strings.CutPrefix(kv, "MALL_DB_MAIN="); ok {
			norm, err := sqldb.NormalizeDSN(dsn)
			if err != nil {
				t.Fatal(err)
			}
			db, err := sqlx.Open("mysql", norm)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}
	}
	t.Fatal("no MALL_DB_MAIN")
	return nil
}

// TestAdminCreate: `mall admin create` creates a platform admin, is idempotent, refuses an
// account it did not create unless told to take it over, and promotes a verified account
// without a password.
func TestAdminCreate(t *testing.T) {
	e := env(t)
	out, stderr, code := run(t, e, "admin", "create", "--email", "Root@Example.com", "--password", "admin password 1")
	if code != 0 {
		t.Fatalf("admin create: exit %d: %s", code, stderr)
	}
	id := strings.TrimSpace(out)
	if id == "" || !strings.Contains(stderr, "created") {
		t.Fatalf("stdout %q stderr %q", out, stderr)
	}
	out, stderr, code = run(t, e, "admin", "create", "--email", "root@example.com", "--password", "another password")
	if code != 0 || strings.TrimSpace(out) != id || !strings.Contains(stderr, "existing user") {
		t.Fatalf("second run: exit %d, stdout %q (want %s), stderr %q", code, out, id, stderr)
	}

	db := mainDB(t, e)
	var roles []string
	if err := db.Select(&roles, `SELECT role FROM user_role_bindings WHERE user_id = ?`, id); err != nil {
		t.Fatal(err)
	}
	if len(roles) != 1 || roles[0] != "platform_admin" {
		t.Fatalf("roles %v, want exactly [platform_admin]", roles)
	}

	// Someone else registered ops@example.com first (a password, an unverified address): the
	// command does not promote them (issue 14: it used to, keeping their password).
	if _, err := db.Exec(`INSERT INTO user_users (id, email, password_hash, nickname, created_at, updated_at)
		VALUES (4242, 'ops@example.com', 'squatter-hash', 'ops', NOW(6), NOW(6))`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO user_refresh_tokens (id, token_hash, family_id, user_id, status, expires_at, created_at)
		VALUES (4243, UNHEX(SHA2('squatter', 256)), 4244, 4242, 0, NOW(6) + INTERVAL 1 DAY, NOW(6))`); err != nil {
		t.Fatal(err)
	}
	adminRoles := func(uid int) int {
		var n int
		if err := db.Get(&n, `SELECT COUNT(*) FROM user_role_bindings WHERE user_id = ? AND role = 'platform_admin'`, uid); err != nil {
			t.Fatal(err)
		}
		return n
	}
	_, stderr, code = run(t, append(e, "MALL_ADMIN_PASSWORD=from the environment"), "admin", "create", "--email", "ops@example.com")
	if code == 0 || !strings.Contains(stderr, "--reset-password") || adminRoles(4242) != 0 {
		t.Fatalf("someone else's registration: exit %d, stderr %q, admin bindings %d; want a refusal", code, stderr, adminRoles(4242))
	}
	// --reset-password takes it over: the operator's password, a verified address, the
	// squatter's refresh tokens revoked.
	out, stderr, code = run(t, append(e, "MALL_ADMIN_PASSWORD=from the environment"), "admin", "create", "--email", "ops@example.com", "--reset-password")
	if code != 0 || strings.TrimSpace(out) != "4242" || !strings.Contains(stderr, "taken over") || adminRoles(4242) != 1 {
		t.Fatalf("take over: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	var acct struct {
		Hash     string `db:"password_hash"`
		Verified bool   `db:"verified"`
		Live     int    `db:"live"`
	}
	if err := db.Get(&acct, `SELECT password_hash, email_verified_at IS NOT NULL AS verified,
		(SELECT COUNT(*) FROM user_refresh_tokens WHERE user_id = 4242 AND status = 0) AS live FROM user_users WHERE id = 4242`); err != nil {
		t.Fatal(err)
	}
	if acct.Hash == "squatter-hash" || !strings.HasPrefix(acct.Hash, "$argon2id$") || !acct.Verified || acct.Live != 0 {
		t.Fatalf("after the take-over: %+v, want a new hash, a verified address and no live refresh token", acct)
	}

	// A verified account without a password (a third-party login) is promoted as it is.
	if _, err := db.Exec(`INSERT INTO user_users (id, email, email_verified_at, nickname, created_at, updated_at)
		VALUES (4343, 'sso@example.com', NOW(6), 'sso', NOW(6), NOW(6))`); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = run(t, append(e, "MALL_ADMIN_PASSWORD=from the environment"), "admin", "create", "--email", "sso@example.com")
	if code != 0 || strings.TrimSpace(out) != "4343" || adminRoles(4343) != 1 {
		t.Fatalf("verified account without a password: exit %d, stdout %q, stderr %q", code, out, stderr)
	}

	if _, stderr, code := run(t, e, "admin", "create", "--email", "x@example.com"); code != 2 || !strings.Contains(stderr, "--password") {
		t.Fatalf("without a password: exit %d, %q", code, stderr)
	}
	if _, stderr, code := run(t, e, "admin", "create", "--email", "bad", "--password", "admin password 1"); code == 0 || !strings.Contains(stderr, "email") {
		t.Fatalf("bad email: exit %d, %q", code, stderr)
	}
}

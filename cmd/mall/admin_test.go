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

// TestAdminCreate: `mall admin create` creates a platform admin, is idempotent, and promotes
// an existing account without touching its password.
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

	// An account that already exists is promoted; its password stays.
	if _, err := db.Exec(`INSERT INTO user_users (id, email, password_hash, nickname, created_at, updated_at)
		VALUES (4242, 'ops@example.com', 'unchanged-hash', 'ops', NOW(6), NOW(6))`); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = run(t, append(e, "MALL_ADMIN_PASSWORD=from the environment"), "admin", "create", "--email", "ops@example.com")
	if code != 0 || strings.TrimSpace(out) != "4242" {
		t.Fatalf("promote: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	var hash string
	if err := db.Get(&hash, `SELECT password_hash FROM user_users WHERE id = 4242`); err != nil || hash != "unchanged-hash" {
		t.Fatalf("password hash %q (%v), want it unchanged", hash, err)
	}

	if _, stderr, code := run(t, e, "admin", "create", "--email", "x@example.com"); code != 2 || !strings.Contains(stderr, "--password") {
		t.Fatalf("without a password: exit %d, %q", code, stderr)
	}
	if _, stderr, code := run(t, e, "admin", "create", "--email", "bad", "--password", "admin password 1"); code == 0 || !strings.Contains(stderr, "email") {
		t.Fatalf("bad email: exit %d, %q", code, stderr)
	}
}

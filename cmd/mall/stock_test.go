package main

import (
	"database/sql"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
)

// TestStockCheck: `mall stock check` exits 0 on consistent stock and 1, naming the SKU and
// the problem, when a counter does not add up.
func TestStockCheck(t *testing.T) {
	e, db := migratedMain(t)
	if _, err := db.Exec(`INSERT INTO stock_levels (sku_id, merchant_id, on_hand, available, reserved, sold, version, updated_at)
		VALUES (11, 1, 10, 10, 0, 0, 1, NOW(6)), (12, 1, 5, 5, 0, 0, 1, NOW(6))`); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, e, "stock", "check")
	if code != 0 || !strings.Contains(out, "2 SKUs, no violation") {
		t.Fatalf("stock check on consistent stock: %d %s %s", code, out, stderr)
	}
	if _, err := db.Exec(`UPDATE stock_levels SET reserved = 2 WHERE sku_id = 12`); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = run(t, e, "stock", "check")
	if code != 1 || !strings.Contains(out, "reserved 2 != 0 held by reservations") ||
		!strings.Contains(stderr, "1 of 2 SKUs violate an invariant") {
		t.Fatalf("stock check on broken stock: %d %s %s", code, out, stderr)
	}
}

// migratedMain is a fresh environment with every migration applied and a handle on its
// main database (closed when the test ends).
func migratedMain(t *testing.T) ([]string, *sql.DB) {
	t.Helper()
	e := env(t)
	if _, stderr, code := run(t, e, "migrate", "up"); code != 0 {
		t.Fatalf("migrate up: %s", stderr)
	}
	var dsn string
	for _, kv := range e {
		if v, ok := strings.CutPrefix(kv, "MALL_DB_MAIN="); ok {
			dsn = v
		}
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return e, db
}

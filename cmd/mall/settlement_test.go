package main

import (
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
)

// TestSettlementCheck: `mall settlement check` exits 0 on a ledger that reconciles (here
// the empty one) and 1, naming the posting, when a posting does not sum to zero.
func TestSettlementCheck(t *testing.T) {
	e, db := migratedMain(t)
	out, stderr, code := run(t, e, "settlement", "check")
	if code != 0 || !strings.Contains(out, "no difference") {
		t.Fatalf("settlement check on an empty ledger: %d %s %s", code, out, stderr)
	}
	// A release posting whose lines do not balance.
	if _, err := db.Exec(`INSERT INTO settlement_postings (id, fact_key, kind, merchant_id, created_at)
		VALUES (1, 'release:1', 'release', 9, NOW(6))`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO settlement_lines (posting_id, account, merchant_id, amount)
		VALUES (1, 'merchant_pending', 9, -100), (1, 'merchant_available', 9, 99)`); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = run(t, e, "settlement", "check")
	if code != 1 || !strings.Contains(out, "posting release:1: lines sum to -1, not 0") ||
		!strings.Contains(stderr, "settlement check:") {
		t.Fatalf("settlement check on a broken posting: %d %s %s", code, out, stderr)
	}
}

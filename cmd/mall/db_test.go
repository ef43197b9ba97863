package main

import (
	"database/sql"
	"strings"
	"testing"
	"time"
)

// TestDBPartitions: `mall db partitions` adds the coming months' partitions on every shard
// and adds nothing when run again.
func TestDBPartitions(t *testing.T) {
	e := env(t)
	if _, stderr, code := run(t, e, "migrate", "up"); code != 0 {
		t.Fatalf("migrate up: %s", stderr)
	}
	out, stderr, code := run(t, e, "db", "partitions", "--months", "6")
	if code != 0 || !strings.Contains(out, "added") {
		t.Fatalf("db partitions: %d %s %s", code, out, stderr)
	}
	out, stderr, code = run(t, e, "db", "partitions", "--months", "6")
	if code != 0 || !strings.Contains(out, "0 added") {
		t.Fatalf("db partitions again: %d %s %s", code, out, stderr)
	}
	var shards []string
	for _, kv := range e {
		if v, ok := strings.CutPrefix(kv, "MALL_DB_SHARDS="); ok {
			shards = strings.Split(v, ",")
		}
	}
	if len(shards) < 2 {
		t.Fatalf("want two shards, have %v", shards)
	}
	now := time.Now().UTC()
	want := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 6, 0).Format("p200601")
	for _, dsn := range shards {
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"order_orders", "order_items"} {
			var names string
			if err := db.QueryRow(`SELECT GROUP_CONCAT(PARTITION_NAME ORDER BY PARTITION_ORDINAL_POSITION)
				FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, table).Scan(&names); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(names, want) || !strings.HasSuffix(names, ","+"pmax") {
				t.Errorf("%s partitions %s lack %s or a last pmax", table, names, want)
			}
			t.Logf("%s: %s", table, names)
		}
		db.Close()
	}
}

// Package sqldbtest gives each test its own databases on the MariaDB started by
// scripts/services.sh (make test exports MALL_TEST_MYSQL_DSN).
package sqldbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // driver

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/migrations"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// DSN returns the server DSN (no database) or fails the test with how to get one.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("MALL_TEST_MYSQL_DSN")
	if dsn == "" {
		t.Fatal("MALL_TEST_MYSQL_DSN is not set: run `make test`, or `scripts/services.sh up && eval \"$(scripts/services.sh env)\"`")
	}
	return dsn
}

// Options for NewCluster.
type Options struct {
	// Shards is the number of physical shard databases (0 = shards live on main).
	Shards int
	// Migrations to apply; platform tables are always applied.
	Migrations []sqldb.Migrations
	// MaxOpenConns per database (default 50).
	MaxOpenConns int
}

// NewCluster creates fresh databases (main + shards), migrates them, and drops them when
// the test ends. Config returns the DSNs used, for tests that start the binary.
func NewCluster(t testing.TB, o Options) (*sqldb.Cluster, config.DB) {
	t.Helper()
	server := DSN(t)
	root, err := sql.Open("mysql", server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	prefix := "t_" + sanitize(t.Name()) + "_" + hex.EncodeToString(b)
	names := []string{prefix + "_main"}
	for i := 0; i < o.Shards; i++ {
		names = append(names, prefix+"_s"+string(rune('0'+i)))
	}
	ctx := context.Background()
	for _, n := range names {
		if _, err := root.ExecContext(ctx, "CREATE DATABASE `"+n+"`"); err != nil {
			t.Fatalf("create database %s: %v", n, err)
		}
	}
	t.Cleanup(func() {
		for _, n := range names {
			_, _ = root.ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+n+"`")
		}
	})
	cfg := config.DB{Main: server + names[0], MaxOpenConns: o.MaxOpenConns, MaxIdleConns: 10, ConnMaxLifetime: time.Minute}
	if cfg.MaxOpenConns == 0 {
		cfg.MaxOpenConns = 50
	}
	for _, n := range names[1:] {
		cfg.Shards = append(cfg.Shards, server+n)
	}
	cl, err := sqldb.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	ms := append([]sqldb.Migrations{migrations.Platform}, o.Migrations...)
	if err := cl.Migrate(ctx, ms, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return cl, cfg
}

func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
	if len(s) > 30 {
		s = s[:30]
	}
	return strings.ToLower(s)
}

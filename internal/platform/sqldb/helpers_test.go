package sqldb_test

import (
	"log/slog"

	"github.com/mallhq/mall/internal/platform/migrations"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

func platformMigrations() sqldb.Migrations { return migrations.Platform }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

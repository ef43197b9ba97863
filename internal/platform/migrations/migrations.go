// Package migrations holds the platform's own tables (outbox, inbox, idempotency keys),
// created on every physical database.
package migrations

import (
	"embed"

	"github.com/mallhq/mall/internal/platform/sqldb"
)

//go:embed sql/*.sql
var files embed.FS

// Platform is registered by the composition root before every module's migrations.
var Platform = sqldb.Embedded("platform", files, "sql", sqldb.OnAll)

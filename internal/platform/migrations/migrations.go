// Package migrations holds the platform's own tables (outbox, inbox, idempotency keys),
// created on every physical database.
package migrations

import (
	"embed"
	"io/fs"

	"github.com/mallhq/mall/internal/platform/sqldb"
)

//go:embed sql/*.sql
var files embed.FS

func sub() fs.FS {
	f, err := fs.Sub(files, "sql")
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	return f
}

// Platform is registered by the composition root before every module's migrations.
var Platform = sqldb.Migrations{Module: "platform", FS: sub(), Target: sqldb.OnAll}

package sqldb

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"

	"github.com/pressly/goose/v3"
)

// Target says which physical databases a module's tables live on.
type Target int

const (
	// OnMain: platform-wide data (users, catalog, stock, ...).
	OnMain Target = iota
	// OnShards: buyer-owned data, on every physical shard.
	OnShards
	// OnAll: every physical database (the outbox and inbox).
	OnAll
)

// Migrations are one module's embedded SQL migrations (goose format: NNNNN_name.sql with
// "-- +goose Up" / "-- +goose Down" sections).
type Migrations struct {
	Module string
	FS     fs.FS
	Target Target
}

// Embedded is a module's migrations in the directory dir of an embedded file system (the
// //go:embed must stay in the module's own package).
func Embedded(module string, files embed.FS, dir string, target Target) Migrations {
	f, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	return Migrations{Module: module, FS: f, Target: target}
}

func sorted(ms []Migrations) []Migrations {
	out := append([]Migrations(nil), ms...)
	// platform first: other modules' consumers rely on the inbox/outbox tables.
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].Module == "platform") != (out[j].Module == "platform") {
			return out[i].Module == "platform"
		}
		return out[i].Module < out[j].Module
	})
	return out
}

func (c *Cluster) targets(t Target) []*DB {
	switch t {
	case OnMain:
		return []*DB{c.main}
	case OnShards:
		seen := map[*DB]bool{}
		var out []*DB
		for _, d := range c.shards {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
		return out
	default:
		return c.all
	}
}

func provider(d *DB, m Migrations) (*goose.Provider, error) {
	return goose.NewProvider(goose.DialectMySQL, d.DB.DB, m.FS,
		goose.WithTableName(m.Module+"_schema_migrations"),
		goose.WithDisableGlobalRegistry(true))
}

// migrationLock serializes migrations from several replicas starting at once.
const migrationLock = "mall.migrate"

// Migrate applies every pending migration to the databases each module targets.
func (c *Cluster) Migrate(ctx context.Context, ms []Migrations, log *slog.Logger) error {
	for _, d := range c.all {
		if err := d.migrateOne(ctx, c, ms, log); err != nil {
			return err
		}
	}
	return nil
}

func (d *DB) migrateOne(ctx context.Context, c *Cluster, ms []Migrations, log *slog.Logger) error {
	conn, err := d.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", d.Name, err)
	}
	defer conn.Close()
	var got int
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 120)", migrationLock).Scan(&got); err != nil || got != 1 {
		return fmt.Errorf("migrate %s: could not take the migration lock (%v)", d.Name, err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK(?)", migrationLock) //nolint:errcheck
	for _, m := range sorted(ms) {
		if !contains(c.targets(m.Target), d) {
			continue
		}
		p, err := provider(d, m)
		if err != nil {
			return fmt.Errorf("migrate %s on %s: %w", m.Module, d.Name, err)
		}
		res, err := p.Up(ctx)
		if err != nil {
			return fmt.Errorf("migrate %s on %s: %w", m.Module, d.Name, err)
		}
		for _, r := range res {
			log.Info("migration applied", "db", d.Name, "module", m.Module, "version", r.Source.Version, "file", r.Source.Path)
		}
	}
	return nil
}

func contains(ds []*DB, d *DB) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

// MigrationStatus is one migration's state on one database.
type MigrationStatus struct {
	DB      string
	Module  string
	Version int64
	File    string
	Applied bool
}

// Status lists every migration on every target database.
func (c *Cluster) Status(ctx context.Context, ms []Migrations) ([]MigrationStatus, error) {
	var out []MigrationStatus
	for _, d := range c.all {
		for _, m := range sorted(ms) {
			if !contains(c.targets(m.Target), d) {
				continue
			}
			p, err := provider(d, m)
			if err != nil {
				return nil, err
			}
			st, err := p.Status(ctx)
			if err != nil {
				return nil, fmt.Errorf("status %s on %s: %w", m.Module, d.Name, err)
			}
			for _, s := range st {
				out = append(out, MigrationStatus{DB: d.Name, Module: m.Module, Version: s.Source.Version,
					File: s.Source.Path, Applied: s.State == goose.StateApplied})
			}
		}
	}
	return out, nil
}

// Package sqldb is Mall's MySQL layer: a cluster of the main database plus buyer shards,
// logical-shard routing, transactions carried in the context, deadlock retries and
// embedded per-module migrations.
package sqldb

import (
	"context"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/mallhq/mall/internal/platform/config"
)

// LogicalShards is the fixed number of logical shards; user_id mod LogicalShards picks one.
const LogicalShards = 1024

// DB is one physical database, through one module's handle (see Cluster.For).
type DB struct {
	*sqlx.DB
	// Name identifies the database in metrics and logs: "main", "shard0", ...
	Name string
	// scope is the module whose handle this is ("" for the cluster Open returns): a
	// transaction is joined only through a handle of the same database and scope.
	scope string
}

// Scope is the module whose handle d is ("" for the cluster Open returns).
func (d *DB) Scope() string { return d.scope }

// Cluster is the main database plus the physical shards holding buyer-owned data.
type Cluster struct {
	main   *DB
	shards []*DB // physical shards; [main] when none are configured
	all    []*DB // distinct physical databases, main first
	scope  string
}

// Open connects to every database in c and pings each one.
func Open(ctx context.Context, c config.DB) (*Cluster, error) {
	main, err := openDB(ctx, "main", c.Main, c)
	if err != nil {
		return nil, err
	}
	cl := &Cluster{main: main, all: []*DB{main}}
	for i, dsn := range c.Shards {
		if dsn == c.Main {
			cl.shards = append(cl.shards, main)
			continue
		}
		d, err := openDB(ctx, fmt.Sprintf("shard%d", i), dsn, c)
		if err != nil {
			cl.Close()
			return nil, err
		}
		cl.shards = append(cl.shards, d)
		cl.all = append(cl.all, d)
	}
	if len(cl.shards) == 0 {
		cl.shards = []*DB{main}
	}
	return cl, nil
}

// NormalizeDSN forces the session settings Mall relies on: UTC times parsed into time.Time,
// utf8mb4, a UTC session time zone, and client-side parameter interpolation.
//
// Interpolation: without it every statement with arguments is a server-side prepared
// statement, two round trips (prepare, execute) where one does; inside a transaction that
// holds a hot row's lock, round trips are what the lock waits on. The driver escapes the
// arguments itself (safe for utf8mb4, the only character set Mall uses; it refuses the
// multibyte sets where it would not be), so SQL stays parameterized in the code.
func NormalizeDSN(dsn string) (string, error) {
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", err
	}
	mc.ParseTime = true
	mc.Loc = time.UTC
	mc.Collation = "utf8mb4_unicode_ci"
	mc.InterpolateParams = true
	if mc.Params == nil {
		mc.Params = map[string]string{}
	}
	mc.Params["time_zone"] = "'+00:00'"
	if mc.Timeout == 0 {
		mc.Timeout = 5 * time.Second
	}
	return mc.FormatDSN(), nil
}

func openDB(ctx context.Context, name, dsn string, c config.DB) (*DB, error) {
	norm, err := NormalizeDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqldb: %s: %w", name, err)
	}
	x, err := sqlx.Open("mysql", norm)
	if err != nil {
		return nil, fmt.Errorf("sqldb: %s: %w", name, err)
	}
	x.SetMaxOpenConns(c.MaxOpenConns)
	x.SetMaxIdleConns(c.MaxIdleConns)
	x.SetConnMaxLifetime(c.ConnMaxLifetime)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := x.PingContext(pctx); err != nil {
		x.Close()
		return nil, fmt.Errorf("sqldb: connect %s (%s): %w", name, config.MaskDSN(dsn), err)
	}
	return &DB{DB: x, Name: name}, nil
}

// For returns the cluster as module sees it: the same pools, through handles of its own
// scope. WithinTx, Ext and InTx join only a transaction opened through a handle of the same
// database and scope, so a call into another module (which has its own scope) never joins
// the caller's transaction: it runs on the pool, or in a transaction of its own. Every
// module scopes the cluster it is given; platform code (relays, the inbox, migrations) uses
// the unscoped one. A scope is its name: c.For(m) and c.For(m).For(m) join each other's
// transactions. Close closes the shared pools: only the owner of the unscoped cluster
// calls it.
func (c *Cluster) For(module string) *Cluster {
	if c.scope == module {
		return c
	}
	scoped := make(map[*DB]*DB, len(c.all))
	for _, d := range c.all {
		sd := *d
		sd.scope = module
		scoped[d] = &sd
	}
	out := &Cluster{main: scoped[c.main], scope: module}
	for _, d := range c.shards {
		out.shards = append(out.shards, scoped[d])
	}
	for _, d := range c.all {
		out.all = append(out.all, scoped[d])
	}
	return out
}

// Scope is the module c is scoped to ("" for the cluster Open returns).
func (c *Cluster) Scope() string { return c.scope }

// Main is the platform-wide database.
func (c *Cluster) Main() *DB { return c.main }

// Shards returns the physical shards in routing order (main alone for a small install).
func (c *Cluster) Shards() []*DB { return c.shards }

// All returns every distinct physical database, main first.
func (c *Cluster) All() []*DB { return c.all }

// LogicalShard returns the logical shard of a user ID.
func LogicalShard(userID int64) int {
	s := userID % LogicalShards
	if s < 0 {
		s = -s
	}
	return int(s)
}

// ShardIndex maps a logical shard to its physical shard index: contiguous ranges, so
// physical shard i of n holds logical shards [i*1024/n, (i+1)*1024/n).
func ShardIndex(logical, physical int) int {
	return logical * physical / LogicalShards
}

// ForLogical returns the physical shard that holds a logical shard.
func (c *Cluster) ForLogical(logical int) *DB {
	return c.shards[ShardIndex(logical, len(c.shards))]
}

// ForUser returns the physical shard holding a buyer's data.
func (c *Cluster) ForUser(userID int64) *DB { return c.ForLogical(LogicalShard(userID)) }

// ForID returns the physical shard of an ID minted with a logical shard (see idgen).
func (c *Cluster) ForID(id int64) *DB { return c.ForLogical(int(id & (LogicalShards - 1))) }

// Close closes every database.
func (c *Cluster) Close() error {
	var first error
	for _, d := range c.all {
		if err := d.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Ping checks every physical database.
func (c *Cluster) Ping(ctx context.Context) error {
	for _, d := range c.all {
		if err := d.PingContext(ctx); err != nil {
			return fmt.Errorf("%s: %w", d.Name, err)
		}
	}
	return nil
}

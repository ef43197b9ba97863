package order

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mallhq/mall/internal/platform/sqldb"
)

// Monthly partitions. Each partitioned table has partitions pYYYYMM (rows created in that
// month, VALUES LESS THAN the first day of the next month) and a last catch-all pmax
// (MAXVALUE), so an insert never fails when maintenance lags. EnsurePartitions splits pmax
// with REORGANIZE PARTITION to add the missing months up to the horizon; when pmax is
// empty (the normal case) that is a metadata-only operation. It is idempotent and
// serialized per database with a named lock.

// PartitionedTables are the tables split by month on created_at.
var PartitionedTables = []string{"order_orders", "order_items"}

const partitionLock = "mall.order.partitions"

// EnsurePartitions makes every shard's partitioned tables cover the months from now's
// month through months ahead, and returns how many partitions it added.
func EnsurePartitions(ctx context.Context, cl *sqldb.Cluster, now time.Time, months int) (int, error) {
	added := 0
	seen := map[*sqldb.DB]bool{}
	for _, db := range cl.Shards() {
		if seen[db] {
			continue
		}
		seen[db] = true
		n, err := ensureOn(ctx, db, now, months)
		added += n
		if err != nil {
			return added, fmt.Errorf("order partitions on %s: %w", db.Name, err)
		}
	}
	return added, nil
}

func ensureOn(ctx context.Context, db *sqldb.DB, now time.Time, months int) (int, error) {
	conn, err := db.Connx(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var got int
	if err := conn.QueryRowxContext(ctx, "SELECT GET_LOCK(?, 60)", partitionLock).Scan(&got); err != nil || got != 1 {
		return 0, fmt.Errorf("could not take the partition lock (%v)", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK(?)", partitionLock) //nolint:errcheck
	added := 0
	for _, table := range PartitionedTables {
		var names []string
		if err := sqlx.SelectContext(ctx, conn, &names, `SELECT PARTITION_NAME FROM information_schema.PARTITIONS
			WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND PARTITION_NAME IS NOT NULL
			ORDER BY PARTITION_ORDINAL_POSITION`, table); err != nil {
			return added, err
		}
		if len(names) == 0 || names[len(names)-1] != "pmax" {
			return added, fmt.Errorf("%s is not partitioned by month with a pmax partition", table)
		}
		last := time.Time{}
		for _, n := range names {
			if t, err := time.Parse("p200601", n); err == nil && t.After(last) {
				last = t
			}
		}
		first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
		horizon := first.AddDate(0, months, 0)
		var parts []string
		for m := first; !m.After(horizon); m = m.AddDate(0, 1, 0) {
			if !m.After(last) {
				continue // exists (or older than the newest: REORGANIZE can only append)
			}
			parts = append(parts, fmt.Sprintf("PARTITION %s VALUES LESS THAN ('%s')",
				m.Format("p200601"), m.AddDate(0, 1, 0).Format("2006-01-02")))
		}
		if len(parts) == 0 {
			continue
		}
		q := fmt.Sprintf("ALTER TABLE %s REORGANIZE PARTITION pmax INTO (%s, PARTITION pmax VALUES LESS THAN (MAXVALUE))",
			table, strings.Join(parts, ", "))
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return added, err
		}
		added += len(parts)
	}
	return added, nil
}

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/mallhq/mall/internal/order"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// newDBCmd is `mall db`: database maintenance.
func newDBCmd(withConfig func(func(*cobra.Command, config.Config) error) func(*cobra.Command, []string) error) *cobra.Command {
	cmd := &cobra.Command{Use: "db", Short: "Database maintenance"}
	var months int
	parts := &cobra.Command{
		Use:   "partitions",
		Short: "Create the monthly order partitions for the coming months on every shard (idempotent)",
		Long: "Order tables (" + fmt.Sprint(order.PartitionedTables) + ") are RANGE-partitioned by month on created_at,\n" +
			"with a MAXVALUE partition pmax last. This splits pmax (ALTER TABLE ... REORGANIZE PARTITION) so every\n" +
			"month from the current one through --months ahead has its own partition. Running it again adds nothing.\n" +
			"`mall serve` does the same at startup and daily.",
		Args: cobra.NoArgs,
		RunE: withConfig(func(cmd *cobra.Command, cfg config.Config) error {
			if months < 0 || months > 120 {
				return &exitError{code: 2, err: fmt.Errorf("--months must be 0 to 120")}
			}
			return withCluster(cmd.Context(), cfg, func(ctx context.Context, cl *sqldb.Cluster) error {
				n, err := order.EnsurePartitions(ctx, cl, time.Now().UTC(), months)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "order partitions: %d added, every shard covers %d months ahead\n", n, months)
				return nil
			})
		}),
	}
	parts.Flags().IntVar(&months, "months", order.ConfigSection.Default().PartitionMonths, "months ahead of the current one to cover")
	cmd.AddCommand(parts)
	return cmd
}

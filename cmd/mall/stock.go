package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/stock"
)

// newStockCmd is `mall stock`: inventory checks against the configured databases.
func newStockCmd(withConfig func(func(*cobra.Command, config.Config) error) func(*cobra.Command, []string) error) *cobra.Command {
	cmd := &cobra.Command{Use: "stock", Short: "Inventory"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Verify every SKU's counters; exits 1 on any violation",
		Long: "Checks every SKU: no negative counter, on_hand = available + reserved + sold, and reserved\n" +
			"and sold equal what the reservations hold and bought. Prints each violation (at most " +
			fmt.Sprint(stock.MaxViolations) + ")\nand exits 1 when there is any, 0 when the stock is consistent.",
		Args: cobra.NoArgs,
		RunE: withConfig(func(cmd *cobra.Command, cfg config.Config) error {
			return withCluster(cmd.Context(), cfg, func(ctx context.Context, cl *sqldb.Cluster) error {
				stockCfg, err := stock.ConfigSection.From(cfg)
				if err != nil {
					return err
				}
				svc, err := stock.New(stock.Params{DB: cl, Config: stockCfg})
				if err != nil {
					return err
				}
				rep, err := svc.Check(ctx)
				if err != nil {
					return fmt.Errorf("stock check: %w", err)
				}
				out := cmd.OutOrStdout()
				if rep.OK() {
					fmt.Fprintf(out, "stock check: %d SKUs, no violation\n", rep.Rows)
					return nil
				}
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "SKU\tMERCHANT\tON_HAND\tAVAILABLE\tRESERVED\tSOLD\tPROBLEM")
				for _, v := range rep.Violations {
					l := v.Level
					fmt.Fprintf(w, "%d\t%d\t%d\t%d\t%d\t%d\t%s\n", l.SKUID, l.MerchantID, l.OnHand, l.Available, l.Reserved, l.Sold, v.Problem)
				}
				if err := w.Flush(); err != nil {
					return err
				}
				return &exitError{code: 1, err: fmt.Errorf("stock check: %d of %d SKUs violate an invariant", rep.ViolationCount, rep.Rows)}
			})
		}),
	})
	return cmd
}

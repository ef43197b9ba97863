package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/settlement"
)

// newSettlementCmd is `mall settlement`: the ledger's reconciliation against the orders.
func newSettlementCmd(withConfig func(func(*cobra.Command, config.Config) error) func(*cobra.Command, []string) error) *cobra.Command {
	cmd := &cobra.Command{Use: "settlement", Short: "Merchant settlement ledger"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Reconcile the ledger with the orders; exits 1 on any difference",
		Long: "Recomputes from every completed order what it must have posted (income, commission, refunds and\n" +
			"commission refunds after completion) and compares it with the ledger; checks that every posting\n" +
			"sums to zero, every merchant's balances equal their journal lines and entries, and every statement\n" +
			"equals its lines (a paid one its payout). Prints each difference (at most " + fmt.Sprint(settlement.MaxDifferences) +
			")\nand exits 1 when there is any, 0 when the ledger reconciles.",
		Args: cobra.NoArgs,
		RunE: withConfig(func(cmd *cobra.Command, cfg config.Config) error {
			var svc settlement.Service
			// The whole graph (not started): the check reads the orders through the order
			// module's interface, which needs its dependencies.
			_, closeAll, err := openSeedServices(cmd.Context(), cfg, io.Discard, []fx.Option{fx.Populate(&svc)})
			if err != nil {
				return err
			}
			defer closeAll()
			rep, err := svc.Check(cmd.Context())
			if err != nil {
				return fmt.Errorf("settlement check: %w", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "settlement check: %d completed orders, %d postings, %d merchants, %d statements\n",
				rep.Orders, rep.Postings, rep.Merchants, rep.Statements)
			if rep.OK() {
				fmt.Fprintln(out, "no difference")
				return nil
			}
			for _, d := range rep.Differences {
				fmt.Fprintln(out, d)
			}
			return &exitError{code: 1, err: fmt.Errorf("settlement check: %d differences", rep.DifferenceCount)}
		}),
	})
	return cmd
}

// Command mall is the Mall marketplace backend: one binary, several subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/dig"
	"go.uber.org/fx"

	"github.com/mallhq/mall/internal/app"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/log"
	"github.com/mallhq/mall/internal/platform/sqldb"
)

// Set by the linker: -X main.version=... -X main.commit=...
var (
	version = "dev"
	commit  = "unknown"
)

// exitError carries the process exit code; its message is printed as one line.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	if err := newRoot(os.Stdout).Execute(); err != nil {
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(os.Stderr, "mall:", line) // a configuration error has a line per bad key
		}
		os.Exit(code)
	}
}

func newRoot(out io.Writer) *cobra.Command {
	var cfgFile string
	root := &cobra.Command{
		Use:           "mall",
		Short:         "Mall: a B2B2C marketplace backend",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.PersistentFlags().StringVar(&cfgFile, "config", os.Getenv("MALL_CONFIG"),
		"configuration file merged over the built-in defaults (env MALL_CONFIG)")
	load := func() (config.Config, error) {
		c, err := app.LoadConfig(cfgFile)
		if err != nil {
			return c, &exitError{code: 2, err: err}
		}
		return c, nil
	}
	// withConfig adapts a command body that needs the configuration.
	withConfig := func(run func(*cobra.Command, config.Config) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			return run(cmd, cfg)
		}
	}

	root.AddCommand(&cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP API and run the background workers",
		Args:  cobra.NoArgs,
		RunE: withConfig(func(cmd *cobra.Command, cfg config.Config) error {
			return serve(cfg)
		}),
	})

	migrate := &cobra.Command{Use: "migrate", Short: "Database migrations"}
	migrate.AddCommand(&cobra.Command{
		Use:   "up",
		Short: "Apply every pending migration on every database",
		Args:  cobra.NoArgs,
		RunE: withConfig(func(cmd *cobra.Command, cfg config.Config) error {
			return withCluster(cmd.Context(), cfg, func(ctx context.Context, cl *sqldb.Cluster) error {
				return cl.Migrate(ctx, app.Migrations(), log.New(cfg.Log))
			})
		}),
	}, &cobra.Command{
		Use:   "status",
		Short: "Show every migration on every database",
		Args:  cobra.NoArgs,
		RunE: withConfig(func(cmd *cobra.Command, cfg config.Config) error {
			return withCluster(cmd.Context(), cfg, func(ctx context.Context, cl *sqldb.Cluster) error {
				rows, err := cl.Status(ctx, app.Migrations())
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "DATABASE\tMODULE\tVERSION\tSTATE\tFILE")
				pending := 0
				for _, r := range rows {
					state := "applied"
					if !r.Applied {
						state, pending = "pending", pending+1
					}
					fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", r.DB, r.Module, r.Version, state, r.File)
				}
				fmt.Fprintf(w, "\n%d pending\n", pending)
				return w.Flush()
			})
		}),
	})
	root.AddCommand(migrate)

	cfgCmd := &cobra.Command{Use: "config", Short: "Configuration"}
	cfgCmd.AddCommand(&cobra.Command{
		Use:   "print",
		Short: "Print the effective configuration (secrets masked)",
		Args:  cobra.NoArgs,
		RunE: withConfig(func(cmd *cobra.Command, cfg config.Config) error {
			_, err := io.WriteString(cmd.OutOrStdout(), config.Print(cfg))
			return err
		}),
	})
	root.AddCommand(cfgCmd)
	root.AddCommand(newAdminCmd(load))
	root.AddCommand(newStockCmd(withConfig))
	root.AddCommand(newSettlementCmd(withConfig))
	root.AddCommand(newSearchCmd(load))
	root.AddCommand(newSeedCmd(load))
	root.AddCommand(newDBCmd(withConfig))

	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "mall %s (commit %s, %s)\n", version, commit, runtime.Version())
		},
	})
	return root
}

func withCluster(ctx context.Context, cfg config.Config, fn func(context.Context, *sqldb.Cluster) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	cl, err := sqldb.Open(ctx, cfg.DB)
	if err != nil {
		return err
	}
	defer cl.Close()
	return fn(ctx, cl)
}

// serve runs the fx application until SIGINT/SIGTERM, then stops it gracefully.
func serve(cfg config.Config) error {
	logger := log.New(cfg.Log)
	fxApp := fx.New(app.Options(cfg, logger))
	if err := fxApp.Err(); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("startup: %w", dig.RootCause(err))}
	}
	startCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := fxApp.Start(startCtx); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("startup: %w", dig.RootCause(err))}
	}
	logger.Info("mall started", "version", version, "commit", commit, "addr", cfg.HTTP.Addr)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sig:
		logger.Info("shutting down", "signal", s.String())
	case sd := <-fxApp.Wait():
		logger.Info("shutting down", "exit_code", sd.ExitCode)
	}
	stopCtx, cancelStop := context.WithTimeout(context.Background(), cfg.App.ShutdownTimeout+cfg.HTTP.DrainDelay+5*time.Second)
	defer cancelStop()
	if err := fxApp.Stop(stopCtx); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("shutdown: %w", err)}
	}
	logger.Info("mall stopped")
	return nil
}

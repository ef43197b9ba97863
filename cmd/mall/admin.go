package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/mallhq/mall/internal/app"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/log"
	"github.com/mallhq/mall/internal/platform/redisx"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/user"
)

// newAdminCmd is `mall admin`: operator tasks that run against the configured databases
// without the HTTP server.
func newAdminCmd(load func() (config.Config, error)) *cobra.Command {
	admin := &cobra.Command{Use: "admin", Short: "Administration tasks"}
	var email, password string
	var resetPassword bool
	create := &cobra.Command{
		Use:   "create --email E --password P [--reset-password]",
		Short: "Create a platform admin, or promote an existing user to one (idempotent); prints the user ID",
		Long: "Creates a password account with the platform_admin role (its address counts as verified: you\n" +
			"vouch for it). An existing account with that email is promoted only when it is already an admin\n" +
			"(nothing changes: running it again is harmless) or has a verified address and no password (a\n" +
			"third-party login). Any other account may belong to whoever registered the address first: it is\n" +
			"refused unless --reset-password takes it over (its password becomes P, its address is marked\n" +
			"verified, its refresh tokens are revoked).\n" +
			"The password may come from MALL_ADMIN_PASSWORD instead of the flag, which keeps it\n" +
			"out of the process list. Prints the user ID on stdout.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if password == "" {
				password = os.Getenv("MALL_ADMIN_PASSWORD")
			}
			if email == "" || password == "" {
				return &exitError{code: 2, err: errors.New("admin create: --email and --password (or MALL_ADMIN_PASSWORD) are required")}
			}
			cfg, err := load()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			return withCluster(ctx, cfg, func(ctx context.Context, cl *sqldb.Cluster) error {
				if cfg.DB.MigrateOnStart {
					// Logs go to stderr: stdout carries only the user ID, for scripts.
					if err := cl.Migrate(ctx, app.Migrations(), log.NewWriter(cmd.ErrOrStderr(), cfg.Log)); err != nil {
						return err
					}
				}
				ids, release, err := adminIDGenerator(ctx, cfg)
				if err != nil {
					return err
				}
				defer release()
				res, err := user.EnsureAdminWith(ctx, cfg, cl, ids, email, password, user.AdminOptions{ResetPassword: resetPassword})
				if err != nil {
					return fmt.Errorf("admin create: %w", err)
				}
				what := map[user.AdminOutcome]string{
					user.AdminCreated:   "created",
					user.AdminExisting:  "existing user (password unchanged)",
					user.AdminTakenOver: "existing user taken over (password reset, address verified, sessions ended)",
				}[res.Outcome]
				fmt.Fprintf(cmd.ErrOrStderr(), "admin create: %s: platform admin %s, user ID %d\n", what, email, res.UserID)
				fmt.Fprintln(cmd.OutOrStdout(), res.UserID)
				return nil
			})
		},
	}
	create.Flags().StringVar(&email, "email", "", "the admin's email")
	create.Flags().BoolVar(&resetPassword, "reset-password", false, "take over an existing account the command did not create: set its password, verify its address, end its sessions")
	create.Flags().StringVar(&password, "password", "", "the password for a new account (8-128 characters); env MALL_ADMIN_PASSWORD")
	admin.AddCommand(create)
	return admin
}

// adminIDGenerator uses app.node_id when set, otherwise leases a node number in Redis for
// the command's duration, as `mall serve` does.
func adminIDGenerator(ctx context.Context, cfg config.Config) (*idgen.Generator, func(), error) {
	if cfg.App.NodeID >= 0 {
		g, err := idgen.New(cfg.App.NodeID)
		return g, func() {}, err
	}
	rdb, err := redisx.New(cfg.Redis)
	if err != nil {
		return nil, nil, err
	}
	lease, err := idgen.AcquireLease(ctx, rdb)
	if err != nil {
		rdb.Close()
		return nil, nil, fmt.Errorf("admin create: lease an ID generator node from redis (or set app.node_id): %w", err)
	}
	release := func() {
		_ = lease.Release(context.WithoutCancel(ctx))
		rdb.Close()
	}
	g, err := idgen.New(lease.Node)
	if err != nil {
		release()
		return nil, nil, err
	}
	return g, release, nil
}

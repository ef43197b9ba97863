package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/mallhq/mall/internal/catalog"
	"github.com/mallhq/mall/internal/catalog/search"
	"github.com/mallhq/mall/internal/merchant"
	"github.com/mallhq/mall/internal/platform/config"
	"github.com/mallhq/mall/internal/platform/idgen"
	"github.com/mallhq/mall/internal/platform/sqldb"
	"github.com/mallhq/mall/internal/stock"
	"github.com/mallhq/mall/internal/user"
)

// newSearchCmd is `mall search`: the product search index.
func newSearchCmd(load func() (config.Config, error)) *cobra.Command {
	s := &cobra.Command{Use: "search", Short: "Product search index"}
	s.AddCommand(&cobra.Command{
		Use:   "reindex",
		Short: "Rebuild the configured engine's product index from MySQL",
		Long: "Rebuilds the search index (search.engine) from the databases: every on-sale product of an\n" +
			"active merchant, built beside the live index and swapped in atomically.\n\n" +
			"bleve: one process per index path, so this refuses while a server has the index open;\n" +
			"rebuild a running replica's index with POST /api/v1/admin/search/reindex instead.\n" +
			"elasticsearch: writes the indexer makes during the rebuild land in the old index only;\n" +
			"run it while the consumers are paused, or replay the catalog events after it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			start := time.Now()
			n, err := reindex(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "search reindex: %d products indexed (%s) in %s\n",
				n, engineName(cfg.Search), time.Since(start).Round(time.Millisecond))
			return nil
		},
	})
	return s
}

func engineName(c config.Search) string {
	if c.Engine == "" {
		return "bleve"
	}
	return c.Engine
}

// bleveLockWait is how long reindex waits for a bleve index held by another process
// before refusing (bleve itself would wait 5s and fail with a less helpful error).
const bleveLockWait = time.Second

// errIndexInUse is a bleve index another process (a running server) has open.
var errIndexInUse = errors.New("in use")

// reindex rebuilds cfg's search index from the databases and returns the number of
// products indexed.
func reindex(ctx context.Context, cfg config.Config) (int, error) {
	if engineName(cfg.Search) == "bleve" {
		// Checked before opening: opening also clears a rebuild's leftovers, which would
		// pull a running server's half-built index from under it.
		if err := bleveFree(cfg.Search.Bleve.Path, bleveLockWait); err != nil {
			if errors.Is(err, errIndexInUse) {
				err = fmt.Errorf("search reindex: the bleve index %s is open by a running mall server (one process per index): "+
					"rebuild it there with POST /api/v1/admin/search/reindex, or stop the server first", cfg.Search.Bleve.Path)
			}
			return 0, &exitError{code: 1, err: err}
		}
	}
	cl, err := sqldb.Open(ctx, cfg.DB)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	idx, err := search.New(ctx, cfg.Search)
	if err != nil {
		return 0, fmt.Errorf("search reindex: %w", err)
	}
	stockCfg, err := stock.ConfigSection.From(cfg)
	if err != nil {
		return 0, errors.Join(err, idx.Close())
	}
	st, err := stock.New(stock.Params{DB: cl, Config: stockCfg})
	if err != nil {
		return 0, errors.Join(err, idx.Close())
	}
	ids, err := idgen.New(0) // the merchant service below only reads: it never makes an ID
	if err != nil {
		return 0, errors.Join(err, idx.Close())
	}
	merchants, err := merchant.New(merchant.Params{DB: cl, IDs: ids, Users: noUsers{}})
	if err != nil {
		return 0, errors.Join(err, idx.Close())
	}
	src, err := catalog.NewSearchSource(cl, st, merchants)
	if err != nil {
		return 0, errors.Join(err, idx.Close())
	}
	n, err := catalog.Reindex(ctx, idx, src)
	if cerr := idx.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("search reindex: %w", err)
	}
	return n, nil
}

// noUsers stands in for the user module in a merchant service used only to read merchants
// (Get): reading never calls it, and any call would panic on the nil interface.
type noUsers struct{ user.Service }

// Command mallbench measures a running Mall server against a trivial baseline server and
// writes docs/benchmarks.md. scripts/bench.sh (make bench) starts both servers and calls it.
//
//	mallbench baseline -addr 127.0.0.1:18081   # the baseline: one echo handler, small JSON
//	mallbench run -mall URL -baseline URL -out docs/benchmarks.md [-run REGEXP]
//
// The rows are the scenarios in scenarios.go. The load generator is closed-loop like wrk: each
// of -conns workers keeps one keep-alive connection busy, sending the next request as soon as
// the previous answer arrives. It shares the machine with the server, so only ratios to the
// baseline row (measured in the same run) compare across machines.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "baseline":
		err = baselineCmd(os.Args[2:])
	case "wait-index":
		err = waitIndexCmd(os.Args[2:])
	case "ws-server":
		err = wsServerCmd(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mallbench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: mallbench run [flags] | mallbench baseline -addr HOST:PORT | mallbench wait-index -url URL -min N | mallbench ws-server [flags]")
	os.Exit(2)
}

// waitIndexCmd waits until a server's search index has caught up with a large seed, so its
// indexing does not run during the measurements.
func waitIndexCmd(args []string) error {
	fs := flag.NewFlagSet("wait-index", flag.ExitOnError)
	base := fs.String("url", "", "base URL of the `mall serve` to wait for")
	minProducts := fs.Int("min", 100000, "products the index must hold (0: only wait for the outbox backlog to drain)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	_ = fs.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &http.Client{Timeout: 30 * time.Second}
	if err := waitReady(ctx, c, *base+"/readyz", 2*time.Minute); err != nil {
		return err
	}
	return WaitIndexed(ctx, c, *base, *minProducts, *timeout, os.Stderr)
}

// baselineCmd serves the baseline: the cheapest possible echo handler, so the ratio column
// shows what Mall's middleware and handlers cost on top of the framework and the network.
func baselineCmd(args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:18081", "listen address")
	_ = fs.Parse(args)

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- e.Start(*addr) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var (
		o      Options
		filter string
	)
	fs.StringVar(&o.MallURL, "mall", "http://127.0.0.1:18080", "base URL of the running `mall serve` (empty: skip its scenarios)")
	fs.StringVar(&o.MallNoL1URL, "mall-nol1", "", "base URL of a second `mall serve` on the same data with catalog.detail_cache.l1_size=0 (empty: skip its scenarios)")
	fs.StringVar(&o.SearchURL, "mall-search", "", "base URL of a `mall serve` on the large seed (empty: skip its scenarios)")
	fs.StringVar(&o.SeedPassword, "seed-password", "mall-demo-dev", "password of the `mall seed` demo accounts on the servers")
	fs.IntVar(&o.SearchMin, "search-min", 100000, "products the -mall-search index must hold")
	fs.StringVar(&o.WSURL, "ws", "", "base URL of `mallbench ws-server` (empty: skip the WebSocket rows)")
	fs.StringVar(&o.WSRedis, "ws-redis", "127.0.0.1:16379", "Redis address of the -ws server")
	fs.IntVar(&o.WSRedisDB, "ws-redis-db", 9, "Redis database of the -ws server")
	fs.StringVar(&o.Kafka, "kafka", "", "address of the -mall server's embedded Kafka broker (empty: skip the settlement rows)")
	fs.StringVar(&o.BaselineURL, "baseline", "http://127.0.0.1:18081", "base URL of `mallbench baseline`")
	fs.IntVar(&o.Conns, "conns", 64, "concurrent connections (closed-loop workers)")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "measured time per scenario")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "unmeasured load before each scenario")
	fs.DurationVar(&o.WaitReady, "wait", 2*time.Minute, "how long to wait for /readyz (mall) and /healthz (baseline)")
	fs.StringVar(&filter, "run", "", "only scenarios whose name matches this regexp (the baseline always runs)")
	fs.StringVar(&o.Out, "out", "docs/benchmarks.md", "markdown report to write (- for stdout)")
	fs.StringVar(&o.Commit, "commit", "unknown", "commit of the measured build")
	fs.StringVar(&o.MallBinary, "mall-bin", "bin/mall", "the measured binary (its Go version goes into the report)")
	fs.StringVar(&o.ServerNote, "server-note", "", "how the server was configured, for the report")
	fs.StringVar(&o.SkipReason, "skip-reason", "", "why -mall is empty, for the report")
	_ = fs.Parse(args)
	if filter != "" {
		re, err := regexp.Compile(filter)
		if err != nil {
			return fmt.Errorf("-run: %w", err)
		}
		o.Filter = re
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, o, slices.Concat(scenarios, settlementScenarios, flashScenarios, wsScenarios))
}

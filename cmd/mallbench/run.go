package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"time"
)

// Options of a benchmark run (flags of `mallbench run`).
type Options struct {
	MallURL     string // empty: Mall's rows are reported as not run, with SkipReason
	MallNoL1URL string // the TargetMallNoL1 server (empty: its rows are not run)
	SearchURL   string // the TargetSearch server (empty: its rows are not run)
	WSURL       string // the TargetWS server, `mallbench ws-server` (empty: its rows are not run)
	WSRedis     string // its Redis address and database
	WSRedisDB   int
	BaselineURL string
	Kafka       string // the -mall server's embedded broker (settlement rows)
	// SeedPassword is the demo accounts' password on the seeded servers.
	SeedPassword string
	// SearchMin is the number of products TargetSearch's index must hold.
	SearchMin  int
	Conns      int
	Warmup     time.Duration
	Duration   time.Duration
	WaitReady  time.Duration
	Filter     *regexp.Regexp
	Out        string
	Commit     string
	MallBinary string
	ServerNote string
	SkipReason string
}

// Row is one scenario's outcome.
type Row struct {
	Name   string
	Result Result
	Skip   string // why the row was not measured
	Rate   float64
	Goal   string // the target and whether it was met ("" = none)
}

// Run measures every selected scenario, in order, and writes the report.
func Run(ctx context.Context, o Options, list []Scenario) error {
	if len(list) == 0 || list[0].Target != TargetBaseline {
		return errors.New("the first scenario must be the baseline")
	}
	if o.Conns <= 0 || o.Duration <= 0 {
		return errors.New("-conns and -duration must be positive")
	}
	machine := readMachine() // before the load, so the load average is other work's
	env := &Env{MallURL: o.MallURL, MallNoL1URL: o.MallNoL1URL, SearchURL: o.SearchURL, BaselineURL: o.BaselineURL,
		WSURL: o.WSURL, WSRedis: o.WSRedis, WSRedisDB: o.WSRedisDB, Kafka: o.Kafka,
		Client: &http.Client{Timeout: 30 * time.Second}, SeedPassword: o.SeedPassword, SearchMin: o.SearchMin}
	if err := waitReady(ctx, env.Client, o.BaselineURL+"/healthz", o.WaitReady); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	for _, u := range []string{o.MallURL, o.MallNoL1URL, o.SearchURL, o.WSURL} {
		if u == "" {
			continue
		}
		if err := waitReady(ctx, env.Client, u+"/readyz", o.WaitReady); err != nil {
			return fmt.Errorf("mall: %w", err)
		}
	}

	var rows []Row
	var failed error
	var base Result
	for i, s := range list {
		if i > 0 && o.Filter != nil && !o.Filter.MatchString(s.Name) {
			continue
		}
		row := Row{Name: s.Name, Rate: s.Rate}
		switch {
		case s.Target == TargetMall && o.MallURL == "":
			row.Skip = "not run: " + o.SkipReason
		case s.Target != TargetBaseline && env.URL(s.Target) == "":
			row.Skip = "not run: no " + s.Target.String() + " server"
			if o.SkipReason != "" {
				row.Skip += " (" + o.SkipReason + ")"
			}
		case s.Measure != nil:
			res, goal, err := s.Measure(ctx, env)
			if err != nil {
				row.Skip = "failed: " + err.Error()
				failed = errors.Join(failed, fmt.Errorf("%s: %w", s.Name, err))
				break
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			row.Result, row.Goal = res, goal
		default:
			next, err := s.Setup(ctx, env)
			if err != nil {
				row.Skip = "setup failed: " + err.Error()
				failed = errors.Join(failed, fmt.Errorf("%s: setup: %w", s.Name, err))
				break
			}
			lo := LoadOptions{Conns: o.Conns, Warmup: o.Warmup, Duration: o.Duration, OK: s.OK}
			if s.Rate > 0 {
				row.Result = LoadRate(ctx, env.URL(s.Target), next, lo, s.Rate)
			} else {
				row.Result = Load(ctx, env.URL(s.Target), next, lo)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if i == 0 {
				base = row.Result
			}
			if s.Goal != nil {
				row.Goal = s.Goal(row.Result, base)
			}
		}
		rows = append(rows, row)
		logRow(row)
		time.Sleep(500 * time.Millisecond) // let the server settle between rows
	}

	report := Report{Options: o, Rows: rows, When: time.Now().UTC(), Machine: machine, GoVersion: goVersion(o.MallBinary)}
	if err := writeFile(o.Out, report.Markdown()); err != nil {
		return err
	}
	if o.Out != "-" {
		fmt.Fprintln(os.Stderr, "mallbench: wrote", o.Out)
	}
	return failed
}

func logRow(r Row) {
	if r.Skip != "" {
		fmt.Fprintf(os.Stderr, "%-40s %s\n", r.Name, r.Skip)
		return
	}
	res := r.Result
	fmt.Fprintf(os.Stderr, "%-40s %9.0f req/s  p50 %-9s p99 %-9s errors %s %s\n",
		r.Name, res.Rate(), fmtDur(res.P50), fmtDur(res.P99), fmtErrors(res), r.Goal)
	if res.FirstErr != "" {
		fmt.Fprintf(os.Stderr, "%-40s first error: %s\n", "", res.FirstErr)
	}
}

func writeFile(name, content string) error {
	if name == "-" {
		_, err := os.Stdout.WriteString(content)
		return err
	}
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

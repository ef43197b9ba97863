package worker_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/mallhq/mall/internal/platform/metrics"
	"github.com/mallhq/mall/internal/platform/redisx/redisxtest"
	"github.com/mallhq/mall/internal/platform/worker"
)

// runs records the start of every run.
type runs struct {
	mu     sync.Mutex
	starts []time.Time
	wake   chan struct{}
}

// measureSlack: the helper spaces runs from its own clock reading just before a run, and
// record reads the clock inside the run, a moment later by a varying amount (goroutine
// scheduling under -race and load); two such readings can be closer than the schedule's
// spacing by that much. A scheduler that fired early would miss by far more (a jitter bound,
// half an interval).
const measureSlack = 3 * time.Millisecond

func newRuns() *runs { return &runs{wake: make(chan struct{}, 1000)} }

func (r *runs) record() {
	r.mu.Lock()
	r.starts = append(r.starts, time.Now())
	r.mu.Unlock()
	r.wake <- struct{}{}
}

func (r *runs) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.starts)
}

func (r *runs) gaps() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Duration
	for i := 1; i < len(r.starts); i++ {
		out = append(out, r.starts[i].Sub(r.starts[i-1]))
	}
	return out
}

// waitFor waits until n runs have started.
func (r *runs) waitFor(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for r.count() < n {
		select {
		case <-r.wake:
		case <-deadline:
			t.Fatalf("%d runs within %s, want %d", r.count(), within, n)
		}
	}
}

func start(t *testing.T, p worker.Params) *worker.Runner {
	t.Helper()
	r, err := worker.New(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return r
}

func stop(t *testing.T, r *worker.Runner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRunsAtTheInterval(t *testing.T) {
	t.Parallel()
	rs := newRuns()
	const interval, window = 40 * time.Millisecond, 800 * time.Millisecond
	r := start(t, worker.Params{Workers: []worker.Spec{{Name: "t", Interval: interval, Jitter: -1,
		Run: func(context.Context) error { rs.record(); return nil }}}})
	time.Sleep(window)
	stop(t, r)
	n := rs.count()
	// A timer never fires early, so at most window/interval; a loaded machine runs late.
	if most := int(window / interval); n > most || n < most/2 {
		t.Fatalf("%d runs in %s at %s intervals, want %d..%d", n, window, interval, most/2, most)
	}
	for _, g := range rs.gaps() {
		if g < interval-measureSlack {
			t.Fatalf("gap %s between runs, want at least %s (less %s of measuring)", g, interval, measureSlack)
		}
	}
	if got := rs.count(); got != n {
		t.Fatalf("%d runs after Stop returned, want none", got-n)
	}
}

func TestJitterStaysWithinBounds(t *testing.T) {
	t.Parallel()
	rs := newRuns()
	const interval, jitter = 40 * time.Millisecond, 0.5
	r := start(t, worker.Params{Workers: []worker.Spec{{Name: "t", Interval: interval, Jitter: jitter,
		Run: func(context.Context) error { rs.record(); return nil }}}})
	rs.waitFor(t, 25, 10*time.Second)
	stop(t, r)
	lo, hi := time.Duration(float64(interval)*(1-jitter)), time.Duration(float64(interval)*(1+jitter))
	var short, long int
	for _, g := range rs.gaps() {
		if g < lo-measureSlack {
			t.Fatalf("gap %s between runs, want at least %s (less %s of measuring)", g, lo, measureSlack)
		}
		if g < interval-interval/5 {
			short++
		}
		if g > interval+interval/5 && g <= hi+20*time.Millisecond {
			long++
		}
	}
	// 24 gaps uniform in [20ms, 60ms]: each side of ±8ms holds 30% of them; none on a side
	// has odds of 0.7^24 ≈ 2e-4.
	if short == 0 || long == 0 {
		t.Fatalf("gaps %v: want some shorter and some longer than %s (jittered)", rs.gaps(), interval)
	}
}

// counter is the worker's series of name: a counter's or gauge's value, a histogram's count.
func counter(t *testing.T, reg *prometheus.Registry, name, worker string) float64 {
	t.Helper()
	v, err := metrics.Value(reg, name, map[string]string{"worker": worker})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPanicIsRecoveredAndCounted(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	rs := newRuns()
	var calls atomic.Int64
	r := start(t, worker.Params{Registry: reg, Workers: []worker.Spec{{Name: "panicky", Interval: 10 * time.Millisecond,
		Run: func(context.Context) error {
			defer rs.record()
			if calls.Add(1) == 2 {
				panic("boom")
			}
			return nil
		}}}})
	rs.waitFor(t, 5, 10*time.Second)
	stop(t, r)
	if got := counter(t, reg, "mall_worker_panics_total", "panicky"); got != 1 {
		t.Fatalf("panics %v, want 1", got)
	}
	if got := counter(t, reg, "mall_worker_failures_total", "panicky"); got != 1 {
		t.Fatalf("failures %v, want 1", got)
	}
	if got, want := counter(t, reg, "mall_worker_run_seconds", "panicky"), float64(calls.Load()); got != want {
		t.Fatalf("%v runs observed, want %v (every run, the panicked one too)", got, want)
	}
}

func TestFailuresCounted(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	rs := newRuns()
	var calls atomic.Int64
	errBad := errors.New("bad")
	r := start(t, worker.Params{Registry: reg, Workers: []worker.Spec{
		{Name: "failing", Interval: 10 * time.Millisecond, Run: func(context.Context) error {
			defer rs.record()
			if calls.Add(1) <= 3 {
				return errBad
			}
			return nil
		}},
		{Name: "fine", Interval: 10 * time.Millisecond, Run: func(context.Context) error { return nil }},
		{}, // disabled: left out
	}})
	rs.waitFor(t, 6, 10*time.Second)
	stop(t, r)
	if got := counter(t, reg, "mall_worker_failures_total", "failing"); got != 3 {
		t.Fatalf("failures %v, want 3", got)
	}
	if got := counter(t, reg, "mall_worker_failures_total", "fine"); got != 0 {
		t.Fatalf("failures of the other worker %v, want 0", got)
	}
	if got := counter(t, reg, "mall_worker_run_seconds", "fine"); got == 0 {
		t.Fatal("the other worker's runs were not observed")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "mall_worker_leader" {
			t.Fatalf("%d leader gauges for per-replica workers, want none", len(mf.GetMetric()))
		}
	}
}

func TestRunTimeout(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	type result struct {
		took time.Duration
		err  error
	}
	done := make(chan result, 10)
	r := start(t, worker.Params{Registry: reg, Workers: []worker.Spec{{Name: "slow", RunAtStart: true, Timeout: 50 * time.Millisecond,
		Run: func(ctx context.Context) error {
			t0 := time.Now()
			<-ctx.Done()
			done <- result{time.Since(t0), ctx.Err()}
			return ctx.Err()
		}}}})
	res := <-done
	// The helper counts the failure after Run returns; stopping before that would make the
	// run one cut short by Stop (not a failure), so wait for the count first.
	for deadline := time.Now().Add(5 * time.Second); counter(t, reg, "mall_worker_failures_total", "slow") < 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	stop(t, r)
	if !errors.Is(res.err, context.DeadlineExceeded) || res.took < 50*time.Millisecond || res.took > 5*time.Second {
		t.Fatalf("run ended after %s with %v, want the 50ms timeout", res.took, res.err)
	}
	if got := counter(t, reg, "mall_worker_failures_total", "slow"); got != 1 {
		t.Fatalf("failures %v, want 1 (a timeout is a failure)", got)
	}
}

func TestStopWaitsForTheRunInFlight(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	started, release := make(chan struct{}), make(chan struct{})
	var sawCancel atomic.Bool
	r := start(t, worker.Params{Registry: reg, Workers: []worker.Spec{{Name: "busy", RunAtStart: true,
		Run: func(ctx context.Context) error {
			close(started)
			<-release // ignores ctx: a run that takes its time to wind down
			sawCancel.Store(ctx.Err() != nil)
			return ctx.Err()
		}}}})
	<-started
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- r.Stop(ctx)
	}()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned %v while a run was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return after the run ended")
	}
	if !sawCancel.Load() {
		t.Fatal("the run's context was not cancelled by Stop")
	}
	if got := counter(t, reg, "mall_worker_failures_total", "busy"); got != 0 {
		t.Fatalf("failures %v, want 0 (a run cut short by Stop has not failed)", got)
	}
}

func TestStopRespectsItsDeadline(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	r, err := worker.New(worker.Params{Workers: []worker.Spec{{Name: "stuck", RunAtStart: true,
		Run: func(context.Context) error { close(started); <-release; return nil }}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err = r.Stop(ctx)
	if took := time.Since(t0); !errors.Is(err, context.DeadlineExceeded) || took < 100*time.Millisecond || took > 3*time.Second {
		t.Fatalf("Stop returned %v after %s, want the deadline's error after 100ms", err, took)
	}
}

func TestTriggerRunsAtOnce(t *testing.T) {
	t.Parallel()
	rs := newRuns()
	trigger := make(chan struct{}, 1)
	r := start(t, worker.Params{Workers: []worker.Spec{{Name: "t", Interval: time.Hour, Trigger: trigger,
		Run: func(context.Context) error { rs.record(); return nil }}}})
	time.Sleep(50 * time.Millisecond)
	if n := rs.count(); n != 0 {
		t.Fatalf("%d runs before the first interval or trigger, want 0", n)
	}
	for i := 1; i <= 3; i++ {
		t0 := time.Now()
		trigger <- struct{}{}
		rs.waitFor(t, i, 5*time.Second)
		if took := time.Since(t0); took > time.Second {
			t.Fatalf("triggered run %d started after %s", i, took)
		}
	}
	stop(t, r)
	if n := rs.count(); n != 3 {
		t.Fatalf("%d runs, want 3", n)
	}
}

func TestSignalRunsAtOnce(t *testing.T) {
	// Not parallel: the signal goes to the whole process.
	rs := newRuns()
	r := start(t, worker.Params{Workers: []worker.Spec{{Name: "t", Signals: []os.Signal{syscall.SIGHUP},
		Run: func(context.Context) error { rs.record(); return nil }}}})
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	rs.waitFor(t, 1, 5*time.Second)
	stop(t, r)
	if n := rs.count(); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	run := func(context.Context) error { return nil }
	tests := []struct {
		name string
		give []worker.Spec
		want error
	}{
		{"no name", []worker.Spec{{Interval: time.Second, Run: run}}, worker.ErrNoName},
		{"duplicate", []worker.Spec{{Name: "a", Run: run}, {Name: "a", Run: run}}, worker.ErrDuplicate},
		{"leader without Redis", []worker.Spec{{Name: "a", Leader: true, Run: run}}, worker.ErrNeedsRedis},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := worker.New(worker.Params{Workers: tt.give}); !errors.Is(err, tt.want) {
				t.Fatalf("New: %v, want %v", err, tt.want)
			}
		})
	}
}

// cluster is n runners with one leader-only worker each on one Redis and one scope.
type cluster struct {
	runners []*worker.Runner
	regs    []*prometheus.Registry
	counts  []atomic.Int64
	active  atomic.Int64
	overlap atomic.Int64
	wake    chan struct{}
}

func newCluster(t *testing.T, n int, ttl time.Duration) *cluster {
	t.Helper()
	rdb := redisxtest.Client(t)
	scope := worker.Scope(redisxtest.Prefix(t))
	c := &cluster{counts: make([]atomic.Int64, n), wake: make(chan struct{}, 10000)}
	for i := range n {
		reg := prometheus.NewRegistry()
		c.regs = append(c.regs, reg)
		c.runners = append(c.runners, start(t, worker.Params{Redis: rdb, Scope: scope, Registry: reg,
			Workers: []worker.Spec{{Name: "solo", Interval: 5 * time.Millisecond, Jitter: -1, Leader: true, LeaseTTL: ttl,
				Run: func(context.Context) error {
					if c.active.Add(1) > 1 {
						c.overlap.Add(1)
					}
					time.Sleep(2 * time.Millisecond)
					c.active.Add(-1)
					c.counts[i].Add(1)
					c.wake <- struct{}{}
					return nil
				}}}}))
	}
	return c
}

// leaders are the runners that have run so far.
func (c *cluster) leaders() []int {
	var out []int
	for i := range c.counts {
		if c.counts[i].Load() > 0 {
			out = append(out, i)
		}
	}
	return out
}

// waitForRunBy waits until a runner other than the excluded ones runs; it returns which
// and when.
func (c *cluster) waitForRunBy(t *testing.T, exclude map[int]bool, within time.Duration) (int, time.Time) {
	t.Helper()
	deadline := time.After(within)
	for {
		for i := range c.counts {
			if !exclude[i] && c.counts[i].Load() > 0 {
				return i, time.Now()
			}
		}
		select {
		case <-c.wake:
		case <-deadline:
			t.Fatalf("no other runner ran within %s", within)
		}
	}
}

func TestLeaderOnlyOneRunsAndAnotherTakesOver(t *testing.T) {
	t.Parallel()
	const n, ttl = 3, 1500 * time.Millisecond
	c := newCluster(t, n, ttl)
	first, _ := c.waitForRunBy(t, nil, 5*time.Second)
	time.Sleep(300 * time.Millisecond) // several lease renewals
	if got := c.leaders(); len(got) != 1 {
		t.Fatalf("runners %v ran, want exactly one", got)
	}
	if got := c.counts[first].Load(); got < 10 {
		t.Fatalf("the leader ran %d times in 300ms at 5ms intervals, want at least 10", got)
	}
	var leading float64
	for i, reg := range c.regs {
		g := counter(t, reg, "mall_worker_leader", "solo")
		if (i == first) != (g == 1) {
			t.Fatalf("runner %d: leader gauge %v (leader is %d)", i, g, first)
		}
		leading += g
	}
	if leading != 1 {
		t.Fatalf("leader gauges sum to %v, want 1", leading)
	}

	// A leader that stops gives the lease back: another takes over at its next try.
	stopAt := time.Now()
	stop(t, c.runners[first])
	before := c.counts[first].Load()
	second, at := c.waitForRunBy(t, map[int]bool{first: true}, 5*time.Second)
	// Without the release it would wait for the lease to expire: at least 2/3 of the TTL.
	if took := at.Sub(stopAt); took >= ttl*2/3 {
		t.Fatalf("takeover after a stop took %s, want about the lease's retry period %s", took, ttl/3)
	}
	time.Sleep(200 * time.Millisecond)
	if got := c.leaders(); len(got) != 2 {
		t.Fatalf("runners %v ran, want %d then %d only", got, first, second)
	}
	if got := c.counts[first].Load(); got != before {
		t.Fatalf("the stopped runner ran %d more times", got-before)
	}

	// A leader that dies keeps the lease until it expires, then the last runner takes over.
	worker.AbandonLeases(c.runners[second])
	diedAt := time.Now()
	stop(t, c.runners[second])
	third, at := c.waitForRunBy(t, map[int]bool{first: true, second: true}, 10*time.Second)
	// The lease was renewed at most ttl/3 before the end, so it outlives it by 2/3 ttl.
	if took := at.Sub(diedAt); took < ttl/2 || took > ttl+ttl/3+2*time.Second {
		t.Fatalf("runner %d took over %s after the leader died, want between %s and about %s", third, took, ttl/2, ttl+ttl/3)
	}
	if got := c.overlap.Load(); got != 0 {
		t.Fatalf("%d runs overlapped another replica's run, want 0", got)
	}
}

func TestLeaderOnlyManyRunnersNeverOverlap(t *testing.T) {
	t.Parallel()
	const n = 5
	c := newCluster(t, n, 600*time.Millisecond)
	// Stop leaders one after another; at every moment at most one runs.
	stopped := map[int]bool{}
	for range n - 1 {
		i, _ := c.waitForRunBy(t, stopped, 10*time.Second)
		time.Sleep(50 * time.Millisecond)
		for j := range c.counts {
			if j != i && !stopped[j] && c.counts[j].Load() > 0 {
				t.Fatalf("runner %d ran while %d led", j, i)
			}
		}
		stop(t, c.runners[i])
		stopped[i] = true
	}
	if _, _ = c.waitForRunBy(t, stopped, 10*time.Second); c.overlap.Load() != 0 {
		t.Fatalf("%d runs overlapped another replica's run, want 0", c.overlap.Load())
	}
}

func TestModuleRunsTheGroup(t *testing.T) {
	t.Parallel()
	rs := newRuns()
	app := fxtest.New(t,
		worker.Module,
		fx.Provide(worker.As(func() worker.Spec {
			return worker.Spec{Name: "fx", RunAtStart: true, Interval: time.Hour,
				Run: func(context.Context) error { rs.record(); return nil }}
		})),
		fx.Provide(worker.As(func() worker.Spec { return worker.Spec{} })), // disabled
	)
	app.RequireStart()
	rs.waitFor(t, 1, 5*time.Second)
	app.RequireStop()
	if n := rs.count(); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
}

// Package worker runs the application's periodic background work: each Spec names a
// function run every Interval (jittered) from OnStart to OnStop, one run at a time, with
// a per-run timeout, recovered panics, a duration histogram and a failure counter per
// worker, optional run-now triggers (a channel, signals such as SIGHUP), and an optional
// leader-only mode in which a Redis lease lets one replica of the cluster run it.
//
// Modules contribute workers to the "workers" fx group and the platform's Module runs
// them:
//
//	fx.Provide(worker.As(func(s *service) worker.Spec {
//		return worker.Spec{Name: "stock.sweeper", Interval: s.cfg.SweepInterval, Run: s.sweep}
//	}))
//
// Without fx, New(Params{Workers: ...}) and Start/Stop do the same.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/fx"

	mlog "github.com/mallhq/mall/internal/platform/log"
)

// Defaults for what a Spec leaves zero.
const (
	// DefaultJitter spreads replicas' runs: each wait is Interval ± 10%.
	DefaultJitter = 0.1
	// DefaultLeaseTTL bounds how long a leader-only worker stays without a leader after
	// its holder dies: the lease expires and another replica takes it (it tries every
	// TTL/3).
	DefaultLeaseTTL = 10 * time.Second
	// timeoutSlack is added to Interval for the default per-run timeout.
	timeoutSlack = time.Minute
	// releaseTimeout bounds giving the lease back at stop.
	releaseTimeout = 2 * time.Second
)

// Spec describes one periodic worker. The zero Spec (Run nil) is a disabled worker:
// constructors return it when their module's configuration turns the work off.
type Spec struct {
	// Name labels the worker's metrics and logs ("stock.sweeper"); unique per Runner, and
	// for leader-only workers also the lease's name across the cluster.
	Name string
	// Interval is the time between the starts of two runs (the next run starts at once
	// when one takes longer). 0: no periodic runs, only RunAtStart and triggers.
	Interval time.Duration
	// Jitter is the fraction of Interval by which each wait varies, up or down, so that
	// replicas spread out. 0 means DefaultJitter; negative means none.
	Jitter float64
	// Timeout bounds one run; 0 means Interval + 1 minute.
	Timeout time.Duration
	// RunAtStart runs once as soon as the worker starts (in the background: it never delays
	// the application's start), then every Interval.
	RunAtStart bool
	// Trigger runs the worker at once on every receive (between runs; a receive during a
	// run waits for it). Send without blocking on a channel with a buffer of 1 to coalesce.
	Trigger <-chan struct{}
	// Signals run the worker at once when the process receives one (SIGHUP: reload).
	Signals []os.Signal
	// Leader makes the worker run on one replica only: the holder of a Redis lease named
	// after the worker. The others take it over within about LeaseTTL of the holder's end.
	Leader bool
	// LeaseTTL is the leader lease's lifetime (renewed every third of it); 0 means
	// DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Run does one run's work. An error is logged and counted; a panic is recovered,
	// logged and counted; either way the worker goes on at the next interval. The context
	// ends at the run's timeout, at Stop, and when a leader-only worker loses its lease.
	Run func(ctx context.Context) error
}

// Errors of New and Start.
var (
	ErrNoName     = errors.New("worker: a worker without a name")
	ErrDuplicate  = errors.New("worker: two workers with one name")
	ErrNeedsRedis = errors.New("worker: a leader-only worker needs Redis")
	ErrStarted    = errors.New("worker: runner already started")
)

// Runner runs a set of workers between Start and Stop.
type Runner struct {
	workers []*worker
	log     *slog.Logger

	mu      sync.Mutex
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
}

type worker struct {
	spec    Spec
	jitter  float64
	timeout time.Duration
	lease   *lease // nil unless Spec.Leader
	log     *slog.Logger
	m       workerMetrics
	// noRelease leaves the lease to expire at stop (tests: a holder that dies).
	noRelease bool
}

// New returns a Runner for p.Workers (disabled ones, with Run nil, are left out).
func New(p Params) (*Runner, error) {
	log := mlog.OrDiscard(p.Log).With("component", "worker")
	m, err := newMetrics(p.Registry)
	if err != nil {
		return nil, err
	}
	r := &Runner{log: log}
	seen := map[string]bool{}
	for _, s := range p.Workers {
		if s.Run == nil {
			continue
		}
		if s.Name == "" {
			return nil, ErrNoName
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("%w: %q", ErrDuplicate, s.Name)
		}
		seen[s.Name] = true
		w := &worker{spec: s, jitter: s.Jitter, timeout: s.Timeout, log: log.With("worker", s.Name), m: m.of(s.Name, s.Leader)}
		if w.jitter == 0 {
			w.jitter = DefaultJitter
		}
		if w.timeout <= 0 {
			w.timeout = s.Interval + timeoutSlack
		}
		if s.Leader {
			if p.Redis == nil {
				return nil, fmt.Errorf("%w: %q", ErrNeedsRedis, s.Name)
			}
			ttl := s.LeaseTTL
			if ttl <= 0 {
				ttl = DefaultLeaseTTL
			}
			w.lease = newLease(p.Redis, leaseKey(p.Scope, s.Name), ttl, w.m.leader, w.log)
		}
		r.workers = append(r.workers, w)
	}
	return r, nil
}

// leaseKey is the Redis key of a leader-only worker's lease in scope.
func leaseKey(scope Scope, name string) string {
	if scope == "" {
		return "mall:worker:" + name
	}
	return "mall:worker:" + string(scope) + ":" + name
}

// Start starts every worker and returns at once.
func (r *Runner) Start(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return ErrStarted
	}
	r.started = true
	base, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	var wg sync.WaitGroup
	for _, w := range r.workers {
		wg.Add(1)
		// Subscribed before Start returns, so a signal sent after it is never lost.
		var sig chan os.Signal
		if len(w.spec.Signals) > 0 {
			sig = make(chan os.Signal, 1)
			signal.Notify(sig, w.spec.Signals...)
		}
		go func() {
			defer wg.Done()
			if sig != nil {
				defer signal.Stop(sig)
			}
			w.work(base, sig)
		}()
	}
	go func() { wg.Wait(); close(r.done) }()
	return nil
}

// Stop cancels the runs in flight, waits for them to return and gives leader leases
// back; it returns ctx's error if ctx ends first (the runs then end in the background).
// Safe before Start and twice.
func (r *Runner) Stop(ctx context.Context) error {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// work is one worker's life: its lease (if leader-only) and its schedule, until base ends.
func (w *worker) work(base context.Context, sig <-chan os.Signal) {
	if w.lease != nil {
		// Take the lease first, so a leader's RunAtStart run is not skipped.
		w.lease.step(base)
		keeping := make(chan struct{})
		go func() {
			defer close(keeping)
			w.lease.keep(base)
		}()
		defer func() {
			<-keeping
			if w.noRelease {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
			defer cancel()
			w.lease.release(ctx)
		}()
	}
	if w.spec.RunAtStart {
		w.run(base)
	}
	var tick <-chan time.Time
	if w.spec.Interval > 0 {
		t := time.NewTimer(w.wait())
		defer t.Stop()
		tick = t.C
		for {
			select {
			case <-base.Done():
				return
			case <-tick:
				start := time.Now()
				w.run(base)
				// From this run's start: the next waits at least the jittered interval after
				// it, and starts at once when the run took longer.
				t.Reset(max(w.wait()-time.Since(start), 0))
			case <-w.spec.Trigger:
				w.run(base)
			case <-sig:
				w.run(base)
			}
		}
	}
	for {
		select {
		case <-base.Done():
			return
		case <-w.spec.Trigger:
			w.run(base)
		case <-sig:
			w.run(base)
		}
	}
}

// wait is the jittered interval: uniform in Interval × [1-jitter, 1+jitter].
func (w *worker) wait() time.Duration {
	return jittered(w.spec.Interval, w.jitter)
}

func jittered(d time.Duration, frac float64) time.Duration {
	if frac <= 0 || d <= 0 {
		return d
	}
	frac = min(frac, 1)
	span := int64(float64(d) * frac)
	if span <= 0 {
		return d
	}
	return d - time.Duration(span) + time.Duration(rand.Int64N(2*span+1))
}

// run does one run unless base has ended or, for a leader-only worker, this replica does
// not hold the lease.
func (w *worker) run(base context.Context) {
	if base.Err() != nil {
		return
	}
	parent := base
	if w.lease != nil {
		if parent = w.lease.context(); parent == nil {
			return // another replica leads
		}
	}
	ctx, cancel := context.WithTimeout(parent, w.timeout)
	defer cancel()
	start := time.Now()
	err := w.call(ctx)
	w.m.seconds.Observe(time.Since(start).Seconds())
	var p panicked
	switch {
	case errors.As(err, &p):
		w.m.panics.Inc()
		w.m.failures.Inc()
		w.log.Error("worker: run panicked; the worker goes on", "panic", p.value, "stack", p.stack)
	case err != nil && parent.Err() != nil:
		// Stopping, or the lease was lost: the run was cut short, not failed.
	case err != nil:
		w.m.failures.Inc()
		w.log.Error("worker: run failed; retried next interval", "error", err.Error())
	}
}

// panicked carries a recovered panic out of call.
type panicked struct {
	value any
	stack string
}

func (p panicked) Error() string { return fmt.Sprintf("worker: panic: %v", p.value) }

func (w *worker) call(ctx context.Context) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = panicked{value: v, stack: string(debug.Stack())}
		}
	}()
	return w.spec.Run(ctx)
}

// Scope namespaces the leader leases: the replicas of one cluster share it, and clusters
// sharing a Redis (tests) keep apart by it. The application uses its main database's name.
type Scope string

// Params is what New needs.
type Params struct {
	fx.In

	// Workers are the "workers" group: every module's worker.As constructors.
	Workers []Spec `group:"workers"`
	// Redis holds the leases of leader-only workers; required only by those.
	Redis redis.UniversalClient `optional:"true"`
	// Scope prefixes the lease keys ("" in a Redis that serves one cluster).
	Scope Scope `optional:"true"`
	// Registry registers the workers' metrics; nil leaves them unregistered.
	Registry prometheus.Registerer `optional:"true"`
	Log      *slog.Logger          `optional:"true"`
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// LoadOptions shape one closed-loop run.
type LoadOptions struct {
	Conns    int
	Warmup   time.Duration
	Duration time.Duration
	OK       func(status int) bool // nil: 2xx and 3xx
}

// Result of one run. Only requests that started after the warm-up and finished before the end
// are counted; Rate is their number over Duration.
type Result struct {
	Requests int64
	Errors   int64
	ErrKinds map[string]int64 // "HTTP 503", "socket", "timeout"
	FirstErr string
	Duration time.Duration
	P50, P99 time.Duration
}

// Rate is completed requests per second, failures included (as wrk counts them).
func (r Result) Rate() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Duration.Seconds()
}

// Load keeps o.Conns connections busy against base with the requests next generates.
func Load(ctx context.Context, base string, next Next, o LoadOptions) Result {
	ok, client := o.okFunc(), o.client()
	defer client.CloseIdleConnections()

	from := time.Now().Add(o.Warmup)
	end := from.Add(o.Duration)
	workers := make([]workerStats, o.Conns)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			st := &workers[w]
			st.lat = make([]time.Duration, 0, 1<<14)
			for i := int64(0); ; i++ {
				t0 := time.Now()
				if !t0.Before(end) || ctx.Err() != nil {
					return
				}
				status, err := do(ctx, client, base, next(w, i))
				t1 := time.Now()
				if t0.Before(from) || t1.After(end) {
					continue
				}
				st.lat = append(st.lat, t1.Sub(t0))
				switch {
				case err != nil:
					st.fail(errKind(err), err.Error())
				case !ok(status):
					st.fail(fmt.Sprintf("HTTP %d", status), "")
				}
			}
		})
	}
	wg.Wait()

	r := Result{Duration: o.Duration, ErrKinds: map[string]int64{}}
	var all []time.Duration
	for _, st := range workers {
		all = append(all, st.lat...)
		for k, n := range st.errs {
			r.ErrKinds[k] += n
			r.Errors += n
		}
		if r.FirstErr == "" {
			r.FirstErr = st.firstErr
		}
	}
	r.Requests = int64(len(all))
	slices.Sort(all)
	r.P50, r.P99 = percentile(all, 0.50), percentile(all, 0.99)
	return r
}

type workerStats struct {
	lat      []time.Duration
	errs     map[string]int64
	firstErr string
}

func (s *workerStats) fail(kind, msg string) {
	if s.errs == nil {
		s.errs = map[string]int64{}
	}
	s.errs[kind]++
	if s.firstErr == "" {
		s.firstErr = msg
	}
}

func do(ctx context.Context, c *http.Client, base string, r Request) (int, error) {
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, base+r.Path, body)
	if err != nil {
		return 0, err
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

func errKind(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "timeout"
	}
	return "socket"
}

// percentile of sorted samples (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// LoadRate sends rate requests per second on a fixed schedule (open loop) for o.Warmup +
// o.Duration, with at most o.Conns in flight (a request whose turn comes while every
// connection is busy waits, and the wait counts in its latency). Latency runs from each
// request's scheduled start, so a stall shows as latency instead of as fewer requests
// (no coordinated omission). Requests scheduled after the warm-up are counted. A server
// slower than the rate builds a queue; whatever has not been answered rateGrace after the
// schedule ends (waiting for a connection or in flight) counts as a timeout, so the row ends
// then instead of draining the queue.
func LoadRate(ctx context.Context, base string, next Next, o LoadOptions, rate float64) Result {
	ok, client := o.okFunc(), o.client()
	defer client.CloseIdleConnections()
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	from := start.Add(o.Warmup)
	end := from.Add(o.Duration)
	rctx, cancel := context.WithDeadline(ctx, end.Add(rateGrace))
	defer cancel()
	slots := make(chan struct{}, o.Conns)
	var (
		mu sync.Mutex
		st workerStats
		wg sync.WaitGroup
	)
	for i := int64(0); ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if !at.Before(end) || ctx.Err() != nil {
			break
		}
		if d := time.Until(at); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		wg.Go(func() {
			var (
				status int
				err    error
			)
			select {
			case slots <- struct{}{}:
				status, err = do(rctx, client, base, next(int(i)%o.Conns, i))
				<-slots
			case <-rctx.Done():
				err = fmt.Errorf("no connection free for %s: %w", time.Since(at).Round(time.Millisecond), rctx.Err())
			}
			lat := time.Since(at)
			if at.Before(from) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			st.lat = append(st.lat, lat)
			switch {
			case err != nil:
				st.fail(errKind(err), err.Error())
			case !ok(status):
				st.fail(fmt.Sprintf("HTTP %d", status), "")
			}
		})
	}
	wg.Wait()
	r := Result{Duration: o.Duration, ErrKinds: map[string]int64{}, FirstErr: st.firstErr, Requests: int64(len(st.lat))}
	for k, n := range st.errs {
		r.ErrKinds[k] += n
		r.Errors += n
	}
	slices.Sort(st.lat)
	r.P50, r.P99 = percentile(st.lat, 0.50), percentile(st.lat, 0.99)
	return r
}

// rateGrace is how long LoadRate waits for answers after its schedule ends (the load
// client's request timeout).
var rateGrace = 10 * time.Second // a variable for the tests

// okFunc is o.OK, or "2xx and 3xx" when unset.
func (o LoadOptions) okFunc() func(int) bool {
	if o.OK != nil {
		return o.OK
	}
	return func(s int) bool { return s >= 200 && s < 400 }
}

// client is an HTTP client keeping up to o.Conns connections to one host, following no
// redirects.
func (o LoadOptions) client() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        o.Conns,
			MaxIdleConnsPerHost: o.Conns,
			MaxConnsPerHost:     o.Conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The event-lag row: checkouts at a fixed rate, each committing its orders' order.created
// events in the buyer shard's transaction; the server's consumer group on the order topic
// records, per event, the time from occurred_at to taking it up
// (mall_kafka_consumer_event_lag_seconds). The row reads that histogram from /metrics before
// and after and reports the quantiles of the difference: commit -> relay -> Kafka -> consumer.

const (
	lagMetric = "mall_kafka_consumer_event_lag_seconds"
	// lagGroup consumes the order topic (internal/order: order.StockGroup). It acts on
	// other event types and passes order.created over, but the lag is observed for every
	// event it takes up, before that choice.
	lagGroup = "mall.order.stock"
)

// histogram is one series of a Prometheus histogram: cumulative counts per upper bound.
type histogram struct {
	Bounds []float64 // ascending, +Inf last
	Counts []float64 // cumulative, per bound
}

// Count is the number of observations.
func (h histogram) Count() float64 {
	if len(h.Counts) == 0 {
		return 0
	}
	return h.Counts[len(h.Counts)-1]
}

// Sub is h minus an earlier reading of the same series (its buckets, when it had any).
func (h histogram) Sub(earlier histogram) histogram {
	out := histogram{Bounds: h.Bounds, Counts: slices.Clone(h.Counts)}
	if len(earlier.Counts) != len(h.Counts) {
		return out
	}
	for i := range out.Counts {
		out.Counts[i] -= earlier.Counts[i]
	}
	return out
}

// Quantile interpolates linearly inside the bucket holding rank q, as PromQL's
// histogram_quantile does; a rank in the +Inf bucket answers the largest finite bound.
func (h histogram) Quantile(q float64) time.Duration {
	total := h.Count()
	if total <= 0 {
		return 0
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for i, upper := range h.Bounds {
		if h.Counts[i] >= rank {
			if math.IsInf(upper, 1) {
				return time.Duration(lower * float64(time.Second))
			}
			in := h.Counts[i] - below
			v := upper
			if in > 0 {
				v = lower + (upper-lower)*(rank-below)/in
			}
			return time.Duration(v * float64(time.Second))
		}
		lower, below = upper, h.Counts[i]
	}
	return time.Duration(lower * float64(time.Second))
}

// parseHistogram finds the buckets of histogram name with label group="group" (any labels
// for group "") in a Prometheus text exposition; a missing series is an empty histogram.
func parseHistogram(text, name, group string) (histogram, error) {
	var h histogram
	prefix := name + "_bucket{"
	want := `group="` + group + `"`
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		labels, value, ok := strings.Cut(line[len(prefix):], "} ")
		if !ok || (group != "" && !slices.Contains(strings.Split(labels, ","), want)) {
			continue
		}
		var le string
		for _, l := range strings.Split(labels, ",") {
			if v, ok := strings.CutPrefix(l, `le="`); ok {
				le = strings.TrimSuffix(v, `"`)
			}
		}
		bound, err := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
		if err != nil {
			return histogram{}, fmt.Errorf("%s: bucket bound %q: %w", name, le, err)
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return histogram{}, fmt.Errorf("%s: bucket count %q: %w", name, value, err)
		}
		h.Bounds, h.Counts = append(h.Bounds, bound), append(h.Counts, n)
	}
	if !slices.IsSorted(h.Bounds) {
		return histogram{}, fmt.Errorf("%s: buckets out of order", name)
	}
	return h, nil
}

// readLag reads the lag histogram of group from base's /metrics.
func readLag(ctx context.Context, c *http.Client, base, group string) (histogram, error) {
	return readHistogram(ctx, c, base, lagMetric, group)
}

// readHistogram reads histogram name (of group; "" for an unlabelled one) from base's
// /metrics.
func readHistogram(ctx context.Context, c *http.Client, base, name, group string) (histogram, error) {
	resp, err := getMetrics(ctx, c, base)
	if err != nil {
		return histogram{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return histogram{}, err
	}
	return parseHistogram(string(b), name, group)
}

// eventLag is the Measure of the lag row: an unmeasured warm-up, then checkouts at rate for
// d (open loop); the row's requests are the events received, its latencies the lag
// quantiles, its errors failed checkouts plus events that never arrived.
func eventLag(rate float64, d time.Duration) func(ctx context.Context, env *Env) (Result, string, error) {
	return func(ctx context.Context, env *Env) (Result, string, error) {
		next, err := orderCreate(ctx, env)
		if err != nil {
			return Result{}, "", err
		}
		lo := LoadOptions{Conns: 16, Duration: 2 * time.Second}
		if w := LoadRate(ctx, env.MallURL, next, lo, rate); w.Errors > 0 {
			return Result{}, "", fmt.Errorf("warm-up: %d of %d checkouts failed (first: %s)", w.Errors, w.Requests, w.FirstErr)
		}
		// Start from an empty outbox, so no backlog of earlier rows weighs on the figures.
		if err := WaitIndexed(ctx, env.Client, env.MallURL, 0, time.Minute, nil); err != nil {
			return Result{}, "", err
		}
		before, err := readLag(ctx, env.Client, env.MallURL, lagGroup)
		if err != nil {
			return Result{}, "", err
		}
		lo.Duration = d
		load := LoadRate(ctx, env.MallURL, next, lo, rate)
		// Each checkout of the fixture places two orders: one order.created each.
		want := 2 * (load.Requests - load.Errors)
		var delta histogram
		for deadline := time.Now().Add(15 * time.Second); ; {
			after, err := readLag(ctx, env.Client, env.MallURL, lagGroup)
			if err != nil {
				return Result{}, "", err
			}
			if len(after.Counts) == 0 {
				return Result{}, "", fmt.Errorf("%s has no %s{group=%q}: is the server older than the metric?", env.MallURL, lagMetric, lagGroup)
			}
			delta = after.Sub(before)
			if int64(delta.Count()) >= want || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		got := int64(delta.Count())
		res := Result{Requests: got, Duration: d, Errors: load.Errors, ErrKinds: load.ErrKinds, FirstErr: load.FirstErr,
			P50: delta.Quantile(0.50), P99: delta.Quantile(0.99)}
		if res.ErrKinds == nil {
			res.ErrKinds = map[string]int64{}
		}
		if missing := want - got; missing > 0 {
			res.Errors += missing
			res.ErrKinds["events not received"] += missing
		}
		mark := "✗"
		if got > 0 && res.P50 <= 20*time.Millisecond && res.Errors == 0 {
			mark = "✓"
		}
		return res, fmt.Sprintf("%s p50 ≤ 20.0 ms; %d events of %d checkouts at %.0f/s (HTTP p50 %s, p99 %s)",
			mark, got, load.Requests, rate, fmtDur(load.P50), fmtDur(load.P99)), nil
	}
}

// getMetrics GETs base's /metrics, with the ops token when MALL_HTTP_OPS_TOKEN is set (the
// server then requires it: ADR 0027); anything but 200 is an error.
func getMetrics(ctx context.Context, c *http.Client, base string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	if tok := os.Getenv("MALL_HTTP_OPS_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s/metrics: %s", base, resp.Status)
	}
	return resp, nil
}

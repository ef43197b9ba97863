package kafkax_test

import (
	"context"
	"testing"
	"time"

	"github.com/mallhq/mall/internal/platform/metrics"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mallhq/mall/internal/platform/kafkax"
)

func newClient(t testing.TB, b *kafkax.Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Seeds()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func metric(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, err := metrics.Value(reg, name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// eventually polls cond every 20ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// histogram returns the sample count and sum of the histogram name whose labels are labels.
func histogram(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := true
			for _, lp := range m.GetLabel() {
				if v, want := labels[lp.GetName()]; want && v != lp.GetValue() {
					ok = false
				}
			}
			if h := m.GetHistogram(); ok && h != nil {
				return h.GetSampleCount(), h.GetSampleSum()
			}
		}
	}
	return 0, 0
}

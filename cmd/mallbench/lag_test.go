package main

import (
	"testing"
	"time"
)

const lagExposition = `# HELP mall_kafka_consumer_event_lag_seconds Time from ...
# TYPE mall_kafka_consumer_event_lag_seconds histogram
mall_kafka_consumer_event_lag_seconds_bucket{group="mall.other",le="0.01"} 99
mall_kafka_consumer_event_lag_seconds_bucket{group="mall.order.stock",le="0.01"} 10
mall_kafka_consumer_event_lag_seconds_bucket{group="mall.order.stock",le="0.02"} 60
mall_kafka_consumer_event_lag_seconds_bucket{group="mall.order.stock",le="0.1"} 100
mall_kafka_consumer_event_lag_seconds_bucket{group="mall.order.stock",le="+Inf"} 100
mall_kafka_consumer_event_lag_seconds_sum{group="mall.order.stock"} 1.5
mall_kafka_consumer_event_lag_seconds_count{group="mall.order.stock"} 100
`

func TestLagHistogram(t *testing.T) {
	h, err := parseHistogram(lagExposition, lagMetric, "mall.order.stock")
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Bounds) != 4 || h.Count() != 100 {
		t.Fatalf("parsed %d buckets, count %v; want 4 and 100", len(h.Bounds), h.Count())
	}
	earlier := histogram{Bounds: h.Bounds, Counts: []float64{0, 0, 20, 20}} // 20 in (20ms, 100ms]
	d := h.Sub(earlier)                                                     // 10, 50, 20 per bucket
	tests := []struct {
		give float64
		want time.Duration
	}{
		{0.05, 4 * time.Millisecond},                       // rank 4 of 80: 4 of the 10 in (0, 10ms]
		{0.50, 16 * time.Millisecond},                      // rank 40: 30 of the 50 in (10ms, 20ms]
		{0.99, 96*time.Millisecond + 800*time.Microsecond}, // rank 79.2: 19.2 of the 20 in (20ms, 100ms]
	}
	for _, tt := range tests {
		if got := d.Quantile(tt.give); got != tt.want {
			t.Errorf("Quantile(%v) = %s, want %s", tt.give, got, tt.want)
		}
	}
	if got := h.Quantile(0.99); got != 98*time.Millisecond {
		t.Errorf("Quantile(0.99) before Sub = %s, want 98ms", got)
	}
	if empty, _ := parseHistogram(lagExposition, lagMetric, "mall.none"); empty.Count() != 0 || empty.Quantile(0.5) != 0 {
		t.Errorf("a missing series parsed as %+v", empty)
	}
}

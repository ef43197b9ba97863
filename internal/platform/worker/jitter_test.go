package worker

import (
	"testing"
	"time"
)

func TestJitteredStaysWithinBounds(t *testing.T) {
	tests := []struct {
		give     time.Duration
		frac     float64
		min, max time.Duration
	}{
		{give: time.Second, frac: 0.1, min: 900 * time.Millisecond, max: 1100 * time.Millisecond},
		{give: 10 * time.Millisecond, frac: 0.5, min: 5 * time.Millisecond, max: 15 * time.Millisecond},
		{give: time.Second, frac: 2, min: 0, max: 2 * time.Second}, // capped at 100%
		{give: time.Second, frac: -1, min: time.Second, max: time.Second},
		{give: 0, frac: 0.1, min: 0, max: 0},
	}
	for _, tt := range tests {
		const n = 10000
		lo, hi, sum := tt.max, tt.min, time.Duration(0)
		for range n {
			d := jittered(tt.give, tt.frac)
			if d < tt.min || d > tt.max {
				t.Fatalf("jittered(%s, %v) = %s, want within [%s, %s]", tt.give, tt.frac, d, tt.min, tt.max)
			}
			lo, hi, sum = min(lo, d), max(hi, d), sum+d
		}
		// Spread over the whole range, centred on the interval.
		span := tt.max - tt.min
		if lo > tt.min+span/20 || hi < tt.max-span/20 {
			t.Errorf("jittered(%s, %v) ranged over [%s, %s], want close to [%s, %s]", tt.give, tt.frac, lo, hi, tt.min, tt.max)
		}
		if mean := sum / n; mean < tt.give-span/20 || mean > tt.give+span/20 {
			t.Errorf("jittered(%s, %v) mean %s, want about %s", tt.give, tt.frac, mean, tt.give)
		}
	}
}

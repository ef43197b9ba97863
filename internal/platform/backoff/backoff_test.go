package backoff_test

import (
	"testing"
	"time"

	"github.com/mallhq/mall/internal/platform/backoff"
)

func TestExponentialStaysInBounds(t *testing.T) {
	base, maxD := 100*time.Millisecond, 2*time.Second
	for attempt := 1; attempt <= 40; attempt++ {
		want := min(base<<min(attempt-1, 30), maxD)
		for i := 0; i < 100; i++ {
			got := backoff.Exponential(attempt, base, maxD)
			if got < want/2 || got > want {
				t.Fatalf("attempt %d: %s not in [%s, %s]", attempt, got, want/2, want)
			}
		}
	}
}

// Package backoff computes retry delays.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Exponential is base*2^(attempt-1) capped at maxD, with "equal jitter" (half fixed, half
// random) so retries that failed together do not come back together.
func Exponential(attempt int, base, maxD time.Duration) time.Duration {
	d := base
	for i := 1; i < attempt && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half)
}

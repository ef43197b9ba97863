package stock

import "context"

// SweepExpired runs one sweep of s (a Service made by New).
func SweepExpired(ctx context.Context, s Service, limit int) (int, error) {
	return s.(*service).SweepExpired(ctx, limit)
}

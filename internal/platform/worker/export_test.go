package worker

// AbandonLeases makes r's leader-only workers keep their leases at Stop, as a replica that
// dies does: the leases expire in Redis instead of being given back.
func AbandonLeases(r *Runner) {
	for _, w := range r.workers {
		w.noRelease = true
	}
}

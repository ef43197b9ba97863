package outbox

import (
	"github.com/mallhq/mall/internal/platform/backoff"
	"github.com/mallhq/mall/internal/platform/text"
)

// SetCrashHook makes r die between producing a batch and committing it whenever f returns
// true, as a killed process would. Call it before Start.
func SetCrashHook(r *Relay, f func() bool) { r.crashAfterProduce = f }

// Done is closed when r's goroutine has returned (after Stop, or a crash).
func Done(r *Relay) <-chan struct{} { return r.done }

// LockName is the advisory lock r contends for; valid once r has been leader.
func LockName(r *Relay) string { return r.lockName }

var Backoff = backoff.Exponential

var Truncate = text.Truncate

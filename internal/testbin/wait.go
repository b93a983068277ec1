package testbin

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// PollInterval is how often WaitFor and a readiness wait check again.
const PollInterval = 50 * time.Millisecond

// WaitFor checks cond at once and then every PollInterval until it returns
// nil, and returns how long that took. When cond has not held within
// timeout it fails tb with what was awaited and cond's last error, which
// should say what cond saw. cond runs on the test's goroutine: it may end
// the wait at once with tb.Fatal, e.g. when a process it depends on has
// exited.
func WaitFor(tb testing.TB, what string, timeout time.Duration, cond func() error) time.Duration {
	tb.Helper()
	took, err := poll(context.Background(), timeout, cond)
	if err != nil {
		tb.Fatalf("waiting for %s: %v", what, err)
	}
	return took
}

// poll is WaitFor's loop, which also ends when ctx does (with ctx's
// cause). A last check is made at the deadline; a check that blocks is
// the caller's to bound.
func poll(ctx context.Context, timeout time.Duration, cond func() error) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		if ctx.Err() != nil {
			return time.Since(start), context.Cause(ctx)
		}
		last := cond()
		if last == nil {
			return time.Since(start), nil
		}
		if !time.Now().Before(deadline) {
			return time.Since(start), fmt.Errorf("timed out after %s; last: %w", timeout, last)
		}
		wait := time.NewTimer(min(PollInterval, time.Until(deadline)))
		select {
		case <-ctx.Done():
			wait.Stop()
			return time.Since(start), fmt.Errorf("%w; last: %w", context.Cause(ctx), last)
		case <-wait.C:
		}
	}
}

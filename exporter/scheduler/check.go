package scheduler

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/vantageprobe/vantage/prober/result"
)

// check is one scheduled check of a target: its attempts, under the retry
// policy, and its outcome. An attempt that waits for its target holds no
// worker; its end continues the check on the goroutine that ends it.
type check struct {
	s             *Scheduler
	e             *entry
	t             *Target
	ctx           context.Context
	planned, next time.Time
	settings      *Settings
	observed      func(*Outcome)

	n int            // attempts made
	r *result.Result // the latest attempt's result
}

// attempts makes attempts, the first in slot (already taken), until one
// succeeds, the retry policy stops, or one waits for its target. A
// failure is retried RetryInterval later while Retry allows it and the
// check's context lasts; a retry that cannot be made (the target removed,
// no slot before the next planned check) ends the check with the previous
// attempt's result.
func (c *check) attempts(slot *limiter) {
	for slot != nil {
		if !c.attempt(slot) {
			return // its end continues the check
		}
		slot = c.retry()
	}
	c.finish()
}

// Values of an attempt's handoff between start and its end.
const (
	attemptRunning int32 = iota
	attemptReturned
	attemptEnded
)

// attempt makes one attempt in slot, then frees the slot. It reports
// whether the attempt ended before start returned; when not, the
// attempt's end continues the check.
func (c *check) attempt(slot *limiter) bool {
	s := c.s
	c.n++
	s.checks.Inc()
	s.inFlight.Add(1)
	s.opts.Checks.Begin(time.Now())
	actx, cancel := context.WithTimeout(c.ctx, c.t.Timeout)
	var handoff atomic.Int32
	s.start(actx, c.t, func(r *result.Result) {
		cancel()
		s.opts.Checks.Finish(time.Now())
		s.inFlight.Add(-1)
		slot.release()
		c.r = r
		if handoff.Swap(attemptEnded) == attemptReturned {
			c.attempts(c.retry())
		}
	})
	return handoff.Swap(attemptReturned) == attemptEnded
}

// start begins one attempt with Start, or runs it with Check.
func (s *Scheduler) start(ctx context.Context, t *Target, done func(*result.Result)) {
	if s.opts.Start != nil {
		s.opts.Start(ctx, t, s.workers.run, done)
		return
	}
	done(s.opts.Check(ctx, t))
}

// retry waits for the next attempt's time and takes a slot for it; nil
// when the check ends with its latest result.
func (c *check) retry() *limiter {
	if c.r.Success || !c.settings.Retry(c.n, time.Now(), c.t.Timeout, c.next) {
		return nil
	}
	wait := time.NewTimer(c.settings.RetryInterval)
	select {
	case <-c.ctx.Done():
		wait.Stop()
		return nil
	case <-wait.C:
	}
	if c.e.removed.Load() {
		return nil
	}
	return c.s.acquire(c.ctx, c.next)
}

// finish records the check's outcome.
func (c *check) finish() {
	s, e := c.s, c.e
	defer s.wg.Done()
	defer e.running.Store(false)
	e.done.Store(time.Now().UnixNano())
	s.markStale(e, false)
	o := Outcome{Target: e.target.Load(), Result: c.r, Attempts: c.n, Planned: c.planned}
	if c.observed != nil {
		c.observed(&o)
	}
	if c.r == nil || e.removed.Load() {
		return
	}
	s.opts.OnOutcome(o)
}

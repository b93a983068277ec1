// Package liveness keeps a program's clocks of its own progress and judges
// them. A clock is the time one kind of progress was last made (a scheduler
// pass, a check completed, a commit); it is stalled when work has been due
// for it for longer than its bound and it has not advanced in that time.
// Idleness, no work due, is never a stall.
//
// A Set renders its clocks as series and answers the programs' /-/healthy
// (see webserver.HandleOperational) with the stalled ones.
package liveness

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Waiting says whether work is due for a clock and since when it has
// waited; nil means the clock's own Begin and Finish say all.
type Waiting func(now time.Time) (since time.Time, due bool)

// Clock is when one kind of progress was last made, and the work due for
// it. Its methods are safe for concurrent use; a nil Clock ignores them.
type Clock struct {
	name    string
	bound   func() time.Duration
	waiting Waiting
	last    atomic.Int64 // Unix nanoseconds of the latest advance; 0: never

	mu        sync.Mutex
	pending   int       // units of work begun and not finished
	busySince time.Time // when pending last rose from 0
	// failedAt is when work last failed; it stays due, from
	// failedSince, until the clock advances after failedAt.
	failedAt, failedSince time.Time
}

// Name is the clock's name, the clock label of its stalled series.
func (c *Clock) Name() string { return c.name }

// Advance records progress made at t; an earlier t than the latest is
// ignored.
func (c *Clock) Advance(t time.Time) {
	if c == nil {
		return
	}
	n := t.UnixNano()
	for {
		old := c.last.Load()
		if n <= old || c.last.CompareAndSwap(old, n) {
			return
		}
	}
}

// Last is the time of the latest advance; zero before the first.
func (c *Clock) Last() time.Time {
	if c == nil {
		return time.Time{}
	}
	if n := c.last.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Begin says one unit of work became due at t: the clock must advance
// until it is finished.
func (c *Clock) Begin(t time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == 0 {
		c.busySince = t
	}
	c.pending++
}

// Finish says one unit of work begun is done at t, which advances the
// clock.
func (c *Clock) Finish(t time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.pending = max(c.pending-1, 0)
	c.mu.Unlock()
	c.Advance(t)
}

// Fail says one unit of work begun failed at t: it ends without
// advancing the clock, and work stays due until the clock advances.
func (c *Clock) Fail(t time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.failedAt.After(c.Last()) {
		c.failedSince = c.busySince
	}
	c.failedAt = t
	c.pending = max(c.pending-1, 0)
}

// Stall describes a stalled clock.
type Stall struct {
	Clock string
	// Waited is how long work has been due without the clock advancing.
	Waited time.Duration
	Bound  time.Duration
	// Last is the clock's latest advance; zero when it never advanced.
	Last time.Time
}

func (s Stall) String() string {
	last := "never advanced"
	if !s.Last.IsZero() {
		last = "last advanced " + s.Last.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("%s: no progress for %s while work is due (bound %s; %s)",
		s.Clock, s.Waited.Round(time.Millisecond), s.Bound, last)
}

// stalled judges the clock at now: stalled when work is due (its own
// Begin without Finish, a Fail not followed by an advance, or its
// Waiting) and neither the time that work
// began waiting nor the clock's latest advance is within its bound.
func (c *Clock) stalled(now time.Time) (Stall, bool) {
	var since time.Time
	due := false
	c.mu.Lock()
	if c.pending > 0 {
		since, due = c.busySince, true
	}
	if c.failedAt.After(c.Last()) && (!due || c.failedSince.Before(since)) {
		since, due = c.failedSince, true
	}
	c.mu.Unlock()
	if c.waiting != nil {
		if s, ok := c.waiting(now); ok && (!due || s.Before(since)) {
			since, due = s, true
		}
	}
	if !due {
		return Stall{}, false
	}
	last := c.Last()
	if last.After(since) {
		since = last
	}
	bound := c.bound()
	waited := now.Sub(since)
	if waited <= bound {
		return Stall{}, false
	}
	return Stall{Clock: c.name, Waited: waited, Bound: bound, Last: last}, true
}

// Set is one program's clocks.
type Set struct {
	program string
	clocks  []*Clock
	now     func() time.Time
	stalled *prometheus.Desc
}

// NewSet returns the clocks of a program (exporter, coordinator): their
// series are vantage_<program>_last_<clock>_timestamp_seconds and
// vantage_<program>_clock_stalled{clock}.
func NewSet(program string) *Set {
	return &Set{
		program: program,
		now:     time.Now,
		stalled: prometheus.NewDesc("vantage_"+program+"_clock_stalled",
			"Whether the clock is stalled (1): work has been due for it for longer than its bound and it has not advanced; /-/healthy then answers 503 naming it.",
			[]string{"clock"}, nil),
	}
}

// Add makes a clock. bound is the longest the clock may stay still while
// work is due, read at every judgement so it follows the configuration;
// waiting, when set, says when work is due besides Begin and Finish.
// Clocks are added before the set is registered or judged.
func (s *Set) Add(name string, bound func() time.Duration, waiting Waiting) *Clock {
	c := &Clock{name: name, bound: bound, waiting: waiting}
	s.clocks = append(s.clocks, c)
	return c
}

// Stalled returns the stalled clocks at now, in the order they were added.
func (s *Set) Stalled(now time.Time) []Stall {
	var out []Stall
	for _, c := range s.clocks {
		if st, ok := c.stalled(now); ok {
			out = append(out, st)
		}
	}
	return out
}

// Unhealthy describes each stalled clock in a line, none when all are
// well: the health check of webserver.HandleOperational.
func (s *Set) Unhealthy() []string {
	stalls := s.Stalled(s.now())
	out := make([]string, len(stalls))
	for i, st := range stalls {
		out[i] = st.String()
	}
	return out
}

func (s *Set) lastDesc(c *Clock) *prometheus.Desc {
	return prometheus.NewDesc("vantage_"+s.program+"_last_"+c.name+"_timestamp_seconds",
		"When the program last made this kind of progress (Unix time; 0 before the first).", nil, nil)
}

// Describe implements prometheus.Collector.
func (s *Set) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range s.clocks {
		ch <- s.lastDesc(c)
	}
	ch <- s.stalled
}

// Collect implements prometheus.Collector.
func (s *Set) Collect(ch chan<- prometheus.Metric) {
	now := s.now()
	stalls := s.Stalled(now)
	for _, c := range s.clocks {
		var ts float64
		if n := c.last.Load(); n != 0 {
			ts = float64(n) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(s.lastDesc(c), prometheus.GaugeValue, ts)
		v := 0.0
		if slices.ContainsFunc(stalls, func(st Stall) bool { return st.Clock == c.name }) {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(s.stalled, prometheus.GaugeValue, v, c.name)
	}
}

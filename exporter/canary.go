package exporter

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vantageprobe/vantage/exporter/scheduler"
	"github.com/vantageprobe/vantage/prober/result"
)

// canaryState is the latest result of the location's connectivity canary.
type canaryState struct {
	// state: one of the canary* constants.
	state atomic.Int32
	desc  *prometheus.Desc
}

const (
	canaryNone    = iota // no canary configured
	canaryOK             // the latest check succeeded
	canaryFailing        // the latest check failed
	canaryPending        // configured, not checked yet
)

func newCanaryState() *canaryState {
	return &canaryState{desc: prometheus.NewDesc("vantage_exporter_canary_success",
		"Whether the latest check of the connectivity canary succeeded; while it fails, failures of this location are reported as unknown. Absent without a canary or before its first check.", nil, nil)}
}

func (c *canaryState) set(success bool) {
	if success {
		c.state.Store(canaryOK)
	} else {
		c.state.Store(canaryFailing)
	}
}

// ok reports whether this location can vouch for its own failures: it has
// no canary, or the canary's latest check succeeded. A canary not checked
// yet leaves the location's health unknown.
func (c *canaryState) ok() bool {
	st := c.state.Load()
	return st == canaryNone || st == canaryOK
}

// known returns the canary's verdict for API answers: nil without one or
// before its first check.
func (c *canaryState) known() *bool {
	switch c.state.Load() {
	case canaryOK:
		return new(true)
	case canaryFailing:
		return new(false)
	}
	return nil
}

// configure follows the configuration: a newly configured canary is
// pending until its first check; without one, the state is forgotten.
func (c *canaryState) configure(present bool) {
	if !present {
		c.state.Store(canaryNone)
		return
	}
	c.state.CompareAndSwap(canaryNone, canaryPending)
}

func (c *canaryState) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *canaryState) Collect(ch chan<- prometheus.Metric) {
	switch c.state.Load() {
	case canaryOK:
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1)
	case canaryFailing:
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 0)
	}
}

// canaryVerdict is the outcome of one canary check and when it began.
type canaryVerdict struct {
	ok    bool
	began time.Time
}

// canary runs the location's connectivity canary on demand, so a failure
// is blamed on a target only once a canary check that began after the
// failed check began has passed: "the canary passed recently" is not
// enough, since the canary and the target can fail in the same second.
//
// Checks coalesce: at most one on-demand check is in flight, and every
// waiter whose start time it began at or after takes its verdict; the
// scheduled canary checks count too. Every check's verdict, in the order
// the checks began, becomes the location's latest (state).
type canary struct {
	state *canaryState
	// target returns the configured canary, nil without one.
	target func() *scheduler.Target
	// probe runs one check of the canary within ctx.
	probe func(ctx context.Context, t *scheduler.Target) *result.Result

	mu      sync.Mutex
	ctx     context.Context // on-demand checks end with it
	wg      sync.WaitGroup
	running bool      // an on-demand check is in flight
	began   time.Time // when the one in flight began
	latest  time.Time // when the check that set state began
	waiters []*canaryWait
}

// canaryWait is one wait for a canary check that began at or after since.
type canaryWait struct {
	c     *canary
	since time.Time
	ch    chan canaryVerdict // gets one verdict
}

func newCanary(state *canaryState, target func() *scheduler.Target, probe func(context.Context, *scheduler.Target) *result.Result) *canary {
	return &canary{state: state, target: target, probe: probe, ctx: context.Background()}
}

// start makes ctx the lifetime of on-demand checks; wait waits for them
// once it has ended.
func (c *canary) start(ctx context.Context) {
	c.mu.Lock()
	c.ctx = ctx
	c.mu.Unlock()
}

func (c *canary) wait() { c.wg.Wait() }

// configured reports whether a canary is configured.
func (c *canary) configured() bool { return c.target() != nil }

// await registers a wait for a canary check that began at or after since,
// starting one unless one in flight began then or later. It returns nil
// without a canary: the location vouches for itself.
func (c *canary) await(since time.Time) *canaryWait {
	t := c.target()
	if t == nil {
		return nil
	}
	w := &canaryWait{c: c, since: since, ch: make(chan canaryVerdict, 1)}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waiters = append(c.waiters, w)
	if !c.running {
		c.startLocked(t)
	}
	// A check in flight that began before since does not do: once it
	// ends, finish starts another for the waiters it left.
	return w
}

// after waits for the verdict of a canary check that began at or after
// since; ok without a canary. It fails only when ctx ends first.
func (c *canary) after(ctx context.Context, since time.Time) (canaryVerdict, error) {
	w := c.await(since)
	if w == nil {
		return canaryVerdict{ok: true, began: since}, nil
	}
	return w.wait(ctx)
}

// wait returns the verdict, or ctx's error when ctx ends first (a verdict
// already in is taken even then).
func (w *canaryWait) wait(ctx context.Context) (canaryVerdict, error) {
	select {
	case v := <-w.ch:
		return v, nil
	default:
	}
	select {
	case v := <-w.ch:
		return v, nil
	case <-ctx.Done():
		w.cancel()
		return canaryVerdict{}, ctx.Err()
	}
}

// cancel gives up the wait; a check it started still runs to its end.
func (w *canaryWait) cancel() {
	if w == nil {
		return
	}
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waiters = slices.DeleteFunc(c.waiters, func(x *canaryWait) bool { return x == w })
}

// startLocked starts an on-demand check of t; c.mu is held.
func (c *canary) startLocked(t *scheduler.Target) {
	if c.ctx.Err() != nil {
		return
	}
	c.running, c.began = true, time.Now()
	began, ctx := c.began, c.ctx
	c.wg.Go(func() {
		cctx, cancel := context.WithTimeout(ctx, t.Timeout)
		defer cancel()
		r := c.probe(cctx, t)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.running = false
		if ctx.Err() != nil {
			// Shutting down: a check cut short says nothing.
			return
		}
		c.observeLocked(canaryVerdict{ok: r.Success, began: began})
		if len(c.waiters) == 0 {
			return
		}
		if t := c.target(); t != nil {
			c.startLocked(t)
			return
		}
		// The canary is no longer configured: the location vouches for
		// itself again.
		for _, w := range c.waiters {
			w.ch <- canaryVerdict{ok: true, began: time.Now()}
		}
		c.waiters = nil
	})
}

// observe takes the verdict of a scheduled canary check.
func (c *canary) observe(v canaryVerdict) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.observeLocked(v)
}

// observeLocked hands v to every waiter it answers and makes it the
// latest verdict unless a check that began later already decided.
func (c *canary) observeLocked(v canaryVerdict) {
	if !v.began.Before(c.latest) {
		c.latest = v.began
		c.state.set(v.ok)
	}
	c.waiters = slices.DeleteFunc(c.waiters, func(w *canaryWait) bool {
		if v.began.Before(w.since) {
			return false
		}
		w.ch <- v
		return true
	})
}

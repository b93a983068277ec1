// Package scheduler checks every configured target continuously, each on its
// own interval at a stable offset, with bounded concurrency and local
// retries, and accounts for every check that could not start on time.
package scheduler

import (
	"container/heap"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/vantageprobe/vantage/internal/liveness"
	"github.com/vantageprobe/vantage/prober/result"
)

// Target is one scheduled check: a target probed with a module on an interval.
type Target struct {
	Module   string
	Target   string
	Interval time.Duration
	// Timeout is the deadline of one attempt.
	Timeout time.Duration
	// Labels are added to the target's series; sorted by name.
	Labels []Label
	// Hostname, when set, is the probe's hostname parameter (HTTP Host
	// header and TLS server name), as /probe?hostname= gives it.
	Hostname string
	// Canary marks the location's connectivity canary: checked like any
	// target, but its result judges the location, not a target.
	Canary bool
}

// Label is one configured label of a target.
type Label struct{ Name, Value string }

// Key identifies a target within the scheduler.
func (t *Target) Key() string {
	if t.Canary {
		return "canary\x00" + Key(t.Module, t.Target)
	}
	return Key(t.Module, t.Target)
}

// entryKey identifies a target among the scheduler's entries as Key does,
// without building a string: taking a set of a million targets allocates
// nothing for the targets it already holds.
type entryKey struct {
	canary         bool
	module, target string
}

func keyOf(t *Target) entryKey { return entryKey{t.Canary, t.Module, t.Target} }

// Key identifies a (module, target) pair.
func Key(module, target string) string { return module + "\x00" + target }

// Outcome is the result of one scheduled check after local retries.
type Outcome struct {
	Target   *Target
	Result   *result.Result
	Attempts int
	Planned  time.Time
	// TraceID is the hex ID of the check's trace when the check was
	// traced and its trace kept; the phase histograms carry it as an
	// exemplar. Empty otherwise.
	TraceID string
}

// CheckFunc runs one attempt of a check; ctx carries the attempt's deadline.
type CheckFunc func(ctx context.Context, t *Target) *result.Result

// StartFunc begins one attempt of a check and calls done with its result
// exactly once, before it returns or later from another goroutine, by the
// end of ctx (the attempt's deadline). An attempt that waits for its
// target off the calling goroutine runs what follows the wait through
// resume, which runs a function on one of the scheduler's workers.
type StartFunc func(ctx context.Context, t *Target, resume func(func()), done func(*result.Result))

// Settings are the scheduler's tunables; SetSettings changes them while it runs.
type Settings struct {
	// MaxInFlight bounds the check attempts running at once.
	MaxInFlight int
	// Retries is how many extra attempts a failing check makes, as long as
	// they fit before the target's next planned check.
	Retries       int
	RetryInterval time.Duration
}

// Retry is the retry policy: whether a check whose attempt number attempt
// just failed makes another attempt. It does while it has retries left and
// the next attempt, started RetryInterval from now and lasting up to
// timeout, would end by deadline (for a scheduled check, the target's
// next planned check). The check API applies it too, so checks made on
// request and scheduled ones weigh failures alike.
func (st *Settings) Retry(attempt int, now time.Time, timeout time.Duration, deadline time.Time) bool {
	return attempt <= st.Retries && !now.Add(st.RetryInterval+timeout).After(deadline)
}

// Attempts runs the attempts of one check under the retry policy: try
// makes attempt number n and returns its result, or nil when it cannot be
// made (the check then ends with the previous attempt's). A failure is
// retried RetryInterval later while Retry allows it (for attempts lasting
// up to timeout, ending by deadline) and ctx lasts.
func (st *Settings) Attempts(ctx context.Context, timeout time.Duration, deadline time.Time, try func(n int) *result.Result) (*result.Result, int) {
	r := try(1)
	for n := 1; ; n++ {
		if r.Success || !st.Retry(n, time.Now(), timeout, deadline) {
			return r, n
		}
		wait := time.NewTimer(st.RetryInterval)
		select {
		case <-ctx.Done():
			wait.Stop()
			return r, n
		case <-wait.C:
		}
		next := try(n + 1)
		if next == nil {
			return r, n
		}
		r = next
	}
}

// Options configure a Scheduler.
type Options struct {
	Settings
	Check CheckFunc
	// Start, when set, begins the attempts in Check's place, so that an
	// attempt waiting for its target holds no worker.
	Start StartFunc
	// OnOutcome receives every finished check of a target still scheduled.
	OnOutcome func(Outcome)
	// Observe, when set, brackets every check, all its attempts together:
	// it is called once the check has a concurrency slot, returns the
	// context the attempts run in, and a function that gets the outcome
	// before OnOutcome does (and may set its TraceID). That function is
	// called for every check observed, also one whose result is not
	// reported (its target removed meanwhile).
	Observe func(ctx context.Context, t *Target) (context.Context, func(*Outcome))
	// Bounds say when the scheduler judges itself degraded (Degraded).
	Bounds Bounds
	// Tick, when set, advances with every pass of the scheduling loop;
	// Checks with every check attempt that ends, and has work due while
	// attempts run. Overdue says when a pass is due.
	Tick, Checks *liveness.Clock
	Registerer   prometheus.Registerer
	Logger       *slog.Logger
}

// Scheduler runs checks on their planned slots.
type Scheduler struct {
	opts     Options
	settings atomic.Pointer[Settings]
	sem      atomic.Pointer[limiter]
	updates  chan []Target
	wg       sync.WaitGroup

	// Owned by the Run goroutine.
	queue   entryHeap
	entries map[entryKey]*entry
	gen     uint64   // numbers the target sets taken
	pending *update  // the set being applied, nil for none
	workers *workers // the goroutines checks run on

	targets  atomic.Int64
	inFlight atomic.Int64
	// liveWorkers counts the goroutines of workers.
	liveWorkers atomic.Int64
	// nextPlanned is the planned time of the earliest check the loop has
	// not dispatched yet (Unix nanoseconds); 0 without targets.
	nextPlanned atomic.Int64
	judge       *judge
	missed      *prometheus.CounterVec
	lag         prometheus.Histogram
	checks      prometheus.Counter
}

type entry struct {
	target  atomic.Pointer[Target]
	off     time.Duration
	next    time.Time // planned time of the next check
	index   int       // position in the heap
	gen     uint64    // the latest target set naming the entry
	running atomic.Bool
	removed atomic.Bool
	// done is when the target's latest check ended, or when it was
	// scheduled before its first (Unix nanoseconds); stale says its
	// result is counted stale.
	done  atomic.Int64
	stale atomic.Bool
}

// New builds a scheduler; Run starts it.
func New(opts Options) *Scheduler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.OnOutcome == nil {
		opts.OnOutcome = func(Outcome) {}
	}
	s := &Scheduler{
		opts:    opts,
		updates: make(chan []Target),
		entries: map[entryKey]*entry{},
		judge:   newJudge(opts.Bounds),
	}
	s.SetSettings(opts.Settings)
	f := promauto.With(opts.Registerer)
	s.missed = f.NewCounterVec(prometheus.CounterOpts{
		Name: "vantage_scheduler_missed_checks_total",
		Help: "Planned checks that did not run: busy means the previous check of the target (with its retries) was still running; late means no concurrency slot freed up before the next planned check.",
	}, []string{"reason"})
	s.missed.WithLabelValues("busy")
	s.missed.WithLabelValues("late")
	s.lag = f.NewHistogram(prometheus.HistogramOpts{
		Name:    "vantage_scheduler_lag_seconds",
		Help:    "Delay between a check's planned and actual start.",
		Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	})
	s.checks = f.NewCounter(prometheus.CounterOpts{
		Name: "vantage_scheduler_checks_total",
		Help: "Check attempts started, retries included.",
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vantage_scheduler_in_flight",
		Help: "Check attempts running now.",
	}, func() float64 { return float64(s.inFlight.Load()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vantage_scheduler_workers",
		Help: "Goroutines that run checks, running one or waiting for the next (an idle one ends after 5s without a check; at most 256 wait).",
	}, func() float64 { return float64(s.liveWorkers.Load()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vantage_scheduler_targets",
		Help: "Targets scheduled.",
	}, func() float64 { return float64(s.targets.Load()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vantage_scheduler_max_in_flight",
		Help: "Concurrency limit of check attempts.",
	}, func() float64 { return float64(s.settings.Load().MaxInFlight) })
	return s
}

// SetSettings changes the tunables. A new concurrency limit applies to
// attempts that start from now on.
func (s *Scheduler) SetSettings(st Settings) {
	st.MaxInFlight = max(st.MaxInFlight, 1)
	st.Retries = max(st.Retries, 0)
	if old := s.settings.Load(); old == nil || old.MaxInFlight != st.MaxInFlight {
		s.sem.Store(&limiter{slots: make(chan struct{}, st.MaxInFlight)})
	}
	s.settings.Store(&st)
}

// limiter bounds concurrent attempts; an attempt releases the slot to the
// limiter it took it from, so a limit change never over- or under-counts.
type limiter struct{ slots chan struct{} }

func (l *limiter) release() { <-l.slots }

// Update replaces the set of scheduled targets. Targets that stay keep their
// slots; new ones join at their own offset; removed ones stop, and a check of
// theirs still running is not reported. It blocks until Run takes the set,
// which Run applies in steps (applyStep targets each) between which it
// dispatches the checks due meanwhile.
func (s *Scheduler) Update(ctx context.Context, targets []Target) error {
	select {
	case s.updates <- targets:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run schedules checks until ctx ends, then waits for running checks, which
// see ctx's cancellation.
func (s *Scheduler) Run(ctx context.Context) error {
	s.workers = newWorkers(ctx.Done(), &s.liveWorkers)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer s.workers.wait() // after the checks: idle workers end with ctx
	defer s.wg.Wait()
	for {
		now := time.Now()
		s.opts.Tick.Advance(now)
		for len(s.queue) > 0 && !s.queue[0].next.After(now) {
			e := s.queue[0]
			s.dispatch(ctx, e, e.next)
			e.next = e.next.Add(e.target.Load().Interval)
			if e.next.Before(now) {
				// The loop itself fell more than an interval behind: the
				// skipped slots are missed, and the rhythm resumes.
				t := e.target.Load()
				skipped := now.Sub(e.next)/t.Interval + 1
				s.missed.WithLabelValues("late").Add(float64(skipped))
				s.judge.planned(now, int(skipped))
				s.judge.missed(now, int(skipped))
				e.next = nextSlot(now, t.Interval, e.off)
			}
			heap.Fix(&s.queue, 0)
		}
		updates := s.updates
		if s.pending != nil {
			// Due checks went out; the next step of the set follows.
			s.applySome(time.Now(), applyStep)
			updates = nil
		}
		s.publishNext()
		wait := time.Hour
		if s.pending != nil {
			wait = 0
		} else if len(s.queue) > 0 {
			wait = time.Until(s.queue[0].next)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case targets := <-updates:
			s.beginApply(targets)
			s.applySome(time.Now(), applyStep)
			s.publishNext()
		}
	}
}

// applyStep bounds how many targets one pass of the loop applies of a new
// set: a set of a million targets is taken in steps between which due
// checks are dispatched, so a reload never holds checking up.
const applyStep = 4096

// update is a target set being applied: first its targets, applyStep at a
// time, then the removal of the entries it no longer names, applyStep at a
// time among a copy of the queue. Only the Run goroutine touches it.
type update struct {
	targets []Target
	gen     uint64
	next    int      // targets[:next] are applied
	stale   []*entry // the entries before the set, checked for removal
	removal bool     // targets all applied; removing
}

// apply diffs a new target set against the running one, all at once.
func (s *Scheduler) apply(targets []Target, now time.Time) {
	s.beginApply(targets)
	for s.pending != nil {
		s.applySome(now, len(targets)+len(s.queue)+1)
	}
}

// beginApply starts applying a new target set; applySome does the work.
func (s *Scheduler) beginApply(targets []Target) {
	s.gen++
	s.pending = &update{targets: targets, gen: s.gen}
}

// applySome applies up to n targets of the pending set, or, once they are
// all applied, checks up to n entries for removal.
func (s *Scheduler) applySome(now time.Time, n int) {
	u := s.pending
	if !u.removal {
		start := u.next
		end := min(start+n, len(u.targets))
		for i := start; i < end; i++ {
			s.applyTarget(&u.targets[i], u.gen, now)
		}
		u.next = end
		if end < len(u.targets) {
			return
		}
		u.removal = true
		u.stale = slices.Clone(s.queue)
		n -= end - start
	}
	end := min(n, len(u.stale))
	for _, e := range u.stale[:end] {
		if e.gen == u.gen || e.removed.Load() {
			continue
		}
		e.removed.Store(true)
		s.markStale(e, false)
		heap.Remove(&s.queue, e.index)
		delete(s.entries, keyOf(e.target.Load()))
	}
	u.stale = u.stale[end:]
	if len(u.stale) > 0 {
		return
	}
	s.pending = nil
	s.targets.Store(int64(len(s.entries)))
	s.opts.Logger.Info("Scheduled targets updated", "targets", len(s.entries))
}

// applyTarget schedules t: a target already scheduled keeps its slot (a
// new interval moves it), a new one joins at its own offset.
func (s *Scheduler) applyTarget(t *Target, gen uint64, now time.Time) {
	key := keyOf(t)
	if e, ok := s.entries[key]; ok {
		e.gen = gen
		old := e.target.Load()
		e.target.Store(t)
		if old.Interval != t.Interval {
			e.off = offset(t.Module, t.Target, t.Interval)
			e.next = nextSlot(now, t.Interval, e.off)
			heap.Fix(&s.queue, e.index)
		}
		return
	}
	e := &entry{off: offset(t.Module, t.Target, t.Interval), gen: gen}
	e.target.Store(t)
	e.done.Store(now.UnixNano())
	e.next = nextSlot(now, t.Interval, e.off)
	s.entries[key] = e
	heap.Push(&s.queue, e)
}

// dispatch starts the check planned for planned, unless the target's previous
// check still runs.
func (s *Scheduler) dispatch(ctx context.Context, e *entry, planned time.Time) {
	s.judge.planned(planned, 1)
	t := e.target.Load()
	if s.opts.Bounds.StaleAfter > 0 {
		s.markStale(e, time.Unix(0, e.done.Load()).Before(planned.Add(-time.Duration(s.opts.Bounds.StaleAfter)*t.Interval)))
	}
	if !e.running.CompareAndSwap(false, true) {
		// Not held against the scheduler: the target's own check (up
		// to its timeout) is still running, whatever the capacity.
		s.missed.WithLabelValues("busy").Inc()
		return
	}
	s.wg.Add(1)
	s.workers.run(func() {
		// A check that cannot start before its next slot is missed; it
		// gives up just before that slot so the next one finds it gone.
		next := planned.Add(t.Interval)
		slot := s.acquire(ctx, next.Add(-time.Millisecond))
		if slot == nil {
			if ctx.Err() == nil {
				s.missed.WithLabelValues("late").Inc()
				s.judge.missed(time.Now(), 1)
			}
			e.running.Store(false)
			s.wg.Done()
			return
		}
		started := time.Now()
		s.lag.Observe(started.Sub(planned).Seconds())
		s.judge.started(started, started.Sub(planned))
		c := &check{s: s, e: e, t: t, ctx: ctx, planned: planned, next: next, settings: s.settings.Load()}
		if s.opts.Observe != nil {
			c.ctx, c.observed = s.opts.Observe(ctx, t)
		}
		c.attempts(slot)
	})
}

// publishNext tells Overdue when the loop's next pass is due. Only the
// Run goroutine calls it.
func (s *Scheduler) publishNext() {
	var next int64
	if len(s.queue) > 0 {
		next = s.queue[0].next.UnixNano()
	}
	s.nextPlanned.Store(next)
}

// Overdue says whether a planned check is waiting for the loop to
// dispatch it at now, and since when: the loop is behind.
func (s *Scheduler) Overdue(now time.Time) (since time.Time, due bool) {
	n := s.nextPlanned.Load()
	if n == 0 || n > now.UnixNano() {
		return time.Time{}, false
	}
	return time.Unix(0, n), true
}

// Degraded returns why the scheduler cannot vouch for its results at now
// (DegradedReasons, in that order); none while it keeps its plan. A
// change from the previous judgement is logged.
func (s *Scheduler) Degraded(now time.Time) []string {
	reasons, changed := s.judge.degraded(now)
	switch {
	case !changed:
	case len(reasons) > 0:
		s.opts.Logger.Warn("Scheduler cannot vouch for its results; failures are reported unknown", "reasons", strings.Join(reasons, ","))
	default:
		s.opts.Logger.Info("Scheduler keeps its plan again; failures are reported failing")
	}
	return reasons
}

// markStale sets whether e's result counts as stale.
func (s *Scheduler) markStale(e *entry, stale bool) {
	if e.stale.CompareAndSwap(!stale, stale) {
		if stale {
			s.judge.staleChanged(1)
		} else {
			s.judge.staleChanged(-1)
		}
	}
}

// acquire takes a concurrency slot, giving up at deadline or when ctx ends
// (nil then).
func (s *Scheduler) acquire(ctx context.Context, deadline time.Time) *limiter {
	l := s.sem.Load()
	select {
	case l.slots <- struct{}{}:
		return l
	default:
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case l.slots <- struct{}{}:
		return l
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return nil
	}
}

// entryHeap orders entries by their next planned time.
type entryHeap []*entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *entryHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// Package scheduler checks every configured target continuously, each on its
// own interval at a stable offset, with bounded concurrency and local
// retries, and accounts for every check that could not start on time.
package scheduler

import (
	"container/heap"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/vantageprobe/vantage/exporter/prober"
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
}

// Label is one configured label of a target.
type Label struct{ Name, Value string }

// Key identifies a target within the scheduler.
func (t *Target) Key() string { return Key(t.Module, t.Target) }

// Key identifies a (module, target) pair.
func Key(module, target string) string { return module + "\x00" + target }

// Outcome is the result of one scheduled check after local retries.
type Outcome struct {
	Target   *Target
	Result   *prober.Result
	Attempts int
	Planned  time.Time
}

// CheckFunc runs one attempt of a check; ctx carries the attempt's deadline.
type CheckFunc func(ctx context.Context, t *Target) *prober.Result

// Options configure a Scheduler.
type Options struct {
	MaxInFlight   int
	Retries       int
	RetryInterval time.Duration
	Check         CheckFunc
	// OnOutcome receives every finished check of a target still scheduled.
	OnOutcome  func(Outcome)
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Scheduler runs checks on their planned slots.
type Scheduler struct {
	opts    Options
	sem     chan struct{}
	updates chan []Target
	wg      sync.WaitGroup

	// Owned by the Run goroutine.
	queue   entryHeap
	entries map[string]*entry

	targets atomic.Int64
	missed  *prometheus.CounterVec
	lag     prometheus.Histogram
	checks  prometheus.Counter
}

type entry struct {
	target  atomic.Pointer[Target]
	off     time.Duration
	next    time.Time // planned time of the next check
	index   int       // position in the heap
	running atomic.Bool
	removed atomic.Bool
}

// New builds a scheduler; Run starts it.
func New(opts Options) *Scheduler {
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 1
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.OnOutcome == nil {
		opts.OnOutcome = func(Outcome) {}
	}
	s := &Scheduler{
		opts:    opts,
		sem:     make(chan struct{}, opts.MaxInFlight),
		updates: make(chan []Target),
		entries: map[string]*entry{},
	}
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
	}, func() float64 { return float64(len(s.sem)) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vantage_scheduler_targets",
		Help: "Targets scheduled.",
	}, func() float64 { return float64(s.targets.Load()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vantage_scheduler_max_in_flight",
		Help: "Concurrency limit of check attempts.",
	}, func() float64 { return float64(cap(s.sem)) })
	return s
}

// Update replaces the set of scheduled targets. Targets that stay keep their
// slots; new ones join at their own offset; removed ones stop, and a check of
// theirs still running is not reported. It blocks until Run takes the set.
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
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer s.wg.Wait()
	for {
		now := time.Now()
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
				e.next = nextSlot(now, t.Interval, e.off)
			}
			heap.Fix(&s.queue, 0)
		}
		wait := time.Hour
		if len(s.queue) > 0 {
			wait = time.Until(s.queue[0].next)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case targets := <-s.updates:
			s.apply(targets, time.Now())
		}
	}
}

// apply diffs a new target set against the running one.
func (s *Scheduler) apply(targets []Target, now time.Time) {
	seen := make(map[string]bool, len(targets))
	for i := range targets {
		t := &targets[i]
		key := t.Key()
		seen[key] = true
		if e, ok := s.entries[key]; ok {
			old := e.target.Load()
			e.target.Store(t)
			if old.Interval != t.Interval {
				e.off = offset(t.Module, t.Target, t.Interval)
				e.next = nextSlot(now, t.Interval, e.off)
				heap.Fix(&s.queue, e.index)
			}
			continue
		}
		e := &entry{off: offset(t.Module, t.Target, t.Interval)}
		e.target.Store(t)
		e.next = nextSlot(now, t.Interval, e.off)
		s.entries[key] = e
		heap.Push(&s.queue, e)
	}
	for key, e := range s.entries {
		if !seen[key] {
			e.removed.Store(true)
			heap.Remove(&s.queue, e.index)
			delete(s.entries, key)
		}
	}
	s.targets.Store(int64(len(s.entries)))
	s.opts.Logger.Info("Scheduled targets updated", "targets", len(s.entries))
}

// dispatch starts the check planned for planned, unless the target's previous
// check still runs.
func (s *Scheduler) dispatch(ctx context.Context, e *entry, planned time.Time) {
	if !e.running.CompareAndSwap(false, true) {
		s.missed.WithLabelValues("busy").Inc()
		return
	}
	t := e.target.Load()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer e.running.Store(false)
		// A check that cannot start before its next slot is missed; it
		// gives up just before that slot so the next one finds it gone.
		if !s.acquire(ctx, planned.Add(t.Interval-time.Millisecond)) {
			if ctx.Err() == nil {
				s.missed.WithLabelValues("late").Inc()
			}
			return
		}
		s.lag.Observe(time.Since(planned).Seconds())
		result, attempts := s.run(ctx, e, t)
		if result == nil || e.removed.Load() {
			return
		}
		s.opts.OnOutcome(Outcome{Target: e.target.Load(), Result: result, Attempts: attempts, Planned: planned})
	}()
}

// run makes the first attempt (its slot already acquired) and up to Retries
// more, RetryInterval apart, releasing the slot while it waits.
func (s *Scheduler) run(ctx context.Context, e *entry, t *Target) (*prober.Result, int) {
	for attempt := 1; ; attempt++ {
		r := s.attempt(ctx, t)
		<-s.sem
		if r.Success || attempt > s.opts.Retries || e.removed.Load() {
			return r, attempt
		}
		wait := time.NewTimer(s.opts.RetryInterval)
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil, attempt
		case <-wait.C:
		}
		if !s.acquire(ctx, time.Time{}) {
			return nil, attempt
		}
	}
}

func (s *Scheduler) attempt(ctx context.Context, t *Target) *prober.Result {
	s.checks.Inc()
	actx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	return s.opts.Check(actx, t)
}

// acquire takes a concurrency slot, giving up at deadline (zero: never) or
// when ctx ends.
func (s *Scheduler) acquire(ctx context.Context, deadline time.Time) bool {
	select {
	case s.sem <- struct{}{}:
		return true
	default:
	}
	var expire <-chan time.Time
	if !deadline.IsZero() {
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		expire = timer.C
	}
	select {
	case s.sem <- struct{}{}:
		return true
	case <-expire:
		return false
	case <-ctx.Done():
		return false
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

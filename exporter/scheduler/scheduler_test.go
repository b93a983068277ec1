package scheduler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vantageprobe/vantage/prober/result"
)

func TestOffsetStableAndSpread(t *testing.T) {
	const interval = 10 * time.Second
	buckets := make([]int, 10)
	for i := range 1000 {
		target := fmt.Sprintf("https://site-%d.example", i)
		off := offset("http_2xx", target, interval)
		if off != offset("http_2xx", target, interval) {
			t.Fatalf("offset of %s is not stable", target)
		}
		if off < 0 || off >= interval {
			t.Fatalf("offset %s outside [0, %s)", off, interval)
		}
		buckets[off/time.Second]++
	}
	for i, n := range buckets {
		if n < 60 || n > 140 {
			t.Errorf("second %d of the interval holds %d of 1000 targets; want about 100", i, n)
		}
	}
	if offset("http_2xx", "a", interval) == offset("tcp_connect", "a", interval) &&
		offset("http_2xx", "b", interval) == offset("tcp_connect", "b", interval) {
		t.Error("offset ignores the module")
	}
}

func TestNextSlot(t *testing.T) {
	interval, off := 30*time.Second, 7*time.Second
	base := time.Unix(1_700_000_010, 0) // a multiple of 30s
	for _, tc := range []struct {
		now, want time.Time
	}{
		{base, base.Add(off)},
		{base.Add(off), base.Add(off)},
		{base.Add(off + time.Nanosecond), base.Add(interval + off)},
		{base.Add(29 * time.Second), base.Add(interval + off)},
	} {
		if got := nextSlot(tc.now, interval, off); !got.Equal(tc.want) {
			t.Errorf("nextSlot(%s) = %s, want %s", tc.now, got, tc.want)
		}
	}
}

// recorder collects outcomes.
type recorder struct {
	mu       sync.Mutex
	outcomes []Outcome
}

func (r *recorder) add(o Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes = append(r.outcomes, o)
}

func (r *recorder) forTarget(target string) []Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Outcome
	for _, o := range r.outcomes {
		if o.Target.Target == target {
			out = append(out, o)
		}
	}
	return out
}

func succeed(context.Context, *Target) *result.Result { return &result.Result{Success: true} }

func target(name string, interval time.Duration) Target {
	return Target{Module: "m", Target: name, Interval: interval, Timeout: time.Second}
}

// startScheduler runs a scheduler inside the current synctest bubble.
func startScheduler(t *testing.T, opts Options, targets ...Target) (*Scheduler, *prometheus.Registry, context.CancelFunc) {
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	s := New(opts)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	if err := s.Update(ctx, targets); err != nil {
		t.Fatal(err)
	}
	return s, reg, func() { cancel(); <-done }
}

func TestChecksRunOnTheirSlotsWithoutDrift(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		start := time.Now()
		_, reg, stop := startScheduler(t, Options{Settings: Settings{MaxInFlight: 10}, Check: succeed, OnOutcome: rec.add},
			target("a", 10*time.Second), target("b", 3*time.Second))
		time.Sleep(time.Hour)
		stop()

		for _, tc := range []struct {
			name     string
			interval time.Duration
		}{{"a", 10 * time.Second}, {"b", 3 * time.Second}} {
			outs := rec.forTarget(tc.name)
			want := int(time.Hour / tc.interval)
			if len(outs) < want-1 || len(outs) > want+1 {
				t.Errorf("%s: %d checks in an hour, want %d", tc.name, len(outs), want)
			}
			off := offset("m", tc.name, tc.interval)
			for i, o := range outs {
				if got := time.Duration(o.Planned.UnixNano()) % tc.interval; got != off {
					t.Fatalf("%s check %d planned at offset %s, want %s (drift)", tc.name, i, got, off)
				}
				if i > 0 && o.Planned.Sub(outs[i-1].Planned) != tc.interval {
					t.Fatalf("%s checks %d and %d are %s apart, want %s", tc.name, i-1, i, o.Planned.Sub(outs[i-1].Planned), tc.interval)
				}
			}
			if first := outs[0].Planned; first.Sub(start) >= tc.interval {
				t.Errorf("%s: first check %s after start, want within one interval", tc.name, first.Sub(start))
			}
		}
		if n := testutil.ToFloat64(mustCounter(t, reg, "vantage_scheduler_missed_checks_total", "busy")) + testutil.ToFloat64(mustCounter(t, reg, "vantage_scheduler_missed_checks_total", "late")); n != 0 {
			t.Errorf("missed checks = %v, want 0", n)
		}
	})
}

func TestRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		attempts := map[string]int{}
		check := func(ctx context.Context, tg *Target) *result.Result {
			mu.Lock()
			defer mu.Unlock()
			attempts[tg.Target]++
			// "flaky" fails twice then succeeds; "down" always fails.
			if tg.Target == "flaky" && attempts[tg.Target] == 3 {
				return &result.Result{Success: true}
			}
			return &result.Result{Success: false, Reason: result.ReasonConnectRefused}
		}
		rec := &recorder{}
		_, _, stop := startScheduler(t, Options{Settings: Settings{MaxInFlight: 10, Retries: 2, RetryInterval: 5 * time.Second}, Check: check, OnOutcome: rec.add},
			target("flaky", time.Minute), target("down", time.Minute))
		time.Sleep(time.Minute)
		synctest.Wait()
		stop()

		flaky := rec.forTarget("flaky")
		if len(flaky) != 1 || !flaky[0].Result.Success || flaky[0].Attempts != 3 {
			t.Fatalf("flaky: outcomes %+v, want one success after 3 attempts", flaky)
		}
		down := rec.forTarget("down")
		if len(down) != 1 || down[0].Result.Success || down[0].Attempts != 3 || down[0].Result.Reason != result.ReasonConnectRefused {
			t.Fatalf("down: outcomes %+v, want one failure after 3 attempts", down)
		}
	})
}

func TestRetriesAreSpacedByRetryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var times []time.Time
		check := func(ctx context.Context, tg *Target) *result.Result {
			mu.Lock()
			defer mu.Unlock()
			times = append(times, time.Now())
			return &result.Result{Reason: result.ReasonTimeout}
		}
		_, _, stop := startScheduler(t, Options{Settings: Settings{MaxInFlight: 1, Retries: 2, RetryInterval: 5 * time.Second}, Check: check},
			target("x", time.Minute))
		time.Sleep(time.Minute)
		stop()
		mu.Lock()
		defer mu.Unlock()
		if len(times) != 3 {
			t.Fatalf("%d attempts, want 3", len(times))
		}
		for i := 1; i < len(times); i++ {
			if d := times[i].Sub(times[i-1]); d != 5*time.Second {
				t.Errorf("attempts %d and %d are %s apart, want 5s", i-1, i, d)
			}
		}
	})
}

func TestUpdateKeepsRhythmOfRemainingTargets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		s, _, stop := startScheduler(t, Options{Settings: Settings{MaxInFlight: 10}, Check: succeed, OnOutcome: rec.add},
			target("a", 10*time.Second), target("b", 10*time.Second))
		time.Sleep(35 * time.Second)
		if err := s.Update(t.Context(), []Target{target("b", 10*time.Second), target("c", 10*time.Second)}); err != nil {
			t.Fatal(err)
		}
		updated := time.Now()
		time.Sleep(35 * time.Second)
		stop()

		for _, o := range rec.forTarget("a") {
			if o.Planned.After(updated) {
				t.Errorf("removed target a still checked at %s", o.Planned)
			}
		}
		b := rec.forTarget("b")
		if len(b) < 6 {
			t.Fatalf("b checked %d times in 70s, want 7", len(b))
		}
		for i := 1; i < len(b); i++ {
			if d := b[i].Planned.Sub(b[i-1].Planned); d != 10*time.Second {
				t.Errorf("b's rhythm disturbed by the update: checks %s apart", d)
			}
		}
		c := rec.forTarget("c")
		if len(c) < 3 {
			t.Fatalf("added target c checked %d times in 35s, want 3 or 4", len(c))
		}
		if got := time.Duration(c[0].Planned.UnixNano()) % (10 * time.Second); got != offset("m", "c", 10*time.Second) {
			t.Errorf("c does not start at its own offset")
		}
	})
}

func TestMissedChecksAreCounted(t *testing.T) {
	t.Run("busy", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// Each check takes 25s on a 10s interval: two of every three
			// slots find the previous check still running.
			slow := func(ctx context.Context, tg *Target) *result.Result {
				time.Sleep(25 * time.Second)
				return &result.Result{Success: true}
			}
			tg := target("slow", 10*time.Second)
			tg.Timeout = time.Minute
			_, reg, stop := startScheduler(t, Options{Settings: Settings{MaxInFlight: 10}, Check: slow}, tg)
			time.Sleep(5 * time.Minute)
			stop()
			busy := testutil.ToFloat64(mustCounter(t, reg, "vantage_scheduler_missed_checks_total", "busy"))
			if busy < 18 || busy > 22 {
				t.Errorf("busy missed checks = %v, want about 20 (2 of 3 of 30 slots)", busy)
			}
		})
	})
	t.Run("late", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// One concurrency slot, held for 25s by the hog: the other
			// target's checks cannot start before their next slot.
			check := func(ctx context.Context, tg *Target) *result.Result {
				if tg.Target == "hog" {
					time.Sleep(25 * time.Second)
				}
				return &result.Result{Success: true}
			}
			hog := target("hog", time.Hour)
			hog.Timeout = time.Hour
			_, reg, stop := startScheduler(t, Options{Settings: Settings{MaxInFlight: 1}, Check: check}, hog, target("victim", 5*time.Second))
			time.Sleep(time.Hour)
			stop()
			late := testutil.ToFloat64(mustCounter(t, reg, "vantage_scheduler_missed_checks_total", "late"))
			busy := testutil.ToFloat64(mustCounter(t, reg, "vantage_scheduler_missed_checks_total", "busy"))
			if late < 4 || late > 5 || busy != 0 {
				t.Errorf("missed checks late=%v busy=%v, want 4 or 5 late (25s of a 5s interval blocked) and 0 busy", late, busy)
			}
		})
	})
}

func TestAttemptDeadlineIsTheTargetTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got time.Duration
		check := func(ctx context.Context, tg *Target) *result.Result {
			dl, _ := ctx.Deadline()
			got = time.Until(dl)
			return &result.Result{Success: true}
		}
		tg := target("x", time.Minute)
		tg.Timeout = 7 * time.Second
		_, _, stop := startScheduler(t, Options{Settings: Settings{MaxInFlight: 1}, Check: check}, tg)
		time.Sleep(time.Minute)
		stop()
		if got != 7*time.Second {
			t.Errorf("attempt deadline %s away, want 7s", got)
		}
	})
}

func mustCounter(t *testing.T, reg *prometheus.Registry, name, reason string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					c := prometheus.NewCounter(prometheus.CounterOpts{Name: name})
					c.Add(m.GetCounter().GetValue())
					return c
				}
			}
		}
	}
	t.Fatalf("no %s{reason=%q}", name, reason)
	return nil
}

func TestSetSettingsChangesTheConcurrencyLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		running, peak := 0, 0
		check := func(ctx context.Context, tg *Target) *result.Result {
			mu.Lock()
			running++
			peak = max(peak, running)
			mu.Unlock()
			time.Sleep(5 * time.Second)
			mu.Lock()
			running--
			mu.Unlock()
			return &result.Result{Success: true}
		}
		var targets []Target
		for i := range 20 {
			tg := target(fmt.Sprintf("t%d", i), time.Minute)
			tg.Timeout = 10 * time.Second
			targets = append(targets, tg)
		}
		s, reg, stop := startScheduler(t, Options{Settings: Settings{MaxInFlight: 2}, Check: check}, targets...)
		time.Sleep(time.Minute)
		synctest.Wait()
		mu.Lock()
		before := peak
		peak = 0
		mu.Unlock()
		s.SetSettings(Settings{MaxInFlight: 8})
		time.Sleep(time.Minute)
		synctest.Wait()
		stop()
		mu.Lock()
		defer mu.Unlock()
		if before != 2 {
			t.Errorf("peak concurrency %d with max_in_flight 2", before)
		}
		if peak <= 2 || peak > 8 {
			t.Errorf("peak concurrency %d after raising max_in_flight to 8, want 3..8", peak)
		}
		if v := testutil.ToFloat64(mustGauge(t, reg, "vantage_scheduler_max_in_flight")); v != 8 {
			t.Errorf("vantage_scheduler_max_in_flight = %v, want 8", v)
		}
	})
}

func mustGauge(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name})
			g.Set(mf.GetMetric()[0].GetGauge().GetValue())
			return g
		}
	}
	t.Fatalf("no %s", name)
	return nil
}

// Observe brackets each check, retries included: the attempts run in the
// context it returns, and its finish function sees the outcome, and sets
// its TraceID, before OnOutcome.
func TestObserveBracketsEachCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type key struct{}
		var mu sync.Mutex
		var observed, finished int
		var attemptsInContext int
		check := func(ctx context.Context, _ *Target) *result.Result {
			mu.Lock()
			defer mu.Unlock()
			if ctx.Value(key{}) == "check" {
				attemptsInContext++
			}
			return &result.Result{Reason: result.ReasonTimeout}
		}
		observe := func(ctx context.Context, tg *Target) (context.Context, func(*Outcome)) {
			mu.Lock()
			observed++
			mu.Unlock()
			return context.WithValue(ctx, key{}, "check"), func(o *Outcome) {
				mu.Lock()
				defer mu.Unlock()
				finished++
				if o.Attempts != 3 || o.Result == nil || o.Target.Target != tg.Target {
					t.Errorf("finish got outcome %+v", o)
				}
				o.TraceID = "trace-" + tg.Target
			}
		}
		rec := &recorder{}
		_, _, stop := startScheduler(t, Options{
			Settings: Settings{MaxInFlight: 10, Retries: 2, RetryInterval: time.Second},
			Check:    check, OnOutcome: rec.add, Observe: observe,
		}, target("down", time.Minute))
		time.Sleep(time.Minute)
		synctest.Wait()
		stop()

		outs := rec.forTarget("down")
		if len(outs) != 1 || outs[0].TraceID != "trace-down" {
			t.Fatalf("outcomes %+v, want one carrying the TraceID finish set", outs)
		}
		if observed != 1 || finished != 1 || attemptsInContext != 3 {
			t.Errorf("observed %d, finished %d, attempts in the observed context %d; want 1, 1, 3", observed, finished, attemptsInContext)
		}
	})
}

func TestALargeSetIsAppliedInSteps(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(Options{Settings: Settings{MaxInFlight: 10}, Check: succeed, Registerer: reg})
	many := func(from, to int) []Target {
		ts := []Target{target("a", time.Second)}
		for i := from; i < to; i++ {
			ts = append(ts, target(fmt.Sprint("x", i), time.Hour))
		}
		return ts
	}
	now := time.Now()
	s.apply(many(0, 3*applyStep), now)
	if got := testutil.ToFloat64(mustGauge(t, reg, "vantage_scheduler_targets")); got != 3*applyStep+1 {
		t.Fatalf("vantage_scheduler_targets = %v after the first set, want %d", got, 3*applyStep+1)
	}
	removed := s.entries[entryKey{module: "m", target: "x0"}]

	// The second set drops x0..x4095 and adds x12288..x16383.
	next := many(applyStep, 4*applyStep)
	s.beginApply(next)
	steps := 0
	for s.pending != nil {
		s.applySome(now, applyStep)
		steps++
		if s.pending != nil && testutil.ToFloat64(mustGauge(t, reg, "vantage_scheduler_targets")) != 3*applyStep+1 {
			t.Fatalf("the target count changed before the set was applied (step %d)", steps)
		}
		if steps > 100 {
			t.Fatal("the set is not applied after 100 steps")
		}
	}
	// Three steps of targets, then the removal among 4×applyStep+1 entries.
	if steps < 4 {
		t.Errorf("applied in %d steps, want at least 4 of at most %d targets or entries", steps, applyStep)
	}
	if len(s.entries) != len(next) || len(s.queue) != len(next) {
		t.Fatalf("%d entries and %d queued after the update, want %d", len(s.entries), len(s.queue), len(next))
	}
	for i := range next {
		e := s.entries[keyOf(&next[i])]
		if e == nil || e.removed.Load() {
			t.Fatalf("target %s of the new set is not scheduled", next[i].Target)
		}
		if s.queue[e.index] != e {
			t.Fatalf("target %s is not at its place in the queue", next[i].Target)
		}
	}
	if !removed.removed.Load() {
		t.Error("x0, left out of the new set, is not marked removed")
	}
	if got := testutil.ToFloat64(mustGauge(t, reg, "vantage_scheduler_targets")); got != float64(len(next)) {
		t.Errorf("vantage_scheduler_targets = %v, want %d", got, len(next))
	}
}

// Package soak runs vantage-exporter and vantage-coordinator as real
// processes, built from this tree, for a bounded time at a steady high
// check rate, while both exporters are reloaded every few seconds between
// two configurations that really change the schedule (targets added and
// removed, intervals changed) and a group of targets is made to fail and
// recover. It then asserts that:
//
//   - goroutines, open file descriptors, resident memory and the heap goal
//     of every process come back to their baseline, taken after warm-up,
//     within small margins (see margin; the short soak also allows for
//     the keep-alive connections between the processes, see allowance);
//   - no check was missed (vantage_scheduler_missed_checks_total is 0), and
//     the target server saw every steady target checked once a second from
//     each location, no more, no less, and no removed target checked;
//   - every report an exporter sent was delivered once: the exporter's
//     delivered count equals the coordinator's received count for its
//     location, and both equal one failing and one recovered report per
//     outage target and outage;
//   - every outage opened one incident per target, confirmed and resolved
//     as recovered, and nothing else opened one;
//   - every reload succeeded, and the processes stop cleanly, logging no
//     error.
//
// `go test ./test/soak/` runs a short soak (about 40 seconds); make soak
// runs the long one with -soak.duration and -soak.targets (see
// BENCHMARKS.md).
package soak

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

var (
	soakDuration = flag.Duration("soak.duration", 20*time.Second, "length of the main phase (reloads and outages); warm-up and settling come on top. Longer than 2m is the long soak of make soak")
	soakTargets  = flag.Int("soak.targets", 250, "targets each of the two exporters schedules in configuration A, most every second")
	soakReload   = flag.Duration("soak.reload-every", 3*time.Second, "how often both exporters are reloaded, switching between configurations A and B")
	soakOutage   = flag.Duration("soak.outage-every", 2*time.Minute, "one induced outage per this much of the main phase, at least one")
)

// plan is the shape of one run, from the flags.
type plan struct {
	long                 bool
	main                 time.Duration
	warmUp               time.Duration
	settleMin, settleMax time.Duration
	reloadEvery          time.Duration
	reloads              int // in the main phase; even, so that it ends on A
	outages              int
	outagePeriod         time.Duration
	outageLen            time.Duration
	sizes                map[string]int
}

func newPlan(t *testing.T) plan {
	p := plan{main: *soakDuration, long: *soakDuration > 2*time.Minute, reloadEvery: *soakReload, sizes: sizesFor(*soakTargets)}
	if p.main < 20*time.Second || p.reloadEvery < time.Second || *soakTargets < 50 || *soakOutage <= 0 {
		t.Fatalf("-soak.duration must be at least 20s, -soak.reload-every at least 1s, -soak.targets at least 50, -soak.outage-every positive")
	}
	p.warmUp, p.settleMin, p.settleMax = 6*time.Second, 3*time.Second, 30*time.Second
	if p.long {
		p.warmUp, p.settleMin, p.settleMax = 30*time.Second, 30*time.Second, 7*time.Minute
	}
	p.reloads = 2 * int(p.main/(2*p.reloadEvery))
	p.outages = max(1, int(p.main / *soakOutage))
	p.outagePeriod = p.main / time.Duration(p.outages)
	p.outageLen = min(20*time.Second, p.outagePeriod*2/5)
	return p
}

// budget is how long the run may take at most, build and stop included.
func (p plan) budget() time.Duration {
	return time.Minute + p.warmUp + p.main + 2*time.Minute + p.settleMax
}

// outageStats are the slowest confirmation and recovery of the outages.
type outageStats struct {
	confirm, recover time.Duration
}

func TestSoak(t *testing.T) {
	p := newPlan(t)
	if deadline, ok := t.Deadline(); ok && time.Until(deadline) < p.budget() {
		t.Fatalf("this soak may take %s, more than the test timeout leaves (%s): run it with -timeout %s or more",
			p.budget().Round(time.Second), time.Until(deadline).Round(time.Second), (p.budget() + time.Minute).Round(time.Minute))
	}
	runStart := time.Now()
	dir := t.TempDir()
	built := time.Now()
	bins := testbin.Build(t, "./cmd/vantage-exporter", "./cmd/vantage-coordinator")
	exporterBin, coordinatorBin := bins[0], bins[1]
	t.Logf("built vantage-exporter and vantage-coordinator in %s", time.Since(built).Round(time.Millisecond))
	ts := startTargetServer(t, 8, 4, p.sizes)
	s := startStack(t, dir, exporterBin, coordinatorBin, ts, p.sizes)
	t.Logf("plan: %d targets per exporter in A (%d steady, %d to fail, %d rotating, %d changing interval), %d in B; %.0f checks/s per exporter in A, %.0f in B; two exporters; main phase %s with %d reloads and %d outage(s) of %s",
		variantA.targets(p.sizes), p.sizes[kindSteady], p.sizes[kindOutage], p.sizes[kindRotateA], p.sizes[kindFlip], variantB.targets(p.sizes),
		variantA.rate(p.sizes), variantB.rate(p.sizes), p.main, p.reloads, p.outages, p.outageLen)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	progress := time.Duration(0)
	if p.long {
		progress = 30 * time.Second
	}
	sm := newSampler(s.processes(), t.Logf, progress)
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		sm.run(ctx, cancel)
	}()
	defer func() { cancel(); <-samplerDone }()
	fatal := func(err error) {
		t.Helper()
		if d := sm.death(); d != "" {
			t.Fatal(d)
		}
		t.Fatal(err)
	}

	if err := s.warmUp(ctx, p); err != nil {
		fatal(err)
	}
	warmUpReloads := s.reloadCount("exporter")
	base, err := measure(ctx, s, 10, 250*time.Millisecond)
	if err != nil {
		fatal(fmt.Errorf("baseline: %w", err))
	}
	baseAt, baseCounts, baseCPU := time.Now(), ts.snapshot(), markCPU(s.processes())
	baseChecks, err := checksTotal(ctx, s)
	if err != nil {
		fatal(err)
	}
	t.Logf("baseline after %s: %s", time.Since(runStart).Round(time.Second), describeUsage(s, base))

	mainStart := time.Now()
	outages, err := s.mainPhase(ctx, p)
	if err != nil {
		fatal(err)
	}
	mainTook := time.Since(mainStart)

	// Settle: configuration A runs, every outage is over. Removed targets
	// must not be checked from now on; re-added ones must be.
	settleStart := time.Now()
	if err := waitCtx(ctx, 2*time.Second); err != nil {
		fatal(err)
	}
	settleAt, settleCounts := time.Now(), ts.snapshot()
	final, found, err := settle(ctx, s, base, p)
	if err != nil {
		fatal(err)
	}
	settledIn := time.Since(settleStart)
	finalAt, finalCounts, finalCPU := time.Now(), ts.snapshot(), markCPU(s.processes())
	finalChecks, err := checksTotal(ctx, s)
	if err != nil {
		fatal(err)
	}
	checks := finalChecks - baseChecks
	window := finalAt.Sub(baseAt)

	f := &findings{t: t, s: s, p: p}
	f.scheduler(ctx)
	f.steadyChecks(baseCounts, finalCounts, window)
	f.removedAndReadded(settleCounts, finalCounts, finalAt.Sub(settleAt))
	f.table(ctx)
	incidents, recovered := f.incidents(ctx)
	reports := f.reports(ctx)
	if n := ts.stray.Load(); n != 0 {
		t.Errorf("the target server got %d requests for unknown paths or from unknown locations", n)
	}
	peaks := peakRSS(s)
	for _, l := range found {
		t.Errorf("not back to its baseline %s after the soak: %s", settledIn.Round(time.Second), l)
	}
	if len(found) > 0 {
		f.dumpLeakers(found)
	}
	cancel()
	<-samplerDone
	stopped := f.stop()

	t.Logf("soak: main phase %s (%s in all); checks %s in %s from the baseline (%.0f/s, both exporters); reloads: %s; outage targets %d × %d outage(s); incidents %d (%d confirmed and recovered); peak RSS %s; baseline → final %s; leaks found: %d",
		mainTook.Round(time.Second), time.Since(runStart).Round(time.Second), thousands(int64(checks)), window.Round(time.Second), checks/window.Seconds(),
		s.describeReloads(), p.sizes[kindOutage], p.outages, incidents, recovered, peaks, compareUsage(s, base, final), len(found))
	t.Logf("soak details: %d of the exporters' reloads in the warm-up, the slowest applied in %s; slowest confirmation of an outage %s, slowest recovery %s; reports %s; most checks in flight %s; settled in %s; connections between the processes %s → %s; %s; stopped in %s",
		warmUpReloads, s.reloadLatency.Round(time.Millisecond), outages.confirm.Round(time.Millisecond), outages.recover.Round(time.Millisecond),
		reports, sm.inFlight(), settledIn.Round(time.Second), describeConns(s, base), describeConns(s, final), describeCPU(s.processes(), baseCPU, finalCPU), stopped)
}

// warmUp loads configuration A, makes a round trip through B, and lets A
// run: whatever the first reload, the first checks and the first scrapes
// set up once is in place before the baseline.
func (s *stack) warmUp(ctx context.Context, p plan) error {
	for _, step := range []struct {
		v        variant
		bySignal bool
	}{{variantA, false}, {variantB, true}, {variantA, false}} {
		if err := s.reloadExporters(ctx, step.v, step.bySignal); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if err := waitCtx(ctx, p.warmUp/3); err != nil {
			return err
		}
	}
	return nil
}

// mainPhase reloads the exporters every reloadEvery and induces the
// outages, both at once, until both are done.
func (s *stack) mainPhase(ctx context.Context, p plan) (outageStats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	var reloadErr, outageErr error
	var st outageStats
	var wg sync.WaitGroup
	wg.Go(func() {
		if reloadErr = s.reloadLoop(ctx, start, p); reloadErr != nil {
			cancel()
		}
	})
	wg.Go(func() {
		if st, outageErr = s.outageLoop(ctx, start, p); outageErr != nil {
			cancel()
		}
	})
	wg.Wait()
	return st, errors.Join(reloadErr, outageErr)
}

// reloadLoop switches the exporters between B and A, by SIGHUP twice,
// then by POST /-/reload twice, and so on; every fourth time it reloads
// the coordinator too, switching between its two configurations (to the
// second by SIGHUP, back by POST /-/reload). It ends on configuration A,
// and on the coordinator's first configuration.
//
// The short soak reloads the coordinator only while no incident is open.
// A reload replaces the coordinator's HTTP client and leaves the old
// client's idle keep-alive connections to the exporters open until they
// have idled 5 minutes; a reload during an outage would leave two sets of
// them, more than the short soak waits for or allows (see connLimit).
// The long soak reloads it whenever due and settles until they close.
func (s *stack) reloadLoop(ctx context.Context, start time.Time, p plan) error {
	coordAlternate, pending := false, false
	for k := 1; k <= p.reloads; k++ {
		if err := waitUntil(ctx, start.Add(time.Duration(k)*p.reloadEvery)); err != nil {
			return err
		}
		v := variantB
		if k%2 == 0 {
			v = variantA
		}
		if err := s.reloadExporters(ctx, v, (k-1)/2%2 == 0); err != nil {
			return fmt.Errorf("reload %d of %d: %w", k, p.reloads, err)
		}
		if !pending && k%4 != 0 && !(k == p.reloads && coordAlternate) {
			continue
		}
		if pending = !p.long && s.incidentsOpen.Load(); pending {
			continue
		}
		coordAlternate = !coordAlternate
		if err := s.reloadCoordinator(ctx, coordAlternate, coordAlternate); err != nil {
			return err
		}
	}
	for coordAlternate {
		// The last reload was due while incidents were open.
		if err := waitCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
		if !s.incidentsOpen.Load() {
			coordAlternate = false
			if err := s.reloadCoordinator(ctx, false, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// outageLoop fails the outage targets once per outage period: it waits
// until the coordinator confirms every one down, keeps the outage for
// outageLen, ends it and waits until every incident is resolved.
func (s *stack) outageLoop(ctx context.Context, start time.Time, p plan) (outageStats, error) {
	var st outageStats
	defer s.ts.outage.Store(false)
	want := s.sizes[kindOutage]
	for j := range p.outages {
		if err := waitUntil(ctx, start.Add(time.Duration(j)*p.outagePeriod+p.outagePeriod/4)); err != nil {
			return st, err
		}
		s.incidentsOpen.Store(true)
		s.ts.outage.Store(true)
		on := time.Now()
		for {
			n, err := s.confirmedDown(ctx)
			if err != nil {
				return st, err
			}
			if n == want {
				break
			}
			if time.Since(on) > p.outageLen+time.Minute {
				return st, fmt.Errorf("outage %d: %d of %d targets confirmed down after %s", j+1, n, want, time.Since(on).Round(time.Second))
			}
			if err := waitCtx(ctx, 100*time.Millisecond); err != nil {
				return st, err
			}
		}
		st.confirm = max(st.confirm, time.Since(on))
		if err := waitUntil(ctx, on.Add(p.outageLen)); err != nil {
			return st, err
		}
		s.ts.outage.Store(false)
		off := time.Now()
		for {
			open, err := s.incidents(ctx, false)
			if err != nil {
				return st, err
			}
			if len(open) == 0 {
				break
			}
			if time.Since(off) > time.Minute {
				return st, fmt.Errorf("outage %d: %d incidents still open a minute after it ended, e.g. %+v", j+1, len(open), open[0])
			}
			if err := waitCtx(ctx, 100*time.Millisecond); err != nil {
				return st, err
			}
		}
		s.incidentsOpen.Store(false)
		st.recover = max(st.recover, time.Since(off))
	}
	return st, nil
}

func waitUntil(ctx context.Context, at time.Time) error {
	return waitCtx(ctx, time.Until(at))
}

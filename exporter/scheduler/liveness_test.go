package scheduler

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/internal/liveness"
	"github.com/vantageprobe/vantage/internal/webserver"
	"github.com/vantageprobe/vantage/prober/result"
)

// healthCheck serves clocks' /-/healthy as both programs do and answers
// a GET of it.
func healthCheck(clocks *liveness.Set) (int, string) {
	mux := http.NewServeMux()
	webserver.HandleOperational(mux, nil, clocks.Unhealthy)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/-/healthy", nil))
	return rec.Code, rec.Body.String()
}

func mustBeHealthy(t *testing.T, clocks *liveness.Set, when string) {
	t.Helper()
	if code, body := healthCheck(clocks); code != http.StatusOK || body != "Healthy\n" {
		t.Errorf("%s: /-/healthy answered %d %q, want 200 Healthy", when, code, body)
	}
}

func mustBeStalled(t *testing.T, clocks *liveness.Set, clock, when string) {
	t.Helper()
	code, body := healthCheck(clocks)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "\n"+clock+": no progress for ") {
		t.Errorf("%s: /-/healthy answered %d %q, want 503 naming %s", when, code, body, clock)
	}
}

// schedulerClocks makes the scheduler's clocks as the exporter does, with
// fixed bounds.
func schedulerClocks(s **Scheduler, tickBound, checkBound time.Duration) (*liveness.Set, *liveness.Clock, *liveness.Clock) {
	clocks := liveness.NewSet("exporter")
	tick := clocks.Add("scheduler_tick", func() time.Duration { return tickBound },
		func(now time.Time) (time.Time, bool) { return (*s).Overdue(now) })
	checks := clocks.Add("check_completed", func() time.Duration { return checkBound }, nil)
	return clocks, tick, checks
}

func TestAStuckCheckStallsTheCheckClockUntilItEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		// A check that ignores its deadline, as a prober with a bug would.
		check := func(_ context.Context, tg *Target) *result.Result {
			if tg.Target == "stuck" {
				<-release
			}
			return &result.Result{Success: true}
		}
		var s *Scheduler
		clocks, tick, checks := schedulerClocks(&s, 10*time.Second, 2*time.Second)
		s, _, stop := startScheduler(t, Options{Settings: Settings{MaxInFlight: 10}, Check: check, Tick: tick, Checks: checks},
			target("fine", 10*time.Second))
		defer stop()
		time.Sleep(time.Minute)
		synctest.Wait()
		mustBeHealthy(t, clocks, "checks completing")
		if checks.Last().IsZero() || tick.Last().IsZero() {
			t.Errorf("clocks never advanced: checks %v, tick %v", checks.Last(), tick.Last())
		}

		// Only the stuck target now: its check starts and never ends.
		if err := s.Update(t.Context(), []Target{target("stuck", 10*time.Second)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(15 * time.Second)
		synctest.Wait()
		mustBeStalled(t, clocks, "check_completed", "a check running 5s past its bound")
		if code, body := healthCheck(clocks); code == http.StatusServiceUnavailable && strings.Contains(body, "scheduler_tick") {
			t.Errorf("the loop keeps passing, yet %q", body)
		}
		close(release)
		synctest.Wait()
		mustBeHealthy(t, clocks, "the stuck check ended")
	})
}

func TestALoopThatDoesNotRunStallsTheTickClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s *Scheduler
		clocks, tick, checks := schedulerClocks(&s, time.Second, 2*time.Second)
		s = New(Options{Settings: Settings{MaxInFlight: 10}, Check: succeed, Tick: tick, Checks: checks})
		// Targets planned, and the loop not running.
		s.apply([]Target{target("a", 10*time.Second)}, time.Now())
		s.publishNext()
		mustBeHealthy(t, clocks, "before the first planned check")
		time.Sleep(15 * time.Second)
		mustBeStalled(t, clocks, "scheduler_tick", "a planned check 5s overdue")

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = s.Run(ctx)
		}()
		time.Sleep(time.Millisecond)
		synctest.Wait()
		mustBeHealthy(t, clocks, "the loop runs")
		if last := tick.Last(); time.Since(last) > time.Second {
			t.Errorf("the loop passed, and scheduler_tick last advanced %v", last)
		}
		time.Sleep(time.Minute)
		mustBeHealthy(t, clocks, "the loop kept running")
		cancel()
		<-done
	})
}

func TestTheSchedulerJudgesItselfAndRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Three targets whose checks take 8s every 10s, and one slot:
		// checks start late and some cannot start at all.
		slow := func(context.Context, *Target) *result.Result {
			time.Sleep(8 * time.Second)
			return &result.Result{Success: true}
		}
		bounds := Bounds{MaxLag: 5 * time.Second, MaxMissedRatio: 0.1, StaleAfter: 3, Window: time.Minute}
		var targets []Target
		for _, name := range []string{"a", "b", "c"} {
			tg := target(name, 10*time.Second)
			tg.Timeout = 9 * time.Second
			targets = append(targets, tg)
		}
		var logs strings.Builder
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		s, _, stop := startScheduler(t, Options{Settings: Settings{MaxInFlight: 1}, Check: slow, Bounds: bounds, Logger: logger}, targets...)
		defer stop()
		time.Sleep(3 * time.Minute)
		got := s.Degraded(time.Now())
		if !slices.Contains(got, api.ReasonSchedulerLag) || !slices.Contains(got, api.ReasonMissedChecks) {
			t.Fatalf("with one slot for three 8s checks every 10s: degraded %q, want scheduler_lag and missed_checks", got)
		}

		// Enough slots: once the window holds only on-time checks, the
		// scheduler is fit again by itself.
		s.SetSettings(Settings{MaxInFlight: 10})
		time.Sleep(30 * time.Second)
		if got := s.Degraded(time.Now()); len(got) == 0 {
			t.Errorf("half a window after the fix: fit already, want the late checks still in the window")
		}
		time.Sleep(time.Minute + 30*time.Second)
		if got := s.Degraded(time.Now()); len(got) != 0 {
			t.Errorf("a window after the fix: degraded %q, want none", got)
		}
		stop()
		if !strings.Contains(logs.String(), `level=WARN msg="Scheduler cannot vouch for its results; failures are reported unknown" reasons=scheduler_lag,missed_checks`) ||
			!strings.Contains(logs.String(), `level=INFO msg="Scheduler keeps its plan again; failures are reported failing"`) {
			t.Errorf("log %q lacks the change to degraded and back", logs.String())
		}
	})
}

func TestAStaleResultDegradesUntilTheTargetIsCheckedAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		check := func(_ context.Context, tg *Target) *result.Result {
			if tg.Target == "hung" {
				<-release
			}
			return &result.Result{Success: true}
		}
		hung := target("hung", 10*time.Second)
		// The hung target's next checks are missed busy: its own
		// doing, not held against the scheduler.
		bounds := Bounds{MaxMissedRatio: 0.1, StaleAfter: 3, Window: time.Minute}
		s, _, stop := startScheduler(t, Options{Settings: Settings{MaxInFlight: 10}, Check: check, Bounds: bounds}, hung, target("fine", 10*time.Second))
		defer stop()
		time.Sleep(25 * time.Second)
		if got := s.Degraded(time.Now()); len(got) != 0 {
			t.Errorf("hung for less than 3 intervals: degraded %q", got)
		}
		time.Sleep(20 * time.Second)
		if got := s.Degraded(time.Now()); !slices.Equal(got, []string{api.ReasonStaleResults}) {
			t.Errorf("no result of a target for over 3 intervals: degraded %q, want stale_results", got)
		}
		close(release)
		synctest.Wait()
		if got := s.Degraded(time.Now()); len(got) != 0 {
			t.Errorf("the target's check ended: degraded %q, want none", got)
		}
	})
}

func TestJudgeWindowSlides(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	j := newJudge(Bounds{MaxLag: time.Second, MaxMissedRatio: 0.25, Window: 10 * time.Second})
	for i := range 10 {
		j.planned(t0.Add(time.Duration(i)*time.Second), 1)
	}
	j.missed(t0.Add(2*time.Second), 2)
	j.started(t0.Add(3*time.Second), time.Second)
	if got, _ := j.degraded(t0.Add(9 * time.Second)); len(got) != 0 {
		t.Errorf("2 of 10 missed, lag 1s: degraded %q, want none (bounds 0.25 and 1s)", got)
	}
	j.started(t0.Add(4*time.Second), 1500*time.Millisecond)
	j.missed(t0.Add(9*time.Second), 1)
	if got, _ := j.degraded(t0.Add(9 * time.Second)); !slices.Equal(got, []string{api.ReasonSchedulerLag, api.ReasonMissedChecks}) {
		t.Errorf("3 of 10 missed, lag 1.5s: degraded %q, want scheduler_lag and missed_checks", got)
	}
	// 13.5s: the late start (4s) is still in the window, the first 2
	// missed (2s) and their planned checks are not: 1 of 6.
	if got, _ := j.degraded(t0.Add(13*time.Second + 500*time.Millisecond)); !slices.Equal(got, []string{api.ReasonSchedulerLag}) {
		t.Errorf("at 13.5s: degraded %q, want scheduler_lag only", got)
	}
	if got, _ := j.degraded(t0.Add(20 * time.Second)); len(got) != 0 {
		t.Errorf("a window later: degraded %q, want none", got)
	}
}

package accuracy

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/testbin"
)

var massOutageTargets = flag.Int("accuracy.massoutage.targets", 10000, "targets black-holed at once by BenchmarkMassOutage")

// massOutage is a scenario: every target, scheduled in all three
// locations, stops answering at once (a black hole: no connection
// accepted, no answer, so every check lasts its whole timeout).
type massOutage struct {
	targets            int
	timeout, interval  time.Duration
	retries            int
	retryInterval      time.Duration
	verifyTimeout      time.Duration
	reverifyInterval   time.Duration
	hold               time.Duration // kept watching once all are confirmed
	poll               time.Duration // how often the states are read
	targetsPerListener int
}

// massOutageFigures are what a run measured.
type massOutageFigures struct {
	// confirmAll: from the outage's start to every target confirmed down.
	confirmAll time.Duration
	// maxConfirmation: the longest time from an incident's start (its
	// first failed check) to its confirmation.
	maxConfirmation time.Duration
	// confirmedEver: targets confirmed down at some point.
	confirmedEver int
	// leftDown: targets that left down (to unknown or up) during the
	// outage after being confirmed.
	leftDown int
	// Peaks of the coordinator process during the outage, sampled:
	// goroutines, resident memory and its anonymous and file-backed
	// parts. hwm is its resident memory's high-water mark over the whole
	// run (VmHWM), which includes two scrapes of /metrics with every
	// target's series (before and after the outage).
	goroutines, rss, rssAnon, rssFile, hwm int64
	// Verification over the watched time.
	rounds, roundsPerSecond float64
	// checksUnknown: location answers that were unknown (timeouts, mostly);
	// overload: checks the coordinator had no capacity to send in time.
	checksUnknown, overload float64
	watched                 time.Duration
	// Reports received during the outage, failing and unknown (an
	// exporter reports a failure unknown when its canary fails or it
	// judges itself degraded).
	reportsFailing, reportsUnknown float64
	// polls of the states; degraded, by location, the polls at which
	// that exporter judged itself degraded, with the reasons it gave.
	polls    int
	degraded map[string]map[string]int
}

func (f massOutageFigures) String() string {
	all := "not all confirmed"
	if f.confirmAll > 0 {
		all = "all confirmed after " + f.confirmAll.Round(time.Second).String()
	}
	return fmt.Sprintf("%s, %d confirmed at some point (longest first failure to confirmation %s), %d left down; coordinator peak %d goroutines, %.0f MiB RSS (anonymous %.0f MiB, file %.0f MiB; high-water mark of the run %.0f MiB); "+
		"%.0f rounds (%.1f/s), %.0f unknown location answers, %.0f overload answers over %s",
		all, f.confirmedEver, f.maxConfirmation.Round(time.Second), f.leftDown, f.goroutines, float64(f.rss)/(1<<20), float64(f.rssAnon)/(1<<20), float64(f.rssFile)/(1<<20), float64(f.hwm)/(1<<20),
		f.rounds, f.roundsPerSecond, f.checksUnknown, f.overload, f.watched.Round(time.Second)) +
		fmt.Sprintf("; reports received: %.0f failing, %.0f unknown; exporters degraded at %s of %d polls", f.reportsFailing, f.reportsUnknown, f.degradedSummary(), f.polls)
}

// degradedSummary says at how many polls each exporter was degraded, and
// why: "ams 3 (scheduler_lag 3), fra 0, sfo 0".
func (f massOutageFigures) degradedSummary() string {
	var parts []string
	for _, loc := range locationNames {
		n, reasons := 0, []string{}
		for r, k := range f.degraded[loc] {
			if r == "" {
				n = k
				continue
			}
			reasons = append(reasons, fmt.Sprintf("%s %d", r, k))
		}
		slices.Sort(reasons)
		if len(reasons) > 0 {
			parts = append(parts, fmt.Sprintf("%s %d (%s)", loc, n, strings.Join(reasons, ", ")))
		} else {
			parts = append(parts, fmt.Sprintf("%s %d", loc, n))
		}
	}
	return strings.Join(parts, ", ")
}

// bound is the goal for confirming every target: 2 × verify_timeout +
// interval + timeout.
func (sc massOutage) bound() time.Duration {
	return 2*sc.verifyTimeout + sc.interval + sc.timeout
}

func (sc massOutage) run(tb testing.TB) massOutageFigures {
	tb.Helper()
	hole := newBlackHole(tb, sc.targets, sc.targetsPerListener)
	var targets strings.Builder
	for i := range sc.targets {
		fmt.Fprintf(&targets, "      - %s\n", hole.url(i))
	}
	s := newStack(tb, stackConfig{
		exporterYAML: fmt.Sprintf("modules:\n  http_2xx:\n    prober: http\n    timeout: %s\n    http: {source_ip_address: %%[1]s}\n"+
			"scheduler: {interval: %s, retries: %d, retry_interval: %s}\ntargets:\n  - module: http_2xx\n    targets:\n%s",
			sc.timeout, sc.interval, sc.retries, sc.retryInterval, targets.String()),
		confirmationYAML: fmt.Sprintf("{verify_timeout: %s, reverify_interval: %s}", sc.verifyTimeout, sc.reverifyInterval),
	})
	testbin.WaitFor(tb, "every target checked from every location", 3*sc.interval+30*time.Second, func() error {
		if short, ok := hole.checkedAtLeast(int64(len(locationNames))); !ok {
			return fmt.Errorf("%d targets checked fewer than %d times", short, len(locationNames))
		}
		return nil
	})
	before, err := s.coordinatorMetrics()
	if err != nil {
		tb.Fatal(err)
	}
	peaks := s.samplePeaks(500 * time.Millisecond)
	start := time.Now()
	hole.swallow()

	f := massOutageFigures{degraded: map[string]map[string]int{}}
	everDown, left := map[string]bool{}, map[string]bool{}
	deadline := start.Add(3*sc.bound() + sc.hold)
	notAll := ""
	for {
		down, err := s.targetsIn(confirm.StateDown)
		if err != nil {
			tb.Fatal(err)
		}
		for t := range everDown {
			if !down[t] {
				left[t] = true
			}
		}
		for t := range down {
			everDown[t] = true
		}
		f.polls++
		for loc, reasons := range s.degraded() {
			if f.degraded[loc] == nil {
				f.degraded[loc] = map[string]int{}
			}
			f.degraded[loc][""]++ // the polls at which it was degraded
			for _, r := range reasons {
				f.degraded[loc][r]++
			}
		}
		now := time.Now()
		if f.confirmAll == 0 && len(down) == sc.targets {
			f.confirmAll = now.Sub(start)
		}
		if f.confirmAll != 0 && now.Sub(start) >= f.confirmAll+sc.hold {
			break
		}
		if now.After(deadline) {
			notAll = fmt.Sprintf("%d of %d targets confirmed down %s after the outage began (%d confirmed at some point, %d left down)",
				len(down), sc.targets, now.Sub(start).Round(time.Second), len(everDown), len(left))
			break
		}
		time.Sleep(sc.poll)
	}
	f.watched = time.Since(start)
	peaks.end()
	if notAll != "" {
		tb.Errorf("%s; %s", notAll, s.describeNotDown(left))
	}
	f.goroutines, f.leftDown = peaks.goroutines.Load(), len(left)
	st, err := s.procStatus("VmHWM")
	if err != nil {
		tb.Fatal(err)
	}
	f.hwm, f.rssAnon, f.rssFile = st["VmHWM"], peaks.rssAnon.Load(), peaks.rssFile.Load()
	f.rss = peaks.rss.Load()
	after, err := s.coordinatorMetrics()
	if err != nil {
		tb.Fatal(err)
	}
	const roundsSeries = "vantage_coordinator_verification_round_duration_seconds_count"
	f.rounds = after.sum(roundsSeries) - before.sum(roundsSeries)
	f.roundsPerSecond = f.rounds / f.watched.Seconds()
	f.checksUnknown = after.sum("vantage_coordinator_location_checks_total", `result="unknown"`) - before.sum("vantage_coordinator_location_checks_total", `result="unknown"`)
	f.overload = after.sum("vantage_coordinator_verification_overload_total") - before.sum("vantage_coordinator_verification_overload_total")
	const reports = "vantage_coordinator_reports_received_total"
	f.reportsFailing = after.sum(reports, `state="failing"`) - before.sum(reports, `state="failing"`)
	f.reportsUnknown = after.sum(reports, `state="unknown"`) - before.sum(reports, `state="unknown"`)
	f.confirmedEver = len(everDown)
	if len(left) > 0 {
		tb.Logf("targets that left down: %s", s.describeNotDown(left))
	}
	incidents, err := s.openIncidents()
	if err != nil {
		tb.Fatal(err)
	}
	for _, inc := range incidents {
		if inc.Confirmed() {
			f.maxConfirmation = max(f.maxConfirmation, inc.ConfirmedAt.Sub(inc.StartedAt))
		}
	}
	return f
}

// TestMassOutage is a small mass outage (500 targets, 1s timeout): every
// target is confirmed down, none leaves down while the outage lasts, and
// the coordinator's goroutines stay bounded. BenchmarkMassOutage is the
// full-size one.
func TestMassOutage(t *testing.T) {
	sc := massOutage{
		targets: 500, timeout: time.Second, interval: 3 * time.Second, retries: 0, retryInterval: time.Second,
		verifyTimeout: 2 * time.Second, reverifyInterval: 2 * time.Second, hold: 6 * time.Second, poll: 500 * time.Millisecond,
		targetsPerListener: 250,
	}
	f := sc.run(t)
	t.Log(f)
	if f.leftDown != 0 {
		t.Errorf("%d targets left down while the outage lasted", f.leftDown)
	}
	if f.goroutines > 2000 {
		t.Errorf("the coordinator peaked at %d goroutines, want at most 2,000", f.goroutines)
	}
}

// BenchmarkMassOutage black-holes -accuracy.massoutage.targets targets
// (10,000 by default) at once across three locations, with a 5s module
// timeout and the default retries, interval and confirmation settings,
// and reports what it measured. It runs the scenario once, whatever b.N:
//
//	go test -run '^$' -bench '^BenchmarkMassOutage$' -benchtime 1x -timeout 30m ./test/accuracy/
func BenchmarkMassOutage(b *testing.B) {
	sc := massOutage{
		targets: *massOutageTargets, timeout: 5 * time.Second, interval: 30 * time.Second, retries: 2, retryInterval: 5 * time.Second,
		verifyTimeout: 10 * time.Second, reverifyInterval: 30 * time.Second, hold: 90 * time.Second, poll: 5 * time.Second,
		targetsPerListener: 500,
	}
	f := sc.run(b)
	b.Log(f)
	b.Logf("goal: all confirmed within %s; coordinator ≤ 2,000 goroutines, ≤ 256 MiB RSS", sc.bound())
	b.ReportMetric(f.confirmAll.Seconds(), "s-to-confirm-all")
	b.ReportMetric(f.maxConfirmation.Seconds(), "s-max-confirmation")
	b.ReportMetric(float64(f.leftDown), "left-down")
	b.ReportMetric(float64(f.goroutines), "peak-goroutines")
	b.ReportMetric(float64(f.rss)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(f.rssAnon)/(1<<20), "peak-anon-RSS-MiB")
	b.ReportMetric(f.roundsPerSecond, "rounds/s")
	b.ReportMetric(f.checksUnknown, "unknown-answers")
	b.ReportMetric(f.overload, "overload-answers")
}

package soak

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/coordinator/confirm"
)

// margin is how far above its baseline a figure may end and still count
// as returned to it. Baseline and final figures are each the lowest of
// several samples (see floor), so checks, scrapes and GC cycles in
// progress at one sample do not count.
//
//   - goroutines and descriptors: 4 (2% above 200): what is left to chance
//     after that, a health check or verification request between the
//     processes that happens to run at every sample. A leak of one per
//     reload (the long soak makes hundreds), per outage target and
//     location, or per check exceeds it.
//   - heap goal, twice the heap live after the last GC: 4 MiB (15% above
//     27 MiB), for what was being built when that GC ran (a reload's new
//     configuration beside the old, a scrape's buffers). Over the long
//     soak's million checks and hundreds of reloads, a leak of a few
//     bytes per check or 10 KiB per reload exceeds it.
//   - resident memory: 16 MiB (15% above 107 MiB). The Go runtime hands
//     freed pages back to the kernel gradually and keeps up to a tenth
//     above the heap goal; an allocation peak (an outage's verification
//     rounds, a reload) leaves some behind, and the coordinator's incident
//     log is a memory-mapped file that grows with every incident.
func margin(figure string, base float64) float64 {
	switch figure {
	case "goroutines", "fds":
		return max(4, math.Ceil(base*0.02))
	case "RSS":
		return max(16<<20, base*0.15)
	default: // heap goal
		return max(4<<20, base*0.15)
	}
}

// state is the floor of every process's figures at one time, and the
// connections between the processes.
type state struct {
	usage map[string]usage
	// conns[x][y]: established connections process x opened to process
	// y's listen address (indexes of stack.processes()).
	conns [][]int
}

// allowance is what a figure may exceed its margin by: the keep-alive
// connections the processes keep to each other once they have talked,
// which the baseline may not have had yet: the coordinator's HTTP client
// (prometheus/common's) keeps one to an exporter for every verification
// request that ran at once during an outage, for 5 minutes idle; an
// exporter's report client keeps one to the coordinator, for 90 seconds
// idle. Each holds a descriptor and two goroutines (read and write loop)
// at the client and a descriptor and a goroutine at the server. The long
// soak settles for longer than those idle timeouts and allows none.
type allowance struct{ goroutines, fds float64 }

// leak is a figure that did not come back to its baseline.
type leak struct {
	proc, figure      string
	base, final, slop float64
}

func (l leak) String() string {
	f := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	if l.figure == "RSS" || l.figure == "heap goal" {
		f = mib
	}
	return fmt.Sprintf("%s %s: baseline %s, final %s (allowed up to %s more)", l.proc, l.figure, f(l.base), f(l.final), f(l.slop))
}

func leaks(name string, base, final usage, allow allowance) []leak {
	var out []leak
	for _, c := range []struct {
		figure      string
		base, final float64
		allow       float64
	}{
		{"goroutines", base.Goroutines, final.Goroutines, allow.goroutines},
		{"fds", base.FDs, final.FDs, allow.fds},
		{"RSS", base.RSS, final.RSS, 0},
		{"heap goal", base.HeapGoal, final.HeapGoal, 0},
	} {
		if m := margin(c.figure, c.base) + c.allow; c.final > c.base+m {
			out = append(out, leak{name, c.figure, c.base, c.final, m})
		}
	}
	return out
}

// connLimit bounds the extra keep-alive connections client may hold to
// another process: the requests it may have had in flight at once to it,
// twice over, since a connection goes back to the pool only just after
// its response was read and a request that follows at once may dial a
// new one. The coordinator verifies outage targets in parallel, one
// request per target and location; an exporter sends one report batch at
// a time. A connection leaked per request exceeds this at once: every
// open incident is verified again every second.
func connLimit(s *stack, client *process) int {
	if client == s.coordinator {
		return 2*s.sizes[kindOutage] + 1
	}
	return 2
}

// compare lists what did not come back from base to final. Without
// strict, the extra keep-alive connections between the processes are
// allowed for (see allowance), up to connLimit.
func compare(s *stack, base, final state, strict bool) []leak {
	procs := s.processes()
	var found []leak
	allow := make([]allowance, len(procs))
	for x, px := range procs {
		for y, py := range procs {
			if x == y {
				continue
			}
			extra := max(0, final.conns[x][y]-base.conns[x][y])
			limit := connLimit(s, px)
			if extra > limit {
				found = append(found, leak{px.Name, "connections to " + py.Name, float64(base.conns[x][y]), float64(final.conns[x][y]), float64(limit)})
			}
			if strict {
				continue
			}
			allow[x].goroutines += 2 * float64(extra)
			allow[x].fds += float64(extra)
			allow[y].goroutines += float64(extra)
			allow[y].fds += float64(extra)
		}
	}
	for i, p := range procs {
		found = append(found, leaks(p.Name, base.usage[p.Name], final.usage[p.Name], allow[i])...)
	}
	return found
}

// measure takes the floor of every process's figures at once, then
// counts the connections between them.
func measure(ctx context.Context, s *stack, n int, gap time.Duration) (state, error) {
	procs := s.processes()
	st := state{usage: make(map[string]usage, len(procs)), conns: make([][]int, len(procs))}
	errs := make([]error, 2*len(procs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() {
			u, err := floor(ctx, p.base, n, gap)
			mu.Lock()
			defer mu.Unlock()
			st.usage[p.Name], errs[i] = u, err
		})
	}
	wg.Wait()
	var addrs []string
	for _, p := range procs {
		addrs = append(addrs, strings.TrimPrefix(p.base, "http://"))
	}
	for i, p := range procs {
		st.conns[i], errs[len(procs)+i] = connsTo(p.Pid(), addrs)
	}
	return st, errors.Join(errs...)
}

// settle waits settleMin, then measures every second until every figure
// of every process is back within its margin, or settleMax has passed.
func settle(ctx context.Context, s *stack, base state, p plan) (state, []leak, error) {
	start := time.Now()
	if err := waitCtx(ctx, p.settleMin); err != nil {
		return state{}, nil, err
	}
	for {
		final, err := measure(ctx, s, 5, 200*time.Millisecond)
		if err != nil {
			return state{}, nil, err
		}
		found := compare(s, base, final, p.long)
		if len(found) == 0 || time.Since(start) > p.settleMax {
			return final, found, nil
		}
		if err := waitCtx(ctx, time.Second); err != nil {
			return state{}, nil, err
		}
	}
}

func describeUsage(s *stack, st state) string {
	var parts []string
	for _, p := range s.processes() {
		x := st.usage[p.Name]
		parts = append(parts, fmt.Sprintf("%s %.0f goroutines, %.0f fds, RSS %s, heap goal %s", p.Name, x.Goroutines, x.FDs, mib(x.RSS), mib(x.HeapGoal)))
	}
	return strings.Join(parts, "; ") + "; connections between them " + describeConns(s, st)
}

func compareUsage(s *stack, base, final state) string {
	var parts []string
	for _, p := range s.processes() {
		b, f := base.usage[p.Name], final.usage[p.Name]
		parts = append(parts, fmt.Sprintf("%s goroutines %.0f→%.0f, fds %.0f→%.0f, RSS %.1f→%.1f MiB, heap goal %.1f→%.1f MiB",
			p.Name, b.Goroutines, f.Goroutines, b.FDs, f.FDs, b.RSS/(1<<20), f.RSS/(1<<20), b.HeapGoal/(1<<20), f.HeapGoal/(1<<20)))
	}
	return strings.Join(parts, "; ")
}

// describeConns lists the connections between the processes, client to
// server, e.g. coordinator→exporter-ams 3.
func describeConns(s *stack, st state) string {
	var parts []string
	procs := s.processes()
	for x := range procs {
		for y := range procs {
			if x != y && (procs[x] == s.coordinator || procs[y] == s.coordinator) {
				parts = append(parts, fmt.Sprintf("%s→%s %d", procs[x].Name, procs[y].Name, st.conns[x][y]))
			}
		}
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// checksTotal sums vantage_scheduler_checks_total (attempts, retries
// included) over the exporters.
func checksTotal(ctx context.Context, s *stack) (float64, error) {
	total := 0.0
	for _, p := range s.exporters {
		m, err := scrape(ctx, p.base, true)
		if err != nil {
			return 0, err
		}
		total += m.get("vantage_scheduler_checks_total")
	}
	return total, nil
}

// peakRSS reads each process's peak resident memory (VmHWM) while it runs.
func peakRSS(s *stack) string {
	var parts []string
	for _, p := range s.processes() {
		if _, hwm, err := procStatus(p.Pid()); err == nil {
			parts = append(parts, fmt.Sprintf("%s %s", p.Name, mib(float64(hwm))))
		}
	}
	return strings.Join(parts, ", ")
}

// findings holds the end-of-run assertions.
type findings struct {
	t      *testing.T
	s      *stack
	p      plan
	dumped map[string]bool
}

// scheduler: no missed check, the last reload successful, configuration
// A scheduled.
func (f *findings) scheduler(ctx context.Context) {
	want := float64(variantA.targets(f.s.sizes))
	for _, p := range f.s.exporters {
		m, err := scrape(ctx, p.base, true)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, reason := range []string{"busy", "late"} {
			if v, ok := m.sum("vantage_scheduler_missed_checks_total", "reason", reason); !ok || v != 0 {
				f.t.Errorf("%s: vantage_scheduler_missed_checks_total{reason=%q} = %g (present: %t), want 0", p.Name, reason, v, ok)
			}
		}
		if v := m.get("vantage_exporter_config_last_reload_successful"); v != 1 {
			f.t.Errorf("%s: vantage_exporter_config_last_reload_successful = %g, want 1", p.Name, v)
		}
		if v := m.get("vantage_scheduler_targets"); v != want {
			f.t.Errorf("%s: vantage_scheduler_targets = %g, want %g (configuration A)", p.Name, v, want)
		}
	}
}

// steadyChecks: the target server saw each steady target (interval 1s,
// in both configurations) checked once a second from each location, from
// the first check to the last, whatever the reloads did around it: no
// two checks less than 100ms or more than 1.9s apart, and, from the
// baseline to the end, as many checks as seconds passed, give or take one
// at either end. Planned slots are fixed points a second apart; a check
// starts late by its scheduling lag (milliseconds; a check late by a
// second is missed), so two checks are a second apart give or take the
// difference of two lags. A missed check makes a gap of two seconds, a
// doubled one a gap near zero.
func (f *findings) steadyChecks(base, final map[string][][]int64, window time.Duration) {
	const minGap, maxGap = 100 * time.Millisecond, 1900 * time.Millisecond
	lo, hi := math.Floor(window.Seconds())-1, math.Ceil(window.Seconds())+1
	for l, loc := range locations {
		var bad []string
		fewest, most := int64(math.MaxInt64), int64(0)
		shortest, longest := time.Duration(math.MaxInt64), time.Duration(0)
		for n := range f.s.sizes[kindSteady] {
			url := f.s.ts.url(kindSteady, n)
			got := final[kindSteady][l][n] - base[kindSteady][l][n]
			fewest, most = min(fewest, got), max(most, got)
			if float64(got) < lo || float64(got) > hi {
				bad = append(bad, fmt.Sprintf("%s checked %d times", url, got))
			}
			short, long := f.s.ts.gaps(kindSteady, l, n)
			shortest, longest = min(shortest, short), max(longest, long)
			if short < minGap || long > maxGap {
				bad = append(bad, fmt.Sprintf("%s: checks %s to %s apart", url, short.Round(time.Millisecond), long.Round(time.Millisecond)))
			}
		}
		if len(bad) > 0 {
			f.t.Errorf("%s: %d problems with the steady targets, each to be checked once a second (%.0f–%.0f times in %s): %s",
				loc, len(bad), lo, hi, window.Round(time.Millisecond), strings.Join(bad[:min(len(bad), 5)], "; "))
		}
		f.t.Logf("%s: each steady target checked %d–%d times in %s, checks %s to %s apart",
			loc, fewest, most, window.Round(time.Millisecond), shortest.Round(time.Millisecond), longest.Round(time.Millisecond))
	}
}

// removedAndReadded: once configuration A is back for good, B's rotating
// targets are no longer checked, and A's rotating and flip targets are
// checked every second again.
func (f *findings) removedAndReadded(settle, final map[string][][]int64, window time.Duration) {
	for l, loc := range locations {
		for n := range f.s.sizes[kindRotateB] {
			if got := final[kindRotateB][l][n] - settle[kindRotateB][l][n]; got != 0 {
				f.t.Errorf("%s: %s, removed from the configuration, was checked %d times in the %s after", loc, f.s.ts.url(kindRotateB, n), got, window.Round(time.Millisecond))
			}
		}
		for _, kind := range []string{kindRotateA, kindFlip} {
			for n := range f.s.sizes[kind] {
				if got := final[kind][l][n] - settle[kind][l][n]; float64(got) < math.Floor(window.Seconds())-1 {
					f.t.Errorf("%s: %s, back at a 1s interval, was checked %d times in %s", loc, f.s.ts.url(kind, n), got, window.Round(time.Millisecond))
				}
			}
		}
	}
}

// table: a full scrape of each exporter holds exactly configuration A's
// targets, each steady target's success count is what the target server
// served it (a check in flight aside), and only outage targets failed.
func (f *findings) table(ctx context.Context) {
	for l, p := range f.s.exporters {
		before := f.s.ts.snapshot()
		m, err := scrape(ctx, p.base, false)
		if err != nil {
			f.t.Fatal(err)
		}
		after := f.s.ts.snapshot()
		type path struct {
			kind string
			n    int
		}
		paths := map[string]path{}
		for kind := range f.s.sizes {
			for n := range f.s.sizes[kind] {
				paths[f.s.ts.url(kind, n)] = path{kind, n}
			}
		}
		rows := map[string]bool{}
		var bad []string
		m.each("vantage_probe_checks_total", func(ls map[string]string, v float64) {
			target := ls["target"]
			rows[target] = true
			pt, ok := paths[target]
			if !ok {
				bad = append(bad, "unknown target "+target)
				return
			}
			kind, n := pt.kind, pt.n
			switch {
			case kind == kindRotateB:
				bad = append(bad, "removed target still in the table: "+target)
			case ls["result"] == "failure" && kind != kindOutage && v != 0:
				bad = append(bad, fmt.Sprintf("%s failed %g times", target, v))
			case ls["result"] == "failure" && kind == kindOutage && v < float64(f.p.outages):
				bad = append(bad, fmt.Sprintf("%s failed %g times in %d outage(s)", target, v, f.p.outages))
			case ls["result"] == "success" && kind == kindSteady &&
				(v < float64(before[kind][l][n]-1) || v > float64(after[kind][l][n])):
				bad = append(bad, fmt.Sprintf("%s: %g successes recorded, the target server served %d–%d", target, v, before[kind][l][n], after[kind][l][n]))
			}
		})
		if want := variantA.targets(f.s.sizes); len(rows) != want {
			f.t.Errorf("%s: vantage_probe_checks_total covers %d targets, want configuration A's %d", p.Name, len(rows), want)
		}
		if len(bad) > 0 {
			f.t.Errorf("%s: %d problems in the scheduled results, e.g. %s", p.Name, len(bad), strings.Join(bad[:min(len(bad), 5)], "; "))
		}
	}
}

// incidents: each outage target has one incident per outage, confirmed
// and resolved as recovered; no other target has any. It returns how many
// incidents there are, and how many were confirmed and recovered.
func (f *findings) incidents(ctx context.Context) (total, recovered int) {
	all, err := f.s.incidents(ctx, true)
	if err != nil {
		f.t.Fatal(err)
	}
	byTarget := map[string][]confirm.Incident{}
	for _, inc := range all {
		byTarget[inc.Target] = append(byTarget[inc.Target], inc)
		if !inc.Open() && inc.Confirmed() && inc.Resolution == confirm.ResolutionRecovered {
			recovered++
		}
	}
	outage := f.s.outageTargets()
	var unexpected, wrong []string
	for target, incs := range byTarget {
		if !outage[target] {
			unexpected = append(unexpected, fmt.Sprintf("%d for %s, the first: %s", len(incs), target, describeIncident(incs[0])))
		}
	}
	for target := range outage {
		incs := byTarget[target]
		if len(incs) != f.p.outages {
			wrong = append(wrong, fmt.Sprintf("%s has %d incidents, want one per outage (%d)", target, len(incs), f.p.outages))
		}
		for _, inc := range incs {
			if inc.Open() || !inc.Confirmed() || inc.Resolution != confirm.ResolutionRecovered {
				wrong = append(wrong, fmt.Sprintf("%s: incident %d open %t, confirmed %t, resolution %q", target, inc.ID, inc.Open(), inc.Confirmed(), inc.Resolution))
			}
		}
	}
	if len(unexpected) > 0 {
		f.t.Errorf("incidents for %d targets that never failed; e.g.\n%s", len(unexpected), strings.Join(unexpected[:min(len(unexpected), 5)], "\n"))
		f.s.mu.Lock()
		f.t.Logf("the exporters' reloads (configuration, begun–applied): %s", strings.Join(f.s.history, ", "))
		f.s.mu.Unlock()
	}
	if len(wrong) > 0 {
		f.t.Errorf("%d problems with the outage targets' incidents (each to be confirmed and resolved as %s, one per outage); e.g.\n%s",
			len(wrong), confirm.ResolutionRecovered, strings.Join(wrong[:min(len(wrong), 10)], "\n"))
	}
	m, err := scrape(ctx, f.s.coordinator.base, false)
	if err != nil {
		f.t.Fatal(err)
	}
	want := float64(len(outage) * f.p.outages)
	for name, v := range map[string]float64{
		`vantage_incidents_total{resolution="recovered"}`:             want - m.get("vantage_incidents_total", "resolution", "recovered"),
		`vantage_incidents_total{resolution="false_alarm"}`:           m.get("vantage_incidents_total", "resolution", "false_alarm"),
		"vantage_target_confirmed_down":                               m.get("vantage_target_confirmed_down"),
		"vantage_coordinator_report_batches_rejected_total":           m.get("vantage_coordinator_report_batches_rejected_total"),
		"vantage_coordinator_incident_log_write_errors_total":         m.get("vantage_coordinator_incident_log_write_errors_total"),
		"vantage_coordinator_http_handler_panics_total":               m.get("vantage_coordinator_http_handler_panics_total"),
		"vantage_coordinator_verification_rounds_in_flight":           m.get("vantage_coordinator_verification_rounds_in_flight"),
		`vantage_coordinator_location_checks_total{result="unknown"}`: m.get("vantage_coordinator_location_checks_total", "result", "unknown"),
	} {
		if v != 0 {
			f.t.Errorf("coordinator: %s is off by %g (want %g recovered incidents, 0 for the others)", name, v, want)
		}
	}
	return len(all), recovered
}

// describeIncident says what an incident's evidence was.
func describeIncident(inc confirm.Incident) string {
	var ev []string
	for _, e := range inc.Evidence {
		ev = append(ev, fmt.Sprintf("%s %s %s %s %q at %s after %.3fs", e.Location, e.Source, e.Result, e.Reason, e.Error, e.Time.Format("15:04:05.000"), e.DurationSeconds))
	}
	return fmt.Sprintf("incident %d, %s, resolution %q, started %s; evidence: %s", inc.ID, inc.State, inc.Resolution, inc.StartedAt.Format("15:04:05.000"), strings.Join(ev, "; "))
}

// reports: each exporter sent one failing and one recovered report per
// outage target and outage; the coordinator received each once.
func (f *findings) reports(ctx context.Context) string {
	cm, err := scrape(ctx, f.s.coordinator.base, false)
	if err != nil {
		f.t.Fatal(err)
	}
	want := float64(f.s.sizes[kindOutage] * f.p.outages)
	var parts []string
	for l, p := range f.s.exporters {
		loc := locations[l]
		m, err := scrape(ctx, p.base, true)
		if err != nil {
			f.t.Fatal(err)
		}
		received := cm.get("vantage_coordinator_reports_received_total", "location", loc)
		for state, w := range map[string]float64{"failing": want, "recovered": want, "unknown": 0} {
			if got := cm.get("vantage_coordinator_reports_received_total", "location", loc, "state", state); got != w {
				f.t.Errorf("coordinator: vantage_coordinator_reports_received_total{location=%q,state=%q} = %g, want %g", loc, state, got, w)
			}
		}
		delivered, ok := m.sum("vantage_exporter_reports_delivered_total")
		if !ok || delivered != received {
			f.t.Errorf("%s: vantage_exporter_reports_delivered_total = %g (present: %t), the coordinator received %g", p.Name, delivered, ok, received)
		}
		for _, reason := range []string{"overflow", "rejected"} {
			if v, ok := m.sum("vantage_exporter_reports_dropped_total", "reason", reason); !ok || v != 0 {
				f.t.Errorf("%s: vantage_exporter_reports_dropped_total{reason=%q} = %g (present: %t), want 0", p.Name, reason, v, ok)
			}
		}
		if v := m.get("vantage_exporter_report_queue_length"); v != 0 {
			f.t.Errorf("%s: vantage_exporter_report_queue_length = %g, want 0", p.Name, v)
		}
		parts = append(parts, fmt.Sprintf("%s %g delivered, %g received, %g duplicates, %g failed deliveries retried",
			loc, delivered, received, cm.get("vantage_coordinator_reports_duplicate_total", "location", loc), m.get("vantage_exporter_report_delivery_failures_total")))
	}
	return strings.Join(parts, "; ")
}

// dumpLeakers collects the goroutines of every process that did not
// return to its baseline, as evidence (this ends those processes).
func (f *findings) dumpLeakers(found []leak) {
	f.dumped = map[string]bool{}
	dir := f.t.ArtifactDir()
	for _, l := range found {
		if f.dumped[l.proc] {
			continue
		}
		for _, p := range f.s.processes() {
			if p.Name == l.proc {
				f.dumped[p.Name] = true
				path, summary := p.goroutineDump(dir)
				f.t.Logf("%s: goroutine dump in %s (kept with go test -artifacts); %s", p.Name, path, summary)
			}
		}
	}
}

// stop ends the exporters, then the coordinator, with SIGTERM: each must
// exit cleanly and promptly, and must have logged no error.
func (f *findings) stop() string {
	var parts []string
	procs := append(append([]*process{}, f.s.exporters...), f.s.coordinator)
	for _, p := range procs {
		if f.dumped[p.Name] {
			continue
		}
		start := time.Now()
		err := p.Stop(15 * time.Second)
		took := time.Since(start)
		if err != nil {
			f.t.Errorf("%s: %v; its log ends:\n%s", p.Name, err, p.Out.Tail(logLines))
		}
		parts = append(parts, fmt.Sprintf("%s %s", p.Name, took.Round(time.Millisecond)))
	}
	for _, p := range procs {
		levels, errs := p.logLevels()
		if len(errs) > 0 {
			f.t.Errorf("%s logged %d errors, e.g.:\n%s", p.Name, levels["ERROR"], strings.Join(errs, "\n"))
		}
		if levels["WARN"] > 0 {
			f.t.Logf("%s logged %d warnings", p.Name, levels["WARN"])
		}
	}
	return strings.Join(parts, ", ")
}

package exporter

import (
	"testing"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/exporter/scheduler"
	"github.com/vantageprobe/vantage/prober/result"
)

// recordWithCanary records o and, when it waits for the canary, gives it
// the verdict of a canary check that began right after it.
func recordWithCanary(tr *transitions, o scheduler.Outcome, canaryOK bool) {
	if b := tr.record(o, o.Planned); b != nil {
		tr.resolve(b, canaryVerdict{ok: canaryOK, began: o.Planned})
	}
}

func TestTransitions(t *testing.T) {
	var sent []api.Report
	tr := newTransitions(func(r api.Report) { sent = append(sent, r) })
	target := &scheduler.Target{Module: "http_2xx", Target: "https://a.example"}
	at := func(s int) time.Time { return time.Unix(int64(1000+s), 0) }
	step := func(s int, success, canaryOK bool) {
		res := &result.Result{Success: success}
		if !success {
			res.Reason = result.ReasonConnectTimeout
		}
		recordWithCanary(tr, scheduler.Outcome{Target: target, Result: res, Attempts: 1, Planned: at(s)}, canaryOK)
	}
	type want struct {
		state string
		first int
	}
	for _, tc := range []struct {
		step            int
		success, canary bool
		report          *want
	}{
		{0, true, true, nil},                             // up, nothing to say
		{10, false, true, &want{api.StateFailing, 10}},   // starts failing
		{20, false, true, nil},                           // still failing
		{30, true, true, &want{api.StateRecovered, 10}},  // recovered, streak from 10
		{40, false, false, &want{api.StateUnknown, 40}},  // fails while the canary fails
		{50, false, false, nil},                          // still blind
		{60, false, true, &want{api.StateFailing, 40}},   // canary back, target still failing
		{70, false, false, nil},                          // failing stays failing
		{80, true, false, &want{api.StateRecovered, 40}}, // recovered
	} {
		n := len(sent)
		step(tc.step, tc.success, tc.canary)
		switch {
		case tc.report == nil && len(sent) != n:
			t.Fatalf("step %d: reported %+v, want nothing", tc.step, sent[n])
		case tc.report != nil && len(sent) != n+1:
			t.Fatalf("step %d: %d reports, want one", tc.step, len(sent)-n)
		case tc.report != nil:
			r := sent[n]
			if r.State != tc.report.state || !r.FirstFailure.Equal(at(tc.report.first)) || !r.Time.Equal(at(tc.step)) || r.Target != target.Target {
				t.Errorf("step %d: report %s first %s at %s, want %s first %s", tc.step, r.State, r.FirstFailure, r.Time, tc.report.state, at(tc.report.first))
			}
			if wantReason := map[bool]string{true: api.ReasonCanaryFailing}[r.State == api.StateUnknown]; r.Reason != wantReason {
				t.Errorf("step %d: reason %q, want %q", tc.step, r.Reason, wantReason)
			}
		}
	}

	// A target that is no longer scheduled is forgotten: when it returns,
	// its first failure opens a new streak.
	step(90, false, true)
	tr.retain(nil)
	n := len(sent)
	step(100, false, true)
	if len(sent) != n+1 || sent[n].State != api.StateFailing || !sent[n].FirstFailure.Equal(at(100)) {
		t.Errorf("after retain: %+v", sent[n:])
	}
}

func TestCanaryState(t *testing.T) {
	c := newCanaryState()
	if !c.ok() || c.known() != nil {
		t.Error("without a canary the location vouches for itself")
	}
	c.configure(true)
	if c.ok() || c.known() != nil {
		t.Error("a canary not checked yet must leave the location unknown")
	}
	c.set(false)
	if c.ok() || c.known() == nil || *c.known() {
		t.Error("a failing canary must make the location unknown")
	}
	c.configure(true) // a reload keeps the verdict
	if c.ok() {
		t.Error("a reload forgot the failing canary")
	}
	c.set(true)
	if !c.ok() || !*c.known() {
		t.Error("a succeeding canary vouches for the location")
	}
	c.configure(false)
	if !c.ok() || c.known() != nil {
		t.Error("removing the canary must forget it")
	}
}

func TestCheckSuccessEndsTheStreak(t *testing.T) {
	var sent []api.Report
	tr := newTransitions(func(r api.Report) { sent = append(sent, r) })
	target := &scheduler.Target{Module: "http_2xx", Target: "https://a.example"}
	fail := &result.Result{Reason: result.ReasonStatusCode}
	recordWithCanary(tr, scheduler.Outcome{Target: target, Result: fail, Attempts: 1, Planned: time.Unix(1000, 0)}, true)

	tr.checked("http_2xx", "https://a.example", &result.Result{Reason: result.ReasonStatusCode})
	tr.checked("http_2xx", "https://other.example", &result.Result{Success: true})
	if len(sent) != 1 {
		t.Fatalf("%d reports after a failed check and another target's success, want only the first failure", len(sent))
	}
	tr.checked("http_2xx", "https://a.example", &result.Result{Success: true, Start: time.Unix(1005, 0)})
	if len(sent) != 2 || sent[1].State != api.StateRecovered || !sent[1].Time.Equal(time.Unix(1005, 0)) {
		t.Fatalf("reports = %+v, want a recovery at 1005 after the checked success", sent)
	}
	// The next scheduled failure starts a new streak and is reported.
	recordWithCanary(tr, scheduler.Outcome{Target: target, Result: fail, Attempts: 1, Planned: time.Unix(1010, 0)}, true)
	if len(sent) != 3 || sent[2].State != api.StateFailing || !sent[2].FirstFailure.Equal(time.Unix(1010, 0)) {
		t.Errorf("reports = %+v, want a new failing streak from 1010", sent)
	}
}

func TestADegradedExporterReportsFailuresUnknownWithItsReason(t *testing.T) {
	var sent []api.Report
	tr := newTransitions(func(r api.Report) { sent = append(sent, r) })
	degraded := ""
	tr.degraded = func() string { return degraded }
	target := &scheduler.Target{Module: "http_2xx", Target: "https://a.example"}
	at := func(s int) time.Time { return time.Unix(int64(1000+s), 0) }
	for _, tc := range []struct {
		step            int
		success, canary bool
		degraded        string
		state, reason   string // "" state: no report
		first           int
	}{
		{10, false, true, api.ReasonSchedulerLag, api.StateUnknown, api.ReasonSchedulerLag, 10},
		{20, false, true, api.ReasonSchedulerLag, "", "", 0},                                    // no change
		{30, false, true, api.ReasonMissedChecks, api.StateUnknown, api.ReasonMissedChecks, 10}, // why changed
		{40, false, false, api.ReasonMissedChecks, api.StateUnknown, api.ReasonCanaryFailing, 10},
		{50, false, true, "", api.StateFailing, "", 10},      // fit again, still failing
		{60, false, true, api.ReasonStaleResults, "", "", 0}, // failing stays failing
		{70, true, true, api.ReasonStaleResults, api.StateRecovered, "", 10},
		{80, false, true, api.ReasonStaleResults, api.StateUnknown, api.ReasonStaleResults, 80},
	} {
		degraded = tc.degraded
		res := &result.Result{Success: tc.success}
		n := len(sent)
		recordWithCanary(tr, scheduler.Outcome{Target: target, Result: res, Attempts: 1, Planned: at(tc.step)}, tc.canary)
		switch {
		case tc.state == "" && len(sent) != n:
			t.Fatalf("step %d: reported %+v, want nothing", tc.step, sent[n])
		case tc.state != "" && len(sent) != n+1:
			t.Fatalf("step %d: %d reports, want one", tc.step, len(sent)-n)
		case tc.state != "":
			if r := sent[n]; r.State != tc.state || r.Reason != tc.reason || !r.FirstFailure.Equal(at(tc.first)) {
				t.Errorf("step %d: report %s (%q) first %v, want %s (%q) first %v", tc.step, r.State, r.Reason, r.FirstFailure, tc.state, tc.reason, at(tc.first))
			}
		}
	}
	// A failure waiting for its canary verdict is unknown in a snapshot,
	// and says so.
	other := scheduler.Target{Module: "http_2xx", Target: "https://b.example"}
	tr.record(scheduler.Outcome{Target: &other, Result: &result.Result{}, Attempts: 1, Planned: at(90)}, at(90))
	snap := tr.snapshot([]scheduler.Target{*target, other}, false, func() uint64 { return 0 }, at(95))
	if len(snap.NotUp) != 2 || snap.NotUp[0].Reason != api.ReasonStaleResults || snap.NotUp[1].Reason != api.ReasonVerdictPending || snap.NotUp[1].State != api.StateUnknown {
		t.Errorf("snapshot not up: %+v, want a stale_results and a verdict_pending unknown", snap.NotUp)
	}
}

// Reports and snapshots carry the target's configured labels, so the
// coordinator's series of the target carry them too.
func TestTransitionsCarryTargetLabels(t *testing.T) {
	var sent []api.Report
	tr := newTransitions(func(r api.Report) { sent = append(sent, r) })
	target := scheduler.Target{Module: "http_2xx", Target: "https://a.example", Labels: []scheduler.Label{{Name: "team", Value: "web"}}}
	failed := &result.Result{Reason: result.ReasonConnectTimeout}
	recordWithCanary(tr, scheduler.Outcome{Target: &target, Result: failed, Attempts: 1, Planned: time.Unix(1000, 0)}, true)
	snap := tr.snapshot([]scheduler.Target{target}, false, func() uint64 { return 1 }, time.Unix(1001, 0))
	recordWithCanary(tr, scheduler.Outcome{Target: &target, Result: &result.Result{Success: true}, Attempts: 1, Planned: time.Unix(1010, 0)}, true)
	if len(sent) != 2 {
		t.Fatalf("%d reports, want failing and recovered", len(sent))
	}
	for _, r := range append(sent, snap.NotUp...) {
		if r.Labels["team"] != "web" || len(r.Labels) != 1 {
			t.Errorf("%s report of %s: labels %v, want team=web", r.State, r.Target, r.Labels)
		}
	}
	if len(snap.NotUp) != 1 {
		t.Errorf("snapshot lists %d targets not up, want 1", len(snap.NotUp))
	}
}

func TestKeysAmong(t *testing.T) {
	targets := []scheduler.Target{
		{Module: "http_2xx", Target: "https://a.example"},
		{Module: "tcp", Target: "a.example:22"},
		{Module: "icmp", Target: "odd\x00name"},
		{Module: "http_2xx", Target: "https://canary.example", Canary: true},
	}
	held := []string{
		scheduler.Key("http_2xx", "https://a.example"),
		scheduler.Key("tcp", "https://a.example"), // same target, other module: not scheduled
		scheduler.Key("icmp", "odd\x00name"),
		targets[3].Key(),
		scheduler.Key("http_2xx", "https://gone.example"),
	}
	got := keysAmong(targets, held)
	want := map[string]bool{held[0]: true, held[2]: true, held[3]: true}
	if len(got) != len(want) {
		t.Fatalf("keysAmong = %v, want %v", got, want)
	}
	for k := range want {
		if !got[k] {
			t.Errorf("held key %q of a scheduled target not kept", k)
		}
	}
}

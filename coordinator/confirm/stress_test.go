package confirm

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/prober/result"
)

// fleet drives a machine with many targets: each location's snapshot lists
// them all as up, and rounds are answered by the given outcome function.
type fleet struct {
	t    *testing.T
	m    *Machine
	keys []Key
	// answer says what a location's check of a target finds at a time.
	answer func(location string, k Key, at time.Time) Outcome
	log    incidents
	eff    Effects
}

func newFleet(t *testing.T, n int, locations ...string) *fleet {
	f := &fleet{t: t, m: NewMachine(testConfig(locations...), 0), log: incidents{}}
	var up []api.TargetKey
	for i := range n {
		k := Key{Target: fmt.Sprintf("https://site-%03d.example", i), Module: "http_2xx"}
		f.keys = append(f.keys, k)
		up = append(up, api.TargetKey{Target: k.Target, Module: k.Module})
	}
	for _, l := range locations {
		f.m.Batch(l, nil, &api.Snapshot{Time: t0, Up: n, UpTargets: up}, t0)
	}
	f.m.Due(t0)
	return f
}

func (f *fleet) apply(eff Effects, now time.Time) {
	f.log.add(eff)
	f.eff.Merge(eff)
	for _, r := range eff.Rounds {
		var answers []Evidence
		for _, l := range r.Locations {
			answers = append(answers, answer(l, f.answer(l, r.Key, now), now))
		}
		f.apply(f.m.RoundDone(r.Key, r.ID, answers, now), now)
	}
}

func (f *fleet) report(location string, k Key, state string, at time.Time) {
	r := &api.Report{Target: k.Target, Module: k.Module, State: state, Time: at, FirstFailure: at, Attempts: 1,
		Result: &result.Result{Prober: "http", Success: state == api.StateRecovered, Start: at}}
	if state == api.StateFailing {
		r.Result.Reason = result.ReasonTimeout
	}
	f.apply(f.m.Report(location, r, at), at)
}

func (f *fleet) due(at time.Time) { f.apply(f.m.Due(at), at) }

func (f *fleet) state(k Key) TargetView {
	for _, v := range f.m.Targets() {
		if v.Target == k.Target && v.Module == k.Module {
			return v
		}
	}
	f.t.Fatalf("target %v unknown", k)
	return TargetView{}
}

func (f *fleet) resolutions() map[string]int {
	out := map[string]int{}
	for _, inc := range f.log {
		out[inc.Resolution]++
	}
	return out
}

func suspect(m *Machine, location string, now time.Time) bool {
	for _, v := range m.Suspects(now) {
		if v.Location == location {
			return v.Suspect
		}
	}
	return false
}

// A location whose checks fail for local reasons (the others see the
// targets up) becomes suspect; the false alarms it caused become its own,
// and a target that really fails in one other location is never
// confirmed by its failure, even before it was suspect.
func TestDegradedLocationIsSuspectAndNeverConfirms(t *testing.T) {
	f := newFleet(t, 200, "ams", "fra", "sfo")
	f.m.conf.ContestedHold = 30 * time.Second
	real := f.keys[:5] // really failing from fra only
	f.answer = func(l string, k Key, _ time.Time) Outcome {
		switch {
		case l == "ams":
			return OutcomeFailure // ams fails everything it checks
		case l == "fra" && slices.Contains(real, k):
			return OutcomeFailure
		}
		return OutcomeSuccess
	}
	at := t0.Add(time.Minute)
	for _, k := range real {
		f.report("fra", k, api.StateFailing, at)
	}
	// ams degrades: it fails the real ones first (the worst order), then
	// the healthy ones, one report each 50ms.
	for i, k := range f.keys {
		f.report("ams", k, api.StateFailing, at.Add(time.Duration(i+1)*50*time.Millisecond))
		f.due(at.Add(time.Duration(i+1) * 50 * time.Millisecond))
	}
	end := at.Add(time.Duration(len(f.keys)+1) * 50 * time.Millisecond)
	if !suspect(f.m, "ams", end) {
		t.Fatalf("ams not suspect after failing %d targets the others see up: %+v", len(f.keys), f.m.Suspects(end))
	}
	if suspect(f.m, "fra", end) || suspect(f.m, "sfo", end) {
		t.Errorf("a healthy location is suspect: %+v", f.m.Suspects(end))
	}
	if len(f.eff.Locations) != 1 || f.eff.Locations[0].Location != "ams" || !f.eff.Locations[0].Suspect {
		t.Errorf("location events %+v, want one: ams suspect", f.eff.Locations)
	}
	// Hold ends; rounds ask again.
	for s := 0; s <= 40; s++ {
		f.due(end.Add(time.Duration(s) * time.Second))
	}
	for _, inc := range f.log {
		if inc.Confirmed() {
			t.Errorf("incident %d on %s confirmed; only ams (degraded) and fra failed it", inc.ID, inc.Target)
		}
	}
	for _, k := range real {
		if v := f.state(k); v.State == StateDown {
			t.Errorf("%s down", k.Target)
		}
	}
	res := f.resolutions()
	if res[ResolutionFalseAlarm] > len(real) {
		t.Errorf("resolutions %v: ams's failures are its own (%s), only fra's %d are false alarms", res, ResolutionSuspect, len(real))
	}
	// ams opens incidents until it is suspect (min_targets contradicted),
	// then none.
	if n := res[ResolutionSuspect]; n == 0 || n > f.m.conf.SuspectLocations.MinTargets+len(real) {
		t.Errorf("resolutions %v: want between 1 and %d incidents as %s", res, f.m.conf.SuspectLocations.MinTargets+len(real), ResolutionSuspect)
	}
	if f.eff.Discounted == 0 {
		t.Error("no false alarm discounted although ams caused some before it was suspect")
	}
	// While suspect, ams's new failures open nothing.
	before := len(f.log)
	later := end.Add(time.Minute)
	f.report("ams", f.keys[100], api.StateRecovered, later)
	f.report("ams", f.keys[100], api.StateFailing, later.Add(time.Second))
	if len(f.log) != before {
		t.Errorf("a suspect location's failure opened incidents: %d, was %d", len(f.log), before)
	}
}

// A mass outage fails everywhere: no location is suspect, and every
// target is confirmed.
func TestMassOutageMakesNoLocationSuspect(t *testing.T) {
	f := newFleet(t, 100, "ams", "fra", "sfo")
	f.answer = func(string, Key, time.Time) Outcome { return OutcomeFailure }
	at := t0.Add(time.Minute)
	for i, k := range f.keys {
		now := at.Add(time.Duration(i) * 10 * time.Millisecond)
		f.report("ams", k, api.StateFailing, now)
		f.due(now)
	}
	for _, l := range []string{"ams", "fra", "sfo"} {
		if suspect(f.m, l, at.Add(2*time.Second)) {
			t.Errorf("%s suspect in a mass outage", l)
		}
	}
	for _, k := range f.keys {
		if v := f.state(k); v.State != StateDown {
			t.Errorf("%s is %s, want down", k.Target, v.State)
		}
	}
}

// A confirmation that a trusted location contradicts waits for
// contested_hold, then goes ahead if the failures persist.
func TestContestedConfirmationWaitsForTheHold(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	m.conf.ContestedHold = 30 * time.Second
	r := mustOneRound(t, m.Report("ams", failing(t0, t0), t0))
	eff := m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeFailure, t0), answer("sfo", OutcomeSuccess, t0)}, t0)
	if len(eff.Confirmed) != 0 || stateOf(t, m).State != StateSeemsDown {
		t.Fatalf("contested round confirmed at once: state %s", stateOf(t, m).State)
	}
	if eff := m.Due(t0.Add(29 * time.Second)); len(eff.Rounds) != 0 {
		t.Fatalf("a round before the hold ends: %+v", eff.Rounds)
	}
	at := t0.Add(30 * time.Second)
	r = mustOneRound(t, m.Due(at))
	eff = m.RoundDone(key, r.ID, []Evidence{answer("ams", OutcomeFailure, at), answer("fra", OutcomeFailure, at), answer("sfo", OutcomeSuccess, at)}, at)
	if len(eff.Confirmed) != 1 || stateOf(t, m).State != StateDown {
		t.Errorf("after the hold, still two failing: state %s, want down", stateOf(t, m).State)
	}
	// Uncontested (the third cannot tell): no wait.
	m = NewMachine(testConfig("ams", "fra", "sfo"), 0)
	m.conf.ContestedHold = 30 * time.Second
	r = mustOneRound(t, m.Report("ams", failing(t0, t0), t0))
	if eff := m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeFailure, t0), answer("sfo", OutcomeUnknown, t0)}, t0); len(eff.Confirmed) != 1 {
		t.Errorf("uncontested round did not confirm at once")
	}
}

// A target failing every other 10s window is one incident, down the whole
// time, flapping; it resolves once stable for the hold-down.
func TestFlappingTargetIsOneIncidentUntilStable(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	m.conf.RecoveryHold = 30 * time.Second
	m.conf.Flapping.HoldDown = 2 * time.Minute
	log := incidents{}
	var confirmed int
	apply := func(eff Effects) {
		log.add(eff)
		confirmed += len(eff.Confirmed)
	}
	// Every round is answered with what the locations see at the time.
	var answerRounds func(eff Effects, outcome Outcome, at time.Time)
	answerRounds = func(eff Effects, outcome Outcome, at time.Time) {
		apply(eff)
		for _, r := range eff.Rounds {
			var answers []Evidence
			for _, l := range r.Locations {
				answers = append(answers, answer(l, outcome, at))
			}
			answerRounds(m.RoundDone(key, r.ID, answers, at), outcome, at)
		}
	}
	wasDown := false
	for w := range 18 { // 3 minutes
		at := t0.Add(time.Duration(w) * 10 * time.Second)
		outcome := OutcomeSuccess
		if w%2 == 0 {
			outcome = OutcomeFailure
		}
		for i, l := range []string{"ams", "fra", "sfo"} {
			when := at.Add(time.Duration(i) * 100 * time.Millisecond)
			if w%2 == 0 {
				answerRounds(m.Report(l, failing(when, when), when), outcome, when)
			} else {
				answerRounds(m.Report(l, recoveredFrom(when, at.Add(-10*time.Second)), when), outcome, when)
			}
		}
		for s := 1; s < 10; s++ {
			answerRounds(m.Due(at.Add(time.Duration(s)*time.Second)), outcome, at.Add(time.Duration(s)*time.Second))
			v := stateOf(t, m)
			if wasDown && v.State != StateDown {
				t.Fatalf("window %d: state %s after being down; a flapping outage stays down", w, v.State)
			}
			wasDown = wasDown || v.State == StateDown
		}
	}
	if len(log) != 1 || confirmed != 1 {
		t.Fatalf("%d incidents, %d confirmations; want one of each: %v", len(log), confirmed, log.summary())
	}
	if v := stateOf(t, m); !v.Flapping {
		t.Error("target not marked flapping")
	}
	// Stable from 3m, every location sees it succeed: resolved after the
	// hold-down, not before.
	stable := t0.Add(18 * 10 * time.Second)
	allUp := func(at time.Time) { answerRounds(m.Due(at), OutcomeSuccess, at) }
	// The last failures were seen in the window from 2m40s to 2m50s.
	for s := 0; s < 100; s += 5 {
		allUp(stable.Add(time.Duration(s) * time.Second))
	}
	for _, inc := range log {
		if !inc.Open() {
			t.Fatalf("resolved %s after the flapping stopped; hold_down is 2m", inc.ResolvedAt.Sub(stable))
		}
		if !inc.Flapping {
			t.Error("incident not marked flapping")
		}
	}
	for s := 100; s <= 150; s += 5 {
		allUp(stable.Add(time.Duration(s) * time.Second))
	}
	for _, inc := range log {
		if inc.Open() || inc.Resolution != ResolutionRecovered {
			t.Errorf("after the hold-down: open=%t resolution=%q, want recovered", inc.Open(), inc.Resolution)
		}
	}
	if v := stateOf(t, m); v.State != StateUp {
		t.Errorf("state %s after recovery, want up", v.State)
	}
}

// A confirmed outage resolves only once stable for recovery_hold.
func TestRecoveryWaitsForTheHold(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	m.conf.RecoveryHold = time.Minute
	r := mustOneRound(t, m.Report("ams", failing(t0, t0), t0))
	m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeFailure, t0), answer("sfo", OutcomeFailure, t0)}, t0)
	up := t0.Add(10 * time.Second)
	m.Report("ams", recoveredFrom(up, t0), up)
	if eff := m.Report("sfo", recovered(up), up); len(eff.Resolved) != 0 {
		t.Fatalf("resolved at once, before recovery_hold: %v", eff.Resolved)
	}
	var eff Effects
	for s := 31; s <= 61; s++ {
		at := up.Add(time.Duration(s) * time.Second)
		e := m.Due(at)
		for _, r := range e.Rounds {
			e.Merge(m.RoundDone(key, r.ID, []Evidence{answer("ams", OutcomeSuccess, at), answer("fra", OutcomeSuccess, at), answer("sfo", OutcomeSuccess, at)}, at))
		}
		// The last failure was at t0, 10s before up.
		if s < 50 && len(e.Resolved) > 0 {
			t.Fatalf("resolved %ds after the last failure; recovery_hold is 1m", s+10)
		}
		eff.Merge(e)
	}
	if !slices.Equal(eff.Resolved, []string{ResolutionRecovered}) {
		t.Errorf("resolutions %v once stable for recovery_hold, want recovered", eff.Resolved)
	}
}

// The coordinator's own lack of capacity is no evidence: a first round
// whose other answers are overload keeps its state and is asked again
// soon; a confirmed outage whose re-checks get no answer stays down.
func TestOverloadAndSilenceChangeNoVerdict(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	r := mustOneRound(t, m.Report("ams", failing(t0, t0), t0))
	overload := func(l string) Evidence {
		return Evidence{Location: l, Time: t0, Source: SourceOverload, Result: OutcomeUnknown, Error: "no check slot"}
	}
	m.RoundDone(key, r.ID, []Evidence{overload("fra"), overload("sfo")}, t0)
	if v := stateOf(t, m); v.State != StateSeemsDown {
		t.Errorf("state %s after an overloaded round, want seems_down (unchanged)", v.State)
	}
	at := t0.Add(m.conf.VerifyTimeout)
	r = mustOneRound(t, m.Due(at))
	m.RoundDone(key, r.ID, []Evidence{answer("ams", OutcomeFailure, at), answer("fra", OutcomeFailure, at), overload("sfo")}, at)
	if v := stateOf(t, m); v.State != StateDown {
		t.Fatalf("state %s, want down", v.State)
	}
	for i := 1; i <= 3; i++ {
		at := t0.Add(time.Duration(i) * time.Minute)
		r := mustOneRound(t, m.Due(at))
		m.RoundDone(key, r.ID, []Evidence{answer("ams", OutcomeUnknown, at), overload("fra"), answer("sfo", OutcomeUnknown, at)}, at)
		if v := stateOf(t, m); v.State != StateDown || v.DownSince.IsZero() {
			t.Fatalf("re-check %d with no answers: state %s; a confirmed outage stays down until it recovers", i, v.State)
		}
	}
}

// Reports delivered after report_freshness are history: alone they open
// nothing; with other locations' they still record an outage that is over.
func TestStaleReportsAreHistory(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	m.conf.ReportFreshness = time.Minute
	now := t0.Add(3 * time.Minute)
	eff := m.Report("ams", failing(t0.Add(30*time.Second), t0), now)
	if len(eff.Save)+len(eff.Rounds) != 0 {
		t.Fatalf("a 3-minute-old failure opened an incident or a round: %+v", eff)
	}
	if v := stateOf(t, m); v.State != StateUp {
		t.Errorf("state %s, want up", v.State)
	}
	eff = m.Report("fra", failing(t0.Add(30*time.Second), t0.Add(time.Second)), now)
	log := incidents{}
	log.add(eff)
	if len(log) != 1 {
		t.Fatalf("two locations' late failures overlapping: %v, want one outage recorded", log.summary())
	}
	for _, inc := range log {
		if !inc.Confirmed() || inc.Open() {
			t.Errorf("late overlap: confirmed=%t open=%t, want confirmed and over", inc.Confirmed(), inc.Open())
		}
	}
	neverDown(t, m, "late reports")
}

// A location whose exporter says it is degraded is suspect while it says
// so: its failures open nothing and count for nothing; once it recovers,
// a failure it still sees is judged again.
func TestSelfReportedDegradationMakesALocationSuspect(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	eff := m.SelfReported("ams", []string{"scheduler_lag"}, t0)
	if len(eff.Locations) != 1 || !eff.Locations[0].Suspect || eff.Locations[0].Reason != ReasonSelfReported {
		t.Fatalf("location events %+v, want ams suspect (self_reported)", eff.Locations)
	}
	if eff := m.Report("ams", failing(t0, t0), t0); len(eff.Save)+len(eff.Rounds) != 0 {
		t.Fatalf("a degraded location's failure opened an incident: %+v", eff)
	}
	if !suspect(m, "ams", t0) {
		t.Error("ams not listed suspect")
	}
	// fra fails too: only two trusted locations (fra, sfo) vote.
	r := mustOneRound(t, m.Report("fra", failing(t0, t0), t0))
	if slices.Contains(r.Locations, "ams") {
		t.Errorf("the round asks the degraded ams: %v", r.Locations)
	}
	m.RoundDone(key, r.ID, []Evidence{answer("sfo", OutcomeSuccess, t0)}, t0)
	if v := stateOf(t, m); v.State == StateDown {
		t.Errorf("down with only fra (and the degraded ams) failing")
	}
	// Recovered: ams's and fra's open failures are judged together.
	at := t0.Add(time.Minute)
	m.Report("fra", failing(at, at), at)
	eff = m.SelfReported("ams", nil, at)
	if len(eff.Locations) != 1 || eff.Locations[0].Suspect {
		t.Errorf("location events %+v, want ams trusted again", eff.Locations)
	}
	if v := stateOf(t, m); v.State != StateDown && v.State != StateSeemsDown {
		t.Errorf("state %s after ams is trusted again with ams and fra failing, want a verdict under way or down", v.State)
	}
}

// An incident whose only failing location can no longer tell (its canary
// fails), while the others could not answer, is not a false alarm: nobody
// saw the target succeed. It stays open, unknown, and is verified again.
func TestFailureThatTurnsUnknownIsNoFalseAlarm(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	r := mustOneRound(t, m.Report("ams", failing(t0, t0), t0))
	m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeUnknown, t0), answer("sfo", OutcomeUnknown, t0)}, t0)
	at := t0.Add(time.Second)
	if eff := m.Report("ams", unknownReport(at), at); len(eff.Resolved) != 0 {
		t.Fatalf("resolved %v when the failing location turned unknown and nobody saw a success", eff.Resolved)
	}
	if v := stateOf(t, m); v.State != StateUnknown || v.IncidentID == 0 {
		t.Errorf("state %s (incident %d), want unknown with the incident open", v.State, v.IncidentID)
	}
	// A success seen afterwards ends it as a false alarm.
	at = t0.Add(40 * time.Second)
	r = mustOneRound(t, m.Due(at))
	eff := m.RoundDone(key, r.ID, []Evidence{answer("ams", OutcomeUnknown, at), answer("fra", OutcomeSuccess, at), answer("sfo", OutcomeSuccess, at)}, at)
	if !slices.Equal(eff.Resolved, []string{ResolutionFalseAlarm}) {
		t.Errorf("resolutions %v once two locations see it up, want false_alarm", eff.Resolved)
	}
}

// A batch read long after it was sent (a frozen coordinator reading a
// request that waited in its socket) is history: three locations' failing
// reports in such batches record the outage, but never make it down.
func TestLateBatchesAreHistory(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	now := t0.Add(60 * time.Second)
	log := incidents{}
	for _, l := range []string{"ams", "fra", "sfo"} {
		r := failing(t0.Add(time.Second), t0)
		log.add(m.LateBatch(l, []*api.Report{r}, nil, now).Effects)
		neverDown(t, m, "late batch of "+l)
	}
	if len(log) != 1 {
		t.Fatalf("incidents %v, want the outage recorded once", log.summary())
	}
	for _, inc := range log {
		if !inc.Confirmed() || inc.Open() {
			t.Errorf("confirmed=%t open=%t, want an outage recorded as over", inc.Confirmed(), inc.Open())
		}
	}
}

// contradicted makes location suspect as judgeLocation does when its
// share of contradicted targets jumps: its failures since the window's
// start are discounted.
func contradicted(m *Machine, location string, now time.Time) Effects {
	var eff Effects
	tr := m.trustOf(location)
	tr.suspect, tr.since, tr.onset = true, now, now.Add(-m.conf.SuspectLocations.Window)
	m.discount(location, tr.onset, now, &eff)
	return eff
}

// A confirmed outage whose confirming locations turn suspect ends as
// location_suspect only when the trusted locations see the target up.
// While too few trusted locations are left to tell (a mass outage in
// which two of three exporters judge themselves degraded), it stays
// down: nobody saw it succeed, so the page must not resolve.
func TestSuspectLocationsEndAConfirmedOutageOnlyOnSuccesses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sfo     Outcome
		suspect []string
		want    State
	}{
		{"two of three suspect, the third failing", OutcomeFailure, []string{"ams", "fra"}, StateDown},
		{"one suspect, the others failing", OutcomeFailure, []string{"ams"}, StateDown},
		{"one suspect, a trusted one sees it up", OutcomeSuccess, []string{"ams"}, StateUp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
			r := mustOneRound(t, m.Report("ams", failing(t0, t0), t0))
			m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeFailure, t0), answer("sfo", tc.sfo, t0)}, t0)
			if v := stateOf(t, m); v.State != StateDown {
				t.Fatalf("state %s after ams and fra failed, want down", v.State)
			}
			at := t0.Add(5 * time.Second)
			var resolved []string
			for _, l := range tc.suspect {
				resolved = append(resolved, contradicted(m, l, at).Resolved...)
			}
			if v := stateOf(t, m); v.State != tc.want {
				t.Errorf("state %s once %v are suspect, want %s (resolved %v)", v.State, tc.suspect, tc.want, resolved)
			}
			if tc.want == StateDown && len(resolved) != 0 {
				t.Errorf("resolved %v with no success seen", resolved)
			}
		})
	}
}

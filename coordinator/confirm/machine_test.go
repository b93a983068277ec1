package confirm

import (
	"slices"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/coordinator/config"
	"github.com/vantageprobe/vantage/prober/result"
)

// The machine reads no clock: every test drives it with its own times.
var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func testConfig(locations ...string) *config.CoordinatorConfig {
	c := &config.CoordinatorConfig{Confirmation: config.DefaultConfirmation}
	c.Confirmation.VerifyTimeout = 10 * time.Second
	c.Confirmation.ReverifyInterval = 30 * time.Second
	// The base rule alone: no holds, and reports of any age are live
	// (tests replay old times). Tests of those features set them.
	c.Confirmation.ContestedHold = 0
	c.Confirmation.RecoveryHold = 0
	c.Confirmation.Flapping.HoldDown = 0
	c.Confirmation.ReportFreshness = 30 * 24 * time.Hour
	for _, l := range locations {
		c.Locations = append(c.Locations, config.Location{Name: l, URL: "http://" + l + ":9715"})
	}
	return c
}

var key = Key{Target: "https://shop.example", Module: "http_2xx"}

func failing(at, first time.Time) *api.Report {
	return &api.Report{Target: key.Target, Module: key.Module, State: api.StateFailing, Time: at, FirstFailure: first, Attempts: 3,
		Result: &result.Result{Prober: "http", Reason: result.ReasonConnectRefused, Error: "connection refused", Start: at,
			Phases: []result.Phase{{Name: "resolve", Duration: time.Millisecond}, {Name: "connect", Duration: 2 * time.Millisecond}}}}
}

func recovered(at time.Time) *api.Report {
	return &api.Report{Target: key.Target, Module: key.Module, State: api.StateRecovered, Time: at, Attempts: 1,
		Result: &result.Result{Prober: "http", Success: true, Start: at}}
}

func unknownReport(at time.Time) *api.Report {
	return &api.Report{Target: key.Target, Module: key.Module, State: api.StateUnknown, Time: at, Attempts: 3,
		Result: &result.Result{Prober: "http", Reason: result.ReasonConnectTimeout, Start: at}}
}

func answer(location string, outcome Outcome, at time.Time) Evidence {
	e := Evidence{Location: location, Time: at, Source: SourceCheck, Result: outcome}
	if outcome == OutcomeFailure {
		e.Reason = result.ReasonConnectRefused
	}
	if outcome == OutcomeUnknown {
		e.Error = "no answer within verify_timeout"
	}
	return e
}

func mustOneRound(t *testing.T, eff Effects) RoundRequest {
	t.Helper()
	if len(eff.Rounds) != 1 {
		t.Fatalf("effects start %d rounds, want 1: %+v", len(eff.Rounds), eff.Rounds)
	}
	return eff.Rounds[0]
}

func stateOf(t *testing.T, m *Machine) TargetView {
	t.Helper()
	for _, v := range m.Targets() {
		if v.Target == key.Target && v.Module == key.Module {
			return v
		}
	}
	t.Fatalf("target %v unknown to the machine", key)
	return TargetView{}
}

func lastSaved(t *testing.T, eff Effects) Incident {
	t.Helper()
	if len(eff.Save) == 0 {
		t.Fatal("no incident saved")
	}
	return eff.Save[len(eff.Save)-1]
}

func TestOutageConfirmedByTheOtherLocations(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	first := t0.Add(-20 * time.Second)
	eff := m.Report("ams", failing(t0, first), t0)
	r := mustOneRound(t, eff)
	if !slices.Equal(r.Locations, []string{"fra", "sfo"}) || r.Timeout != 10*time.Second {
		t.Errorf("round asks %v within %s, want fra and sfo within 10s (the reporter's failure is its answer)", r.Locations, r.Timeout)
	}
	inc := lastSaved(t, eff)
	if inc.ID != 1 || inc.State != StateSeemsDown || !inc.StartedAt.Equal(first) || !inc.OpenedAt.Equal(t0) || inc.Reporter != "ams" {
		t.Errorf("opened incident = %+v, want #1 seems_down started at the first failure, opened now, by ams", inc)
	}
	if len(inc.Evidence) != 1 || inc.Evidence[0].Location != "ams" || inc.Evidence[0].Source != SourceReport || inc.Evidence[0].Phases.Get("connect") != 0.002 {
		t.Errorf("opening evidence = %+v, want ams's report with its phases", inc.Evidence)
	}
	if v := stateOf(t, m); v.State != StateSeemsDown || !v.DownSince.IsZero() {
		t.Errorf("state = %s down since %v, want seems_down and not down", v.State, v.DownSince)
	}

	done := t0.Add(2 * time.Second)
	eff = m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeFailure, t0), answer("sfo", OutcomeSuccess, t0)}, done)
	v := stateOf(t, m)
	if v.State != StateDown || !v.DownSince.Equal(first) {
		t.Fatalf("after ams and fra failing: state %s down since %v, want down since %v", v.State, v.DownSince, first)
	}
	if len(eff.Confirmed) != 1 || eff.Confirmed[0] != 22*time.Second {
		t.Errorf("confirmation durations = %v, want [22s] (first failure to confirmation)", eff.Confirmed)
	}
	inc = lastSaved(t, eff)
	// The record adds the round's two answers to the logged report.
	if !inc.ConfirmedAt.Equal(done) || inc.State != StateDown || inc.Rounds != 1 || inc.EvidenceCount != 3 || len(inc.Evidence) != 2 {
		t.Errorf("confirmed incident = %+v, want confirmed at %v, down, 1 round, 3 pieces of evidence, the last 2 new", inc, done)
	}
	if inc.Evidence[0].Location != "fra" || inc.Evidence[0].Source != SourceCheck || inc.Evidence[1].Location != "sfo" {
		t.Errorf("new evidence = %+v, want fra's then sfo's answer", inc.Evidence)
	}
}

func TestOneLocationAloneIsAFalseAlarm(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	r := mustOneRound(t, m.Report("fra", failing(t0, t0), t0))
	eff := m.RoundDone(key, r.ID, []Evidence{answer("ams", OutcomeSuccess, t0), answer("sfo", OutcomeSuccess, t0)}, t0.Add(time.Second))
	if !slices.Equal(eff.Resolved, []string{ResolutionFalseAlarm}) {
		t.Fatalf("resolutions = %v, want [false_alarm]", eff.Resolved)
	}
	inc := lastSaved(t, eff)
	if inc.Open() || inc.Resolution != ResolutionFalseAlarm || inc.Confirmed() {
		t.Errorf("incident = %+v, want resolved as a false alarm, never confirmed", inc)
	}
	if v := stateOf(t, m); v.State != StateUp || v.IncidentID != 0 {
		t.Errorf("state = %s incident %d, want up without incident", v.State, v.IncidentID)
	}
	// The location's view stays: it still fails from fra.
	for _, e := range stateOf(t, m).Locations {
		if e.Location == "fra" && e.Result != OutcomeFailure {
			t.Errorf("fra's latest evidence = %s, want failure", e.Result)
		}
	}
}

func TestUnknownLocationsNeverCountAsFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answers []Evidence
		want    State
	}{
		// ams fails; fra cannot tell; sfo fails: two failing, confirmed.
		{"a dead location does not stop a real outage", []Evidence{answer("fra", OutcomeUnknown, t0), answer("sfo", OutcomeFailure, t0)}, StateDown},
		// ams fails; fra and sfo cannot tell: no verdict either way.
		{"too few known", []Evidence{answer("fra", OutcomeUnknown, t0), answer("sfo", OutcomeUnknown, t0)}, StateUnknown},
		// ams fails; fra up; sfo cannot tell: two failing still possible.
		{"one unknown could tip it", []Evidence{answer("fra", OutcomeSuccess, t0), answer("sfo", OutcomeUnknown, t0)}, StateUnknown},
		// A location that never answers counts as unknown.
		{"no answer", []Evidence{answer("fra", OutcomeSuccess, t0)}, StateUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
			r := mustOneRound(t, m.Report("ams", failing(t0, t0), t0))
			eff := m.RoundDone(key, r.ID, tc.answers, t0.Add(time.Second))
			if v := stateOf(t, m); v.State != tc.want {
				t.Errorf("state = %s, want %s", v.State, tc.want)
			}
			if len(eff.Resolved) != 0 {
				t.Errorf("resolved %v; an undecided or confirmed incident stays open", eff.Resolved)
			}
		})
	}
}

func TestUnknownIsVerifiedAgainUntilAVerdict(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	r := mustOneRound(t, m.Report("ams", failing(t0, t0), t0))
	m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeUnknown, t0), answer("sfo", OutcomeUnknown, t0)}, t0)
	// An undecided round is repeated verify_timeout later (it is shorter
	// than reverify_interval), spread by ±10%.
	if eff := m.Due(t0.Add(8 * time.Second)); len(eff.Rounds) != 0 {
		t.Fatalf("a round before 90%% of verify_timeout: %+v", eff.Rounds)
	}
	r = mustOneRound(t, m.Due(t0.Add(11*time.Second)))
	if !slices.Equal(r.Locations, []string{"ams", "fra", "sfo"}) || !r.First {
		t.Errorf("re-verification asks %v (first: %t), want every location, as a first verification", r.Locations, r.First)
	}
	if eff := m.Due(t0.Add(12 * time.Second)); len(eff.Rounds) != 0 {
		t.Errorf("a second round while one is in flight: %+v", eff.Rounds)
	}
	at := t0.Add(12 * time.Second)
	m.RoundDone(key, r.ID, []Evidence{answer("ams", OutcomeFailure, at), answer("fra", OutcomeFailure, at), answer("sfo", OutcomeUnknown, at)}, at)
	if v := stateOf(t, m); v.State != StateDown {
		t.Errorf("state = %s, want down once two locations fail", v.State)
	}
}

func TestRecoveryNeedsSuccessesFromTwoLocations(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	r := mustOneRound(t, m.Report("ams", failing(t0, t0), t0))
	m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeFailure, t0), answer("sfo", OutcomeFailure, t0)}, t0)

	// Two recovered reports from one location are not enough.
	if eff := m.Report("ams", recovered(t0.Add(5*time.Second)), t0.Add(5*time.Second)); len(eff.Resolved) != 0 {
		t.Fatalf("resolved after one success: %v", eff.Resolved)
	}
	r = mustOneRound(t, m.Due(t0.Add(30*time.Second)))
	at := t0.Add(31 * time.Second)
	eff := m.RoundDone(key, r.ID, []Evidence{answer("ams", OutcomeSuccess, at), answer("fra", OutcomeFailure, at), answer("sfo", OutcomeUnknown, at)}, at)
	if len(eff.Resolved) != 0 {
		t.Fatalf("resolved with successes from ams only: %v", eff.Resolved)
	}
	if v := stateOf(t, m); v.State != StateDown {
		t.Errorf("state = %s, want still down", v.State)
	}
	eff = m.Report("sfo", recovered(t0.Add(40*time.Second)), t0.Add(40*time.Second))
	if !slices.Equal(eff.Resolved, []string{ResolutionRecovered}) {
		t.Fatalf("resolutions = %v, want [recovered] after successes from ams and sfo", eff.Resolved)
	}
	inc := lastSaved(t, eff)
	if inc.ID != 1 || inc.Resolution != ResolutionRecovered || !inc.ResolvedAt.Equal(t0.Add(40*time.Second)) || !inc.Confirmed() {
		t.Errorf("incident = %+v, want #1 recovered at +40s", inc)
	}
	if v := stateOf(t, m); v.State != StateUp || !v.DownSince.IsZero() {
		t.Errorf("state = %s, want up", v.State)
	}
}

func TestFailureWhileDownResetsRecovery(t *testing.T) {
	c := testConfig("ams", "fra", "sfo")
	c.Confirmation.RecoverySuccesses = 3
	m := NewMachine(c, 0)
	r := mustOneRound(t, m.Report("ams", failing(t0, t0), t0))
	m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeFailure, t0), answer("sfo", OutcomeFailure, t0)}, t0)
	m.Report("ams", recovered(t0.Add(time.Second)), t0.Add(time.Second))
	m.Report("fra", recovered(t0.Add(2*time.Second)), t0.Add(2*time.Second))
	m.Report("ams", failing(t0.Add(3*time.Second), t0.Add(3*time.Second)), t0.Add(3*time.Second))
	if eff := m.Report("sfo", recovered(t0.Add(4*time.Second)), t0.Add(4*time.Second)); len(eff.Resolved) != 0 {
		t.Errorf("resolved %v although ams failed again between the successes", eff.Resolved)
	}
}

func TestSingleLocationConfirmsAndRecoversAlone(t *testing.T) {
	c := testConfig("local")
	c.Confirmation.MinFailingLocations = 1
	m := NewMachine(c, 0)
	eff := m.Report("local", failing(t0, t0), t0)
	if len(eff.Rounds) != 0 || len(eff.Confirmed) != 1 {
		t.Fatalf("effects = %+v, want confirmation at once with nobody else to ask", eff)
	}
	if v := stateOf(t, m); v.State != StateDown {
		t.Fatalf("state = %s, want down", v.State)
	}
	m.Report("local", recovered(t0.Add(time.Second)), t0.Add(time.Second))
	r := mustOneRound(t, m.Due(t0.Add(31*time.Second)))
	eff = m.RoundDone(key, r.ID, []Evidence{answer("local", OutcomeSuccess, t0.Add(31*time.Second))}, t0.Add(31*time.Second))
	if !slices.Equal(eff.Resolved, []string{ResolutionRecovered}) {
		t.Errorf("resolutions = %v, want recovered after two successes from the only location", eff.Resolved)
	}
}

func TestDuplicateReportsOpenOneIncident(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	first := failing(t0, t0)
	r := mustOneRound(t, m.Report("ams", first, t0))
	for i := range 3 {
		eff := m.Report("ams", first, t0.Add(time.Duration(i)*time.Second))
		if len(eff.Rounds) != 0 {
			t.Errorf("a repeated report started another round")
		}
		for _, inc := range eff.Save {
			if inc.ID != 1 {
				t.Errorf("a repeated report touched incident %d", inc.ID)
			}
		}
	}
	// Another location's failure joins the same incident and round.
	if eff := m.Report("fra", failing(t0.Add(time.Second), t0), t0.Add(time.Second)); len(eff.Rounds) != 0 || lastSaved(t, eff).ID != 1 {
		t.Errorf("fra's failure: %+v, want it added to incident 1", eff)
	}
	m.RoundDone(key, r.ID, []Evidence{answer("sfo", OutcomeUnknown, t0)}, t0.Add(2*time.Second))
	if v := stateOf(t, m); v.State != StateDown || v.IncidentID != 1 {
		t.Errorf("state = %s incident %d, want down, incident 1 (ams and fra failing; fra's report is its answer)", v.State, v.IncidentID)
	}
	if m.lastID != 1 {
		t.Errorf("%d incidents opened, want 1", m.lastID)
	}
}

func TestFlappingTargetOpensOneIncidentPerOutage(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	var ids []uint64
	at := t0
	for outage := range 3 {
		r := mustOneRound(t, m.Report("ams", failing(at, at), at))
		m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeFailure, at), answer("sfo", OutcomeFailure, at)}, at.Add(time.Second))
		ids = append(ids, stateOf(t, m).IncidentID)
		// Failures seen while down add evidence, not incidents.
		m.Report("fra", failing(at.Add(2*time.Second), at), at.Add(2*time.Second))
		m.Report("ams", recovered(at.Add(10*time.Second)), at.Add(10*time.Second))
		eff := m.Report("fra", recovered(at.Add(11*time.Second)), at.Add(11*time.Second))
		if !slices.Equal(eff.Resolved, []string{ResolutionRecovered}) {
			t.Fatalf("outage %d: resolutions = %v", outage, eff.Resolved)
		}
		at = at.Add(time.Minute)
	}
	if !slices.Equal(ids, []uint64{1, 2, 3}) {
		t.Errorf("incident IDs of three outages = %v, want 1, 2, 3", ids)
	}
}

func TestStaleFailureDoesNotReopen(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	r := mustOneRound(t, m.Report("ams", failing(t0, t0), t0))
	m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeSuccess, t0), answer("sfo", OutcomeSuccess, t0)}, t0.Add(time.Second))
	// sfo's failure of a check planned before its successful answer
	// arrives late: sfo itself has contradicted it. Its interval ended
	// before ams's began, so it is a past one-location failure: no
	// round, nothing open (since issue 11 it is recorded, closed, as a
	// false alarm, as a live coordinator would have).
	eff := m.Report("sfo", failing(t0.Add(-500*time.Millisecond), t0), t0.Add(2*time.Second))
	if len(eff.Rounds) != 0 || stateOf(t, m).IncidentID != 0 {
		t.Errorf("a stale failure opened an incident: %+v", eff)
	}
	for _, inc := range eff.Save {
		if inc.Open() || inc.Resolution != ResolutionFalseAlarm || inc.Confirmed() {
			t.Errorf("a stale failure saved %+v, want at most a closed false alarm", inc)
		}
	}
	// A failure sfo saw after its success is new, whatever the
	// coordinator's clock says: the exporter's clock may be behind. (ams
	// recovered first: otherwise its interval, still open, would overlap
	// sfo's.)
	m.Report("ams", recovered(t0.Add(200*time.Millisecond)), t0.Add(time.Hour))
	eff = m.Report("sfo", failing(t0.Add(500*time.Millisecond), t0.Add(500*time.Millisecond)), t0.Add(time.Hour))
	if inc := lastSaved(t, eff); len(eff.Rounds) != 1 || inc.ID != 3 || !inc.Open() {
		t.Errorf("a failure after the location's own success: %+v, want incident 3 open and a round", eff)
	}
}

func TestCanaryUnknownReportOpensNothing(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	if eff := m.Report("ams", unknownReport(t0), t0); len(eff.Rounds) != 0 || len(eff.Save) != 0 {
		t.Errorf("an unknown report opened an incident: %+v", eff)
	}
	v := stateOf(t, m)
	if v.State != StateUp || len(v.Locations) != 1 || v.Locations[0].Result != OutcomeUnknown {
		t.Fatalf("view = %+v, want up with ams unknown", v)
	}
	if why := v.Locations[0].Error; why != api.ErrCanaryFailing.Error() {
		t.Errorf("ams's evidence says %q, want %q", why, api.ErrCanaryFailing)
	}
}

func TestStaleRoundAnswersAreIgnored(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	r := mustOneRound(t, m.Report("ams", failing(t0, t0), t0))
	m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeSuccess, t0), answer("sfo", OutcomeSuccess, t0)}, t0)
	if eff := m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeFailure, t0), answer("sfo", OutcomeFailure, t0)}, t0); len(eff.Save)+len(eff.Confirmed) != 0 {
		t.Errorf("answers of a finished round changed something: %+v", eff)
	}
}

func TestRestoreResumesOpenIncidents(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	r := mustOneRound(t, m.Report("ams", failing(t0, t0), t0))
	eff := m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeFailure, t0), answer("sfo", OutcomeFailure, t0)}, t0)
	stored := lastSaved(t, eff)

	restarted := NewMachine(testConfig("ams", "fra", "sfo"), stored.ID)
	later := t0.Add(5 * time.Minute)
	restarted.Restore([]Incident{stored}, later)
	if v := stateOf(t, restarted); v.State != StateDown || v.IncidentID != stored.ID || !v.DownSince.Equal(t0) {
		t.Fatalf("restored view = %+v, want down in incident %d since %v", v, stored.ID, t0)
	}
	r = mustOneRound(t, restarted.Due(later))
	at := later.Add(time.Second)
	eff = restarted.RoundDone(key, r.ID, []Evidence{answer("ams", OutcomeSuccess, at), answer("fra", OutcomeSuccess, at), answer("sfo", OutcomeSuccess, at)}, at)
	if inc := lastSaved(t, eff); inc.ID != stored.ID || inc.Resolution != ResolutionRecovered {
		t.Errorf("after restart: %+v, want the same incident %d recovered", inc, stored.ID)
	}
	// New incidents continue the numbering.
	restarted.Report("ams", failing(at.Add(time.Minute), at.Add(time.Minute)), at.Add(time.Minute))
	if v := stateOf(t, restarted); v.IncidentID != stored.ID+1 {
		t.Errorf("next incident = %d, want %d", v.IncidentID, stored.ID+1)
	}
}

func TestEvidenceIsBounded(t *testing.T) {
	// The evidence the log keeps, added one piece at a time.
	var kept []int
	for n := range maxEvidence + 50 {
		kept = append(kept, n)
		if old, ok := EvidenceEvicted(n); ok {
			i := slices.Index(kept, old)
			if i < 0 {
				t.Fatalf("piece %d evicts %d, which is not kept", n, old)
			}
			kept = slices.Delete(kept, i, i+1)
		}
	}
	if len(kept) != maxEvidence {
		t.Fatalf("%d pieces of evidence kept, want %d", len(kept), maxEvidence)
	}
	if kept[0] != 0 || kept[maxEvidenceHead-1] != maxEvidenceHead-1 {
		t.Errorf("the first %d pieces (how the incident was confirmed) were not kept: %v", maxEvidenceHead, kept[:maxEvidenceHead])
	}
	if kept[maxEvidenceHead] != 100 || kept[maxEvidence-1] != maxEvidence+49 {
		t.Errorf("kept %v after the head, want the latest", kept[maxEvidenceHead:])
	}
}

func TestIdleUpTargetsAreForgotten(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	m.Report("ams", recovered(t0), t0)
	m.Due(t0.Add(idleUpRetention))
	if len(m.Targets()) != 1 {
		t.Fatal("forgot a target before a day of quiet")
	}
	m.Due(t0.Add(idleUpRetention + time.Second))
	if len(m.Targets()) != 0 {
		t.Error("kept a target up and quiet for more than a day")
	}
}

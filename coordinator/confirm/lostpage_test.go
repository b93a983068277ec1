package confirm

import (
	"slices"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/api"
)

// A mass outage under load: ams reports its failing streak (and, as
// exporters do, never again while it lasts); the check API answers late,
// so the rounds get unknowns. A later round's only failing answer comes
// from sfo while ams's streak is still open: two locations fail at once,
// and nothing anywhere succeeded. The outage is confirmed and stays down;
// the unknown answers neither end it nor make the target up.
func TestUnknownAnswersNeverEndAnOngoingOutage(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	first := t0.Add(-25 * time.Second)
	r := mustOneRound(t, m.Report("ams", failing(t0, first), t0))
	at := t0.Add(10 * time.Second)
	m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeUnknown, at), answer("sfo", OutcomeUnknown, at)}, at)
	if v := stateOf(t, m); v.State != StateUnknown {
		t.Fatalf("after [ams failing, unknown, unknown]: state %s, want unknown", v.State)
	}
	at = t0.Add(40 * time.Second)
	r = mustOneRound(t, m.Due(at))
	if !slices.Equal(r.Locations, []string{"ams", "fra", "sfo"}) {
		t.Fatalf("the second round asks %v, want every location", r.Locations)
	}
	done := at.Add(10 * time.Second)
	eff := m.RoundDone(key, r.ID, []Evidence{answer("ams", OutcomeUnknown, done), answer("fra", OutcomeUnknown, done), answer("sfo", OutcomeFailure, at.Add(3*time.Second))}, done)
	if len(eff.Resolved) != 0 {
		t.Errorf("resolved %v with ams's streak open, sfo failing and no success anywhere", eff.Resolved)
	}
	v := stateOf(t, m)
	if v.State != StateDown || !v.DownSince.Equal(first) || v.IncidentID == 0 {
		t.Fatalf("state %s (down since %v, incident %d), want down since %v: ams's streak and sfo's failure overlap", v.State, v.DownSince, v.IncidentID, first)
	}
	// Rounds that get only unknowns change nothing.
	for i := 1; i <= 4; i++ {
		at := done.Add(time.Duration(i) * time.Minute)
		r := mustOneRound(t, m.Due(at))
		eff := m.RoundDone(key, r.ID, []Evidence{answer("ams", OutcomeUnknown, at), answer("fra", OutcomeUnknown, at), answer("sfo", OutcomeUnknown, at)}, at)
		if v := stateOf(t, m); v.State != StateDown || len(eff.Resolved) != 0 {
			t.Fatalf("re-check %d with only unknowns: state %s, resolved %v; want down, nothing resolved", i, v.State, eff.Resolved)
		}
	}
}

// Late reports (history) of two locations overlap a third location's live
// failing streak: nothing says any of them recovered, so the outage is
// not recorded as over; the incident stays open and the rounds ask. Once
// a location's snapshot tells its streak again, live, it is down.
func TestLateFailuresBesideALiveOneAreVerified(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	first := t0.Add(-25 * time.Second)
	r := mustOneRound(t, m.Report("ams", failing(t0, first), t0))
	at := t0.Add(5 * time.Second)
	for _, l := range []string{"fra", "sfo"} {
		res := m.LateBatch(l, []*api.Report{failing(t0.Add(-5*time.Second), first.Add(time.Second))}, nil, at)
		if len(res.Resolved) != 0 {
			t.Fatalf("late failures of %s beside ams's live streak resolved the incident: %v", l, res.Resolved)
		}
	}
	at = t0.Add(10 * time.Second)
	eff := m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeUnknown, at), answer("sfo", OutcomeUnknown, at)}, at)
	if v := stateOf(t, m); v.State != StateUnknown || v.IncidentID == 0 || len(eff.Resolved) != 0 {
		t.Fatalf("after unknown answers: state %s (incident %d), resolved %v; want unknown, the incident open", v.State, v.IncidentID, eff.Resolved)
	}
	at = t0.Add(20 * time.Second)
	m.Batch("fra", nil, snapshot(at, failing(at, first.Add(time.Second))), at)
	if v := stateOf(t, m); v.State != StateDown || !v.DownSince.Equal(first) {
		t.Fatalf("after fra's snapshot tells its streak live: state %s down since %v, want down since %v", v.State, v.DownSince, first)
	}
}

// An outage known only from late reports is recorded as over; when the
// locations' snapshots then tell the same streaks again, live, the
// outage goes on: the incident is reopened and the target is down.
func TestSnapshotsReopenAnOutageRecordedAsOver(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	m.conf.ReportFreshness = time.Minute
	first := t0
	now := t0.Add(3 * time.Minute)
	log := incidents{}
	for _, l := range []string{"ams", "fra"} {
		log.add(m.Report(l, failing(t0.Add(30*time.Second), first), now))
	}
	if len(log) != 1 {
		t.Fatalf("incidents %v, want one", log.summary())
	}
	for _, inc := range log {
		if inc.Open() || !inc.Confirmed() {
			t.Fatalf("late overlap: %+v, want confirmed and over", inc)
		}
	}
	neverDown(t, m, "late reports")
	now = now.Add(10 * time.Second)
	for _, l := range []string{"ams", "fra"} {
		res := m.Batch(l, nil, snapshot(now, failing(now.Add(-5*time.Second), first)), now)
		log.add(res.Effects)
	}
	v := stateOf(t, m)
	if v.State != StateDown || !v.DownSince.Equal(first) || len(log) != 1 {
		t.Fatalf("after live snapshots of both streaks: state %s down since %v, incidents %v; want the one outage down since %v", v.State, v.DownSince, log.summary(), first)
	}
	for _, inc := range log {
		if !inc.Open() || inc.State != StateDown {
			t.Errorf("incident %+v, want open again and down", inc)
		}
	}
}

// A batch's age is taken when it was received: one that then waited for
// the coordinator (its own load) is live evidence, however late it is
// applied.
func TestBatchAgeIsTakenOnArrival(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	m.conf.ReportFreshness = time.Minute
	received := t0.Add(30 * time.Second)
	applied := received.Add(3 * time.Minute)
	for _, l := range []string{"ams", "fra"} {
		m.BatchReceived(l, []*api.Report{failing(t0.Add(25*time.Second), t0)}, nil, received, applied)
	}
	if v := stateOf(t, m); v.State != StateDown || !v.DownSince.Equal(t0) {
		t.Fatalf("two fresh failures applied late: state %s down since %v, want down since %v", v.State, v.DownSince, t0)
	}
}

// Two locations report failing streaks and then that they can no longer
// tell (their canaries fail), all in one batch each: they failed at once
// and nothing says the target recovered, so the outage is confirmed and
// down, not a false alarm.
func TestFailuresThatTurnUnknownStillConfirm(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	at := t0.Add(10 * time.Second)
	log := incidents{}
	for _, l := range []string{"ams", "fra"} {
		res := m.Batch(l, []*api.Report{failing(t0, t0), unknownReport(t0.Add(5 * time.Second))}, nil, at)
		log.add(res.Effects)
		if len(res.Resolved) != 0 {
			t.Fatalf("resolved %v after %s's failure turned unknown", res.Resolved, l)
		}
	}
	if v := stateOf(t, m); v.State != StateDown || !v.DownSince.Equal(t0) || len(log) != 1 {
		t.Fatalf("state %s down since %v, incidents %v; want one outage, down since %v", v.State, v.DownSince, log.summary(), t0)
	}
}

// A failure that ended only because its location could no longer tell is
// verified, not dismissed; the location's snapshot, not listing the
// target any more, says it is up there, and that ends it as a false
// alarm.
func TestSnapshotEndsAFailureThatTurnedUnknown(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	at := t0.Add(10 * time.Second)
	res := m.Batch("ams", []*api.Report{failing(t0, t0), unknownReport(t0.Add(5 * time.Second))}, nil, at)
	if len(res.Resolved) != 0 {
		t.Fatalf("resolved %v: nothing said the target recovered", res.Resolved)
	}
	r := mustOneRound(t, res.Effects)
	at = at.Add(10 * time.Second)
	eff := m.RoundDone(key, r.ID, []Evidence{answer("ams", OutcomeUnknown, at), answer("fra", OutcomeUnknown, at), answer("sfo", OutcomeUnknown, at)}, at)
	if v := stateOf(t, m); v.State != StateUnknown || len(eff.Resolved) != 0 {
		t.Fatalf("after a round of unknowns: state %s, resolved %v; want unknown, open", v.State, eff.Resolved)
	}
	at = at.Add(5 * time.Second)
	res = m.Batch("ams", nil, snapshot(at), at)
	if !slices.Equal(res.Resolved, []string{ResolutionFalseAlarm}) {
		t.Errorf("after ams's snapshot no longer lists the target: resolved %v, want [false_alarm]", res.Resolved)
	}
	if v := stateOf(t, m); v.State != StateUp {
		t.Errorf("state %s, want up", v.State)
	}
}

package confirm

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/api"
)

func recoveredFrom(at, first time.Time) *api.Report {
	r := recovered(at)
	r.FirstFailure = first
	return r
}

// incidents keeps the latest saved copy of each incident.
type incidents map[uint64]Incident

func (s incidents) add(eff Effects) {
	for _, inc := range eff.Save {
		s[inc.ID] = inc
	}
}

// summary is what two coordinators must agree on: starts,
// confirmations, resolutions (not IDs or rounds).
func (s incidents) summary() []string {
	var out []string
	for _, inc := range s {
		out = append(out, fmt.Sprintf("start=%s confirmed=%t open=%t resolution=%s ended=%s",
			inc.StartedAt.Format(time.RFC3339Nano), inc.Confirmed(), inc.Open(), inc.Resolution, inc.EndedAt.Format(time.RFC3339Nano)))
	}
	slices.Sort(out)
	return out
}

// neverDown fails the test if the target is down.
func neverDown(t *testing.T, m *Machine, when string) {
	t.Helper()
	if v := stateOf(t, m); v.State == StateDown || !v.DownSince.IsZero() {
		t.Errorf("%s: target down (%+v); an outage known only once over never pages", when, v)
	}
}

func TestLateBatchWithFailingThenRecoveredConfirmsTheOutage(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	saved := incidents{}
	// fra reports at once; ams cannot be asked (its exporter is stuck),
	// sfo sees the target up: no verdict.
	eff := m.Report("fra", failing(t0.Add(2*time.Second), t0.Add(2*time.Second)), t0.Add(2*time.Second))
	saved.add(eff)
	r := mustOneRound(t, eff)
	saved.add(m.RoundDone(key, r.ID, []Evidence{answer("ams", OutcomeUnknown, t0.Add(3*time.Second)), answer("sfo", OutcomeSuccess, t0.Add(3*time.Second))}, t0.Add(3*time.Second)))
	if v := stateOf(t, m); v.State != StateUnknown {
		t.Fatalf("state = %s, want unknown", v.State)
	}
	// ams's batch arrives late, carrying its whole failure: from t0 to
	// t0+30s, overlapping fra's.
	now := t0.Add(35 * time.Second)
	res := m.Batch("ams", []*api.Report{failing(t0, t0), recoveredFrom(t0.Add(30*time.Second), t0)}, nil, now)
	saved.add(res.Effects)
	neverDown(t, m, "after ams's late batch")
	if len(saved) != 1 {
		t.Fatalf("%d incidents, want 1: %v", len(saved), saved.summary())
	}
	inc := saved[1]
	if inc.Open() || !inc.Confirmed() || inc.Resolution != ResolutionRecovered || inc.State != StateResolved ||
		!inc.StartedAt.Equal(t0) || !inc.EndedAt.Equal(t0.Add(30*time.Second)) || inc.LastState != StateSeemsDown && inc.LastState != StateUnknown {
		t.Errorf("incident = %+v, want confirmed, resolved recovered, started at ams's first failure, ended when ams recovered", inc)
	}
	if !slices.Equal(res.Resolved, []string{ResolutionRecovered}) || len(res.Confirmed) != 1 {
		t.Errorf("effects = %+v, want one confirmation and one recovery", res.Effects)
	}
}

func TestReportsAfterTheOutageEndedMakeItRecovered(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	saved := incidents{}
	eff := m.Report("ams", failing(t0, t0), t0)
	saved.add(eff)
	r := mustOneRound(t, eff)
	// fra and sfo cannot be heard from during the outage.
	saved.add(m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeUnknown, t0), answer("sfo", OutcomeUnknown, t0)}, t0.Add(time.Second)))
	saved.add(m.Report("ams", recoveredFrom(t0.Add(30*time.Second), t0), t0.Add(30*time.Second)))
	// fra's reports of the same outage arrive once it is over.
	res := m.Batch("fra", []*api.Report{failing(t0.Add(time.Second), t0.Add(time.Second)), recoveredFrom(t0.Add(31*time.Second), t0.Add(time.Second))}, nil, t0.Add(60*time.Second))
	saved.add(res.Effects)
	neverDown(t, m, "after fra's late reports")
	if len(saved) != 1 {
		t.Fatalf("%d incidents, want 1: %v", len(saved), saved.summary())
	}
	if inc := saved[1]; inc.Resolution != ResolutionRecovered || !inc.Confirmed() || !inc.EndedAt.Equal(t0.Add(30*time.Second)) {
		t.Errorf("incident = %+v, want recovered (not false_alarm), ended when the overlap ended", inc)
	}
}

func TestFrozenCoordinatorReplayRecordsOneRecoveredOutage(t *testing.T) {
	// A 30 s outage in ams and fra (sfo sees the target up), delivered
	// 60 s late to a coordinator that was frozen.
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	saved := incidents{}
	start := t0
	now := start.Add(90 * time.Second)
	res := m.Batch("ams", []*api.Report{failing(start, start), recoveredFrom(start.Add(30*time.Second), start)}, nil, now)
	saved.add(res.Effects)
	neverDown(t, m, "after ams's batch")
	res = m.Batch("fra", []*api.Report{failing(start.Add(time.Second), start.Add(time.Second)), recoveredFrom(start.Add(31*time.Second), start.Add(time.Second))}, nil, now.Add(time.Second))
	saved.add(res.Effects)
	neverDown(t, m, "after fra's batch")
	if len(res.Rounds) != 0 {
		t.Errorf("rounds %+v for an outage already over", res.Rounds)
	}
	want := []string{fmt.Sprintf("start=%s confirmed=true open=false resolution=recovered ended=%s", start.Format(time.RFC3339Nano), start.Add(30*time.Second).Format(time.RFC3339Nano))}
	if got := saved.summary(); !slices.Equal(got, want) {
		t.Errorf("incidents = %v, want %v", got, want)
	}
}

// delivery is one batch of one location.
type delivery struct {
	location string
	reports  []*api.Report
}

func TestTheSameReportsInAnyOrderMakeTheSameIncidents(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	deliveries := []delivery{
		// An outage in ams and fra from 0 to 30 s.
		{"ams", []*api.Report{failing(at(0), at(0))}},
		{"ams", []*api.Report{recoveredFrom(at(30), at(0))}},
		{"fra", []*api.Report{failing(at(5), at(5)), recoveredFrom(at(35), at(5))}},
		// sfo alone fails from 100 to 110 s: a false alarm.
		{"sfo", []*api.Report{failing(at(100), at(100))}},
		{"sfo", []*api.Report{recoveredFrom(at(110), at(100))}},
		// An outage in fra and sfo from 200 s on, still going on.
		{"fra", []*api.Report{failing(at(200), at(200))}},
		{"sfo", []*api.Report{failing(at(210), at(205))}},
	}
	var want []string
	for _, order := range [][]int{
		// Known gap: orders in which a location's interval that is
		// still open when another's blip arrives (e.g. 2 0 5 3 1 6 4)
		// confirm the blip, and that confirmation is not withdrawn
		// when the bridging interval later turns out closed.
		{0, 1, 2, 3, 4, 5, 6},
		{4, 6, 1, 3, 0, 2, 5},
		{3, 5, 0, 6, 2, 4, 1},
		{1, 0, 4, 3, 2, 6, 5},
	} {
		m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
		saved := incidents{}
		now := at(300)
		for _, i := range order {
			now = now.Add(time.Second)
			eff := m.Batch(deliveries[i].location, deliveries[i].reports, nil, now).Effects
			saved.add(eff)
			// Rounds learn nothing here: every location's answer
			// is unknown.
			for _, r := range eff.Rounds {
				var answers []Evidence
				for _, l := range r.Locations {
					answers = append(answers, answer(l, OutcomeUnknown, now))
				}
				saved.add(m.RoundDone(r.Key, r.ID, answers, now))
			}
		}
		got := saved.summary()
		if want == nil {
			want = got
			if len(want) != 3 {
				t.Fatalf("order %v: incidents %v, want 3", order, want)
			}
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("order %v: incidents\n%v\nwant (as in the first order)\n%v", order, got, want)
		}
		if v := stateOf(t, m); v.State != StateDown || !v.DownSince.Equal(at(200)) {
			t.Errorf("order %v: state %s down since %v, want down since %v (fra and sfo still failing)", order, v.State, v.DownSince, at(200))
		}
	}
	for _, w := range []string{"start=" + at(0).Format(time.RFC3339Nano) + " confirmed=true open=false resolution=recovered ended=" + at(30).Format(time.RFC3339Nano),
		"start=" + at(100).Format(time.RFC3339Nano) + " confirmed=false open=false resolution=false_alarm ended=" + at(110).Format(time.RFC3339Nano),
		"start=" + at(200).Format(time.RFC3339Nano) + " confirmed=true open=true resolution= ended=" + time.Time{}.Format(time.RFC3339Nano)} {
		if !slices.Contains(want, w) {
			t.Errorf("incidents %v lack %q", want, w)
		}
	}
}

func TestFalseAlarmLaterFoundOverlappingIsReclassified(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	r := mustOneRound(t, m.Report("ams", failing(t0, t0), t0))
	eff := m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeSuccess, t0.Add(40*time.Second)), answer("sfo", OutcomeSuccess, t0.Add(40*time.Second))}, t0.Add(40*time.Second))
	if !slices.Equal(eff.Resolved, []string{ResolutionFalseAlarm}) {
		t.Fatalf("resolutions = %v, want false_alarm", eff.Resolved)
	}
	m.Report("ams", recoveredFrom(t0.Add(30*time.Second), t0), t0.Add(41*time.Second))
	// sfo's reports of a failure from 10 s to 20 s arrive late.
	res := m.Batch("sfo", []*api.Report{failing(t0.Add(10*time.Second), t0.Add(10*time.Second)), recoveredFrom(t0.Add(20*time.Second), t0.Add(10*time.Second))}, nil, t0.Add(50*time.Second))
	if res.Reclassified != 1 {
		t.Fatalf("reclassified %d, want 1: %+v", res.Reclassified, res.Effects)
	}
	inc := lastSaved(t, res.Effects)
	if inc.ID != 1 || inc.Resolution != ResolutionRecovered || !inc.Confirmed() || inc.Open() || !inc.EndedAt.Equal(t0.Add(20*time.Second)) {
		t.Errorf("incident = %+v, want #1 reclassified as recovered, ended at +20s", inc)
	}
	neverDown(t, m, "after the reclassification")
}

func snapshot(at time.Time, notUp ...*api.Report) *api.Snapshot {
	s := &api.Snapshot{Time: at}
	for _, r := range notUp {
		c := *r
		c.Result = nil
		s.NotUp = append(s.NotUp, c)
	}
	return s
}

func TestSnapshotsConfirmAnOngoingOutageAtOnce(t *testing.T) {
	// A coordinator whose store was wiped hears the snapshots only.
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	now := t0.Add(10 * time.Minute)
	other := api.TargetKey{Target: "https://up.example", Module: "http_2xx"}
	var d api.Digest
	d.Add(other)
	snap := snapshot(now, failing(now, t0))
	snap.Up, snap.UpDigest = 1, d.String()
	res := m.Batch("ams", nil, snap, now)
	if !res.WantTargets {
		t.Error("the coordinator does not know ams's up target, yet does not ask for the list")
	}
	if len(res.Rounds) != 1 {
		t.Errorf("one location failing: rounds %+v, want one", res.Rounds)
	}
	snap = snapshot(now, failing(now, t0.Add(5*time.Second)))
	snap.Up, snap.UpDigest, snap.UpTargets = 1, d.String(), []api.TargetKey{other}
	res = m.Batch("fra", nil, snap, now.Add(time.Second))
	if res.WantTargets {
		t.Error("asked for fra's list of up targets with it at hand")
	}
	v := stateOf(t, m)
	if v.State != StateDown || !v.DownSince.Equal(t0) || len(res.Confirmed) != 1 {
		t.Fatalf("state %s since %v (confirmed %v), want down since ams's first failure, without a round", v.State, v.DownSince, res.Confirmed)
	}
	// Every scheduled target is listed, the up one included.
	var found bool
	for _, tv := range m.Targets() {
		if tv.Target == other.Target {
			found = tv.State == StateUp && slices.Equal(tv.ScheduledIn, []string{"fra"}) && len(tv.Locations) == 1 && tv.Locations[0].Result == OutcomeSuccess
		}
	}
	if !found {
		t.Errorf("targets %+v lack %s up in fra", m.Targets(), other.Target)
	}
	// A repeated snapshot adds no incident; one without the target
	// closes its interval there.
	res = m.Batch("ams", nil, snapshot(now.Add(time.Minute), failing(now.Add(time.Minute), t0)), now.Add(time.Minute))
	for _, inc := range res.Save {
		if inc.ID != 1 {
			t.Errorf("a repeated snapshot saved incident %d", inc.ID)
		}
	}
	m.Batch("ams", nil, snapshot(now.Add(2*time.Minute)), now.Add(2*time.Minute))
	if v := stateOf(t, m); v.Locations[0].Result != OutcomeSuccess {
		t.Errorf("ams's latest = %+v, want success from its snapshot", v.Locations[0])
	}
}

func TestCoveredIntervalSeenAgainOpensNothing(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	r := mustOneRound(t, m.Report("ams", failing(t0, t0), t0))
	m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeSuccess, t0), answer("sfo", OutcomeSuccess, t0)}, t0.Add(time.Second))
	for i := range 3 {
		now := t0.Add(time.Duration(i+1) * time.Minute)
		res := m.Batch("ams", nil, snapshot(now, failing(now, t0)), now)
		if len(res.Save)+len(res.Rounds) != 0 || stateOf(t, m).IncidentID != 0 {
			t.Errorf("snapshot %d repeating ams's failure: %+v, want nothing new", i, res.Effects)
		}
	}
}

func TestIntervalsAreBounded(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	at := t0
	for range 3 * maxStreaks {
		m.Report("ams", failing(at, at), at)
		m.Report("ams", recoveredFrom(at.Add(time.Second), at), at.Add(time.Second))
		at = at.Add(10 * time.Second)
	}
	m.Due(at)
	h := m.targets[key].locs[0].hist
	if len(h.streaks) > maxStreaks || len(h.closings) > maxClosings {
		t.Errorf("%d streaks and %d closings kept, want at most %d and %d", len(h.streaks), len(h.closings), maxStreaks, maxClosings)
	}
	m.Due(at.Add(intervalRetention + 2*time.Minute))
	if h := m.targets[key].locs[0].hist; h != nil {
		t.Errorf("intervals older than %s kept: %+v", intervalRetention, h)
	}
}

package confirm

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// window is a maintenance window of key from start to end.
type window struct{ start, end time.Time }

func (w *window) applies(k Key, at time.Time) bool {
	return k == key && !at.Before(w.start) && at.Before(w.end)
}

func TestMaintenanceFailureOpensNoOutage(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	w := &window{start: t0.Add(-time.Minute), end: t0.Add(10 * time.Minute)}
	m.SetMaintenance(w.applies)

	// Every location fails the target at once: without the window this
	// confirms without a round.
	eff := m.Report("ams", failing(t0, t0), t0)
	eff.Merge(m.Report("fra", failing(t0, t0), t0))
	eff.Merge(m.Report("sfo", failing(t0, t0), t0))
	if len(eff.Confirmed) != 0 || len(eff.Rounds) != 0 {
		t.Fatalf("during a window: confirmed %v, rounds %v; want neither", eff.Confirmed, eff.Rounds)
	}
	if !slices.Equal(eff.Resolved, []string{ResolutionMaintenance}) {
		t.Fatalf("resolutions = %v, want one incident resolved as maintenance", eff.Resolved)
	}
	inc := lastSaved(t, eff)
	if inc.Resolution != ResolutionMaintenance || inc.Confirmed() || inc.Open() || !inc.StartedAt.Equal(t0) {
		t.Errorf("recorded incident = %+v, want resolved as maintenance, never confirmed, started at the first failure", inc)
	}
	if v := stateOf(t, m); v.State != StateUp || !v.DownSince.IsZero() {
		t.Errorf("state = %s, want up during the window", v.State)
	}
	// Rounds due and more failures inside the window change nothing.
	for i := 1; i <= 5; i++ {
		now := t0.Add(time.Duration(i) * time.Minute)
		eff = m.Due(now)
		eff.Merge(m.Report("ams", failing(now, t0), now))
		if len(eff.Rounds)+len(eff.Confirmed)+len(eff.Resolved) != 0 || stateOf(t, m).State != StateUp {
			t.Fatalf("at %s: effects %+v, state %s; want nothing while the window lasts", now.Sub(t0), eff, stateOf(t, m).State)
		}
	}
	// The suspect-location logic learns nothing: a maintenance failure
	// contradicts no location.
	for _, s := range m.Suspects(t0.Add(5 * time.Minute)) {
		if s.Suspect {
			t.Errorf("location %s became suspect from a maintenance failure", s.Location)
		}
	}
}

func TestMaintenanceOutlastedOpensAgain(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	w := &window{start: t0.Add(-time.Minute), end: t0.Add(2 * time.Minute)}
	m.SetMaintenance(w.applies)
	m.Report("ams", failing(t0, t0), t0)
	m.Report("fra", failing(t0, t0), t0)
	if v := stateOf(t, m); v.State != StateUp {
		t.Fatalf("state during the window = %s, want up", v.State)
	}
	// Due inside the window changes nothing; the first Due after it sees
	// the failure still going on with no new report, and confirms it.
	if eff := m.Due(w.end.Add(-time.Second)); len(eff.Save) != 0 {
		t.Fatalf("Due inside the window saved %+v", eff.Save)
	}
	eff := m.Due(w.end)
	v := stateOf(t, m)
	if v.State != StateDown || len(eff.Confirmed) != 1 {
		t.Fatalf("after the window: state %s, confirmed %v; want down and confirmed", v.State, eff.Confirmed)
	}
	inc := lastSaved(t, eff)
	if inc.ID != 1 || !inc.Open() || inc.Resolution != "" || !inc.ConfirmedAt.Equal(w.end) {
		t.Errorf("incident = %+v, want #1 reopened and confirmed at the window's end", inc)
	}
}

func TestMaintenanceOverBeforeTheFailure(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	w := &window{start: t0, end: t0.Add(2 * time.Minute)}
	m.SetMaintenance(w.applies)
	m.Report("ams", failing(t0.Add(time.Second), t0.Add(time.Second)), t0.Add(time.Second))
	m.Report("fra", failing(t0.Add(time.Second), t0.Add(time.Second)), t0.Add(time.Second))
	m.Report("ams", recovered(t0.Add(time.Minute)), t0.Add(time.Minute))
	m.Report("fra", recovered(t0.Add(time.Minute)), t0.Add(time.Minute))
	// Over within the window: stays a maintenance record, even when later
	// snapshots or Due evaluate the target again.
	eff := m.Due(w.end.Add(time.Second))
	eff.Merge(m.Report("sfo", recovered(w.end.Add(2*time.Second)), w.end.Add(2*time.Second)))
	if len(eff.Confirmed) != 0 || eff.Reclassified != 0 || stateOf(t, m).State != StateUp {
		t.Errorf("after the window: confirmed %v, reclassified %d, state %s; want none, 0, up", eff.Confirmed, eff.Reclassified, stateOf(t, m).State)
	}
	// A new failure after the window is an outage as usual.
	at := w.end.Add(time.Minute)
	m.Report("ams", failing(at, at), at)
	eff = m.Report("fra", failing(at, at), at)
	if stateOf(t, m).State != StateDown || len(eff.Confirmed) != 1 || lastSaved(t, eff).ID != 2 {
		t.Errorf("a failure after the window: state %s, confirmed %v; want a new incident #2, down", stateOf(t, m).State, eff.Confirmed)
	}
}

func TestMaintenanceStartingDuringAnOutage(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	r := mustOneRound(t, m.Report("ams", failing(t0, t0), t0))
	eff := m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeFailure, t0), answer("sfo", OutcomeFailure, t0)}, t0)
	if stateOf(t, m).State != StateDown || len(eff.Confirmed) != 1 {
		t.Fatalf("before the window: state %s, want down", stateOf(t, m).State)
	}
	// The window starts: the confirmed outage stays open and down, is
	// verified again, and recovers as usual.
	w := &window{start: t0.Add(time.Second), end: t0.Add(time.Hour)}
	m.SetMaintenance(w.applies)
	r = mustOneRound(t, m.Due(t0.Add(30*time.Second)))
	at := t0.Add(31 * time.Second)
	eff = m.RoundDone(key, r.ID, []Evidence{answer("ams", OutcomeFailure, at), answer("fra", OutcomeFailure, at), answer("sfo", OutcomeFailure, at)}, at)
	if v := stateOf(t, m); v.State != StateDown || !v.DownSince.Equal(t0) || len(eff.Resolved) != 0 {
		t.Errorf("in the window: state %s down since %v, resolved %v; want still down since %v", v.State, v.DownSince, eff.Resolved, t0)
	}
	m.Report("ams", recovered(t0.Add(35*time.Second)), t0.Add(35*time.Second))
	eff = m.Report("sfo", recovered(t0.Add(40*time.Second)), t0.Add(40*time.Second))
	if !slices.Equal(eff.Resolved, []string{ResolutionRecovered}) || stateOf(t, m).State != StateUp {
		t.Errorf("recovery in the window: resolved %v, state %s; want [recovered], up", eff.Resolved, stateOf(t, m).State)
	}

	// An incident not confirmed yet when the window starts never is: its
	// round ends inside the window.
	m2 := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	r = mustOneRound(t, m2.Report("ams", failing(t0, t0), t0))
	m2.SetMaintenance((&window{start: t0.Add(time.Second), end: t0.Add(time.Hour)}).applies)
	eff = m2.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeFailure, t0), answer("sfo", OutcomeFailure, t0)}, t0.Add(2*time.Second))
	if len(eff.Confirmed) != 0 || !slices.Equal(eff.Resolved, []string{ResolutionMaintenance}) || stateOf(t, m2).State != StateUp {
		t.Errorf("a round ending in the window: confirmed %v, resolved %v, state %s; want none, [maintenance], up",
			eff.Confirmed, eff.Resolved, stateOf(t, m2).State)
	}
}

// TestMaintenanceFailuresMakeNoLocationSuspect: one location failing many
// targets the others see up makes it suspect; not when the rounds end
// inside a window (the window's doing, not the location's).
func TestMaintenanceFailuresMakeNoLocationSuspect(t *testing.T) {
	suspect := func(window bool) bool {
		m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
		var rounds []RoundRequest
		for i := range 40 {
			r := failing(t0, t0)
			r.Target = fmt.Sprintf("https://%d.example", i)
			rounds = append(rounds, m.Report("ams", r, t0).Rounds...)
		}
		if window {
			m.SetMaintenance(func(Key, time.Time) bool { return true })
		}
		at := t0.Add(time.Second)
		for _, r := range rounds {
			m.RoundDone(r.Key, r.ID, []Evidence{answer("fra", OutcomeSuccess, at), answer("sfo", OutcomeSuccess, at)}, at)
		}
		for i := 2; i <= 4; i++ {
			m.Due(t0.Add(time.Duration(i) * time.Second))
		}
		for _, s := range m.Suspects(t0.Add(4 * time.Second)) {
			if s.Location == "ams" {
				return s.Suspect
			}
		}
		return false
	}
	if !suspect(false) {
		t.Fatal("without a window, ams failing 40 targets the others see up is not suspect: the test proves nothing")
	}
	if suspect(true) {
		t.Error("ams became suspect from failures resolved as maintenance")
	}
}

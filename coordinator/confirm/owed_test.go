package confirm

import (
	"testing"
	"time"
)

func TestRoundsOwed(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	if _, owed := m.RoundsOwed(t0); owed {
		t.Fatal("no incident, yet rounds owed")
	}
	r := mustOneRound(t, m.Report("ams", failing(t0, t0.Add(-20*time.Second)), t0))
	if since, owed := m.RoundsOwed(t0.Add(time.Second)); !owed || !since.Equal(t0) {
		t.Errorf("a round in flight since t0: owed %t since %v", owed, since)
	}
	// Confirmed: the next round falls due reverify_interval later.
	done := t0.Add(2 * time.Second)
	m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeFailure, t0), answer("sfo", OutcomeFailure, t0)}, done)
	if _, owed := m.RoundsOwed(done.Add(time.Second)); owed {
		t.Error("between rounds, rounds owed")
	}
	// reverify_interval (30s) later, spread by ±10%.
	due := m.targets[key].nextRound
	if d := due.Sub(done); d < 27*time.Second || d > 33*time.Second {
		t.Fatalf("next round %s after the last, want 30s ± 3s", d)
	}
	if since, owed := m.RoundsOwed(due.Add(5 * time.Second)); !owed || !since.Equal(due) {
		t.Errorf("a round due 5s ago and not started: owed %t since %v, want since %v", owed, since, due)
	}
}

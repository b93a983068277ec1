package confirm

import "time"

// Maintenance windows. While a window applies to a target (the caller's
// func says when), its failures are recorded but never confirmed:
//
//   - a failure that would open an incident opens one resolved at once as
//     maintenance;
//   - an incident not confirmed yet when the window starts (or whose
//     verification round ends inside it) is resolved as maintenance;
//   - a closed incident is not reclassified as an outage while the window
//     lasts, and one resolved as maintenance never is;
//   - an outage confirmed before the window started stays open and down
//     until it recovers: it was an outage before anyone declared the
//     window, and resolving it would cut its real length out of the log.
//     Rules keep quiet on vantage_target_maintenance instead.
//
// When the window ends and the failure it covered goes on, the incident
// resolved as maintenance is opened again and verified like any failure
// (Due notices the end within a second, without waiting for a report).

// SetMaintenance sets what says whether a maintenance window applies to a
// target at a time; nil means never. f is called with the machine's lock
// held and must not call back into the machine.
func (m *Machine) SetMaintenance(f func(Key, time.Time) bool) { m.maintenance = f }

func (m *Machine) inMaintenance(k Key, now time.Time) bool {
	return m.maintenance != nil && m.maintenance(k, now)
}

// resolveMaintenance resolves the target's open incident, not confirmed,
// as maintenance.
func (m *Machine) resolveMaintenance(t *target, now time.Time) Effects {
	t.maintained = true
	return m.resolve(t, ResolutionMaintenance, time.Time{}, now)
}

// maintain applies maintenance windows to an episode and the incident it
// belongs to (nil when none) before evaluate judges it. It returns the
// incident to judge, and skip when the episode must not be judged now.
func (m *Machine) maintain(t *target, ep *episode, inc *Incident, now time.Time, eff *Effects) (*Incident, bool) {
	if !m.inMaintenance(t.key, now) {
		if inc == nil || inc.Resolution != ResolutionMaintenance {
			return inc, false
		}
		if !ep.open || t.incident != nil {
			// Over within the window, or another incident is open:
			// the maintenance record stays as it is.
			return inc, true
		}
		// The window is over and the target still fails.
		t.maintained = false
		m.reopen(t, inc)
		inc.State = StateSeemsDown
		m.setState(t, StateSeemsDown, now)
		t.nextRound = now
		eff.Save = append(eff.Save, inc.record())
		return inc, false
	}
	if t.incident != nil && !t.incident.Confirmed() {
		eff.Merge(m.resolveMaintenance(t, now))
	}
	if inc == nil {
		return nil, false // openIncident records it as maintenance
	}
	// A confirmed outage goes on; closed incidents stay as they are.
	return inc, inc != t.incident
}

// windowOver evaluates a target whose failure a window covered once the
// window is over: the failure may go on with no report to say so.
func (m *Machine) windowOver(t *target, now time.Time) Effects {
	if !t.maintained || t.incident != nil || m.inMaintenance(t.key, now) {
		return Effects{}
	}
	t.maintained = false
	return m.evaluate(t, now)
}

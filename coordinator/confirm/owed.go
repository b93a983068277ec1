package confirm

import "time"

// RoundsOwed says whether verification work is owed at now, and since
// when: the start of the oldest round in flight, or the time the oldest
// round due but not started fell due (never before its incident opened).
// The coordinator's liveness clock of verification rounds reads it.
func (m *Machine) RoundsOwed(now time.Time) (since time.Time, owed bool) {
	for _, t := range m.targets {
		if t.incident == nil {
			continue
		}
		var s time.Time
		switch {
		case t.round != nil:
			s = t.round.started
		case !now.Before(t.nextRound):
			s = t.nextRound
			if t.incident.OpenedAt.After(s) {
				s = t.incident.OpenedAt
			}
		default:
			continue
		}
		if !owed || s.Before(since) {
			since, owed = s, true
		}
	}
	return since, owed
}

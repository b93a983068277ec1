package confirm

import (
	"hash/fnv"
	"time"
)

// A target is flapping when the trusted locations' verdict about it
// (failing somewhere, or not) changed flapping.changes times within
// flapping.window. A confirmed outage resolves only once no trusted
// location saw the target fail for recovery_hold, or for
// flapping.hold_down while it flaps: a target that fails every other
// minute is one incident and one page, not one per failure.

// maxChanges bounds the change times kept per target.
const maxChanges = 64

// noteCondition records a change of the target's condition (failing at a
// trusted location, or not) and updates whether it flaps.
func (m *Machine) noteCondition(t *target, now time.Time) {
	failing := m.failingTrusted(t)
	if failing == t.failing {
		m.updateFlapping(t, now)
		return
	}
	t.failing = failing
	if len(t.changes) >= maxChanges {
		t.changes = append(t.changes[:0], t.changes[1:]...)
	}
	t.changes = append(t.changes, now)
	if failing {
		t.lastFailure = now
	}
	m.updateFlapping(t, now)
}

// updateFlapping decides whether the target flaps: enough changes within
// the window, and until it has been stable for the hold-down.
func (m *Machine) updateFlapping(t *target, now time.Time) {
	fc := m.conf.Flapping
	n := 0
	cutoff := now.Add(-fc.Window)
	for _, at := range t.changes {
		if !at.Before(cutoff) {
			n++
		}
	}
	switch {
	case n >= fc.Changes:
		t.flapping = true
		if t.incident != nil && !t.incident.Flapping {
			t.incident.Flapping = true
		}
	case t.flapping && len(t.changes) > 0 && now.Sub(t.changes[len(t.changes)-1]) >= fc.HoldDown:
		t.flapping = false
	}
}

// stableFor is how long no trusted location has seen the target fail.
func (m *Machine) stableFor(t *target, now time.Time) time.Duration {
	if m.failingTrusted(t) {
		return 0
	}
	last := t.lastFailure
	for i := range t.locs {
		if m.trusted(t.locs[i].name) {
			last = later(last, t.locs[i].hist.lastFailure())
		}
	}
	return now.Sub(last)
}

// recoveryHold is how long a confirmed outage must be stable before it
// resolves.
func (m *Machine) recoveryHold(t *target) time.Duration {
	if t.flapping {
		return max(m.conf.RecoveryHold, m.conf.Flapping.HoldDown)
	}
	return m.conf.RecoveryHold
}

// reverifyAt is when a target verified at now is verified again:
// reverify_interval later, spread by up to ±10% so that incidents opened
// together are not all re-checked together.
func (m *Machine) reverifyAt(t *target, now time.Time) time.Time {
	return m.spreadAfter(t, now, m.conf.ReverifyInterval)
}

// retryAt is when an incident whose round was undecided (too few
// answers) is verified again: verify_timeout later (reverify_interval if
// shorter), spread as reverifyAt spreads.
func (m *Machine) retryAt(t *target, now time.Time) time.Time {
	return m.spreadAfter(t, now, min(m.conf.ReverifyInterval, m.conf.VerifyTimeout))
}

// spreadAfter is iv after now, spread by up to ±10% by the target and
// its incident's rounds.
func (m *Machine) spreadAfter(t *target, now time.Time, iv time.Duration) time.Time {
	spread := int64(iv / 5)
	if spread <= 0 {
		return now.Add(iv)
	}
	h := fnv.New64a()
	h.Write([]byte(t.key.Module))
	h.Write([]byte{0})
	h.Write([]byte(t.key.Target))
	rounds := 0
	if t.incident != nil {
		rounds = t.incident.Rounds
	}
	h.Write([]byte{byte(rounds), byte(rounds >> 8)})
	jitter := time.Duration(int64(h.Sum64()%uint64(spread)) - spread/2)
	return now.Add(iv + jitter)
}

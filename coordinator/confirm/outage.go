package confirm

import (
	"time"
)

// evaluate judges a target's episodes (see episodes) against its
// incidents: an episode whose intervals overlap in enough locations is a
// confirmed outage, recorded as recovered at once when the overlap is
// already over; an ongoing one opens an incident and a verification
// round; an episode over before anyone confirmed it is a false alarm. An
// incident belongs to the episode its start lies in, so an interval seen
// again (snapshots repeat them) opens nothing new. What it decides
// depends on the intervals, not on the order they were heard in.
func (m *Machine) evaluate(t *target, now time.Time) Effects {
	var eff Effects
	var round bool
	eps := episodes(t.locs, m.trusted, m.conf.MinFailingLocations)
	for i := range eps {
		ep := &eps[i]
		if !ep.streaks && !ep.confirmed {
			// The coordinator's own checks, or late reports, alone
			// open nothing.
			continue
		}
		inc, skip := m.maintain(t, ep, t.incidentOf(ep), now, &eff)
		if skip {
			continue
		}
		if inc == nil && t.incident != nil && ep.open {
			// One open incident per target: an ongoing episode takes
			// it over from an episode that is over, or adopts one
			// restored from the store.
			if !m.yield(t, eps, now, &eff) {
				inc = t.incident
			}
		}
		if inc == nil {
			inc = m.openIncident(t, ep, now, &eff)
			round = round || (inc == t.incident && !inc.Confirmed())
			continue
		}
		changed := false
		if ep.start.Before(inc.StartedAt) {
			// Late reports show the outage began earlier.
			inc.StartedAt, changed = ep.start, true
		}
		switch {
		case inc == t.incident:
			changed = m.judgeOpen(t, ep, now, &eff) || changed
		case t.incident == nil && ep.ongoing && inc.Resolution == ResolutionRecovered && m.failedSince(t, inc.ResolvedAt):
			// Recorded as over, yet a location tells of failures since
			// (a snapshot lists the streak again): the outage goes on.
			m.reopen(t, inc)
			inc.State = StateDown
			t.nextRound = m.reverifyAt(t, now)
			m.setState(t, StateDown, now)
			changed = true
		case ep.confirmed && !inc.Confirmed():
			m.reclassify(t, inc, ep, now, &eff)
			changed = true
		case ep.confirmed && !ep.ongoing && !inc.EndedAt.Equal(ep.overlapEnd) && inc.Resolution == ResolutionRecovered:
			inc.EndedAt, changed = ep.overlapEnd, true
		case !ep.confirmed && !ep.open && inc.Resolution == ResolutionFalseAlarm && !inc.EndedAt.Equal(ep.end):
			inc.EndedAt, changed = ep.end, true
		}
		if changed && (inc == t.incident || !inc.Open()) {
			eff.Save = append(eff.Save, inc.record())
		}
	}
	if round && t.incident != nil && t.round == nil {
		eff.Merge(m.startRound(t, now))
	}
	return eff
}

// incidentOf returns the incident whose start lies in the episode: the
// open one first, else the oldest closed one.
func (t *target) incidentOf(ep *episode) *Incident {
	in := func(inc *Incident) bool {
		return !inc.StartedAt.Before(ep.start) && (ep.open || inc.StartedAt.Before(ep.end))
	}
	if t.incident != nil && (in(t.incident) || (t.incident.Confirmed() && !ep.start.Before(t.incident.StartedAt))) {
		// A confirmed outage goes on, through failures that stop and
		// start again, until it recovers.
		return t.incident
	}
	var out *Incident
	for _, c := range t.closed {
		if in(c) && (out == nil || c.ID < out.ID) {
			out = c
		}
	}
	return out
}

// yield resolves the open incident when the episode it belongs to is over
// (a newer one is going on), and reports whether it did.
func (m *Machine) yield(t *target, eps []episode, now time.Time, eff *Effects) bool {
	for i := range eps {
		ep := &eps[i]
		if t.incidentOf(ep) != t.incident {
			continue
		}
		if ep.open {
			return false
		}
		if t.incident.Confirmed() && m.resumes(t, ep, eps, now) {
			// Failing again within the recovery hold: the same
			// outage goes on.
			return false
		}
		if ep.confirmed || t.incident.Confirmed() {
			if !t.incident.Confirmed() {
				m.confirm(t.incident, now, eff)
			}
			eff.Merge(m.resolve(t, ResolutionRecovered, ep.overlapEnd, now))
		} else {
			eff.Merge(m.resolve(t, ResolutionFalseAlarm, ep.end, now))
		}
		return true
	}
	return false // restored, and no episode of its own yet: adopt it
}

// openIncident records a new incident for an episode no incident covers.
func (m *Machine) openIncident(t *target, ep *episode, now time.Time, eff *Effects) *Incident {
	m.lastID++
	inc := &Incident{ID: m.lastID, Target: t.key.Target, Module: t.key.Module, State: StateSeemsDown,
		StartedAt: ep.start, OpenedAt: now}
	seen := map[int]bool{}
	for _, s := range ep.spans {
		if s.streak < 0 || seen[s.loc] {
			continue
		}
		seen[s.loc] = true
		if inc.Reporter == "" {
			inc.Reporter = t.locs[s.loc].name
		}
		if e, ok := t.locs[s.loc].evidence(); ok {
			inc.addEvidence(e)
		}
	}
	eff.event(EventOpened, inc)
	switch {
	case m.inMaintenance(t.key, now):
		// Recorded, and never confirmed (see maintain).
		t.maintained = true
		m.closeIncident(t, inc, ResolutionMaintenance, time.Time{}, now, eff)
	case ep.confirmed && !ep.ongoing && !(ep.open && (!ep.settled || m.contestedHeld(t, inc, now))):
		// Known only once over: confirmed and recovered at once, and
		// the target never goes down.
		m.confirm(inc, now, eff)
		m.closeIncident(t, inc, ResolutionRecovered, ep.overlapEnd, now, eff)
	case !ep.open && !ep.ongoing && !ep.lingers:
		// Over before enough locations failed at once (a location
		// that can no longer tell does not say it is over: the
		// rounds ask).
		m.closeIncident(t, inc, ResolutionFalseAlarm, ep.end, now, eff)
	default:
		t.incident = inc
		t.recovery = recovery{}
		if ep.ongoing && !m.contestedHeld(t, inc, now) {
			// Enough locations fail now: no round needed to go down.
			m.confirm(inc, now, eff)
			t.nextRound = m.reverifyAt(t, now)
			m.setState(t, StateDown, now)
		} else {
			m.setState(t, StateSeemsDown, now)
		}
		eff.Save = append(eff.Save, inc.record())
	}
	return inc
}

// closeIncident records an incident that is not the target's open one as
// resolved.
func (m *Machine) closeIncident(t *target, inc *Incident, resolution string, ended, now time.Time, eff *Effects) {
	inc.LastState = inc.State
	if inc.Confirmed() {
		inc.LastState = StateDown
	}
	inc.State, inc.Resolution, inc.ResolvedAt, inc.EndedAt = StateResolved, resolution, now, ended
	t.closed = append(t.closed, inc)
	eff.Save = append(eff.Save, inc.record())
	eff.Resolved = append(eff.Resolved, resolution)
	eff.event(EventResolved, inc)
}

// judgeOpen applies an episode to the target's open incident; it reports
// whether the incident changed and is still open.
func (m *Machine) judgeOpen(t *target, ep *episode, now time.Time, eff *Effects) bool {
	inc := t.incident
	switch {
	case ep.confirmed && !inc.Confirmed() && ep.open && m.contestedHeld(t, inc, now):
		// Contested while still failing: the round due at the end of
		// the hold decides.
		return false
	case ep.confirmed && !inc.Confirmed() && ep.open && !ep.ongoing && !ep.settled:
		// Only late reports (history) overlap a location still
		// failing: whether they fail still is for the rounds to tell.
		return false
	case ep.confirmed && !inc.Confirmed():
		m.confirm(inc, now, eff)
		if !ep.ongoing {
			// Over before it was known: never down.
			eff.Merge(m.resolve(t, ResolutionRecovered, ep.overlapEnd, now))
			return false
		}
		t.recovery = recovery{}
		t.nextRound = m.reverifyAt(t, now)
		m.setState(t, StateDown, now)
		return true
	case ep.ongoing && inc.Confirmed() && t.state != StateDown:
		m.setState(t, StateDown, now)
		return true
	case !ep.confirmed && !inc.Confirmed() && t.round == nil && !m.failingTrusted(t) && m.contested(t, inc.StartedAt):
		// Every interval closed, no round pending, and a location saw
		// the target succeed: too few locations ever failed at once.
		// Intervals that ended because their locations could no longer
		// tell (unknown) prove nothing: the rounds go on.
		eff.Merge(m.resolve(t, ResolutionFalseAlarm, ep.end, now))
		return false
	}
	return false
}

// failedSince reports whether a trusted location's interval is open and
// it saw the target fail after at.
func (m *Machine) failedSince(t *target, at time.Time) bool {
	for i := range t.locs {
		if ls := &t.locs[i]; m.trusted(ls.name) && ls.hist.open() && ls.hist.lastFailure().After(at) {
			return true
		}
	}
	return false
}

// failingSomewhere reports whether any location's interval is open.
func (t *target) failingSomewhere() bool {
	for i := range t.locs {
		if t.locs[i].hist.open() {
			return true
		}
	}
	return false
}

// reclassify turns a false alarm whose intervals turn out to overlap in
// enough locations into a confirmed outage: recovered at once when the
// overlap is over, open and down again while it goes on.
func (m *Machine) reclassify(t *target, inc *Incident, ep *episode, now time.Time, eff *Effects) {
	if ep.ongoing && t.incident == nil && m.conf.ContestedHold > 0 && m.contested(t, inc.StartedAt) {
		// A location sees the target up: reopened to be verified, and
		// confirmed only if the failures outlast the hold.
		m.reopen(t, inc)
		t.heldSince, t.nextRound = now, now.Add(m.conf.ContestedHold)
		inc.State = StateSeemsDown
		m.setState(t, StateSeemsDown, now)
		return
	}
	m.confirm(inc, now, eff)
	inc.Resolution, inc.EndedAt, inc.LastState = ResolutionRecovered, ep.overlapEnd, StateDown
	eff.Reclassified++
	eff.event(EventReclassified, inc)
	if !ep.ongoing || t.incident != nil {
		return
	}
	m.reopen(t, inc)
	t.nextRound = m.reverifyAt(t, now)
	inc.State = StateDown
	m.setState(t, StateDown, now)
}

// resumes says whether the episode after ep, the one going on, began
// within the recovery hold after ep ended: the confirmed outage of ep goes
// on rather than ending and starting again.
func (m *Machine) resumes(t *target, ep *episode, eps []episode, now time.Time) bool {
	for i := range eps {
		next := &eps[i]
		if next.open && next.start.After(ep.start) {
			return next.start.Sub(ep.end) < m.recoveryHold(t)
		}
	}
	return false
}

// reopen makes a closed incident the target's open one again.
func (m *Machine) reopen(t *target, inc *Incident) {
	inc.ResolvedAt, inc.Resolution, inc.EndedAt, inc.LastState = time.Time{}, "", time.Time{}, ""
	for i, c := range t.closed {
		if c == inc {
			t.closed = append(t.closed[:i], t.closed[i+1:]...)
			break
		}
	}
	t.incident = inc
	t.recovery = recovery{}
}

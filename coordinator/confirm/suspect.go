package confirm

import (
	"slices"
	"time"
)

// A location whose failures the others contradict far more than usual is
// suspect: something local (an overloaded host, a broken resolver, a
// module timeout too tight for where it runs) fails its checks, not the
// targets. While it is suspect its failures count for nothing: they open
// no incident, and quorum is taken from the other locations.
//
// A failure is contradicted when the incident it opened ends as a false
// alarm (the other locations saw the target succeed), or, while the
// location is suspect, when the others' latest evidence is a success. The
// location is suspect once, within suspect_locations.window, at least
// min_targets of its targets were contradicted and their share of its
// targets rose by suspect_locations.share above both its usual share and
// the other locations' (median) share: a mass outage fails everywhere and
// makes no location suspect. It is trusted again once a window passed and
// the share fell back below half that margin.

// Why a location is suspect.
const (
	// ReasonContradicted: the location's failures are contradicted by
	// the others far more than usual.
	ReasonContradicted = "contradicted"
	// ReasonSelfReported: the location's exporter says it cannot vouch
	// for its results (api.Batch.Degraded: its scheduler lags, misses
	// checks, or its results are stale).
	ReasonSelfReported = "self_reported"
)

// SuspectReasons lists every reason.
var SuspectReasons = []string{ReasonContradicted, ReasonSelfReported}

// baselineSpan is the time constant of a location's usual share of
// contradicted targets.
const baselineSpan = time.Hour

// trust is what the machine knows of one location's reliability.
type trust struct {
	// contradicted holds, per target, when a failure there was last
	// contradicted, within the window.
	contradicted map[Key]time.Time
	// baseline is the usual share of contradicted targets, learnt while
	// the location is trusted.
	baseline   float64
	baselineAt time.Time
	// scheduled counts the location's targets, as of the latest Due.
	scheduled int
	suspect   bool
	since     time.Time
	// degraded holds the reasons the location's exporter gave in its
	// latest batch for not vouching for its results.
	degraded []string
	// onset is where the contradictions that made it suspect began:
	// false alarms it caused since then are its own.
	onset time.Time
}

func (m *Machine) trustOf(location string) *trust {
	tr, ok := m.trust[location]
	if !ok {
		tr = &trust{contradicted: map[Key]time.Time{}}
		m.trust[location] = tr
	}
	return tr
}

// trusted says whether a location's evidence counts: a configured
// location that is not suspect.
func (m *Machine) trusted(location string) bool {
	if !m.known(location) {
		return false
	}
	tr, ok := m.trust[location]
	return !ok || (!tr.suspect && len(tr.degraded) == 0)
}

// SelfReported records what a location's exporter says of itself in a
// batch: while it names reasons it is degraded, the location is suspect
// (reason self_reported) and its failures count for nothing.
func (m *Machine) SelfReported(location string, degraded []string, now time.Time) Effects {
	var eff Effects
	if !m.known(location) {
		return eff
	}
	tr := m.trustOf(location)
	was := len(tr.degraded) > 0
	tr.degraded = slices.Clone(degraded)
	switch is := len(degraded) > 0; {
	case is && !was:
		eff.Locations = append(eff.Locations, LocationEvent{Location: location, Suspect: true, Reason: ReasonSelfReported, Detail: degraded})
	case !is && was:
		eff.Locations = append(eff.Locations, LocationEvent{Location: location, Reason: ReasonSelfReported})
		m.rejudge(location, now, &eff)
	}
	return eff
}

// rejudge evaluates the targets a location that is trusted again fails:
// its failures count again.
func (m *Machine) rejudge(location string, now time.Time, eff *Effects) {
	if !m.trusted(location) {
		return
	}
	for _, t := range m.targets {
		if ls := t.find(location); ls != nil && ls.hist.open() {
			eff.Merge(m.evaluate(t, now))
		}
	}
}

// trustedCount is how many configured locations are trusted.
func (m *Machine) trustedCount() int {
	n := 0
	for _, l := range m.locations {
		if m.trusted(l) {
			n++
		}
	}
	return n
}

// share is the location's share of contradicted targets within the
// window ending at now.
func (tr *trust) share(window time.Duration, now time.Time) float64 {
	cutoff := now.Add(-window)
	maps := tr.contradicted
	for k, at := range maps {
		if at.Before(cutoff) {
			delete(maps, k)
		}
	}
	return float64(len(maps)) / float64(max(tr.scheduled, len(maps), 1))
}

// contradict records that the others contradicted location's failure of
// t, and judges the location again.
func (m *Machine) contradict(location string, k Key, now time.Time, eff *Effects) {
	if !m.known(location) {
		return
	}
	m.trustOf(location).contradicted[k] = now
	m.judgeLocation(location, now, eff)
}

// judgeLocation decides whether a location is suspect.
func (m *Machine) judgeLocation(location string, now time.Time, eff *Effects) {
	sc := m.conf.SuspectLocations
	tr := m.trustOf(location)
	share := tr.share(sc.Window, now)
	var others []float64
	for _, l := range m.locations {
		if l != location {
			others = append(others, m.trustOf(l).share(sc.Window, now))
		}
	}
	usual := max(tr.baseline, median(others))
	switch {
	case !tr.suspect && len(tr.contradicted) >= sc.MinTargets && share-usual >= sc.Share:
		// The contradictions counted began within the window: what it
		// caused since then is its own.
		tr.suspect, tr.since, tr.onset = true, now, now.Add(-sc.Window)
		eff.Locations = append(eff.Locations, LocationEvent{Location: location, Suspect: true, Reason: ReasonContradicted,
			Contradicted: len(tr.contradicted), Share: share})
		m.discount(location, tr.onset, now, eff)
	case tr.suspect && now.Sub(tr.since) >= sc.Window && share-usual < sc.Share/2:
		tr.suspect = false
		eff.Locations = append(eff.Locations, LocationEvent{Location: location, Reason: ReasonContradicted,
			Contradicted: len(tr.contradicted), Share: share})
		m.rejudge(location, now, eff)
	}
}

// learn moves each trusted location's usual share towards its current
// one; called by Due.
func (m *Machine) learn(now time.Time) {
	window := m.conf.SuspectLocations.Window
	for _, l := range m.locations {
		tr := m.trustOf(l)
		if tr.suspect || now.Sub(tr.baselineAt) < window {
			continue
		}
		if !tr.baselineAt.IsZero() {
			w := min(1, float64(now.Sub(tr.baselineAt))/float64(baselineSpan))
			tr.baseline += (tr.share(window, now) - tr.baseline) * w
		}
		tr.baselineAt = now
	}
}

// discount re-judges what a location that became suspect caused since
// onset: false alarms only it failed are its own (resolution
// location_suspect), and open incidents no trusted location fails any
// more are closed the same way.
func (m *Machine) discount(location string, onset, now time.Time, eff *Effects) {
	for _, t := range m.targets {
		for _, inc := range t.closed {
			if inc.Resolution == ResolutionFalseAlarm && !inc.OpenedAt.Before(onset) && m.onlySuspectsFailed(inc) {
				inc.Resolution = ResolutionSuspect
				eff.Discounted++
				eff.Save = append(eff.Save, inc.record())
			}
		}
		inc := t.incident
		if inc == nil || t.find(location) == nil {
			continue
		}
		if inc.Confirmed() {
			// Confirmed since onset with its vote: without it, do the
			// trusted locations still agree it is down? If not, it was
			// the suspect's doing only when the trusted locations see the
			// target up; while they cannot tell (too few left, or no
			// answer), the outage stays down, as a round that cannot
			// tell leaves it: only successes end a confirmed outage.
			if !inc.ConfirmedAt.Before(onset) && !m.confirmedByTrusted(t) && m.trustedVerdict(t) == VerdictUp {
				eff.Merge(m.resolve(t, ResolutionSuspect, time.Time{}, now))
			}
			continue
		}
		eff.Merge(m.evaluate(t, now))
		if t.incident == inc && t.round == nil && !m.failingTrusted(t) {
			eff.Merge(m.resolve(t, ResolutionSuspect, time.Time{}, now))
		}
	}
}

// confirmedByTrusted: min_failing_locations trusted locations fail the
// target now, by their intervals or their latest answers.
func (m *Machine) confirmedByTrusted(t *target) bool {
	for _, ep := range episodes(t.locs, m.trusted, m.conf.MinFailingLocations) {
		if ep.ongoing {
			return true
		}
	}
	return m.trustedVerdict(t) == VerdictDown
}

// trustedVerdict applies the confirmation rule to the locations' latest
// word on t, as a round's verdict does: trusted locations vote (failing
// while their interval is open or their latest answer failed), and
// suspect ones count as unknown when too few trusted ones are left.
func (m *Machine) trustedVerdict(t *target) Verdict {
	short := m.trustedCount() < m.conf.MinFailingLocations
	failing, unknown := 0, 0
	for _, l := range m.locations {
		if !m.trusted(l) {
			if short {
				unknown++
			}
			continue
		}
		switch ls := t.find(l); {
		case ls == nil:
			unknown++
		case ls.hist.open() || ls.outcome == OutcomeFailure:
			failing++
		case ls.outcome != OutcomeSuccess:
			unknown++
		}
	}
	return Decide(m.conf.MinFailingLocations, failing, unknown)
}

// falseAlarm is how an incident that was never confirmed ends: a false
// alarm, or location_suspect when every location that failed it is
// suspect.
func (m *Machine) falseAlarm(inc *Incident) string {
	if m.onlySuspectsFailed(inc) {
		return ResolutionSuspect
	}
	return ResolutionFalseAlarm
}

// onlySuspectsFailed: some location failed the incident, and each one
// that did is suspect.
func (m *Machine) onlySuspectsFailed(inc *Incident) bool {
	failed := inc.failedLocations()
	for _, l := range failed {
		if m.trusted(l) {
			return false
		}
	}
	return len(failed) > 0
}

// contradictFailures records, when an incident ends as a false alarm,
// that the others contradicted each location that failed it.
func (m *Machine) contradictFailures(inc *Incident, now time.Time, eff *Effects) {
	for _, l := range inc.failedLocations() {
		m.contradict(l, inc.Key(), now, eff)
	}
}

// contradictedNow: while location is suspect, the trusted locations'
// latest evidence about t is a success, and none fails it.
func (m *Machine) contradictedNow(t *target, location string) bool {
	seen := false
	for i := range t.locs {
		ls := &t.locs[i]
		if ls.name == location || !m.trusted(ls.name) {
			continue
		}
		switch {
		case ls.hist.open() || ls.outcome == OutcomeFailure:
			return false
		case ls.outcome == OutcomeSuccess:
			seen = true
		}
	}
	return seen
}

// failingTrusted reports whether a trusted location's interval is open.
func (m *Machine) failingTrusted(t *target) bool {
	for i := range t.locs {
		if m.trusted(t.locs[i].name) && t.locs[i].hist.open() {
			return true
		}
	}
	return false
}

// find returns the target's state of a location, nil when none.
func (t *target) find(location string) *locState {
	for i := range t.locs {
		if t.locs[i].name == location {
			return &t.locs[i]
		}
	}
	return nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// LocationEvent says a location became suspect, or trusted again.
type LocationEvent struct {
	Location string
	// Suspect: it became suspect; false: trusted again.
	Suspect bool
	Reason  string
	// Contradicted is how many of its targets were contradicted within
	// the window, Share their share of its targets.
	Contradicted int
	Share        float64
	// Detail holds the exporter's own reasons (self_reported).
	Detail []string
}

// SuspectView is a location's standing for the API and the series.
type SuspectView struct {
	Location string    `json:"location"`
	Suspect  bool      `json:"suspect"`
	Reason   string    `json:"reason,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	// Contradicted counts its targets contradicted within the window;
	// Share is their share of its targets, Usual its usual share.
	Contradicted int     `json:"contradicted"`
	Share        float64 `json:"share"`
	Usual        float64 `json:"usual_share"`
	// Degraded holds the reasons the location's exporter gives for not
	// vouching for its results.
	Degraded []string `json:"degraded,omitempty"`
}

// Suspects returns every configured location's standing.
func (m *Machine) Suspects(now time.Time) []SuspectView {
	out := make([]SuspectView, 0, len(m.locations))
	for _, l := range m.locations {
		tr := m.trustOf(l)
		v := SuspectView{Location: l, Suspect: tr.suspect, Contradicted: len(tr.contradicted),
			Share: tr.share(m.conf.SuspectLocations.Window, now), Usual: tr.baseline}
		switch {
		case tr.suspect:
			v.Reason, v.Since = ReasonContradicted, tr.since
		case len(tr.degraded) > 0:
			v.Suspect, v.Reason, v.Degraded = true, ReasonSelfReported, tr.degraded
		}
		out = append(out, v)
	}
	return out
}

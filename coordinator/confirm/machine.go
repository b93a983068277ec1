// Package confirm is the coordinator's confirmation state machine: what a
// (target, module) is (up, seems_down, down, unknown), the incidents it
// opens and resolves, and the evidence they hold. It does no I/O and reads
// no clock, which its imports enforce: the standard library, the
// configuration, and the wire and result types only. The coordinator
// package carries out the Effects it returns.
package confirm

import (
	"cmp"
	"slices"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/coordinator/config"
)

// Machine is the confirmation state machine of every (target, module). It
// does no I/O and reads no clock: callers pass the time, and carry out
// the Effects it returns (run verification rounds, store incidents), so
// it is tested with any sequence of events and times. It is not safe for
// concurrent use.
//
//	up ──failure report──▶ seems_down ──round: enough failing──▶ down
//	                            │  └──round: too many unknown──▶ unknown
//	                            └─round: cannot be enough failing─▶ up (false_alarm)
//	down ──recovery_successes successes (≥2 locations)──▶ up (recovered)
type Machine struct {
	conf      config.ConfirmationConfig
	locations []string
	targets   map[Key]*target
	lastID    uint64
	lastRound uint64
}

// target is the coordinator's view of one (target, module).
type target struct {
	key   Key
	state State
	since time.Time // when state was entered
	// seen is the latest evidence of each location.
	seen map[string]Evidence
	// incident is the open incident, if any.
	incident *Incident
	// round is the verification round in flight, if any.
	round *round
	// nextRound is when the next verification round is due while an
	// incident is open and no round is in flight.
	nextRound time.Time
	// recovery counts successes towards resolving a confirmed outage.
	recovery recovery
	touched  time.Time // latest event, for forgetting idle up targets
}

// round is one verification: every location's answer about a target.
type round struct {
	id      uint64
	started time.Time
	answers map[string]Evidence
}

// recovery counts successes since an outage was confirmed or last seen
// again.
type recovery struct {
	successes int
	locations map[string]bool
}

// RoundRequest asks every listed location to check a target now.
type RoundRequest struct {
	Key       Key
	ID        uint64
	Locations []string
	Timeout   time.Duration
}

// Effects are what the caller must do after an event.
type Effects struct {
	// Rounds to run; report each one's answers with RoundDone.
	Rounds []RoundRequest
	// Save holds snapshots of incidents that changed, in order.
	Save []Incident
	// Resolved holds the resolution of each incident closed.
	Resolved []string
	// Confirmed holds, for each outage confirmed, the time from its first
	// failed check to its confirmation.
	Confirmed []time.Duration
}

func (e *Effects) Merge(o Effects) {
	e.Rounds = append(e.Rounds, o.Rounds...)
	e.Save = append(e.Save, o.Save...)
	e.Resolved = append(e.Resolved, o.Resolved...)
	e.Confirmed = append(e.Confirmed, o.Confirmed...)
}

// idleUpRetention is how long a target that is up and quiet stays known.
const idleUpRetention = 24 * time.Hour

// NewMachine returns a machine for the given locations and confirmation
// settings. lastID is the highest incident ID already used.
func NewMachine(c *config.CoordinatorConfig, lastID uint64) *Machine {
	m := &Machine{targets: map[Key]*target{}, lastID: lastID}
	m.Configure(c)
	return m
}

// Configure applies a (re)loaded configuration; rounds in flight finish
// under it.
func (m *Machine) Configure(c *config.CoordinatorConfig) {
	m.conf = c.Confirmation
	m.locations = m.locations[:0]
	for _, l := range c.Locations {
		m.locations = append(m.locations, l.Name)
	}
}

// Restore resumes open incidents, as loaded from the store after a
// restart: each target takes the incident's state and is verified again
// at once.
func (m *Machine) Restore(open []Incident, now time.Time) {
	for i := range open {
		inc := open[i].clone()
		m.lastID = max(m.lastID, inc.ID)
		t := m.target(inc.Key(), now)
		t.incident = &inc
		t.state = inc.State
		t.since = now
		t.nextRound = now
		for _, e := range inc.Evidence {
			if prev, ok := t.seen[e.Location]; !ok || !e.Time.Before(prev.Time) {
				t.seen[e.Location] = e
			}
		}
	}
}

func (m *Machine) target(k Key, now time.Time) *target {
	t, ok := m.targets[k]
	if !ok {
		t = &target{key: k, state: StateUp, since: now, seen: map[string]Evidence{}}
		m.targets[k] = t
	}
	t.touched = now
	return t
}

func (m *Machine) known(location string) bool { return slices.Contains(m.locations, location) }

// Report applies one state-change report of location.
func (m *Machine) Report(location string, r *api.Report, now time.Time) Effects {
	var eff Effects
	t := m.target(Key{Target: r.Target, Module: r.Module}, now)
	var e Evidence
	switch r.State {
	case api.StateUnknown:
		// The location cannot tell about this target; whether the
		// location itself is healthy is the batch's canary_ok, not this.
		e = UnknownEvidence(location, SourceReport, r.Time, api.ErrCanaryFailing.Error())
		if r.Result != nil && r.Result.Error != "" {
			e.Error += "; check: " + r.Result.Error
		}
	default:
		e = EvidenceFrom(location, SourceReport, r.Result, r.Time)
		e.Time = r.Time
		if r.State == api.StateFailing {
			e.Result = OutcomeFailure
		} else {
			e.Result = OutcomeSuccess
		}
	}
	// A failure the location has already contradicted with a later
	// success is stale. Both times are the location's own clock, so
	// clock skew between exporter and coordinator cannot hide a new
	// failure.
	prev, seen := t.seen[location]
	stale := seen && prev.Result == OutcomeSuccess && e.Time.Before(prev.Time)
	m.observe(t, e)

	switch {
	case t.incident == nil && e.Result == OutcomeFailure:
		if stale {
			return eff
		}
		start := r.FirstFailure
		if start.IsZero() {
			start = r.Time
		}
		m.lastID++
		t.incident = &Incident{
			ID: m.lastID, Target: r.Target, Module: r.Module, State: StateSeemsDown,
			Reporter: location, StartedAt: start, OpenedAt: now,
		}
		t.incident.addEvidence(e)
		m.setState(t, StateSeemsDown, now)
		eff.Merge(m.startRound(t, now))
		eff.Save = append(eff.Save, t.incident.clone())
	case t.incident == nil:
		// Up, and a recovery or an unknown: nothing to decide.
	default:
		t.incident.addEvidence(e)
		switch {
		case t.round != nil:
			// Counted when the round ends.
		case t.incident.Confirmed() && e.Result == OutcomeSuccess:
			m.countSuccess(t, e)
			eff.Merge(m.maybeRecover(t, now))
			if t.incident == nil {
				return eff
			}
		case t.incident.Confirmed() && e.Result == OutcomeFailure:
			t.recovery = recovery{} // still failing somewhere
		case !t.incident.Confirmed() && e.Result != OutcomeUnknown:
			// New evidence about an undecided incident: decide now.
			eff.Merge(m.startRound(t, now))
		}
		eff.Save = append(eff.Save, t.incident.clone())
	}
	return eff
}

// observe records e as the location's latest evidence, and as its
// answer in the round in flight. An unknown never replaces a known
// answer of the same round.
func (m *Machine) observe(t *target, e Evidence) {
	if prev, ok := t.seen[e.Location]; !ok || !e.Time.Before(prev.Time) {
		t.seen[e.Location] = e
	}
	if t.round == nil {
		return
	}
	prev, ok := t.round.answers[e.Location]
	switch {
	case !ok:
	case e.Result == OutcomeUnknown && prev.Result != OutcomeUnknown:
		return
	case prev.Result != OutcomeUnknown && e.Time.Before(prev.Time):
		return
	}
	t.round.answers[e.Location] = e
}

// startRound opens a verification round that asks every location whose
// answer is not known yet.
func (m *Machine) startRound(t *target, now time.Time) Effects {
	m.lastRound++
	t.round = &round{id: m.lastRound, started: now, answers: map[string]Evidence{}}
	var ask []string
	for _, l := range m.locations {
		if e, ok := t.seen[l]; ok && e.Result == OutcomeFailure && t.incident.Rounds == 0 && !e.Time.Before(t.incident.StartedAt) {
			// The failure that opened the incident (or one seen
			// with it) is this location's answer in the first round.
			t.round.answers[l] = e
			continue
		}
		ask = append(ask, l)
	}
	if len(ask) == 0 {
		return m.RoundDone(t.key, t.round.id, nil, now)
	}
	return Effects{Rounds: []RoundRequest{{Key: t.key, ID: t.round.id, Locations: ask, Timeout: m.conf.VerifyTimeout}}}
}

// RoundDone applies the answers of a verification round and reaches a
// verdict. Answers of a round that is no longer current are ignored.
func (m *Machine) RoundDone(k Key, id uint64, answers []Evidence, now time.Time) Effects {
	var eff Effects
	t, ok := m.targets[k]
	if !ok || t.round == nil || t.round.id != id || t.incident == nil {
		return eff
	}
	t.touched = now
	for _, e := range answers {
		if !m.known(e.Location) {
			continue
		}
		m.observe(t, e)
		t.incident.addEvidence(e)
	}
	r := t.round
	t.round = nil
	t.incident.Rounds++

	var failing, succeeding, unknown int
	for _, l := range m.locations {
		switch r.answers[l].Result {
		case OutcomeFailure:
			failing++
		case OutcomeSuccess:
			succeeding++
			if t.incident.Confirmed() {
				m.countSuccess(t, r.answers[l])
			}
		default:
			unknown++
		}
	}
	verdict := Decide(m.conf.MinFailingLocations, failing, unknown)
	t.nextRound = now.Add(m.conf.ReverifyInterval)
	switch {
	case verdict == VerdictDown:
		t.recovery = recovery{}
		if !t.incident.Confirmed() {
			t.incident.ConfirmedAt = now
			eff.Confirmed = append(eff.Confirmed, now.Sub(t.incident.StartedAt))
		}
		m.setState(t, StateDown, now)
	case t.incident.Confirmed():
		if r := m.maybeRecover(t, now); len(r.Resolved) > 0 {
			eff.Merge(r)
			return eff
		}
		if failing+succeeding == 0 {
			m.setState(t, StateUnknown, now) // no location can see the target
		} else {
			m.setState(t, StateDown, now)
		}
	case verdict == VerdictUp:
		// Even if every unknown location were failing, too few would be.
		eff.Merge(m.resolve(t, ResolutionFalseAlarm, now))
		return eff
	default:
		m.setState(t, StateUnknown, now)
	}
	eff.Save = append(eff.Save, t.incident.clone())
	return eff
}

func (m *Machine) countSuccess(t *target, e Evidence) {
	if t.recovery.locations == nil {
		t.recovery.locations = map[string]bool{}
	}
	t.recovery.successes++
	t.recovery.locations[e.Location] = true
}

// maybeRecover resolves a confirmed outage once recovery_successes
// successes came from at least two locations (one when only one exists).
func (m *Machine) maybeRecover(t *target, now time.Time) Effects {
	if t.recovery.successes < m.conf.RecoverySuccesses || len(t.recovery.locations) < min(2, len(m.locations)) {
		return Effects{}
	}
	return m.resolve(t, ResolutionRecovered, now)
}

func (m *Machine) resolve(t *target, resolution string, now time.Time) Effects {
	inc := t.incident
	inc.ResolvedAt = now
	inc.Resolution = resolution
	t.incident = nil
	t.round = nil
	t.recovery = recovery{}
	m.setState(t, StateUp, now)
	// The incident keeps the state it was in when it ended.
	return Effects{Save: []Incident{inc.clone()}, Resolved: []string{resolution}}
}

func (m *Machine) setState(t *target, s State, now time.Time) {
	if t.incident != nil {
		t.incident.State = s
	}
	if t.state != s {
		t.state = s
		t.since = now
	}
}

// Due starts the verification rounds due at now: targets with an open
// incident are verified again every reverify_interval. It also forgets
// targets that have been up and quiet for a day.
func (m *Machine) Due(now time.Time) Effects {
	var eff Effects
	for k, t := range m.targets {
		switch {
		case t.incident == nil:
			if now.Sub(t.touched) > idleUpRetention {
				delete(m.targets, k)
			}
		case t.round == nil && !now.Before(t.nextRound):
			eff.Merge(m.startRound(t, now))
		}
	}
	return eff
}

// TargetView is a target's state for the API and the series.
type TargetView struct {
	Target string    `json:"target"`
	Module string    `json:"module"`
	State  State     `json:"state"`
	Since  time.Time `json:"since"`
	// IncidentID is the open incident's ID, 0 without one.
	IncidentID uint64 `json:"incident_id,omitempty"`
	// DownSince is the start of a confirmed outage while the target is
	// down; zero otherwise (also while a confirmed outage is unknown).
	DownSince time.Time `json:"down_since,omitzero"`
	// Locations holds each location's latest evidence, by location name.
	Locations []Evidence `json:"locations"`
}

// Targets returns every known target, sorted by target and module.
func (m *Machine) Targets() []TargetView {
	out := make([]TargetView, 0, len(m.targets))
	for _, t := range m.targets {
		v := TargetView{Target: t.key.Target, Module: t.key.Module, State: t.state, Since: t.since, Locations: []Evidence{}}
		if t.incident != nil {
			v.IncidentID = t.incident.ID
			if t.incident.Confirmed() && t.state == StateDown {
				v.DownSince = t.incident.StartedAt
			}
		}
		for _, l := range m.locations {
			if e, ok := t.seen[l]; ok {
				v.Locations = append(v.Locations, e)
			}
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b TargetView) int {
		return cmp.Or(cmp.Compare(a.Target, b.Target), cmp.Compare(a.Module, b.Module))
	})
	return out
}

// OpenRounds counts the verification rounds in flight.
func (m *Machine) OpenRounds() int {
	n := 0
	for _, t := range m.targets {
		if t.round != nil {
			n++
		}
	}
	return n
}

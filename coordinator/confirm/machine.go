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
//
// Besides the rounds, it keeps each location's failure intervals (see
// history): an outage whose intervals overlap in min_failing_locations
// locations at some instant is confirmed, however late or out of order
// the reports arrive; if the overlap is already over when it becomes
// known, the incident is recorded confirmed and recovered at once and the
// target never goes down.
type Machine struct {
	conf      config.ConfirmationConfig
	locations []string
	targets   map[Key]*target
	lastID    uint64
	lastRound uint64
	lastPrune time.Time
	// trust is each location's reliability (see suspect.go).
	trust map[string]*trust
	// openConfirmed counts the confirmed open incidents at the latest
	// Due, which paces their re-verification.
	openConfirmed int
	// maintenance says whether a maintenance window applies to a target
	// at a time (see maintenance.go); nil: never.
	maintenance func(Key, time.Time) bool
}

// target is the coordinator's view of one (target, module).
type target struct {
	key   Key
	state State
	since time.Time // when state was entered
	// locs is what each location said of the target, in the order the
	// locations were first heard of.
	locs []locState
	// incident is the open incident, if any.
	incident *Incident
	// closed holds the closed incidents that kept intervals still refer
	// to, so that one later found to be an outage is reclassified.
	closed []*Incident
	// round is the verification round in flight, if any.
	round *round
	// nextRound is when the next verification round is due while an
	// incident is open and no round is in flight.
	nextRound time.Time
	// recovery counts successes towards resolving a confirmed outage.
	recovery recovery
	touched  time.Time // latest event, for forgetting idle up targets
	// failing: a trusted location's interval is open, as of the latest
	// event; changes holds when that changed, for flapping.
	failing     bool
	changes     []time.Time
	flapping    bool
	lastFailure time.Time
	// maintained: an incident of the target was resolved as maintenance
	// and its failure may outlast the window.
	maintained bool
	// heldSince is when the open incident's confirmation was first held
	// because a location contradicted it (see contestedHeld).
	heldSince time.Time
}

// locState is one location's view of a target, kept compact: 100k
// targets in three locations are 300k of these.
type locState struct {
	name string
	// scheduled: the location's latest snapshot lists the target.
	scheduled bool
	// outcome and at are the location's latest verdict; detail is the
	// evidence behind it when it came from a report or a check (nil when
	// a snapshot told it).
	outcome Outcome
	at      time.Time
	detail  *Evidence
	// hist holds the failure intervals; nil for a target that never
	// failed there recently.
	hist *history
}

// see records e as the location's latest evidence, unless a later one is
// known. An error text equal to the previous evidence's is shared with it
// (in *e too), so that repeated evidence holds one copy.
func (l *locState) see(e *Evidence) {
	if l.detail != nil && l.detail.Error == e.Error {
		e.Error = l.detail.Error
	}
	if l.outcome == "" || !e.Time.Before(l.at) {
		d := *e
		l.outcome, l.at, l.detail = e.Result, e.Time, &d
	}
}

// seeOutcome records a verdict without details (from a snapshot).
func (l *locState) seeOutcome(o Outcome, at time.Time) {
	if l.outcome == "" || at.After(l.at) {
		l.outcome, l.at, l.detail = o, at, nil
	}
}

// evidence is the location's latest evidence.
func (l *locState) evidence() (Evidence, bool) {
	switch {
	case l.outcome == "":
		return Evidence{}, false
	case l.detail != nil:
		return *l.detail, true
	}
	return Evidence{Location: l.name, Time: l.at, Source: SourceSnapshot, Result: l.outcome}, true
}

func (l *locState) history() *history {
	if l.hist == nil {
		l.hist = &history{}
	}
	return l.hist
}

// loc returns the target's state of a location, adding it when new.
func (t *target) loc(name string) *locState {
	if ls := t.find(name); ls != nil {
		return ls
	}
	t.locs = append(t.locs, locState{name: name})
	return &t.locs[len(t.locs)-1]
}

func (t *target) seen(name string) (Evidence, bool) {
	if ls := t.find(name); ls != nil {
		return ls.evidence()
	}
	return Evidence{}, false
}

// streakStart is when a report's failing streak began: its first failed
// check, or the report's own check when it names none.
func streakStart(r *api.Report) time.Time {
	if r.FirstFailure.IsZero() {
		return r.Time
	}
	return r.FirstFailure
}

// round is one verification: every location's answer about a target.
type round struct {
	id      uint64
	started time.Time
	// answers holds at most one answer per location (a few: a slice
	// costs less than a map in each of many open rounds).
	answers []Evidence
	// overloaded counts the locations the coordinator could not ask in
	// time for lack of capacity.
	overloaded int
}

// answer returns the location's answer in the round.
func (r *round) answer(location string) (Evidence, bool) {
	for _, e := range r.answers {
		if e.Location == location {
			return e, true
		}
	}
	return Evidence{}, false
}

// setAnswer records e as its location's answer, replacing an earlier one.
func (r *round) setAnswer(e Evidence) {
	for i := range r.answers {
		if r.answers[i].Location == e.Location {
			r.answers[i] = e
			return
		}
	}
	r.answers = append(r.answers, e)
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
	// First: the round decides an incident not confirmed yet; such rounds
	// go before re-verifications of confirmed ones.
	First bool
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
	// Reclassified counts false alarms found to be outages after all.
	Reclassified int
	// Events say what happened to incidents, for the log.
	Events []IncidentEvent
	// Locations say which locations became suspect or trusted again.
	Locations []LocationEvent
	// Discounted counts false alarms found to be a suspect location's
	// own (resolution location_suspect after all).
	Discounted int
}

// Merge appends o's effects to e's.
func (e *Effects) Merge(o Effects) {
	e.Rounds = append(e.Rounds, o.Rounds...)
	e.Save = append(e.Save, o.Save...)
	e.Resolved = append(e.Resolved, o.Resolved...)
	e.Confirmed = append(e.Confirmed, o.Confirmed...)
	e.Reclassified += o.Reclassified
	e.Events = append(e.Events, o.Events...)
	e.Locations = append(e.Locations, o.Locations...)
	e.Discounted += o.Discounted
}

// What happened to an incident.
const (
	EventOpened       = "opened"
	EventConfirmed    = "confirmed"
	EventResolved     = "resolved"
	EventReclassified = "reclassified"
)

// IncidentEvent is one change of an incident worth a log line.
type IncidentEvent struct {
	Kind       string
	ID         uint64
	Key        Key
	StartedAt  time.Time
	Resolution string
}

func (e *Effects) event(kind string, inc *Incident) {
	e.Events = append(e.Events, IncidentEvent{Kind: kind, ID: inc.ID, Key: inc.Key(), StartedAt: inc.StartedAt, Resolution: inc.Resolution})
}

// idleUpRetention is how long a target that is up, quiet and scheduled
// nowhere stays known.
const idleUpRetention = 24 * time.Hour

// NewMachine returns a machine for the given locations and confirmation
// settings. lastID is the highest incident ID already used.
func NewMachine(c *config.CoordinatorConfig, lastID uint64) *Machine {
	m := &Machine{targets: map[Key]*target{}, lastID: lastID, trust: map[string]*trust{}}
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
// at once. The locations' snapshots then bring back their intervals.
func (m *Machine) Restore(open []Incident, now time.Time) {
	for i := range open {
		inc := open[i].restored()
		m.lastID = max(m.lastID, inc.ID)
		t := m.target(inc.Key(), now)
		t.incident = &inc
		t.state = inc.State
		t.since = now
		t.nextRound = now
		for _, e := range open[i].Evidence {
			t.loc(e.Location).see(&e)
		}
	}
}

func (m *Machine) target(k Key, now time.Time) *target {
	t, ok := m.targets[k]
	if !ok {
		// Room for every location at once: most targets are heard of
		// from all of them.
		t = &target{key: k, state: StateUp, since: now, locs: make([]locState, 0, len(m.locations))}
		m.targets[k] = t
	}
	t.touched = now
	return t
}

func (m *Machine) known(location string) bool { return slices.Contains(m.locations, location) }

// Report applies one state-change report of location.
func (m *Machine) Report(location string, r *api.Report, now time.Time) Effects {
	return m.Batch(location, []*api.Report{r}, nil, now).Effects
}

// BatchResult is what a batch of reports brought about.
type BatchResult struct {
	Effects
	// WantTargets: the coordinator's list of the location's up targets
	// differs from the snapshot's digest; ask for the list.
	WantTargets bool
}

// Batch applies one batch of a location: its reports in order, then its
// snapshot (which includes them), then judges every target they touched.
func (m *Machine) Batch(location string, reports []*api.Report, snap *api.Snapshot, now time.Time) BatchResult {
	return m.batch(location, reports, snap, now, now, false)
}

// BatchReceived applies a batch as Batch does, at now, with the age of
// its reports taken when it was received: the time it then waited for
// the coordinator (its own load) does not make its evidence history.
func (m *Machine) BatchReceived(location string, reports []*api.Report, snap *api.Snapshot, received, now time.Time) BatchResult {
	if received.After(now) {
		received = now
	}
	return m.batch(location, reports, snap, received, now, false)
}

// LateBatch applies a batch that took too long from the exporter to the
// coordinator (sent long before it was read: a coordinator that was
// frozen or cut off): all of it is history, as reports older than
// report_freshness are.
func (m *Machine) LateBatch(location string, reports []*api.Report, snap *api.Snapshot, now time.Time) BatchResult {
	return m.batch(location, reports, snap, now, now, true)
}

func (m *Machine) batch(location string, reports []*api.Report, snap *api.Snapshot, received, now time.Time, late bool) BatchResult {
	type touched struct {
		t        *target
		evidence []Evidence
	}
	var order []*touched
	byTarget := map[*target]*touched{}
	touch := func(t *target) *touched {
		x, ok := byTarget[t]
		if !ok {
			x = &touched{t: t}
			byTarget[t] = x
			order = append(order, x)
		}
		return x
	}
	var res BatchResult
	for _, r := range reports {
		t := m.target(Key{Target: r.Target, Module: r.Module}, now)
		x := touch(t)
		if late || received.Sub(r.Time) > m.conf.ReportFreshness {
			// Delivered late: history, not live evidence.
			m.applyStale(t, location, r)
			continue
		}
		x.evidence = append(x.evidence, m.applyReport(t, location, r))
		if r.State == api.StateFailing && !m.trusted(location) && m.contradictedNow(t, location) {
			m.contradict(location, t.key, now, &res.Effects)
		}
	}
	if snap != nil {
		var changed []*target
		changed, res.WantTargets = m.applySnapshot(location, snap, received, now, late)
		for _, t := range changed {
			touch(t)
		}
	}
	for _, x := range order {
		res.Merge(m.judge(x.t, x.evidence, now))
	}
	return res
}

// applyStale records a report delivered after report_freshness in the
// location's intervals only: a failing streak ends just after the check
// it reports (the location's next report or snapshot says whether it
// went on), and nothing counts as the location's current verdict.
func (m *Machine) applyStale(t *target, location string, r *api.Report) {
	h := t.loc(location).history()
	switch r.State {
	case api.StateFailing:
		start := streakStart(r)
		h.failStale(start, r.Time)
		h.close(r.Time, false)
	case api.StateRecovered:
		if !r.FirstFailure.IsZero() {
			h.failStale(r.FirstFailure, r.FirstFailure)
		}
		h.close(r.Time, true)
	default:
		h.close(r.Time, false)
	}
}

// applyReport records a report as the location's evidence and in its
// intervals.
func (m *Machine) applyReport(t *target, location string, r *api.Report) Evidence {
	var e Evidence
	ls := t.loc(location)
	switch r.State {
	case api.StateUnknown:
		// The location cannot tell about this target; whether the
		// location itself is healthy is the batch's canary_ok, not this.
		e = UnknownEvidence(location, SourceReport, r.Time, api.UnknownWhy(r.Reason))
		if r.Result != nil && r.Result.Error != "" {
			e.Error += "; check: " + r.Result.Error
		}
		ls.history().close(r.Time, false)
	case api.StateFailing:
		e = EvidenceFrom(location, SourceReport, r.Result, r.Time)
		e.Time, e.Result = r.Time, OutcomeFailure
		start := streakStart(r)
		ls.history().fail(start, r.Time)
	default:
		e = EvidenceFrom(location, SourceReport, r.Result, r.Time)
		e.Time, e.Result = r.Time, OutcomeSuccess
		if !r.FirstFailure.IsZero() {
			// The streak it ends, even if its failing report was
			// never heard.
			ls.history().fail(r.FirstFailure, r.FirstFailure)
		}
		ls.history().close(r.Time, true)
	}
	ls.see(&e)
	m.observeRound(t, e)
	return e
}

// judge decides a target after new evidence: its intervals first, then
// what each piece of evidence means for the open incident.
func (m *Machine) judge(t *target, evidence []Evidence, now time.Time) Effects {
	before := t.incident
	eff := m.evaluate(t, now)
	m.noteCondition(t, now)
	for _, e := range evidence {
		if t.incident == nil || t.incident != before {
			// A new incident already holds the latest evidence.
			break
		}
		t.incident.addEvidence(e)
		switch {
		case t.round != nil:
			// Counted when the round ends.
		case !m.trusted(e.Location):
			// A suspect location's evidence decides nothing.
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
		if t.incident != nil {
			eff.Save = append(eff.Save, t.incident.record())
		}
	}
	return eff
}

// observeRound records e as the location's answer in the round in
// flight. An unknown never replaces a known answer of the same round.
func (m *Machine) observeRound(t *target, e Evidence) {
	if t.round == nil {
		return
	}
	prev, ok := t.round.answer(e.Location)
	switch {
	case !ok:
	case e.Result == OutcomeUnknown && prev.Result != OutcomeUnknown:
		return
	case prev.Result != OutcomeUnknown && e.Time.Before(prev.Time):
		return
	}
	t.round.setAnswer(e)
}

// startRound opens a verification round that asks every location whose
// answer is not known yet.
func (m *Machine) startRound(t *target, now time.Time) Effects {
	m.lastRound++
	t.round = &round{id: m.lastRound, started: now}
	var ask []string
	for _, l := range m.locations {
		if !m.trusted(l) {
			continue // its answer would count for nothing
		}
		if e, ok := t.seen(l); ok && e.Result == OutcomeFailure && t.incident.Rounds == 0 && !e.Time.Before(t.incident.StartedAt) {
			// The failure that opened the incident (or one seen
			// with it) is this location's answer in the first round.
			t.round.setAnswer(e)
			continue
		}
		ask = append(ask, l)
	}
	if len(ask) == 0 {
		return m.RoundDone(t.key, t.round.id, nil, now)
	}
	return Effects{Rounds: []RoundRequest{{Key: t.key, ID: t.round.id, Locations: ask, Timeout: m.conf.VerifyTimeout,
		First: !t.incident.Confirmed()}}}
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
		if e.Source == SourceOverload {
			// The coordinator's own lack of capacity says nothing
			// about the target.
			t.round.overloaded++
			continue
		}
		ls := t.loc(e.Location)
		switch e.Result {
		case OutcomeFailure:
			ls.history().point(e.Time)
		case OutcomeSuccess:
			// Kept even without a failure known there: a late report
			// of one must end where the location succeeded.
			ls.history().close(e.Time, true)
		}
		// An unknown answer (often the coordinator's own trouble
		// reaching the location) makes the location unknown and
		// changes no interval.
		ls.see(&e)
		m.observeRound(t, e)
		t.incident.addEvidence(e)
	}
	r := t.round
	t.round = nil
	t.incident.Rounds++
	eff.Merge(m.verdict(t, r, now))
	// The intervals may say more than the round: an overlap the round
	// could not see, or an episode already over.
	eff.Merge(m.evaluate(t, now))
	m.noteCondition(t, now)
	return eff
}

// verdict applies the confirmation rule to a round's answers. Only
// trusted locations vote; suspect ones count as unknown only when too few
// trusted locations are left to reach min_failing_locations.
func (m *Machine) verdict(t *target, r *round, now time.Time) Effects {
	var eff Effects
	var failing, succeeding, unknown int
	short := m.trustedCount() < m.conf.MinFailingLocations
	for _, l := range m.locations {
		if !m.trusted(l) {
			if short {
				unknown++
			}
			continue
		}
		answer, _ := r.answer(l)
		switch answer.Result {
		case OutcomeFailure:
			failing++
		case OutcomeSuccess:
			succeeding++
			if t.incident.Confirmed() {
				m.countSuccess(t, answer)
			}
		default:
			// No answer: a failing streak of the location still open
			// counts through the intervals (see evaluate).
			unknown++
		}
	}
	verdict := Decide(m.conf.MinFailingLocations, failing, unknown)
	t.nextRound = m.reverifyAt(t, now)
	switch {
	case !t.incident.Confirmed() && m.inMaintenance(t.key, now):
		return m.resolveMaintenance(t, now)
	case verdict == VerdictDown && !t.incident.Confirmed() && succeeding > 0 && m.contestedHeld(t, t.incident, now):
		// A location that can tell sees the target succeed: wait to
		// learn whether a failing one is itself degraded.
		m.setState(t, StateSeemsDown, now)
	case verdict == VerdictDown:
		t.recovery = recovery{}
		if !t.incident.Confirmed() {
			m.confirm(t.incident, now, &eff)
		}
		m.setState(t, StateDown, now)
	case t.incident.Confirmed():
		// A confirmed outage stays down until successes show it
		// recovered: a location that cannot tell, or the coordinator's
		// own lack of capacity, is no evidence of recovery.
		if r := m.maybeRecover(t, now); len(r.Resolved) > 0 {
			eff.Merge(r)
			return eff
		}
		m.setState(t, StateDown, now)
	case verdict == VerdictUp:
		// Even if every unknown location were failing, too few would be.
		eff.Merge(m.resolve(t, ResolutionFalseAlarm, time.Time{}, now))
		return eff
	case r.overloaded > 0:
		// Undecided only because the coordinator could not ask every
		// location in time: the verdict stays, and it asks again soon.
		t.nextRound = m.retryAt(t, now)
	default:
		// Undecided: asked again soon, so an outage is confirmed as
		// soon as the locations answer.
		m.setState(t, StateUnknown, now)
		t.nextRound = m.retryAt(t, now)
	}
	eff.Save = append(eff.Save, t.incident.record())
	return eff
}

// contestedHeld says whether inc's confirmation must wait because a
// trusted location sees the target succeed: until contested_hold after
// it was first held, when its next round is due.
func (m *Machine) contestedHeld(t *target, inc *Incident, now time.Time) bool {
	if m.conf.ContestedHold <= 0 || !m.contested(t, inc.StartedAt) {
		return false
	}
	if t.heldSince.Before(inc.OpenedAt) {
		t.heldSince = now // the first hold of this incident
	}
	until := t.heldSince.Add(m.conf.ContestedHold)
	if !now.Before(until) {
		return false
	}
	t.nextRound = until
	return true
}

// contested: a trusted location's latest evidence since the incident
// started is a success, and it is not failing.
func (m *Machine) contested(t *target, since time.Time) bool {
	for i := range t.locs {
		ls := &t.locs[i]
		if m.trusted(ls.name) && !ls.hist.open() && ls.outcome == OutcomeSuccess && !ls.at.Before(since) {
			return true
		}
	}
	return false
}

// confirm marks an incident confirmed now.
func (m *Machine) confirm(inc *Incident, now time.Time, eff *Effects) {
	inc.ConfirmedAt = now
	eff.Confirmed = append(eff.Confirmed, now.Sub(inc.StartedAt))
	eff.event(EventConfirmed, inc)
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
	if t.recovery.successes < m.conf.RecoverySuccesses || len(t.recovery.locations) < min(2, m.trustedCount()) {
		return Effects{}
	}
	if m.stableFor(t, now) < m.recoveryHold(t) {
		return Effects{} // not stable for long enough: Due tries again
	}
	return m.resolve(t, ResolutionRecovered, time.Time{}, now)
}

// resolve closes the open incident; ended is when the outage ended, when
// the intervals tell it.
func (m *Machine) resolve(t *target, resolution string, ended, now time.Time) Effects {
	inc := t.incident
	if resolution == ResolutionFalseAlarm {
		resolution = m.falseAlarm(inc)
	}
	inc.ResolvedAt = now
	inc.Resolution = resolution
	inc.EndedAt = ended
	inc.LastState = inc.State
	inc.State = StateResolved
	t.incident = nil
	t.round = nil
	t.recovery = recovery{}
	t.closed = append(t.closed, inc)
	m.setState(t, StateUp, now)
	eff := Effects{Save: []Incident{inc.record()}, Resolved: []string{resolution}}
	eff.event(EventResolved, inc)
	if resolution != ResolutionRecovered && resolution != ResolutionMaintenance {
		m.contradictFailures(inc, now, &eff)
	}
	return eff
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
// incident are verified again every reverify_interval. Once a minute it
// also forgets intervals older than intervalRetention and targets that
// have been up, quiet and scheduled nowhere for a day.
func (m *Machine) Due(now time.Time) Effects {
	var eff Effects
	prune := now.Sub(m.lastPrune) >= time.Minute
	if prune {
		m.lastPrune = now
	}
	m.learn(now)
	// Re-verifications are paced: at most twice the steady rate of
	// re-checking every confirmed outage once per reverify_interval
	// start per call (once a second), so incidents opened together are
	// not all re-checked together. First verifications are never held.
	budget := max(50, 2*m.openConfirmed/max(1, int(m.conf.ReverifyInterval/time.Second)))
	openConfirmed := 0
	scheduled := map[string]int{}
	for k, t := range m.targets {
		if prune {
			m.prune(t, now)
		}
		for i := range t.locs {
			if t.locs[i].scheduled || t.locs[i].outcome != "" {
				scheduled[t.locs[i].name]++
			}
		}
		if t.incident == nil && now.Sub(t.touched) > idleUpRetention && !t.scheduled() && !t.failingSomewhere() {
			delete(m.targets, k)
			continue
		}
		m.updateFlapping(t, now)
		eff.Merge(m.windowOver(t, now))
		for l, tr := range m.trust {
			// A suspect location's failures the others contradict
			// still count, so it stays suspect while they last.
			if ls := t.find(l); tr.suspect && ls != nil && ls.hist.open() && m.contradictedNow(t, l) {
				tr.contradicted[k] = now
			}
		}
		if t.incident == nil || t.round != nil {
			continue
		}
		if t.incident.Confirmed() {
			openConfirmed++
			if eff.Merge(m.maybeRecover(t, now)); t.incident == nil {
				continue
			}
		}
		if now.Before(t.nextRound) {
			continue
		}
		if t.incident.Confirmed() {
			if budget <= 0 {
				continue
			}
			budget--
		}
		eff.Merge(m.startRound(t, now))
	}
	m.openConfirmed = openConfirmed
	for _, l := range m.locations {
		m.trustOf(l).scheduled = scheduled[l]
		// Contradictions age out of the window.
		m.judgeLocation(l, now, &eff)
	}
	return eff
}

// prune forgets a target's old intervals, and the closed incidents
// resolved before them.
func (m *Machine) prune(t *target, now time.Time) {
	cutoff := now.Add(-intervalRetention)
	for i := range t.locs {
		if h := t.locs[i].hist; h != nil {
			if h.prune(cutoff); h.empty() {
				t.locs[i].hist = nil
			}
		}
	}
	t.closed = slices.DeleteFunc(t.closed, func(inc *Incident) bool { return inc.ResolvedAt.Before(cutoff) })
}

func (t *target) scheduled() bool {
	for i := range t.locs {
		if t.locs[i].scheduled {
			return true
		}
	}
	return false
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
	// Locations holds each location's latest evidence, in the order of
	// the configured locations.
	Locations []Evidence `json:"locations"`
	// ScheduledIn lists the locations whose latest snapshot lists the
	// target.
	ScheduledIn []string `json:"scheduled_in,omitempty"`
	// Flapping: the target fails and succeeds in turn (see
	// flapping.changes).
	Flapping bool `json:"flapping,omitempty"`
}

// Targets returns every known target (each scheduled one of every
// location included), sorted by target and module.
func (m *Machine) Targets() []TargetView {
	out := make([]TargetView, 0, len(m.targets))
	for _, t := range m.targets {
		v := TargetView{Target: t.key.Target, Module: t.key.Module, State: t.state, Since: t.since, Locations: []Evidence{}, Flapping: t.flapping}
		if t.incident != nil {
			v.IncidentID = t.incident.ID
		}
		v.DownSince = t.downSince()
		for _, l := range m.locations {
			for i := range t.locs {
				ls := &t.locs[i]
				if ls.name != l {
					continue
				}
				if e, ok := ls.evidence(); ok {
					v.Locations = append(v.Locations, e)
				}
				if ls.scheduled {
					v.ScheduledIn = append(v.ScheduledIn, l)
				}
			}
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b TargetView) int {
		return cmp.Or(cmp.Compare(a.Target, b.Target), cmp.Compare(a.Module, b.Module))
	})
	return out
}

// downSince is the start of the target's confirmed outage while it is
// down; zero otherwise.
func (t *target) downSince() time.Time {
	if t.incident != nil && t.incident.Confirmed() && t.state == StateDown {
		return t.incident.StartedAt
	}
	return time.Time{}
}

// LocationOutcome is a location's latest known outcome of a target.
type LocationOutcome struct {
	Location string
	Success  bool
}

// Standing is what a target's series show, lighter than its TargetView:
// each location's outcome instead of its evidence.
type Standing struct {
	Key       Key
	State     State
	DownSince time.Time // as in TargetView
	Flapping  bool
	// Outcomes holds each location's latest outcome, in the order of the
	// configured locations; locations that cannot tell are left out.
	Outcomes []LocationOutcome
}

// EachStanding calls f with the standing of every known target, in no
// particular order (sorting is left to the caller, outside whatever lock
// guards the machine). The standing's Outcomes are reused after f
// returns.
func (m *Machine) EachStanding(f func(*Standing)) {
	var s Standing
	for _, t := range m.targets {
		s = Standing{Key: t.key, State: t.state, DownSince: t.downSince(), Flapping: t.flapping, Outcomes: s.Outcomes[:0]}
		for _, l := range m.locations {
			if ls := t.find(l); ls != nil && ls.outcome != "" && ls.outcome != OutcomeUnknown {
				s.Outcomes = append(s.Outcomes, LocationOutcome{Location: l, Success: ls.outcome == OutcomeSuccess})
			}
		}
		f(&s)
	}
}

// Len is the number of known targets.
func (m *Machine) Len() int { return len(m.targets) }

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

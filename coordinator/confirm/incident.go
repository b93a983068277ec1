package confirm

import (
	"slices"
	"time"
	"unique"

	"github.com/vantageprobe/vantage/prober/result"
)

// State is where a (target, module) stands at the coordinator.
type State string

// The states of a target.
const (
	// StateUp: no open incident.
	StateUp State = "up"
	// StateSeemsDown: a location reported a failure; the other locations
	// are being asked.
	StateSeemsDown State = "seems_down"
	// StateDown: enough locations saw the target fail (confirmed).
	StateDown State = "down"
	// StateUnknown: too few locations could tell to reach a verdict.
	StateUnknown State = "unknown"
	// StateResolved is the state of a closed incident; never a
	// target's.
	StateResolved State = "resolved"
)

// States lists every state, in the order series render them.
var States = []State{StateUp, StateSeemsDown, StateDown, StateUnknown}

// Outcome is what one location saw of a target.
type Outcome string

// The outcomes of a location's check.
const (
	OutcomeSuccess Outcome = "success"
	OutcomeFailure Outcome = "failure"
	// OutcomeUnknown: the location could not tell; its request failed,
	// timed out, or its connectivity canary was failing.
	OutcomeUnknown Outcome = "unknown"
)

// How an incident ended.
const (
	ResolutionFalseAlarm = "false_alarm"
	ResolutionRecovered  = "recovered"
	// ResolutionSuspect: only locations found to be degraded (suspect)
	// failed the target; the others saw it succeed.
	ResolutionSuspect = "location_suspect"
	// ResolutionMaintenance: the target failed while a maintenance window
	// applied to it; never confirmed.
	ResolutionMaintenance = "maintenance"
)

// Resolutions lists every resolution.
var Resolutions = []string{ResolutionFalseAlarm, ResolutionRecovered, ResolutionSuspect, ResolutionMaintenance}

// Where a piece of evidence came from.
const (
	SourceReport = "report" // a state-change report of a scheduled check
	SourceCheck  = "check"  // a check the coordinator asked for
	// SourceSnapshot: a location's snapshot of its targets' states.
	SourceSnapshot = "snapshot"
	// SourceOverload: the coordinator had no capacity to ask the location
	// in time (its queue was full or no request slot freed up). Such an
	// answer is not evidence about the target and never changes a verdict.
	SourceOverload = "overload"
)

// Key names a checked target.
type Key struct {
	Target string
	Module string
}

// Evidence is what one location saw at one time.
type Evidence struct {
	Location string    `json:"location"`
	Time     time.Time `json:"time"`
	Source   string    `json:"source"`
	Result   Outcome   `json:"result"`
	// Reason is the prober's failure reason.
	Reason result.Reason `json:"reason,omitempty"`
	// Error says why the check failed, or why its outcome is unknown.
	Error string `json:"error,omitempty"`
	// Phases are the check's phase durations in seconds.
	Phases Phases `json:"phases,omitempty"`
	// DurationSeconds is how long the check took.
	DurationSeconds float64 `json:"duration_seconds,omitempty"`
	// StatusCode is the HTTP status code of http checks.
	StatusCode int `json:"status_code,omitempty"`
}

// EvidenceFrom reads a prober result as evidence.
func EvidenceFrom(location, source string, r *result.Result, fallback time.Time) Evidence {
	e := Evidence{Location: location, Source: source, Time: fallback, Result: OutcomeUnknown}
	if r == nil {
		e.Error = "no result"
		return e
	}
	if !r.Start.IsZero() {
		e.Time = r.Start
	}
	e.Result = OutcomeFailure
	if r.Success {
		e.Result = OutcomeSuccess
	}
	e.Reason = internReason(r.Reason)
	// The same error text comes from every location and every round of
	// a target (and once more in each location's latest evidence): one
	// copy of it is kept.
	e.Error = unique.Make(r.Error).Value()
	e.DurationSeconds = r.Duration.Seconds()
	e.Phases = phasesFrom(r.Phases)
	if r.HTTP != nil {
		e.StatusCode = r.HTTP.StatusCode
	}
	return e
}

// UnknownEvidence is a location that could not tell, and why.
func UnknownEvidence(location, source string, at time.Time, why string) Evidence {
	return Evidence{Location: location, Time: at, Source: source, Result: OutcomeUnknown, Error: why}
}

// Incident is one suspected outage of a target, from the first failure
// report to its resolution.
type Incident struct {
	ID     uint64 `json:"id"`
	Target string `json:"target"`
	Module string `json:"module"`
	// State is the target's state while the incident is open, and
	// resolved once it is closed (see Resolution and LastState).
	State State `json:"state"`
	// LastState is the target's state when the incident closed: down for
	// a confirmed outage, even one recorded after it was over.
	LastState State `json:"last_state,omitempty"`
	// Reporter is the location whose report opened the incident.
	Reporter string `json:"reporter"`
	// StartedAt is the first failed check of the reporter's failing
	// streak: the incident is backdated to it.
	StartedAt time.Time `json:"started_at"`
	// OpenedAt is when the coordinator received that report.
	OpenedAt    time.Time `json:"opened_at"`
	ConfirmedAt time.Time `json:"confirmed_at,omitzero"`
	ResolvedAt  time.Time `json:"resolved_at,omitzero"`
	// Resolution is false_alarm or recovered once resolved.
	Resolution string `json:"resolution,omitempty"`
	// EndedAt is when the failure ended, as the locations' intervals
	// tell it: for an outage known only once over, when its overlap
	// ended. Zero when only the verification rounds tell the end.
	EndedAt time.Time `json:"ended_at,omitzero"`
	// Flapping: the target failed and succeeded in turn while the
	// incident was open; it resolved only once stable for the hold-down.
	Flapping bool `json:"flapping,omitempty"`
	// Rounds counts the verification rounds run for the incident.
	Rounds int `json:"verification_rounds"`
	// Evidence is what the locations saw, oldest first. The incident
	// log (and so the API) keeps the first maxEvidenceHead pieces and the
	// latest ones up to maxEvidence. The machine holds none of it between
	// saves: an open incident's Evidence, and a record in Effects.Save,
	// are only the pieces added since the previous record, which the log
	// appends (see EvidenceCount).
	Evidence []Evidence `json:"evidence"`
	// EvidenceCount is how many pieces of evidence were ever added to the
	// incident, Evidence's included (they are the latest ones). 0, or no
	// more than len(Evidence), for a whole incident, which the log stores
	// as it is. Not part of the API.
	EvidenceCount int `json:"-"`
	// failed lists the locations any piece of evidence of which was a
	// failure, in the order they first failed.
	failed []string
}

// Open reports whether the incident is not resolved yet.
func (i *Incident) Open() bool { return i.ResolvedAt.IsZero() }

// Confirmed reports whether the outage was confirmed.
func (i *Incident) Confirmed() bool { return !i.ConfirmedAt.IsZero() }

// Key is the incident's target and module.
func (i *Incident) Key() Key { return Key{Target: i.Target, Module: i.Module} }

const (
	maxEvidence     = 200
	maxEvidenceHead = 50
)

// EvidenceEvicted says which earlier piece of an incident's evidence the
// log no longer keeps once the piece numbered n (from 0, in the order
// they were added) is added: the first maxEvidenceHead pieces (how the
// incident was confirmed) and the latest ones stay, up to maxEvidence.
func EvidenceEvicted(n int) (int, bool) {
	old := n - (maxEvidence - maxEvidenceHead)
	return old, old >= maxEvidenceHead
}

// addEvidence adds e to the evidence the next record carries.
func (i *Incident) addEvidence(e Evidence) {
	if len(i.Evidence) == cap(i.Evidence) {
		// Records carry a few pieces: grow a few at a time.
		grown := make([]Evidence, len(i.Evidence), len(i.Evidence)+evidenceGrowth)
		copy(grown, i.Evidence)
		i.Evidence = grown
	}
	i.Evidence = append(i.Evidence, e)
	i.EvidenceCount++
	i.noteFailure(&e)
}

// noteFailure adds e's location to the failed ones when e is a failure.
func (i *Incident) noteFailure(e *Evidence) {
	if e.Result == OutcomeFailure && !slices.Contains(i.failed, e.Location) {
		i.failed = append(i.failed, e.Location)
	}
}

// evidenceGrowth is how many entries a record's evidence grows by.
const evidenceGrowth = 4

// failedLocations lists the locations that failed the incident at some
// point, as its evidence tells.
func (i *Incident) failedLocations() []string {
	if i.failed == nil {
		// A whole incident (read from the log) holds all its evidence.
		for j := range i.Evidence {
			i.noteFailure(&i.Evidence[j])
		}
	}
	return i.failed
}

// record returns what the incident log must write after a change: the
// incident's fields and the evidence added since the previous record,
// which the incident then no longer holds (the log keeps it). An open
// incident thus costs the machine its fields only, however long its
// evidence.
func (i *Incident) record() Incident {
	c := *i
	c.failed = nil
	i.Evidence = nil
	return c
}

// restored returns an incident read from the log as the machine holds
// it: without its evidence, which the log keeps, but knowing which
// locations failed it and how many pieces of evidence it has.
func (i *Incident) restored() Incident {
	c := *i
	c.failed = slices.Clone(i.failedLocations())
	c.EvidenceCount = max(c.EvidenceCount, len(c.Evidence))
	c.Evidence = nil
	return c
}

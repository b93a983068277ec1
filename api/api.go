// Package api is the wire protocol between vantage's two programs, in one
// versioned place: the check API the coordinator calls on the exporters,
// and the state-change reports the exporters send to the coordinator.
//
// Both programs import it; it imports only the prober's result type. A
// change that an older peer cannot read needs a new version in the paths.
package api

import (
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/vantageprobe/vantage/prober/result"
)

// Version is the protocol version; it appears in every path.
const Version = "v1"

// Paths of the protocol.
const (
	// CheckPath is where an exporter checks a target now (POST a
	// CheckRequest, answered by a CheckResponse).
	CheckPath = "/api/" + Version + "/check"
	// CheckBatchPath is where an exporter checks many targets now in one
	// request (POST a CheckBatchRequest, answered by a
	// CheckBatchResponse). Exporters that predate it answer 404.
	CheckBatchPath = "/api/" + Version + "/checks"
	// ReportsPath is where a coordinator receives reports (POST a Batch,
	// answered by a ReportsAnswer).
	ReportsPath = "/api/" + Version + "/reports"
	// StatusPath is where an exporter tells who it is and how its canary
	// fares (GET, answered by a Status); the coordinator's health checks
	// read it.
	StatusPath = "/api/" + Version + "/status"
	// StatsPath is where an exporter tells how many checks of targets
	// succeeded and failed over a recent range (POST a StatsRequest,
	// answered by a StatsResponse). Exporters that predate it answer 404.
	StatsPath = "/api/" + Version + "/stats"
)

// Every message an exporter sends (a Batch, a CheckResponse, a Status)
// carries its connectivity canary's current verdict as CanaryOK: true
// while it passes, false while it fails, absent without a canary or
// before its first check. Absent is not failing: a location's health
// follows the latest message, both ways.

// ErrCanaryFailing is why a location whose connectivity canary fails cannot
// tell whether a target is down.
var ErrCanaryFailing = errors.New("the location's connectivity canary is failing")

// Reasons a location cannot tell about a target: Report.Reason of every
// report in state unknown. The last three are also the reasons an
// exporter names in Degraded (Batch, Status) while it judges its own
// scheduling unfit to vouch for its results.
const (
	// ReasonCanaryFailing: the location's connectivity canary failed.
	ReasonCanaryFailing = "canary_failing"
	// ReasonVerdictPending: the failure waits for a canary check that
	// began after it (snapshots only).
	ReasonVerdictPending = "verdict_pending"
	// ReasonSchedulerLag: the exporter's checks start later than its
	// bound (--scheduler.max-lag) after their planned time.
	ReasonSchedulerLag = "scheduler_lag"
	// ReasonMissedChecks: more of the exporter's planned checks did not
	// run than its bound (--scheduler.max-missed-ratio) allows.
	ReasonMissedChecks = "missed_checks"
	// ReasonStaleResults: some target's latest result is older than the
	// exporter's bound (--scheduler.stale-after intervals).
	ReasonStaleResults = "stale_results"
)

// UnknownWhy says in words why a location cannot tell, for a report's
// Reason; a report without one (from an older exporter) meant a failing
// canary.
func UnknownWhy(reason string) string {
	switch reason {
	case "", ReasonCanaryFailing:
		return ErrCanaryFailing.Error()
	case ReasonVerdictPending:
		return "the location awaits its connectivity canary's verdict"
	case ReasonSchedulerLag:
		return "the location's checks start late (scheduler_lag)"
	case ReasonMissedChecks:
		return "the location misses planned checks (missed_checks)"
	case ReasonStaleResults:
		return "the location's results are stale (stale_results)"
	}
	return "the location cannot tell: " + reason
}

// CheckRequest is the body of POST CheckPath.
type CheckRequest struct {
	Target string `json:"target"`
	Module string `json:"module"`
	// TimeoutSeconds bounds the check; the module's timeout caps it. 0:
	// the module's timeout, or 10s when the module sets none.
	TimeoutSeconds float64 `json:"timeout_seconds,omitempty"`
	// Traceparent, when set, is the W3C traceparent of the span the check
	// belongs to (a verification round): the check's span becomes its
	// child, in a batch too, rather than the child of the request's
	// traceparent header.
	Traceparent string `json:"traceparent,omitempty"`
	// NotBefore, when set, keeps a scheduled result that began before it
	// from answering: the question is about the target since then (a
	// verification of a new failure asks for checks made after it).
	NotBefore time.Time `json:"not_before,omitzero"`
}

// MaxCheckBatch is the most checks one CheckBatchRequest may hold; a
// larger batch is refused with 413.
const MaxCheckBatch = 1000

// CheckBatchRequest is the body of POST CheckBatchPath: many checks, each
// answered as POST CheckPath would answer it.
type CheckBatchRequest struct {
	Checks []CheckRequest `json:"checks"`
	// TimeoutSeconds bounds every check of the batch that sets no timeout
	// of its own; 0 as in CheckRequest.
	TimeoutSeconds float64 `json:"timeout_seconds,omitempty"`
}

// CheckBatchResponse is the answer of POST CheckBatchPath.
type CheckBatchResponse struct {
	Location string `json:"location"`
	// CanaryOK is the canary's latest verdict when the answer was sent;
	// each result carries its own check's verdict.
	CanaryOK *bool `json:"canary_ok,omitempty"`
	// Results answer the requested checks, one each, in their order.
	Results []CheckResponse `json:"results"`
}

// CheckResponse is the answer of POST CheckPath.
type CheckResponse struct {
	Location string `json:"location"`
	// CanaryOK is the verdict of a canary check that began once the
	// target's check had begun, when the target's check failed; the
	// latest verdict otherwise. Absent without a canary. A location whose
	// canary fails cannot tell whether a target is down.
	CanaryOK *bool  `json:"canary_ok,omitempty"`
	Target   string `json:"target"`
	Module   string `json:"module"`
	// Result is what the check found; nil when Error is set.
	Result *result.Result `json:"result"`
	// Attempts is how many attempts the check took, retries included
	// (those of the scheduled check when FromSchedule).
	Attempts int `json:"attempts,omitempty"`
	// FromSchedule: Result is the target's latest scheduled check, fresh
	// enough to answer with instead of checking again.
	FromSchedule bool `json:"from_schedule,omitempty"`
	// Error, in a batch's answer, says why this check could not be made
	// (an unknown module, an invalid request); the others are answered.
	Error string `json:"error,omitempty"`
}

// States a report announces.
const (
	// StateFailing: the target started failing after local retries.
	StateFailing = "failing"
	// StateRecovered: the target succeeded again.
	StateRecovered = "recovered"
	// StateUnknown: the check failed while the location cannot tell (its
	// connectivity canary failed too, or the exporter judges itself
	// degraded); Report.Reason says why.
	StateUnknown = "unknown"
)

// States lists every report state.
var States = []string{StateFailing, StateRecovered, StateUnknown}

// Report is one state change of a scheduled target seen by an exporter.
type Report struct {
	// Seq orders an exporter's reports; it grows by one per report.
	Seq    uint64 `json:"seq"`
	Target string `json:"target"`
	Module string `json:"module"`
	State  string `json:"state"`
	// Time is when the check that changed the state was planned.
	Time time.Time `json:"time"`
	// FirstFailure is when the first failed check of a failing streak was
	// planned, for incidents backdated to it.
	FirstFailure time.Time `json:"first_failure,omitzero"`
	// Attempts is how many attempts the check took, local retries included.
	Attempts int            `json:"attempts"`
	Result   *result.Result `json:"result"`
	// Reason says why the location cannot tell, in state unknown (one of
	// the Reason constants); empty in the other states.
	Reason string `json:"reason,omitempty"`
	// Labels are the target's configured labels (team, …): the
	// coordinator's series of the target carry them, so that its alerts
	// route like the exporters'. Names pass CheckLabelName.
	Labels map[string]string `json:"labels,omitempty"`
}

// Batch is the body of POST ReportsPath. An exporter sends one at least
// every heartbeat interval, with no reports when nothing changed.
type Batch struct {
	Location string `json:"location"`
	// SentAt is when the exporter sent the batch: a coordinator that reads
	// it much later (it was frozen or cut off meanwhile) takes its
	// reports as history, not as live evidence.
	SentAt time.Time `json:"sent_at,omitzero"`
	// Run identifies the exporter process: Seq restarts at 1 in a new
	// run, so a coordinator tells a redelivered batch (same run, seen
	// Seq) from a restarted exporter's first reports.
	Run string `json:"run"`
	// Member names the exporter within its location's cluster; empty
	// when the location is one exporter. A coordinator follows the
	// sequence of each member's reports apart.
	Member string `json:"member,omitempty"`
	// CanaryOK is the location's connectivity canary verdict when the
	// batch was sent; absent without a canary or before its first check.
	CanaryOK *bool `json:"canary_ok,omitempty"`
	// Degraded lists the reasons the exporter judges its own scheduling
	// unfit to vouch for its results when the batch was sent
	// (ReasonSchedulerLag, ReasonMissedChecks, ReasonStaleResults);
	// absent while it is fit. Its failures are then reported unknown.
	Degraded []string `json:"degraded,omitempty"`
	Reports  []Report `json:"reports"`
	// Snapshot, when set, is the state of every scheduled target once
	// the batch's reports are applied.
	Snapshot *Snapshot `json:"snapshot,omitempty"`
}

// Snapshot is an exporter's state of all its scheduled targets: what a
// coordinator that lost or never had the reports needs to be right. It is
// sent when a coordinator is new to the exporter (its run changed), when
// the coordinator asks (ReportsAnswer.WantSnapshot), after reports were
// dropped, and every snapshot interval.
type Snapshot struct {
	// Seq is the sequence number of the latest report the state includes;
	// reports numbered above it are newer than the snapshot.
	Seq uint64 `json:"seq"`
	// Time is when the snapshot was taken.
	Time time.Time `json:"time"`
	// NotUp lists every target whose latest check failed: its state
	// (StateFailing or StateUnknown, with its Reason), FirstFailure (the
	// streak's start) and Time (its latest check). Result is left out.
	NotUp []Report `json:"not_up"`
	// Up counts the targets whose latest check succeeded, and UpDigest
	// is their Digest: a coordinator whose list of them differs asks for
	// it (ReportsAnswer.WantTargets).
	Up       int    `json:"up"`
	UpDigest string `json:"up_digest"`
	// UpTargets lists the targets counted in Up; only when asked for.
	UpTargets []TargetKey `json:"up_targets,omitempty"`
}

// TargetKey names a scheduled target.
type TargetKey struct {
	Target string `json:"target"`
	Module string `json:"module"`
}

// Digest is an order-independent digest of a set of targets: two sides
// that hold the same set compute the same value, whatever the order in
// which they added its members. Its zero value is the empty set.
type Digest struct {
	n   int
	sum uint64
}

// Add adds a target to the set.
func (d *Digest) Add(k TargetKey) {
	h := fnv.New64a()
	h.Write([]byte(k.Module))
	h.Write([]byte{0})
	h.Write([]byte(k.Target))
	d.n++
	d.sum += h.Sum64()
}

// String renders the digest as Snapshot.UpDigest carries it.
func (d Digest) String() string { return fmt.Sprintf("%d-%016x", d.n, d.sum) }

// ReportsAnswer is the answer to an accepted batch.
type ReportsAnswer struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	// Run identifies the coordinator process: when it changes, the
	// coordinator may have lost what it knew, and the exporter sends a
	// snapshot.
	Run string `json:"run"`
	// WantSnapshot asks for a snapshot in the next batch: the coordinator
	// saw a gap in the sequence numbers.
	WantSnapshot bool `json:"want_snapshot,omitempty"`
	// WantTargets asks for Snapshot.UpTargets in the next snapshot: the
	// coordinator's list of this location's up targets differs.
	WantTargets bool `json:"want_targets,omitempty"`
}

// Status is the answer of GET StatusPath.
type Status struct {
	Location string `json:"location"`
	Run      string `json:"run"`
	CanaryOK *bool  `json:"canary_ok,omitempty"`
	// Degraded is as in Batch.
	Degraded []string `json:"degraded,omitempty"`
	// Member is the exporter's name in its location's cluster, and
	// Members the live members it sees (itself included); empty without
	// a cluster.
	Member  string   `json:"member,omitempty"`
	Members []string `json:"members,omitempty"`
}

// MaxStatsRange is the longest range an exporter keeps check counts for.
const MaxStatsRange = 7 * 24 * time.Hour

// MaxStatsTargets is the most targets one StatsRequest may name; a larger
// request is refused with 413.
const MaxStatsTargets = 1000

// StatsRequest is the body of POST StatsPath: the targets whose counts are
// wanted (1 to MaxStatsTargets), over the RangeSeconds up to now (more
// than 0, at most MaxStatsRange).
type StatsRequest struct {
	RangeSeconds float64     `json:"range_seconds"`
	Targets      []TargetKey `json:"targets"`
}

// StatsResponse is the answer of POST StatsPath, one TargetStats per
// requested target, in order.
type StatsResponse struct {
	Location string        `json:"location"`
	Run      string        `json:"run"`
	Stats    []TargetStats `json:"stats"`
}

// TargetStats counts the finished scheduled checks of one target, by
// outcome, that ended within [From, now]. From is the start of the oldest
// bucket counted, which may be earlier than asked: counts are kept per
// bucket (an hour, UTC). Known is false when this exporter does not
// schedule the target (not configured); its counts are then zero. In a
// location cluster every member knows the location's targets and counts
// only the checks it made while it owned them: the location's counts are
// the sum of its members'.
type TargetStats struct {
	TargetKey
	Known     bool      `json:"known"`
	From      time.Time `json:"from"`
	Succeeded uint64    `json:"succeeded"`
	Failed    uint64    `json:"failed"`
	// Unknown counts checks whose result could not vouch for the target
	// (the location's canary failing, the exporter degraded).
	Unknown uint64 `json:"unknown"`
}

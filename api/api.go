// Package api is the wire protocol between vantage's two programs, in one
// versioned place: the check API the coordinator calls on the exporters,
// and the state-change reports the exporters send to the coordinator.
//
// Both programs import it; it imports only the prober's result type. A
// change that an older peer cannot read needs a new version in the paths.
package api

import (
	"errors"
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
	// ReportsPath is where a coordinator receives reports (POST a Batch,
	// answered by a ReportsAnswer).
	ReportsPath = "/api/" + Version + "/reports"
)

// ErrCanaryFailing is why a location whose connectivity canary fails cannot
// tell whether a target is down.
var ErrCanaryFailing = errors.New("the location's connectivity canary is failing")

// CheckRequest is the body of POST CheckPath.
type CheckRequest struct {
	Target string `json:"target"`
	Module string `json:"module"`
	// TimeoutSeconds bounds the check; the module's timeout caps it. 0:
	// the module's timeout, or 10s when the module sets none.
	TimeoutSeconds float64 `json:"timeout_seconds,omitempty"`
}

// CheckResponse is the answer of POST CheckPath.
type CheckResponse struct {
	Location string `json:"location"`
	// CanaryOK is the latest verdict of this location's connectivity
	// canary; absent without a canary, or before its first check. A
	// location whose canary fails cannot tell whether a target is down.
	CanaryOK *bool          `json:"canary_ok,omitempty"`
	Target   string         `json:"target"`
	Module   string         `json:"module"`
	Result   *result.Result `json:"result"`
}

// States a report announces.
const (
	// StateFailing: the target started failing after local retries.
	StateFailing = "failing"
	// StateRecovered: the target succeeded again.
	StateRecovered = "recovered"
	// StateUnknown: the check failed while this location's connectivity
	// canary failed too, so the location cannot tell.
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
}

// Batch is the body of POST ReportsPath.
type Batch struct {
	Location string `json:"location"`
	// Run identifies the exporter process: Seq restarts at 1 in a new
	// run, so a coordinator tells a redelivered batch (same run, seen
	// Seq) from a restarted exporter's first reports.
	Run string `json:"run"`
	// CanaryOK is the location's connectivity canary verdict when the
	// batch was sent; absent without a canary or before its first check.
	CanaryOK *bool    `json:"canary_ok,omitempty"`
	Reports  []Report `json:"reports"`
}

// ReportsAnswer is the answer to an accepted batch.
type ReportsAnswer struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

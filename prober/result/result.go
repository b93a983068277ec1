// Package result is what a probe found: the typed Result every prober
// returns, with its failure reason, phase durations and protocol details,
// and the series it renders as (blackbox_exporter's names). It imports the
// standard library only, so the coordinator and the wire protocol read
// results without linking any probe protocol.
package result

import (
	"time"
)

// Reason says why a probe failed, from a fixed vocabulary.
type Reason string

// The failure reasons.
const (
	ReasonNone           Reason = ""
	ReasonInvalidTarget  Reason = "invalid_target"  // the target cannot be parsed for this prober
	ReasonDNSError       Reason = "dns_error"       // the target's name did not resolve
	ReasonConnectRefused Reason = "connect_refused" // the peer refused the connection
	ReasonConnectTimeout Reason = "connect_timeout" // no connection before the deadline
	ReasonConnectError   Reason = "connect_error"   // any other failure to connect (unreachable, source address)
	ReasonTLSError       Reason = "tls_error"       // handshake or certificate verification failed
	ReasonTimeout        Reason = "timeout"         // connected, but the deadline passed before an answer
	ReasonProtocolError  Reason = "protocol_error"  // the peer broke the protocol or closed early
	ReasonStatusCode     Reason = "status_code"     // HTTP status not in valid_status_codes
	ReasonHTTPVersion    Reason = "http_version"    // HTTP version not in valid_http_versions
	ReasonSSLPolicy      Reason = "ssl_policy"      // fail_if_ssl / fail_if_not_ssl
	ReasonBodyMismatch   Reason = "body_mismatch"   // a body regexp check failed
	ReasonHeaderMismatch Reason = "header_mismatch" // a header regexp check failed
	ReasonCELMismatch    Reason = "cel_mismatch"    // a CEL JSON-body check failed or the body is not JSON
	ReasonBodyTooLarge   Reason = "body_too_large"  // the body exceeded body_size_limit
	ReasonExpectMismatch Reason = "expect_mismatch" // a TCP query_response expectation was not met
	ReasonDNSRcode       Reason = "dns_rcode"       // DNS rcode not in valid_rcodes
	ReasonDNSRecords     Reason = "dns_records"     // DNS answer/authority/additional validation failed
	ReasonNotServing     Reason = "not_serving"     // gRPC health status is not SERVING
	ReasonGRPCError      Reason = "grpc_error"      // the gRPC health call failed
	ReasonSocketError    Reason = "socket_error"    // a local socket could not be opened (ICMP permissions)
	ReasonConfigError    Reason = "config_error"    // the module cannot run (body_file unreadable, ...)
	ReasonInternalError  Reason = "internal_error"  // a bug: the prober panicked

	// The module's destinations section forbids the target's host or
	// address, or a redirect's.
	ReasonDestinationDenied Reason = "destination_denied"

	// An http_steps capture found nothing to take from the response.
	ReasonCaptureFailed Reason = "capture_failed"
)

// Reasons lists every failure reason, for documentation and validation.
var Reasons = []Reason{
	ReasonInvalidTarget, ReasonDNSError, ReasonConnectRefused, ReasonConnectTimeout,
	ReasonConnectError, ReasonTLSError, ReasonTimeout, ReasonProtocolError, ReasonStatusCode,
	ReasonHTTPVersion, ReasonSSLPolicy, ReasonBodyMismatch, ReasonHeaderMismatch,
	ReasonCELMismatch, ReasonBodyTooLarge, ReasonExpectMismatch, ReasonDNSRcode,
	ReasonDNSRecords, ReasonNotServing, ReasonGRPCError, ReasonSocketError,
	ReasonConfigError, ReasonInternalError, ReasonDestinationDenied,
	ReasonCaptureFailed,
}

// Phase is the duration of one step of a probe, named as blackbox_exporter
// names it for that prober (http: resolve, connect, tls, processing,
// transfer; dns: resolve, connect, request; icmp: resolve, setup, rtt;
// grpc: resolve, check).
type Phase struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration_ns"`
}

// PhaseTiming is one occurrence of a phase: when it started, as an offset
// from Result.Start, and how long it took. A phase that happens more than
// once (HTTP redirects) has one timing per occurrence.
type PhaseTiming struct {
	Name     string
	Start    time.Duration
	Duration time.Duration
}

// Result is what one probe found. Exactly one of the protocol detail
// pointers matching Prober is set once the probe got that far.
type Result struct {
	Prober   string        `json:"prober"`
	Success  bool          `json:"success"`
	Reason   Reason        `json:"reason,omitempty"`
	Error    string        `json:"error,omitempty"` // human-readable detail of the failure
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`
	// Timeout is how long the probe was given: from its start to its
	// context's deadline; 0 without a deadline.
	Timeout time.Duration `json:"timeout_ns,omitempty"`
	Phases  []Phase       `json:"phases,omitempty"`
	// Timeline holds every measured phase with its start, in the order
	// the phases were recorded; only when Params.Tracing asked for it.
	Timeline []PhaseTiming `json:"-"`

	// Resolve holds the target name resolution, when the prober resolved one.
	Resolve *ResolveDetails `json:"resolve,omitempty"`
	// TLS holds the negotiated TLS session, when one was established.
	TLS *TLSDetails `json:"tls,omitempty"`

	HTTP *HTTPDetails `json:"http,omitempty"`
	TCP  *TCPDetails  `json:"tcp,omitempty"`
	DNS  *DNSDetails  `json:"dns,omitempty"`
	ICMP *ICMPDetails `json:"icmp,omitempty"`
	GRPC *GRPCDetails `json:"grpc,omitempty"`
	// Websocket holds what the websocket prober found.
	Websocket *WebsocketDetails `json:"websocket,omitempty"`

	HTTPSteps *HTTPStepsDetails `json:"http_steps,omitempty"`

	timeline bool // record Timeline
}

// New starts the result of a probe by prober that starts now; timeline
// asks for every phase's timing in Timeline (for traces).
func New(prober string, start time.Time, timeline bool) *Result {
	return &Result{Prober: prober, Start: start, timeline: timeline}
}

// Fail marks the result failed with reason and a detail message; the first
// failure recorded wins, as it is the cause.
func (r *Result) Fail(reason Reason, format string, args ...any) {
	if r.Reason != ReasonNone {
		return
	}
	r.Success = false
	r.Reason = reason
	r.Error = sprintf(format, args...)
}

// SetPhase records the duration of a named phase, adding to it when the phase
// happens more than once (HTTP redirects).
func (r *Result) SetPhase(name string, d time.Duration) {
	for i := range r.Phases {
		if r.Phases[i].Name == name {
			r.Phases[i].Duration += d
			return
		}
	}
	r.Phases = append(r.Phases, Phase{Name: name, Duration: d})
}

// RecordPhase records a phase that ran from start to end: its duration as
// SetPhase does, and, when the probe keeps a timeline, its occurrence.
func (r *Result) RecordPhase(name string, start, end time.Time) {
	d := end.Sub(start)
	r.SetPhase(name, d)
	if r.timeline && d > 0 {
		r.Timeline = append(r.Timeline, PhaseTiming{Name: name, Start: start.Sub(r.Start), Duration: d})
	}
}

// PhaseDuration returns the recorded duration of a phase, or 0.
func (r *Result) PhaseDuration(name string) time.Duration {
	for _, p := range r.Phases {
		if p.Name == name {
			return p.Duration
		}
	}
	return 0
}

// InitPhases records every phase of a prober at zero, so a probe that fails
// early still exposes the full set of phase series as blackbox_exporter does.
func (r *Result) InitPhases(names ...string) {
	for _, n := range names {
		r.SetPhase(n, 0)
	}
}

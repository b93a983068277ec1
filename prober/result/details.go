package result

import "time"

// DNSDetails holds what the dns prober found.
type DNSDetails struct {
	Transport      string `json:"transport"` // udp, tcp or tcp-tls
	QuerySucceeded bool   `json:"query_succeeded"`
	Rcode          string `json:"rcode,omitempty"`
	AnswerRRs      int    `json:"answer_rrs"`
	AuthorityRRs   int    `json:"authority_rrs"`
	AdditionalRRs  int    `json:"additional_rrs"`
	// Serial is the zone serial of an SOA query's answer. As
	// blackbox_exporter, it is set (and probe_dns_serial exported) once an
	// SOA query got an answer, 0 when the answer held no SOA record.
	Serial *uint32 `json:"serial,omitempty"`
	// TLS is the DNS-over-TLS session. blackbox_exporter exports no TLS
	// series for the dns prober, so neither does this; it is kept for the
	// JSON API.
	TLS *TLSDetails `json:"tls,omitempty"`
	// TruncatedRetry is set when the module retries truncated UDP answers
	// over TCP (retry_truncated_over_tcp): true once it did, and Transport
	// is then "tcp". Nil without the option.
	TruncatedRetry *bool `json:"truncated_retry,omitempty"`
}

func (d *DNSDetails) samples(e emitter, r *Result) {
	e.gauge("probe_dns_answer_rrs", "Returns number of entries in the answer resource record list", float64(d.AnswerRRs))
	e.gauge("probe_dns_authority_rrs", "Returns number of entries in the authority resource record list", float64(d.AuthorityRRs))
	e.gauge("probe_dns_additional_rrs", "Returns number of entries in the additional resource record list", float64(d.AdditionalRRs))
	e.gauge("probe_dns_query_succeeded", "Displays whether or not the query was executed successfully", boolValue(d.QuerySucceeded))
	if d.Serial != nil {
		e.gauge("probe_dns_serial", "Returns the serial number of the zone", float64(*d.Serial))
	}
	if d.TruncatedRetry != nil {
		e.gauge("probe_dns_truncated_retry", "Whether the UDP answer was truncated and the query was retried over TCP", boolValue(*d.TruncatedRetry))
	}
}

// GRPCDetails holds what the grpc prober found.
type GRPCDetails struct {
	// Checked is set once the health Check call was made, whatever its
	// outcome; probe_grpc_healthcheck_response is exposed from then on.
	Checked bool `json:"checked"`
	// SSL is set when the connection was secured with TLS.
	SSL bool `json:"ssl"`
	// StatusCode is the gRPC status code of the Check call (0 OK).
	StatusCode int `json:"status_code"`
	// ServingStatus is the health status the server answered: UNKNOWN,
	// SERVING, NOT_SERVING or SERVICE_UNKNOWN; empty when the call failed.
	ServingStatus string `json:"serving_status,omitempty"`
}

// grpcServingStatuses are the serving_status label values of
// probe_grpc_healthcheck_response: the gRPC health protocol's
// ServingStatus names.
var grpcServingStatuses = []string{"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"}

func (d *GRPCDetails) samples(e emitter, r *Result) {
	e.gauge("probe_grpc_ssl", "Indicates if SSL was used for the connection", boolValue(d.SSL))
	e.gauge("probe_grpc_status_code", "Response gRPC status code", float64(d.StatusCode))
	if !d.Checked {
		return
	}
	for _, name := range grpcServingStatuses {
		e.gauge("probe_grpc_healthcheck_response", "Response HealthCheck response", boolValue(name == d.ServingStatus), "serving_status", name)
	}
}

// HTTPDetails holds what the http prober found about the final response.
type HTTPDetails struct {
	StatusCode             int       `json:"status_code"`
	ContentLength          int64     `json:"content_length"`           // as announced; -1 when unknown
	UncompressedBodyLength int64     `json:"uncompressed_body_length"` // bytes read after decompression
	Redirects              int       `json:"redirects"`
	SSL                    bool      `json:"ssl"`                      // the final response came over TLS
	Proto                  string    `json:"proto,omitempty"`          // "HTTP/1.1", "HTTP/2.0", "HTTP/3.0"
	Version                float64   `json:"version"`                  // 1.1, 2, 3; 0 without a response
	LastModified           time.Time `json:"last_modified,omitzero"`   // the Last-Modified header, when valid
	FinalURL               string    `json:"final_url,omitempty"`      // the URL of the final response
	FailedDueToRegex       bool      `json:"failed_due_to_regex"`      // a header or body regexp check failed
	CELConfigured          bool      `json:"cel_configured,omitempty"` // a CEL body check is configured
	FailedDueToCEL         bool      `json:"failed_due_to_cel"`        // a CEL body check failed
}

func (d *HTTPDetails) samples(e emitter, r *Result) {
	e.gauge("probe_http_status_code", "Response HTTP status code", float64(d.StatusCode))
	e.gauge("probe_http_content_length", "Length of http content response", float64(d.ContentLength))
	e.gauge("probe_http_uncompressed_body_length", "Length of uncompressed response body", float64(d.UncompressedBodyLength))
	e.gauge("probe_http_redirects", "The number of redirects", float64(d.Redirects))
	e.gauge("probe_http_ssl", "Indicates if SSL was used for the final redirect", boolValue(d.SSL))
	e.gauge("probe_http_version", "Returns the version of HTTP of the probe response", d.Version)
	e.gauge("probe_failed_due_to_regex", "Indicates if probe failed due to regex", boolValue(d.FailedDueToRegex))
	if d.CELConfigured {
		e.gauge("probe_failed_due_to_cel", "Indicates if probe failed due to CEL expression not matching", boolValue(d.FailedDueToCEL))
	}
	if !d.LastModified.IsZero() {
		e.gauge("probe_http_last_modified_timestamp_seconds", "Returns the Last-Modified HTTP response header in unixtime", float64(d.LastModified.Unix()))
	}
}

// ICMPDetails holds what the icmp prober found.
type ICMPDetails struct {
	// Socket is the kind of socket the echo request went out of: "raw", or
	// "datagram" for an unprivileged ping socket when raw sockets are not
	// permitted.
	Socket string `json:"socket,omitempty"`
	// ID and Sequence identify the echo request. On a datagram socket the
	// kernel replaces the ID with its own.
	ID       int `json:"id"`
	Sequence int `json:"sequence"`
	// PayloadBytes is the size of the echo data.
	PayloadBytes int `json:"payload_bytes"`
	// ReplyHopLimit is the TTL (IPv4) or hop limit (IPv6) the matching
	// reply arrived with, when the socket reported it.
	ReplyHopLimit *int `json:"reply_hop_limit,omitempty"`
	// Packets holds what a probe sending several echo requests found;
	// nil for a single one.
	Packets *ICMPPackets `json:"packets,omitempty"`
}

func (d *ICMPDetails) samples(e emitter, r *Result) {
	if d.ReplyHopLimit != nil {
		e.gauge("probe_icmp_reply_hop_limit", "Replied packet hop limit (TTL for ipv4)", float64(*d.ReplyHopLimit))
	}
	if d.Packets != nil {
		d.Packets.samples(e, d.ReplyHopLimit)
	}
}

// TCPDetails holds what the tcp and unix probers found.
type TCPDetails struct {
	// FailedDueToRegex is set when an expect regexp was given data (or the
	// end of the connection) and never matched.
	FailedDueToRegex bool `json:"failed_due_to_regex"`
	// FailedDueToBytes is set when an expect_bytes step read bytes that
	// differ from the expected ones.
	FailedDueToBytes bool `json:"failed_due_to_bytes"`
	// ExpectInfo are the labels of probe_expect_info, their values expanded
	// from the matching expect's submatches.
	ExpectInfo []ExpectLabel `json:"expect_info,omitempty"`
	// StepsCompleted counts the query_response steps that went through.
	StepsCompleted int `json:"steps_completed"`
}

// ExpectLabel is one label of probe_expect_info.
type ExpectLabel struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func (d *TCPDetails) samples(e emitter, r *Result) {
	e.gauge("probe_failed_due_to_regex", "Indicates if probe failed due to regex", boolValue(d.FailedDueToRegex))
	e.gauge("probe_failed_due_to_bytes", "Indicates if probe failed due to bytes", boolValue(d.FailedDueToBytes))
	if len(d.ExpectInfo) > 0 {
		pairs := make([]string, 0, 2*len(d.ExpectInfo))
		for _, l := range d.ExpectInfo {
			pairs = append(pairs, l.Name, l.Value)
		}
		e.gauge("probe_expect_info", "Explicit content matched", 1, pairs...)
	}
}

// SetExpectInfo records the labels of a matched step. blackbox_exporter
// registers probe_expect_info once per labelled step and panics on a second
// one; here later steps add to (or override) the labels of earlier ones, so
// the series keeps one consistent label set.
func (d *TCPDetails) SetExpectInfo(labels []ExpectLabel) {
	for _, l := range labels {
		replaced := false
		for i := range d.ExpectInfo {
			if d.ExpectInfo[i].Name == l.Name {
				d.ExpectInfo[i].Value, replaced = l.Value, true
			}
		}
		if !replaced {
			d.ExpectInfo = append(d.ExpectInfo, l)
		}
	}
}

// WebsocketDetails holds what the websocket prober found.
type WebsocketDetails struct {
	// StatusCode is the status of the handshake's answer, 101 when the
	// connection was upgraded; 0 without an answer.
	StatusCode int  `json:"status_code"`
	Upgraded   bool `json:"upgraded"`
	// QueryConfigured: the module has query_response steps, and
	// probe_websocket_failed_due_to_regex is exposed once upgraded.
	QueryConfigured bool `json:"query_configured,omitempty"`
	// FailedDueToRegex is set when a step failed: a message that did not
	// match, or none to read or no way to send.
	FailedDueToRegex bool `json:"failed_due_to_regex"`
}

func (d *WebsocketDetails) samples(e emitter) {
	e.gauge("probe_websocket_status_code", "Response HTTP status code", float64(d.StatusCode))
	e.gauge("probe_websocket_connection_upgraded", "Indicates if the websocket connection was successfully upgraded", boolValue(d.Upgraded))
	if d.QueryConfigured && d.Upgraded {
		e.gauge("probe_websocket_failed_due_to_regex", "Indicates if probe failed due to regex", boolValue(d.FailedDueToRegex))
	}
}

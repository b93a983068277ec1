package tracing

import "go.opentelemetry.io/otel/attribute"

// Attribute keys of vantage's spans, shared by the exporter's check spans
// and the coordinator's verification spans.
const (
	// AttrTarget is the checked target, as given to /probe?target=.
	AttrTarget = attribute.Key("vantage.target")
	// AttrModule is the module the target is checked with.
	AttrModule = attribute.Key("vantage.module")
	// AttrLocation is the location checking (the exporter's --location);
	// also a resource attribute.
	AttrLocation = attribute.Key("vantage.location")
	// AttrProber is the module's prober: http, tcp, dns, icmp or grpc.
	AttrProber = attribute.Key("vantage.prober")
	// AttrSource says what asked for the check: scheduler, probe (/probe)
	// or api (POST /api/v1/check).
	AttrSource = attribute.Key("vantage.check.source")
	// AttrSuccess is whether the check succeeded.
	AttrSuccess = attribute.Key("vantage.check.success")
	// AttrFailureReason is the failure reason, from the fixed vocabulary
	// (dns_error, connect_refused, ...); absent on success.
	AttrFailureReason = attribute.Key("vantage.check.failure_reason")
	// AttrAttempts is how many attempts the check made (local retries
	// included).
	AttrAttempts = attribute.Key("vantage.check.attempts")
	// AttrAttempt numbers the attempt a phase span belongs to, from 1.
	AttrAttempt = attribute.Key("vantage.check.attempt")
	// AttrPhase names a phase span's phase, as the prober's duration
	// series name it (resolve, connect, tls, processing, transfer, ...).
	AttrPhase = attribute.Key("vantage.phase")
)

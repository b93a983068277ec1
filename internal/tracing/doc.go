// Package tracing sets up OpenTelemetry tracing for vantage's programs and
// keeps the traces worth looking at: every failed check, every slow check,
// and a sample of the rest.
//
// # Set-up
//
// AddFlags adds the --tracing.* flags; New builds a Provider from the
// resulting Config. Tracing is on when --tracing.endpoint is given or the
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// variable is set. The OTLP exporter speaks grpc or http/protobuf
// (--tracing.protocol, else OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else
// OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf), and reads the other
// standard variables (headers, TLS files, insecure, compression, timeout)
// itself; the flags override them. The resource names the service
// (OTEL_SERVICE_NAME, else the binary's name), its version and, when
// known, its location.
//
// When tracing is off, New returns a Provider over a no-op TracerProvider
// and Enabled reports false; callers test Enabled before building span
// names or attributes, so a check then allocates nothing for tracing.
//
// # Keeping slow and failed checks: tail sampling
//
// Whether a check is slow or failed is known only when it ends, and a
// head sampler (deciding when the trace starts) would lose most of them.
// So every span is recorded (AlwaysSample) and the decision is taken after
// the check, by tailSampler, an sdktrace.SpanProcessor in front of the
// batch span processor:
//
//   - A local root span (no parent, or a parent in another process, such as
//     the coordinator's verification span carried by a traceparent header)
//     opens a pending trace. Spans started under a held span join it.
//   - Ended spans are held, not exported.
//   - When the local root span ends, its trace is decided from the root
//     alone: kept when its status is Error (a failed check), when it lasted
//     at least SlowThreshold, or, for the others, when its trace ID falls in
//     SampleRatio (the rule of sdktrace.TraceIDRatioBased, so an exporter
//     and a coordinator with the same ratio choose the same traces). A kept
//     trace's spans go to the batch span processor, the root last; a dropped
//     trace's are discarded. Spans still open then follow the decision when
//     they end.
//
// Memory is bounded: at most MaxPendingTraces traces are held (a trace
// starting while the buffer is full is not held, and counted as
// vantage_tracing_traces_total{decision="overflow"}), and at most
// MaxSpansPerTrace spans per trace. While a check runs only its root span
// is open, so the buffer holds about one small entry per check in flight.
// Every decision and every dropped span is counted in the
// vantage_tracing_* series of the Registerer given to New.
//
// Kept tells, right after a root span ended, whether its trace was kept,
// so that exemplars only point at traces that exist.
//
// # Propagation
//
// Inject, Extract and Transport read and write W3C traceparent headers,
// and do nothing when tracing is off.
package tracing
